"""Optimise against a reward model (best-of-n, GRPO) on demo-generator settings and watch the ground truth.

Library: :mod:`solireward.hacking.overopt` (best-of-n, the policy optimisation, the summaries) and
:mod:`solireward.hacking.grid` (the grid, rendered once per study by `solireward overopt-grid`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from solireward.commands._options import (add_config_argument, add_dataclass_arguments, add_tag_argument,
                                         parse_dataclasses, parse_tags)
from solireward.config import load_yaml
from solireward.conservative import EnsembleOptions
from solireward.errors import ConfigError
from solireward.hacking.grid import GridOptions
from solireward.hacking.overopt import OveroptConfig, overopt_markdown, plot_curves, run_overopt
from solireward.io import write_json, write_text

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward overopt`."""
    add_config_argument(parser)
    add_tag_argument(parser, "overopt.json")
    add_dataclass_arguments(parser, OveroptConfig, "over-optimisation")
    add_dataclass_arguments(parser, EnsembleOptions, "several models")
    add_dataclass_arguments(parser, GridOptions, "grid (without --grid_dir; a grid folder brings its own)")


def run(args: argparse.Namespace) -> int:
    """Run the experiment and write overopt.json, overopt.md and overopt_curves.png into the output folder."""
    config, ensemble, options = parse_dataclasses([OveroptConfig, EnsembleOptions, GridOptions], args, args.config)
    given = set(load_yaml(args.config) if args.config else {}) | set(vars(args))
    grid_keys = sorted(given & {f.name for f in dataclasses.fields(GridOptions)})
    if config.grid_dir and grid_keys:
        raise ConfigError(f"the grid in {config.grid_dir} fixes its prompts and settings; drop "
                          + ", ".join(f"--{k}" for k in grid_keys), field=grid_keys[0])
    result = run_overopt(config, options, parse_tags(args.tag), ensemble)
    out = Path(config.output_dir)
    write_json(out / "overopt.json", result)
    write_text(out / "overopt.md", overopt_markdown(result))
    plot_curves(result, out / "overopt_curves.png")
    bon = result["summary"]["best_of_n"]
    logger.info("best-of-%d on %d prompts: gold %.3f (base %.3f), hacking gap %+.2f; %.0f s -> %s", config.max_n,
                len(result["prompts"]), bon["gold_at_max_kl"], result["base"]["gold"], bon["hacking_gap"],
                result["seconds"]["total"], out / "overopt.json")
    return 0
