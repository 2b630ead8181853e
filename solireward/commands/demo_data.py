"""Generate the synthetic demo data set (videos, annotations, ground truth).

Library: :mod:`solireward.data.synthetic` (what the videos show, the simulated annotators).
"""

from __future__ import annotations

import argparse

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.data.synthetic import DemoDataConfig, generate_demo_data


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward demo-data`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, DemoDataConfig, "demo data")


def run(args: argparse.Namespace) -> int:
    """Generate the demo data set."""
    generate_demo_data(parse_dataclass(DemoDataConfig, args, args.config))
    return 0
