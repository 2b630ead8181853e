"""The `solireward` command: one subcommand per stage, dispatched to ``solireward.commands.<name>``.

Subcommand ``x-y`` lives in :mod:`solireward.commands.x_y`, which exposes ``configure_parser(parser)``
and ``run(args) -> int``. Only the module of the subcommand being run is imported: the one-line
summaries that ``solireward --help`` lists are the first lines of the modules' docstrings, read from
their source files, so the help is instant and does not import torch.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Sequence

from solireward import __version__
from solireward.errors import SoliRewardError

# the subcommands, in the order of the pipeline (the order `solireward --help` lists them in)
COMMANDS = ("demo-data", "labels", "audit-labels", "pairs", "tiny-model", "train", "infer", "serve", "evaluate",
            "probe", "overopt-grid", "overopt", "grid-pool", "select", "simulate-labels", "report", "active-report",
            "compare-reports", "import-bench")


def command_module(command: str) -> str:
    """The module of a subcommand: ``solireward.commands.<command with '-' replaced by '_'>``."""
    return f"solireward.commands.{command.replace('-', '_')}"


def command_summary(command: str) -> str:
    """The first line of the subcommand module's docstring, read without importing the module."""
    spec = importlib.util.find_spec(command_module(command))
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return (ast.get_docstring(tree) or "").strip().splitlines()[0]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; with `command`, that subcommand's full parser is configured."""
    parser = argparse.ArgumentParser(
        prog="solireward",
        description="Train, serve and evaluate video reward models (SoliReward).",
        epilog="Run 'solireward <command> --help' for the flags of one stage.",
    )
    parser.add_argument("--version", action="version", version=f"solireward {__version__}")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging verbosity (default: INFO)")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        summary = command_summary(name)
        p = sub.add_parser(name, help=summary, description=summary)
        if name == command:
            importlib.import_module(command_module(name)).configure_parser(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `solireward` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    module = importlib.import_module(command_module(args.command))
    try:
        return int(module.run(args) or 0)
    except SoliRewardError as exc:
        print(f"solireward {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"solireward {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
