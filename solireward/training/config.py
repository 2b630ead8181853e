"""Options of the trainer (`solireward train`): its own dataclass and the model options.

Flags keep the release's snake_case names. Defaults follow the release (lr 1e-6, 3 epochs,
warm-up 5 %, weight decay 0.01, gradient clipping 1.0, full fine-tuning with gradient
checkpointing); the demo recipe overrides them in ``config/demo_train.yaml``.

Batch sizes. With ``--batching in_batch`` (default) ``--per_device_train_batch_size`` counts
*videos* per device and micro-step: each video is scored once and the loss is taken over every
Pass x Fail (win-lose) and Pass x Pass (win-tie) pair among them, never Fail x Fail. With
``--batching pairs_file`` it counts *pairs* of the pair file per device and micro-step, each distinct
video of the micro-batch scored once.

Renamed flags (one word per concept, as in the study config): ``--batching`` was ``--pairing
in_batch|explicit`` and ``--pairing`` was ``--pair_groups``; the old spellings still work, with a
warning, until the next release (:data:`TrainConfig.DEPRECATED`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from solireward.config import arg
from solireward.data.video import BACKENDS
from solireward.errors import ConfigError
from solireward.models import RewardModelConfig
from solireward.models.backbones import ATTN_IMPLEMENTATIONS, TORCH_DTYPES
from solireward.study import PAIRINGS
from solireward.training.augment import Augmentation

BATCHINGS = ("in_batch", "pairs_file")  # labelled videos paired inside each batch, or a pair file's pairs as written
LR_SCHEDULERS = ("linear", "cosine", "constant")


@dataclasses.dataclass
class TrainConfig:
    """Data, optimisation, schedule, checkpointing and backend options of `solireward train`."""

    # old spelling (key, value or None for any) -> new (key, value or None for the same value)
    DEPRECATED: ClassVar[dict[tuple[str, str | None], tuple[str, str | None]]] = {
        ("pair_groups", None): ("pairing", None),
        ("pairing", "in_batch"): ("batching", "in_batch"),
        ("pairing", "explicit"): ("batching", "pairs_file"),
    }

    model_name_or_path: str = arg("backbone folder (save_pretrained layout) to build a new reward model on, "
                                  "or a saved reward-model folder to continue training from")
    train_data: str = arg("training pair file (JSON list of win/lose/meta records, from `solireward pairs`)")
    output_dir: str = arg("folder for the final reward model, metrics.jsonl, checkpoints/, "
                          "train_config.yaml and train_summary.json")
    eval_data: str | None = arg("evaluation pair file; pair accuracy (no ties) and ROC-AUC every "
                                "--eval_steps and at the end, and the score mean/std stored in the model", None)
    batching: str = arg("in_batch: score a batch of labelled videos once and train on every pair inside it; "
                        "pairs_file: train on the pairs of --train_data as written", "in_batch",
                        choices=BATCHINGS)
    pairing: str = arg("in_batch pairs across prompts (cross_prompt) or only between videos of the "
                       "same prompt (in_prompt; batches then hold several videos per prompt)",
                       "cross_prompt", choices=PAIRINGS)
    learning_rate: float = arg("peak learning rate of AdamW", 1e-6)
    num_train_epochs: float = arg("passes over the training videos (in_batch) or pairs (pairs_file)", 3.0)
    max_steps: int = arg("total optimizer steps; overrides --num_train_epochs when > 0", 0)
    per_device_train_batch_size: int = arg("videos (in_batch) or pairs (pairs_file) per device and micro-step", 8)
    per_device_eval_batch_size: int = arg("videos per device and forward pass during evaluation", 8)
    gradient_accumulation_steps: int = arg("micro-steps accumulated into one optimizer step", 1)
    warmup_ratio: float = arg("share of the steps with a linear learning-rate warm-up from 0", 0.05)
    lr_scheduler_type: str = arg("decay after warm-up: linear to 0, cosine to 0 (half period), or constant",
                                 "linear", choices=LR_SCHEDULERS)
    weight_decay: float = arg("AdamW decoupled weight decay, applied to matrices and embeddings "
                              "(not to biases, norms or learned query vectors)", 0.01)
    adam_beta1: float = arg("AdamW beta1", 0.9)
    adam_beta2: float = arg("AdamW beta2", 0.999)
    adam_epsilon: float = arg("AdamW epsilon", 1e-8)
    max_grad_norm: float = arg("clip the global gradient norm to this value (0 = no clipping)", 1.0)
    seed: int = arg("random seed (model head initialisation, data order, dropout)", 42)
    eval_steps: int = arg("evaluate every N optimizer steps (0 = only at the end)", 200)
    keep_best: bool = arg("early stopping on --eval_data: the final model is the evaluated weights (every "
                          "--eval_steps, at the end, and the starting weights at step 0) with the highest pair "
                          "accuracy, the earliest on a tie; the best so far waits in output_dir/checkpoints/best",
                          False)
    save_steps: int = arg("write a checkpoint every N optimizer steps (0 = only at the end)", 500)
    save_total_limit: int = arg("keep at most this many checkpoints, newest first (0 = keep all)", 2)
    logging_steps: int = arg("log a summary line every N steps (metrics.jsonl gets every step)", 10)
    dataloader_num_workers: int = arg("DataLoader worker processes decoding videos (0 = in the main process)", 2)
    deepspeed: str | None = arg("DeepSpeed JSON config (e.g. config/deepspeed/zero2.json); 'auto' values "
                                "are filled from these flags. Launch with torchrun or deepspeed", None)
    video_backend: str = arg("video decoder: decord, pyav, or auto (decord, then PyAV)", "auto",
                             choices=BACKENDS)
    cache_frames: bool = arg("keep each training video's decoded frames, encoded by the processor, in memory "
                             "(per DataLoader worker) and reuse them in later epochs; for small data sets "
                             "such as the demo", False)
    decode_timeout: float = arg("seconds allowed to decode one video before it counts as unreadable", 60.0)
    jitter_frames: list[float] | None = arg("sampling invariance: per video and step, multiply the frame count "
                                            "('segments'; in 'fps' mode the sampling rate) by a factor drawn "
                                            "log-uniformly from LOW HIGH, e.g. 0.5 2 (the model is told the rate "
                                            "it was sampled at); unset: off", None)
    jitter_size: list[float] | None = arg("sampling invariance: per video and step, multiply the frame height and "
                                          "width by a factor drawn log-uniformly from LOW HIGH, e.g. 0.5 1 "
                                          "(within max_pixels); unset: off", None)
    color_jitter: float = arg("appearance jitter: probability that a video's frames get a random brightness, "
                              "contrast, saturation and hue in a step (VideoAlign's p_color_jitter); 0: off", 0.0)
    color_jitter_brightness: float = arg("appearance jitter: brightness factor drawn from 1 ± this", 0.4)
    color_jitter_contrast: float = arg("appearance jitter: contrast factor drawn from 1 ± this", 0.4)
    color_jitter_saturation: float = arg("appearance jitter: saturation factor drawn from 1 ± this", 0.4)
    color_jitter_hue: float = arg("appearance jitter: hue rotation drawn from ± this many turns (at most 0.5)", 0.05)
    nuisance_zoom: list[float] | None = arg("nuisance family: per video and step, zoom by a factor drawn "
                                            "log-uniformly from LOW HIGH (0 < LOW <= HIGH, e.g. 1 1.3): above 1 a "
                                            "centre crop resized back, objects larger; below 1 the picture shrunk "
                                            "on a black frame (a letterbox), objects smaller; unset: off", None)
    nuisance_pan: float = arg("nuisance family: per video and step, move the picture by a share of the frame drawn "
                              "from U(-P, P) down and right (P < 0.5, e.g. 0.1), the border repeating the edge; "
                              "0: off", 0.0)
    nuisance_contrast: float = arg("nuisance family: per video and step, contrast times U(1-C, 1+C) about each "
                                   "frame's mean luma (C <= 1); 0: off", 0.0)
    nuisance_shade: float = arg("nuisance family: per video and step, every pixel lighter by U(-S, S) grey levels, "
                                "a global shade change (S <= 255, e.g. 40); 0: off", 0.0)
    nuisance_overlay: float = arg("nuisance family: probability that a video gets a static caption box across the "
                                  "bottom and a logo in the top-right corner in a step; 0: off", 0.0)
    consistency_loss_coeff: float = arg("invariance: score each video also as a twin with its own draw of the "
                                        "jitters and nuisances above, and add this weight x the mean squared "
                                        "score difference between a video and its twin, in units of the batch's "
                                        "score variance; the reward loss then sees the videos un-jittered. Needs a "
                                        "jitter or a nuisance; 0: off", 0.0)
    consistency_warmup_ratio: float = arg("share of the steps over which the consistency weight rises linearly "
                                          "from 0 (the reward loss first finds what to rank by)", 0.0)
    bf16: str = arg("bfloat16 mixed precision: auto = on when a CUDA GPU supports it", "auto",
                    choices=("auto", "true", "false"))
    resume: bool = arg("continue from the latest complete checkpoint in output_dir/checkpoints", False)
    progress: bool = arg("show the progress bar even when stderr is not a terminal", False)

    def __post_init__(self) -> None:
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be at least 1, got {getattr(self, name)}", field=name)
        for name in ("eval_steps", "save_steps", "save_total_limit", "max_steps", "dataloader_num_workers",
                     "logging_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must not be negative, got {getattr(self, name)}", field=name)
        if self.learning_rate < 0 or not math.isfinite(self.learning_rate):
            raise ConfigError(f"must be a finite non-negative number, got {self.learning_rate}", field="learning_rate")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"expected a share in [0, 1), got {self.warmup_ratio}", field="warmup_ratio")
        if self.max_steps == 0 and not self.num_train_epochs > 0:
            raise ConfigError("give num_train_epochs > 0 or max_steps > 0", field="num_train_epochs")
        for name in ("jitter_frames", "jitter_size", "nuisance_zoom"):
            bounds = getattr(self, name)
            if bounds is not None and not (len(bounds) == 2 and 0 < bounds[0] <= bounds[1] < math.inf):
                raise ConfigError(f"expected LOW HIGH with 0 < LOW <= HIGH, got {bounds}", field=name)
        for name, top, closed in (("nuisance_pan", 0.5, False), ("nuisance_contrast", 1.0, True),
                                  ("nuisance_shade", 255.0, True), ("nuisance_overlay", 1.0, True)):
            value = getattr(self, name)
            if not (0 <= value <= top if closed else 0 <= value < top):
                raise ConfigError(f"expected a value in [0, {top:g}{']' if closed else ')'}, got {value}", field=name)
        for name, top in (("color_jitter", 1.0), ("color_jitter_brightness", 1.0), ("color_jitter_contrast", 1.0),
                          ("color_jitter_saturation", 1.0), ("color_jitter_hue", 0.5)):
            if not 0 <= getattr(self, name) <= top:
                raise ConfigError(f"expected a value in [0, {top:g}], got {getattr(self, name)}", field=name)
        if not 0 <= self.consistency_loss_coeff < math.inf:
            raise ConfigError(f"expected a finite weight >= 0, got {self.consistency_loss_coeff}",
                              field="consistency_loss_coeff")
        if not 0 <= self.consistency_warmup_ratio <= 1:
            raise ConfigError(f"expected a share in [0, 1], got {self.consistency_warmup_ratio}",
                              field="consistency_warmup_ratio")
        if self.consistency_loss_coeff > 0 and not augmentation(self).active:
            raise ConfigError("needs a jitter or a nuisance to compare a video with (--jitter_frames, --jitter_size, "
                              "--color_jitter or a --nuisance_* flag)", field="consistency_loss_coeff")
        if self.keep_best and not self.eval_data:
            raise ConfigError("needs --eval_data: the pairs that choose the best weights", field="keep_best")
        if self.batching == "pairs_file" and self.pairing != "cross_prompt":
            raise ConfigError("applies to batching in_batch only (a pairs file's pairs are used as written)",
                              field="pairing")


def augmentation(cfg: TrainConfig) -> Augmentation:
    """The training mitigations `cfg` turns on (see :mod:`solireward.training.augment`)."""
    return Augmentation(
        jitter_frames=tuple(cfg.jitter_frames) if cfg.jitter_frames else None,
        jitter_size=tuple(cfg.jitter_size) if cfg.jitter_size else None, color_jitter=cfg.color_jitter,
        brightness=cfg.color_jitter_brightness, contrast=cfg.color_jitter_contrast,
        saturation=cfg.color_jitter_saturation, hue=cfg.color_jitter_hue,
        nuisance_zoom=tuple(cfg.nuisance_zoom) if cfg.nuisance_zoom else None, nuisance_pan=cfg.nuisance_pan,
        nuisance_contrast=cfg.nuisance_contrast, nuisance_shade=cfg.nuisance_shade,
        nuisance_overlay=cfg.nuisance_overlay)


def _mirror(name: str) -> Any:
    """A field with the same default, help and choices as `RewardModelConfig.<name>` (one source of truth)."""
    field = {f.name: f for f in dataclasses.fields(RewardModelConfig)}[name]
    if field.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=field.default_factory, metadata=field.metadata)
    return dataclasses.field(default=field.default, metadata=field.metadata)


@dataclasses.dataclass
class ModelOptions:
    """Reward-model architecture (ignored when continuing a saved reward model) and fine-tuning options."""

    model_type: str | None = _mirror("model_type")
    reduce_sequence: str = _mirror("reduce_sequence")
    hierarchical_query_attn_layers: list[int] | None = _mirror("hierarchical_query_attn_layers")
    num_query_heads: int = _mirror("num_query_heads")
    reward_task: str = _mirror("reward_task")
    system_prompt: str | None = _mirror("system_prompt")
    question: str | None = _mirror("question")
    torch_dtype: str = arg("dtype the backbone is loaded in; mixed precision is --bf16", "float32",
                           choices=tuple(d for d in TORCH_DTYPES if d != "auto"))
    attn_implementation: str = arg("attention kernel: sdpa, eager or flash_attention_2 (needs flash-attn)", "sdpa",
                                   choices=ATTN_IMPLEMENTATIONS)
    freeze_vision_tower: bool = arg("keep the vision encoder and its projector fixed", False)
    lora_r: int = arg("LoRA rank on the language model's linear layers (0 = full fine-tuning); "
                      "the saved model has the adapters merged", 0)
    lora_alpha: int = arg("LoRA alpha (scaling = alpha / r)", 16)
    lora_dropout: float = arg("LoRA dropout", 0.05)
    gradient_checkpointing: bool = arg("recompute backbone activations in the backward pass to save memory", True)

    def __post_init__(self) -> None:
        if self.lora_r < 0:
            raise ConfigError(f"must not be negative, got {self.lora_r}", field="lora_r")

    def architecture(self) -> dict[str, Any]:
        """The options that go into `RewardModelConfig` (unset ones left to its defaults)."""
        return {k: getattr(self, k) for k in ARCHITECTURE_OPTIONS if getattr(self, k) is not None}


ARCHITECTURE_OPTIONS = ("model_type", "reduce_sequence", "hierarchical_query_attn_layers", "num_query_heads",
                        "reward_task", "system_prompt", "question")
