"""Compute pair accuracy, ROC-AUC, F1 and reward-hacking diagnostics.

Library: :mod:`solireward.evaluation` (the metrics and their exact definitions).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.errors import ConfigError
from solireward.evaluation import EvaluateConfig, evaluate, metrics_markdown, summary_line
from solireward.io import write_json, write_text

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward evaluate`."""
    add_config_argument(parser)
    parser.add_argument("--tag", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="label stored under 'tags' in the output so `solireward report` can group cells "
                             "(e.g. head=hpqa loss=btt pairing=cross_prompt labels=binary task=phy_deform); "
                             "repeatable")
    add_dataclass_arguments(parser, EvaluateConfig, "evaluation")


def run(args: argparse.Namespace) -> int:
    """Compute the metrics of one score file and write them as JSON and Markdown."""
    config = parse_dataclass(EvaluateConfig, args, args.config)
    result = evaluate(config, parse_tags(args.tag))
    write_json(config.output, result)
    write_text(config.markdown or str(Path(config.output).with_suffix(".md")), metrics_markdown(result))
    logger.info("%s -> %s", summary_line(result), config.output)
    return 0


def parse_tags(items: list[str]) -> dict[str, str]:
    """`key=value` strings as a dict; a malformed or contradictory tag is a ConfigError."""
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}", field="tag")
        if key in tags and tags[key] != value:
            raise ConfigError(f"tag '{key}' given twice with different values ({tags[key]!r}, {value!r})",
                              field="tag")
        tags[key] = value
    return tags
