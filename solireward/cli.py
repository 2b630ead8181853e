"""The `solireward` command: one subcommand per stage, dispatched to ``solireward.commands.<name>``.

Subcommand ``x-y`` lives in :mod:`solireward.commands.x_y`, which exposes ``configure_parser(parser)``
and ``run(args) -> int``. Only the module of the subcommand being run is imported: the one-line
summaries that ``solireward --help`` lists are the first lines of the modules' docstrings, read from
their source files, so the help is instant and does not import torch.

Several subcommands can run in one process, one after the other, joined by ``--then``
(``solireward infer ... --then probe ... --then overopt ...``): their imports (torch, transformers and
torchvision take 3-4 s of every process on a CPU) are paid once. The workflow scores each model this way.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from solireward import __version__
from solireward.errors import EXIT_SOME_FAILED, SoliRewardError

THEN = "--then"

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
        epilog="Run 'solireward <command> --help' for the flags of one stage. Several commands run in one process "
               f"when joined by {THEN} (solireward infer ... {THEN} probe ...): in order, each with its own "
               f"flags, stopping at the first that fails (exit status other than 0 and {EXIT_SOME_FAILED}); the "
               "exit status is the first non-zero one.",
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
    """Entry point of the `solireward` console script: one subcommand, or several joined by ``--then``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chain = _split_chain(argv)
    world = os.environ.get("WORLD_SIZE", "1")
    if len(chain) > 1 and world != "1":
        print(f"solireward: {THEN} runs its commands in one process, but this is one of {world} processes "
              "(torchrun): start each command on its own", file=sys.stderr)
        return 2
    parsed = []
    for part in chain:  # every part is parsed before the first runs: a usage error runs nothing
        parser = build_parser(next((a for a in part if a in COMMANDS), None))
        args = parser.parse_args(part)
        if args.command is None:
            parser.print_help()
            return 2
        parsed.append(args)
    logging.basicConfig(level=parsed[0].log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    status = 0
    for args in parsed:
        code = _run(args)
        status = status or code
        if code not in (0, EXIT_SOME_FAILED):  # a command that skipped some inputs is done: go on
            break
    return status


def _split_chain(argv: list[str]) -> list[list[str]]:
    """`argv` cut at each ``--then``; a part that does not start with a subcommand is a usage error (exit 2)."""
    parts: list[list[str]] = [[]]
    for arg in argv:
        if arg == THEN:
            parts.append([])
        else:
            parts[-1].append(arg)
    for part in parts[1:]:
        if not part or part[0] not in COMMANDS:
            got = repr(part[0]) if part else "nothing"
            build_parser().error(f"{THEN} must be followed by a subcommand ({', '.join(COMMANDS)}), got {got}")
    return parts


def _run(args: argparse.Namespace) -> int:
    """Run one parsed subcommand; its exit status (2 for a SoliRewardError, printed with the command's name)."""
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
