"""Train a reward model on pair files.

Launch with one process (``solireward train ...``), with ``torchrun --nproc_per_node N -m
solireward.cli train ...`` (DDP) or with ``--deepspeed config/deepspeed/zero2.json`` under either
launcher (DeepSpeed ZeRO). Library: :mod:`solireward.training` (the options in
:mod:`solireward.training.config`, the loop and the metrics in :mod:`solireward.training.trainer`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from solireward.commands._options import (add_config_argument, add_dataclass_arguments, command_line_source,
                                          parse_dataclasses, upgrade_deprecated)
from solireward.config import load_yaml
from solireward.data.video import FrameSampling
from solireward.losses import LossConfig
from solireward.sampling import apply_overrides, split_overrides
from solireward.training.config import ModelOptions, TrainConfig

_SAMPLING_TITLE = ("frame sampling (default: the settings stored in a reward model being continued, "
                   "else the model's defaults for its family)")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add every flag of `solireward train`."""
    add_config_argument(parser, "YAML file holding any of the options below (CLI flags override it)")
    add_dataclass_arguments(parser, TrainConfig, "training")
    add_dataclass_arguments(parser, ModelOptions, "reward model")
    add_dataclass_arguments(parser, FrameSampling, _SAMPLING_TITLE)
    add_dataclass_arguments(parser, LossConfig, "loss")


def _stored_sampling(model_path: str) -> dict[str, Any] | None:
    from solireward.models.reward_model import CONFIG_NAME

    config = Path(model_path) / CONFIG_NAME
    if not config.is_file():
        return None
    try:
        stored = json.loads(config.read_text(encoding="utf-8")).get("sampling")
    except (json.JSONDecodeError, AttributeError):
        return None
    return stored if isinstance(stored, dict) else None


def resolve_options(args: argparse.Namespace) -> tuple[TrainConfig, ModelOptions, LossConfig,
                                                        FrameSampling | None, frozenset[str]]:
    """Build the option dataclasses (defaults < YAML < CLI) and the explicitly given frame settings.

    Returns the frame sampling only when some frame option was given (in the YAML file or on the
    command line): then it is the stored/default settings with those options applied.
    """
    config_file = getattr(args, "config", None)
    classes = [TrainConfig, ModelOptions, FrameSampling, LossConfig]
    train, model, _, loss = parse_dataclasses(classes, args, config_file)
    yaml_values = upgrade_deprecated(classes, load_yaml(config_file), warn=False) if config_file else {}
    cli_values = upgrade_deprecated(classes, vars(args), warn=False)
    given = set(yaml_values) | {k for k in cli_values if k not in ("command", "config", "log_level")}
    overrides, _ = split_overrides({**yaml_values, **cli_values}, command_line_source(config_file))
    sampling = apply_overrides(_stored_sampling(train.model_name_or_path), overrides,
                               command_line_source(config_file)) if overrides else None
    return train, model, loss, sampling, frozenset(given)


def run(args: argparse.Namespace) -> int:
    """Train a reward model; returns 0 on success, 75 (EXIT_PREEMPTED) when SIGTERM/SIGUSR1 stopped it
    after writing a checkpoint (continue with --resume)."""
    from solireward.training.preemption import EXIT_PREEMPTED
    from solireward.training.trainer import Trainer

    train, model, loss, sampling, given = resolve_options(args)
    resolved = {**dataclasses.asdict(train), **dataclasses.asdict(model), **dataclasses.asdict(loss)}
    summary = Trainer(train, model, loss, sampling=sampling, given=given, resolved=resolved).run()
    return EXIT_PREEMPTED if "stopped_by_signal" in summary else 0
