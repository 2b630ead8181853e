"""Stress-probe a reward model: how its score moves under perturbations that should or should not move it.

Library: :mod:`solireward.hacking.probe` (the perturbations, the statistics and their verdicts).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from solireward.commands._options import (add_config_argument, add_dataclass_arguments, add_tag_argument,
                                         parse_dataclass, parse_tags)
from solireward.hacking.probe import ProbeConfig, probe_markdown, run_probe
from solireward.io import write_json, write_text

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward probe`."""
    add_config_argument(parser)
    add_tag_argument(parser, "probe.json")
    add_dataclass_arguments(parser, ProbeConfig, "probe")


def run(args: argparse.Namespace) -> int:
    """Probe the model and write probe.json and probe.md into the output folder."""
    config = parse_dataclass(ProbeConfig, args, args.config)
    result = run_probe(config, parse_tags(args.tag))
    out = Path(config.output_dir)
    write_json(out / "probe.json", result)
    write_text(out / "probe.md", probe_markdown(result))
    flagged = [row["name"] for row in result["perturbations"] if row["flagged"]]
    shortcuts = [row["name"] for row in result["perturbations"] if row["shortcut"]]
    logger.info("probed %d videos in %.0f s; flagged: %s; shortcuts: %s -> %s", result["n_videos"], result["seconds"],
                ", ".join(flagged) or "none", ", ".join(shortcuts) or "none", out / "probe.json")
    return 0
