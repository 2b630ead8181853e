"""Score mp4 files with a trained reward model.

Library: :mod:`solireward.inference` (records, decoding workers, sharding under torchrun, exit status).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from solireward.commands._options import add_config_argument, add_dataclass_arguments, command_line_source
from solireward.config import build_dataclass, field_type, is_list_type, load_yaml
from solireward.conservative import EnsembleOptions
from solireward.data.video import FrameSampling
from solireward.errors import EXIT_SOME_FAILED
from solireward.inference import InferenceConfig, infer
from solireward.sampling import SAMPLING_KEYS, split_overrides


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward infer`."""
    parser.epilog = (f"Exit status: 0 when every video was scored, {EXIT_SOME_FAILED} when some could not be "
                     "read (their records hold 'error'), 2 on bad input. Multi-GPU: torchrun --nproc_per_node K "
                     "-m solireward.cli infer ... (each rank scores every K-th record; rank 0 merges).")
    add_config_argument(parser)
    add_dataclass_arguments(parser, InferenceConfig, "inference")
    add_dataclass_arguments(parser, EnsembleOptions, "several models")
    group = parser.add_argument_group(
        "frame sampling overrides",
        "default: the settings stored in the checkpoint at training time; overriding any of them "
        "logs a warning (reward models can be gamed through fps, frame count and resolution)")
    for f in dataclasses.fields(FrameSampling):
        group.add_argument(f"--{f.name}", dest=f.name, default=argparse.SUPPRESS, type=str,
                           nargs="+" if is_list_type(field_type(FrameSampling, f.name)[0]) else None, choices=f.metadata.get("choices"),
                           metavar=None if f.metadata.get("choices") else f.name.upper(),
                           help=f"{f.metadata.get('help', f.name)} (default: the checkpoint's value)")


def run(args: argparse.Namespace) -> int:
    """Score the input records and write the output file; returns 0, or 3 when some failed."""
    config, ensemble, overrides = parse_options(args)
    return infer(config, overrides, ensemble)


def parse_options(args: argparse.Namespace) -> tuple[InferenceConfig, EnsembleOptions, dict[str, Any]]:
    """Layer defaults < YAML < CLI; frame-sampling keys are kept apart as overrides (checked)."""
    config_file = getattr(args, "config", None)
    values = load_yaml(config_file) if config_file else {}
    ensemble_names = {f.name for f in dataclasses.fields(EnsembleOptions)}
    names = {f.name for f in dataclasses.fields(InferenceConfig)} | ensemble_names | SAMPLING_KEYS
    values.update({k: v for k, v in vars(args).items() if k in names})
    source = command_line_source(config_file)
    overrides, rest = split_overrides(values, source)
    ensemble = build_dataclass(EnsembleOptions, {k: v for k, v in rest.items() if k in ensemble_names}, source)
    config = build_dataclass(InferenceConfig, {k: v for k, v in rest.items() if k not in ensemble_names}, source)
    return config, ensemble, overrides
