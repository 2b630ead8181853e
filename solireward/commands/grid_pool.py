"""Write an over-optimisation grid (on training prompts) as a pool of mp4 files with its ground truth.

Library: :mod:`solireward.active.pool` (the files written and their columns).
"""

from __future__ import annotations

import argparse
import logging
import time

from solireward.active.pool import GridPoolConfig, write_grid_pool
from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward grid-pool`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, GridPoolConfig, "grid pool")


def run(args: argparse.Namespace) -> int:
    """Write the videos, pool.jsonl and ground_truth.csv."""
    start = time.perf_counter()
    summary = write_grid_pool(parse_dataclass(GridPoolConfig, args, args.config))
    logger.info("wrote %d videos of %d prompts in %.0f s -> %s", summary["videos"], summary["prompts"],
                time.perf_counter() - start, summary["output_dir"])
    return 0
