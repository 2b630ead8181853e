"""Build the paper-style tables and figures from evaluation outputs.

Library: :mod:`solireward.reporting` (factor tables, reference values, figures).
"""

from __future__ import annotations

import argparse
import logging

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.hacking.report import hacking_tables
from solireward.reporting import ReportConfig, build_report

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward report`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, ReportConfig, "report")
    hacking = parser.add_argument_group("reward-hacking lab", "tables of `solireward probe` and `overopt` outputs")
    hacking.add_argument("--probe", nargs="*", default=[], metavar="PROBE_JSON",
                         help="probe.json of each cell: adds tables/stress_probe.md")
    hacking.add_argument("--overopt", nargs="*", default=[], metavar="OVEROPT_JSON",
                         help="overopt.json of each cell: adds tables/overoptimisation.md, figures/overopt_curves.png")


def run(args: argparse.Namespace) -> int:
    """Build every table and figure and the README that lists them."""
    config = parse_dataclass(ReportConfig, args, args.config)
    written = build_report(config)
    written += hacking_tables(args.probe, args.overopt, config.output_dir)
    logger.info("wrote %d files to %s", len(written), config.output_dir)
    return 0
