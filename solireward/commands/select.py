"""Pick the pool videos to label next by a strategy (pressure, disagreement, uncertainty, diversity, random).

Library: :mod:`solireward.active.batch` (inputs and outputs) and :mod:`solireward.active.strategies` (what
each strategy picks).
"""

from __future__ import annotations

import argparse
import logging

from solireward.active.batch import MANIFEST_FILE, SHEET_FILE, SelectConfig, select_batch
from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclasses
from solireward.conservative import EnsembleOptions

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward select`."""
    add_config_argument(parser)
    add_dataclass_arguments(parser, SelectConfig, "selection")
    add_dataclass_arguments(parser, EnsembleOptions, "several models")


def run(args: argparse.Namespace) -> int:
    """Pick the batch and write the annotation sheet, the manifest and the summary."""
    config, ensemble = parse_dataclasses([SelectConfig, EnsembleOptions], args, args.config)
    summary = select_batch(config, ensemble)
    logger.info("%s: %d of %d candidates (%d pool videos, %d already labelled, %d unscored) over %d prompts -> "
                "%s/%s, %s", config.strategy, summary["selected"], summary["candidates"], summary["pool_videos"],
                summary["already_labelled"], summary["unscored"], summary["prompts_in_batch"], config.output_dir,
                SHEET_FILE, MANIFEST_FILE)
    return 0
