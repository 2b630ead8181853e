"""Compare the conclusions of two reports of one study (e.g. two machines' kernels): any contradiction?

Reads each report folder's conclusions.json (written by `solireward report`) and lists where one run
concludes met and the other missed, or one higher and the other lower; exits 1 when there is any such
contradiction, 0 otherwise. Library: :mod:`solireward.reporting.conclusions`.
"""

from __future__ import annotations

import argparse
import dataclasses

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.config import arg
from solireward.reporting.conclusions import compare, read_conclusions


@dataclasses.dataclass
class CompareConfig:
    """The two report folders."""

    first: str = arg("a report folder (results/<study>/report) of one run")
    second: str = arg("the report folder of another run of the same study (another seed or machine)")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward compare-reports`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, CompareConfig, "reports")


def _line(c: dict) -> str:
    values = "" if c.get("value") is None or c.get("other_value") is None else \
        f" ({c['value']:.2f} vs {c['other_value']:.2f})"
    return f"  {c['kind']}: {c['where']}: {c['what']}: {c['outcome']} vs {c.get('other', '-')}{values}"


def run(args: argparse.Namespace) -> int:
    """Print the contradicting, differing and agreeing conclusions; 1 when any contradict."""
    config = parse_dataclass(CompareConfig, args, args.config)
    found = compare(read_conclusions(config.first), read_conclusions(config.second))
    for bucket in ("contradicting", "differing"):
        print(f"{bucket} ({len(found[bucket])}):")
        print("\n".join(_line(c) for c in found[bucket]) or "  none")
    print(f"agreeing: {len(found['agreeing'])}; in one report only: {len(found['unmatched'])}")
    return 1 if found["contradicting"] else 0
