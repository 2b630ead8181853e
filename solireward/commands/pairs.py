"""Build cross-prompt (or in-prompt) win-lose / win-tie pairs, split by prompt.

Library: :mod:`solireward.data.pairing` (task labels, the prompt split, pair sampling).
"""

from __future__ import annotations

import argparse

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.data.pairing import PairingConfig, build_pairs


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward pairs`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, PairingConfig, "pairing")


def run(args: argparse.Namespace) -> int:
    """Build the pair files of every split and write them with a summary."""
    build_pairs(parse_dataclass(PairingConfig, args, args.config))
    return 0
