"""Audit annotations before training: which cheap video statistics predict Pass within a prompt.

Library: :mod:`solireward.data.label_audit` (the method: stratified rank tests, intervals, Holm) and
:mod:`solireward.data.video_stats` (the statistics).
"""

from __future__ import annotations

import argparse

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.data.label_audit import LabelAuditConfig, run_audit


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward audit-labels`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, LabelAuditConfig, "label audit")


def run(args: argparse.Namespace) -> int:
    """Audit the labels; write the report."""
    run_audit(parse_dataclass(LabelAuditConfig, args, args.config))
    return 0
