"""Import single-item binary annotations into one validated table with agreement statistics.

Library: :mod:`solireward.data.annotations` (validation rules, aggregation, report).
"""

from __future__ import annotations

import argparse

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.data.annotations import LabelImportConfig, import_annotations, write_outputs


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward labels`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, LabelImportConfig, "label import")


def run(args: argparse.Namespace) -> int:
    """Import, validate and aggregate annotations; write the label table, report and rejects."""
    config = parse_dataclass(LabelImportConfig, args, args.config)
    write_outputs(import_annotations(config), config)
    return 0
