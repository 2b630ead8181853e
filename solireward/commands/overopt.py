"""Optimise against a reward model (best-of-n, GRPO) on demo-generator settings and watch the ground truth.

Library: :mod:`solireward.hacking.overopt` (the grid, best-of-n, the policy optimisation, the summaries).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from solireward.commands._options import (add_config_argument, add_dataclass_arguments, add_tag_argument,
                                         parse_dataclass, parse_tags)
from solireward.hacking.overopt import OveroptConfig, overopt_markdown, plot_curves, run_overopt
from solireward.io import write_json, write_text

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward overopt`."""
    add_config_argument(parser)
    add_tag_argument(parser, "overopt.json")
    add_dataclass_arguments(parser, OveroptConfig, "over-optimisation")


def run(args: argparse.Namespace) -> int:
    """Run the experiment and write overopt.json, overopt.md and overopt_curves.png into the output folder."""
    config = parse_dataclass(OveroptConfig, args, args.config)
    result = run_overopt(config, parse_tags(args.tag))
    out = Path(config.output_dir)
    write_json(out / "overopt.json", result)
    write_text(out / "overopt.md", overopt_markdown(result))
    plot_curves(result, out / "overopt_curves.png")
    bon = result["summary"]["best_of_n"]
    logger.info("best-of-%d: gold %.3f (base %.3f), hacking gap %+.2f; %.0f s -> %s", config.max_n,
                bon["gold_at_max_kl"], result["base"]["gold"], bon["hacking_gap"], result["seconds"]["total"],
                out / "overopt.json")
    return 0
