"""Build the study report: the paper's tables, the reward-hacking tables and the figures.

Library: :mod:`solireward.reporting` (load, stats, tables, hacking, figures, build).
"""

from __future__ import annotations

import argparse
import logging

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.reporting import ReportConfig, build_report

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward report`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, ReportConfig, "report")


def run(args: argparse.Namespace) -> int:
    """Build every table and figure and the README and summary page that hold them."""
    config = parse_dataclass(ReportConfig, args, args.config)
    written = build_report(config)
    logger.info("wrote %d files to %s", len(written), config.output_dir)
    return 0
