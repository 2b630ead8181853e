"""Compare the conclusions of two reports of one study (e.g. two machines' kernels): any contradiction?

Reads each report folder's conclusions.json (written by `solireward report`) and lists where one run
concludes met and the other missed, or one higher and the other lower; exits 1 when there is any such
contradiction, 0 otherwise. Library: :mod:`solireward.reporting.conclusions`.
"""

from __future__ import annotations

import argparse

from solireward.reporting.conclusions import compare, read_conclusions


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `solireward compare-reports`."""
    parser.add_argument("first", help="a report folder (results/<study>/report) of one run")
    parser.add_argument("second", help="the report folder of the other run of the same study")


def _line(c: dict) -> str:
    values = "" if c.get("value") is None else f" ({c['value']:.2f} vs {c.get('other_value') or float('nan'):.2f})"
    return f"  {c['kind']}: {c['where']}: {c['what']}: {c['outcome']} vs {c.get('other', '-')}{values}"


def run(args: argparse.Namespace) -> int:
    """Print the contradicting, differing and agreeing conclusions; 1 when any contradict."""
    found = compare(read_conclusions(args.first), read_conclusions(args.second))
    for bucket in ("contradicting", "differing"):
        print(f"{bucket} ({len(found[bucket])}):")
        print("\n".join(_line(c) for c in found[bucket]) or "  none")
    print(f"agreeing: {len(found['agreeing'])}; in one report only: {len(found['unmatched'])}")
    return 1 if found["contradicting"] else 0
