"""Render the generator-settings grid of `solireward overopt` once, for every model of a study to score.

Library: :mod:`solireward.hacking.grid` (the prompts, the settings, the folder layout).
"""

from __future__ import annotations

import argparse
import logging
import time

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclasses
from solireward.hacking.grid import Grid, GridConfig, GridOptions

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward overopt-grid`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, GridConfig, "grid folder")
    add_dataclass_arguments(parser, GridOptions, "grid")


def run(args: argparse.Namespace) -> int:
    """Render the grid of the file's held-out prompts into --grid_dir (grid.json and one .npz per prompt)."""
    config, options = parse_dataclasses([GridConfig, GridOptions], args, args.config)
    start = time.perf_counter()
    grid = Grid.from_records(config.input_file, options, config.seed)
    grid.save(config.grid_dir)
    logger.info("rendered %d prompts x %d settings in %.0f s -> %s", len(grid.prompts), len(grid.settings[0]),
                time.perf_counter() - start, config.grid_dir)
    return 0
