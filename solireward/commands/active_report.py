"""Report the rounds of the labelling loop: labels spent, accuracy, hacking gap and each strategy vs random.

Library: :mod:`solireward.reporting.rounds` (what is measured, its intervals and tests, the files written).
"""

from __future__ import annotations

import argparse
import logging

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.reporting.rounds import RoundsReportConfig, build_rounds_report

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward active-report`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, RoundsReportConfig, "rounds report")


def run(args: argparse.Namespace) -> int:
    """Write the README, the tables, the numbers and the figure of the rounds."""
    config = parse_dataclass(RoundsReportConfig, args, args.config)
    written = build_rounds_report(config)
    logger.info("wrote %d files to %s", len(written), config.output_dir)
    return 0
