"""Convert a public pairwise video test set or a preference file into pair, video and vote files.

Library: :mod:`solireward.data.benchmarks` (the formats, their columns and label values).
"""

from __future__ import annotations

import argparse
import logging

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.data.benchmarks import ImportBenchConfig, import_bench

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward import-bench`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, ImportBenchConfig, "import")


def run(args: argparse.Namespace) -> int:
    """Parse the file and write pairs.json, videos.json, votes.csv, preferences.csv and summary.json."""
    config = parse_dataclass(ImportBenchConfig, args, args.config)
    summary = import_bench(config)
    skipped = ", ".join(f"{n} '{label}'" for label, n in summary["rows_skipped"].items())
    logger.info("%d pairs (%d with a missing video; rows skipped: %s) from %s -> %s", summary["pairs"],
                summary["pairs_with_missing_video"], skipped or "none", config.input, config.output_dir)
    return 0
