"""The `solireward` command: one subcommand per stage.

Each stage lives in its own module exposing ``configure_parser(parser)`` and ``run(args) -> int``.
Modules are imported only when their subcommand runs, so ``solireward --help`` is instant and
does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from solireward import __version__
from solireward.errors import SoliRewardError

# subcommand -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-data": ("solireward.data.synthetic", "Generate the synthetic demo data set (videos, annotations, ground truth)."),
    "labels": ("solireward.data.annotations", "Import single-item binary annotations into one validated table with agreement statistics."),
    "pairs": ("solireward.data.pairing", "Build cross-prompt (or in-prompt) win-lose / win-tie pairs, split by prompt."),
    "tiny-model": ("solireward.models.tiny", "Build a tiny randomly initialised VLM of a family, saved like a real checkpoint."),
    "train": ("solireward.training.cli", "Train a reward model on pair files."),
    "infer": ("solireward.inference", "Score mp4 files with a trained reward model."),
    "evaluate": ("solireward.evaluation", "Compute pair accuracy, ROC-AUC, F1 and reward-hacking diagnostics."),
    "report": ("solireward.reporting", "Build the paper-style tables and figures from evaluation outputs."),
}


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
    for name, (module, summary) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary,
                           )
        if name == command:
            importlib.import_module(module).configure_parser(p)
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
    module = importlib.import_module(COMMANDS[args.command][0])
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
