"""Build a tiny randomly initialised VLM of a family, saved like a real checkpoint.

Library: :mod:`solireward.models.tiny` (tokenizer, processor and weights of the tiny model).
"""

from __future__ import annotations

import argparse
import dataclasses

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.config import arg
from solireward.errors import ConfigError
from solireward.models.families import FAMILIES, TinySizes
from solireward.models.tiny import build_tiny_model


@dataclasses.dataclass
class TinyModelOptions:
    """Sizes and seed of a tiny random model."""

    model_type: str = arg("backbone family", choices=tuple(FAMILIES))
    output_dir: str = arg("folder to write the model and processor into (replaced if it exists)")
    seed: int = arg("random seed of the weights", 0)
    hidden_size: int = arg("width of the language model", TinySizes.hidden_size)
    num_layers: int = arg("decoder layers of the language model", TinySizes.num_layers)
    vision_layers: int = arg("layers of the vision tower", TinySizes.vision_layers)
    image_size: int = arg("frame side in pixels the processor resizes to (a multiple of 28)", TinySizes.image_size)
    vocab_size: int = arg("target vocabulary size of the byte-level BPE (at least 300)", TinySizes.vocab_size)

    def __post_init__(self) -> None:
        checks = [("hidden_size", self.hidden_size >= 16 and self.hidden_size % 8 == 0,
                   "a multiple of 8, at least 16"),
                  ("num_layers", self.num_layers >= 1, "at least 1"),
                  ("vision_layers", self.vision_layers >= 1, "at least 1"),
                  ("image_size", self.image_size >= 28 and self.image_size % 28 == 0, "a multiple of 28"),
                  ("vocab_size", self.vocab_size >= 300, "at least 300 (256 bytes + special tokens)")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)}", field=name)

    def sizes(self) -> TinySizes:
        """The model sizes as the library takes them."""
        return TinySizes(hidden_size=self.hidden_size, num_layers=self.num_layers, vision_layers=self.vision_layers,
                         image_size=self.image_size, vocab_size=self.vocab_size)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Flags of `solireward tiny-model`."""
    add_dataclass_arguments(parser, TinyModelOptions)
    add_config_argument(parser, "YAML file with any of the options above")


def run(args: argparse.Namespace) -> int:
    """Build the model; exit status 0."""
    options = parse_dataclass(TinyModelOptions, args, args.config)
    build_tiny_model(options.model_type, options.output_dir, options.seed, options.sizes())
    return 0
