"""A tiny randomly initialised VLM of a family, saved like a real checkpoint (`solireward tiny-model`).

The folder holds what a downloaded checkpoint holds (config.json, model.safetensors, tokenizer,
image/video processor, chat template), so `from_pretrained(DIR)` loads it offline through exactly
the code path used for real models. The tokenizer is a byte-level BPE trained with the
`tokenizers` library on a small built-in English corpus, with the family's special tokens.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from solireward.io import atomic_dir
from solireward.models.families import Family, TinySizes, get_family
from solireward.models.prompts import DEFAULT_QUESTIONS, DEFAULT_SYSTEM_PROMPT

logger = logging.getLogger(__name__)

_CORPUS = [
    DEFAULT_SYSTEM_PROMPT,
    *DEFAULT_QUESTIONS.values(),
    "good bad yes no good video bad video pass fail the video is good the video is bad",
    "a cat jumps onto a table, a dog runs across the park, a ball bounces on the floor",
    "a person walks down the street while the camera follows; a car drives along the road at night",
    "water pours into a glass; a bird flies over the sea; leaves fall from a tree in the wind",
    "the subject has two hands and five fingers; the face is free of deformity and distortion",
    "motion is smooth and physically plausible; objects do not pass through each other",
    "Frame1: Frame2: Frame3: Frame4: Frame5: Frame6: Frame7: Frame8: system user assistant",
    "red green blue yellow white black small large fast slow left right up down in on at with",
]


def train_tokenizer(family: Family, vocab_size: int) -> Any:
    """A byte-level BPE trained on the built-in corpus, wrapped as a `transformers` tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(family.special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token=family.special_tokens[0], eos_token="<|im_end|>",
                                   extra_special_tokens=dict(family.named_tokens), padding_side="right")


def build_tiny_model(model_type: str, output_dir: str | Path, seed: int = 0, sizes: TinySizes = TinySizes()) -> Path:
    """Write a tiny random model of `model_type` (weights + processor) into `output_dir`; returns the folder."""
    family = get_family(model_type)
    tokenizer = train_tokenizer(family, sizes.vocab_size)
    processor = family.build_tiny_processor(tokenizer, family.chat_template, sizes)
    config = family.build_tiny_config(tokenizer, sizes)
    torch.manual_seed(seed)
    model = family.model_cls()(config).eval()
    with atomic_dir(output_dir) as tmp:
        model.save_pretrained(str(tmp))
        processor.save_pretrained(str(tmp))
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("wrote a tiny %s (%d parameters, vocabulary %d) to %s", family.name, n_params, len(tokenizer),
                output_dir)
    return Path(output_dir)

