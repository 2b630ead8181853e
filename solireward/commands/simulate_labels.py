"""Answer a batch sheet with the demo's simulated annotators (the demo's stand-in for real annotators).

Library: :mod:`solireward.active.simulate` (the annotators reused from `demo-data`, the output format).
"""

from __future__ import annotations

import argparse
import logging

from solireward.active.simulate import SimulateLabelsConfig, simulate_labels
from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward simulate-labels`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, SimulateLabelsConfig, "simulated annotators")


def run(args: argparse.Namespace) -> int:
    """Answer the sheet and write the annotation file."""
    summary = simulate_labels(parse_dataclass(SimulateLabelsConfig, args, args.config))
    logger.info("%d videos answered by %d annotators (%d rows) -> %s", summary["videos"], len(summary["annotators"]),
                summary["rows"], summary["output"])
    return 0
