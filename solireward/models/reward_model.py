"""The reward model: a vision-language backbone, a reward head, and one folder format to save it in.

A saved reward model is one folder (``save_pretrained``), loadable with ``from_pretrained`` and
with no model hub:

* the backbone (``config.json``, ``model.safetensors``) and its processor files, as
  ``transformers``' own ``save_pretrained`` writes them; a model trained with LoRA is saved with
  the adapters merged into the weights, so the folder is a plain backbone again;
* ``head.safetensors``: the head's learned parameters;
* ``solireward_config.json``: :class:`RewardModelConfig` (family, head, layers, reward task,
  prompts, frame-sampling settings, score mean and std).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from solireward.config import arg, build_dataclass
from solireward.errors import InputError
from solireward.io import atomic_dir, write_json
from solireward.models.prompts import DEFAULT_SYSTEM_PROMPT, default_question, render_prompt
from solireward.models.backbones import decoder_layers, get_module, load_backbone, text_hidden_size
from solireward.models.families import FAMILIES, Family
from solireward.models.heads import DEFAULT_HEAD, GOOD_TOKEN, HEADS, MULTI_LAYER_HEADS, build_head

logger = logging.getLogger(__name__)

CONFIG_NAME = "solireward_config.json"
HEAD_NAME = "head.safetensors"
SEQUENCE_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclasses.dataclass
class RewardModelConfig:
    """Architecture and prompt of a reward model; saved as solireward_config.json."""

    model_type: str | None = arg("backbone family (default: detected from the backbone's config.json)", None,
                                 choices=tuple(FAMILIES))
    reduce_sequence: str = arg("reward head (progressive_hierarchical_attention = HPQA)", DEFAULT_HEAD,
                               choices=HEADS)
    hierarchical_query_attn_layers: list[int] | None = arg(
        "decoder layers (1 = first, L = last) the hierarchical heads read, strictly increasing "
        "(default: 4 evenly spaced, ending at the last)", None)
    num_query_heads: int = arg("attention heads of the query-attention heads (fewer when the hidden size is "
                               "not divisible)", 8)
    reward_task: str = arg("reward task; selects the built-in question (phy_deform, text_alignment)", "phy_deform")
    system_prompt: str | None = arg("system prompt (default: the built-in one)", None)
    question: str | None = arg("question asked about the video; '{prompt}' is replaced by the video's prompt "
                               "(default: the task's built-in question)", None)
    sampling: dict[str, Any] = arg("frame-sampling settings (FrameSampling.to_dict()) used in training",
                                   default_factory=dict)
    score_mean: float = arg("mean raw score on the evaluation videos (for normalise)", 0.0)
    score_std: float = arg("standard deviation of the raw scores on the evaluation videos (for normalise)", 1.0)
    collapsed: bool = arg("its scores collapsed in training (`solireward train` flags a model whose scores on the "
                          "evaluation videos barely vary: it ranks nothing); `serve` refuses it", False)


def _checked_sampling(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Frame-sampling settings validated and completed with the reader's defaults."""
    from solireward.data.video import FrameSampling

    return FrameSampling.from_dict(dict(values or {}), source).to_dict()


class RewardCollator:
    """Picklable `(frames, prompts) -> model inputs`: chat prompt + processor per video, then right/left padding.

    Each video is processed alone (families differ in how they batch videos of different lengths),
    then the token sequences (`input_ids`, `attention_mask`, `mm_token_type_ids`) are padded and
    the vision tensors concatenated along their first dimension, as the models expect.
    The frame rate the sampled frames stand for (``encode``'s `fps`; default `video_fps`, the
    checkpoint's 'fps'-mode rate) is passed to the processor as video metadata; Qwen2.5-VL spaces its
    temporal positions by it. :class:`solireward.scoring.VideoEncoder` passes the rate of each video
    as sampled, so a changed sampling rate or frame count reaches the model.
    """

    def __init__(self, processor: Any, system_prompt: str, question: str, padding_side: str = "right",
                 video_fps: float | None = None) -> None:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.processor, self.system_prompt, self.question = processor, system_prompt, question
        self.padding_side, self.video_fps = padding_side, video_fps
        tokenizer = processor.tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(self, frames: np.ndarray, prompt: str | None, fps: float | None = None) -> dict[str, Tensor]:
        """Model inputs of one video (batch dimension 1, no padding); `fps`: the rate the frames stand for."""
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise InputError(f"expected video frames of shape (T, H, W, 3) with T >= 1, got "
                             f"{getattr(frames, 'shape', type(frames).__name__)}")
        text = render_prompt(self.processor, self.system_prompt, self.question, prompt)
        metadata = {}
        fps = fps or self.video_fps
        if fps:
            from transformers.video_utils import VideoMetadata

            metadata["video_metadata"] = [VideoMetadata(total_num_frames=len(frames), fps=fps)]
        return dict(self.processor(text=[text], videos=[frames], return_tensors="pt", do_sample_frames=False,
                                   **metadata))

    def __call__(self, frames: Sequence[np.ndarray], prompts: Sequence[str | None] | None = None) -> dict[str, Tensor]:
        prompts = [None] * len(frames) if prompts is None else list(prompts)
        if len(prompts) != len(frames):
            raise ValueError(f"{len(frames)} videos but {len(prompts)} prompts")
        return self.pad([self.encode(f, p) for f, p in zip(frames, prompts)])

    def pad(self, encoded: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """One batch from per-video `encode` outputs (which callers may cache: encoding is deterministic)."""
        length = max(e["input_ids"].shape[1] for e in encoded)
        batch: dict[str, Tensor] = {}
        for key in encoded[0]:
            if key in SEQUENCE_KEYS:
                fill = self.pad_token_id if key == "input_ids" else 0
                batch[key] = torch.cat([self._pad(e[key], length, fill) for e in encoded])
            else:
                batch[key] = torch.cat([torch.as_tensor(e[key]) for e in encoded])
        return batch

    def _pad(self, seq: Tensor, length: int, fill: int) -> Tensor:
        pad = seq.new_full((seq.shape[0], length - seq.shape[1]), fill)
        return torch.cat([seq, pad] if self.padding_side == "right" else [pad, seq], dim=1)


def as_uint8_frames(video: Any, index: int = 0) -> np.ndarray:
    """One in-memory video as (T, H, W, 3) uint8: from uint8 (T, H, W, 3) or float (T, C, H, W) in [0, 1]."""
    array = video.detach().cpu().numpy() if isinstance(video, Tensor) else np.asarray(video)
    where = f"frames[{index}]"
    if array.ndim != 4:
        raise InputError(f"{where}: expected a 4-d video, got shape {array.shape}", field="frames")
    if array.dtype == np.uint8:
        if array.shape[-1] != 3:
            raise InputError(f"{where}: uint8 frames must be (T, H, W, 3), got {array.shape}", field="frames")
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"{where}: expected uint8 or float frames, got {array.dtype}", field="frames")
    if array.shape[1] != 3:
        raise InputError(f"{where}: float frames must be (T, 3, H, W) in [0, 1], got {array.shape}", field="frames")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise InputError(f"{where}: float frames must be finite and within [0, 1]", field="frames")
    return np.ascontiguousarray(np.round(array.transpose(0, 2, 3, 1) * 255).astype(np.uint8))


class RewardModel(nn.Module):
    """Backbone + head: `model(**inputs) -> Tensor[B]` float32 scores."""

    def __init__(self, backbone: nn.Module, processor: Any, family: Family, config: RewardModelConfig,
                 head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.processor, self.family, self.config = processor, family, config
        self.good_token_id = self._good_token_id() if config.reduce_sequence == "good_token" else None
        self.lora_adapter: str | None = None

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def from_backbone(cls, path: str | os.PathLike, config: RewardModelConfig | None = None,
                      torch_dtype: str | torch.dtype | None = None,
                      attn_implementation: str | None = None) -> "RewardModel":
        """A new reward model on a backbone folder, in eval mode (call `.train()` to train).

        The head is initialised from torch's global RNG (deterministic under `torch.manual_seed`).
        """
        config = dataclasses.replace(config or RewardModelConfig())
        backbone, processor, family = load_backbone(path, config.model_type, torch_dtype or "auto",
                                                    attn_implementation or "sdpa")
        config.model_type = family.name
        config.sampling = _checked_sampling(config.sampling, "sampling")
        config.system_prompt = DEFAULT_SYSTEM_PROMPT if config.system_prompt is None else config.system_prompt
        config.question = default_question(config.reward_task) if config.question is None else config.question
        num_layers = len(decoder_layers(backbone, family))
        head = build_head(config.reduce_sequence, text_hidden_size(backbone), num_layers,
                          config.hierarchical_query_attn_layers, config.num_query_heads)
        config.hierarchical_query_attn_layers = (list(head.layer_indices)
                                                 if config.reduce_sequence in MULTI_LAYER_HEADS else None)
        return cls(backbone, processor, family, config, head.to(next(backbone.parameters()).device)).eval()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, torch_dtype: str | torch.dtype | None = None,
                        attn_implementation: str | None = None,
                        device: str | torch.device | None = None) -> "RewardModel":
        """Restore a model written by `save_pretrained` (weights via safetensors only), in eval mode."""
        from safetensors.torch import load_file

        folder = Path(path)
        config_file = folder / CONFIG_NAME
        if not config_file.is_file():
            raise InputError(f"not a reward-model folder: {CONFIG_NAME} is missing (a plain backbone folder is "
                             "trained with `solireward train`, not loaded as a reward model)", file=str(folder))
        try:
            values = json.loads(config_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", file=str(config_file)) from None
        if not isinstance(values, dict):
            raise InputError("expected a JSON object", file=str(config_file))
        config = build_dataclass(RewardModelConfig, values, str(config_file))
        config.sampling = _checked_sampling(config.sampling, f"{config_file} sampling")
        backbone, processor, family = load_backbone(folder, config.model_type, torch_dtype or "auto",
                                                    attn_implementation or "sdpa")
        head = build_head(config.reduce_sequence, text_hidden_size(backbone), len(decoder_layers(backbone, family)),
                          config.hierarchical_query_attn_layers, config.num_query_heads)
        head_file = folder / HEAD_NAME
        if not head_file.is_file():
            raise InputError(f"{HEAD_NAME} is missing", file=str(folder))
        state = load_file(str(head_file))
        expected = set(head.state_dict())
        if set(state) != expected:
            raise InputError(f"head weights do not match a {config.reduce_sequence} head (missing: "
                             f"{sorted(expected - set(state))}, unexpected: {sorted(set(state) - expected)})",
                             file=str(head_file))
        head.load_state_dict(state)
        model = cls(backbone, processor, family, config, head).eval()
        return model.to(device) if device is not None else model.to(next(backbone.parameters()).device)

    # ----------------------------------------------------------------------------------- saving
    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write backbone (LoRA merged), processor, head and config into `path`, atomically."""
        from safetensors.torch import save_file

        with atomic_dir(path) as tmp:
            state = self._merged_backbone_state() if self.lora_adapter else None
            self.backbone.save_pretrained(str(tmp), state_dict=state)
            self.processor.save_pretrained(str(tmp))
            save_file({k: v.detach().to("cpu").contiguous() for k, v in self.head.state_dict().items()},
                      str(tmp / HEAD_NAME))
            write_json(tmp / CONFIG_NAME, dataclasses.asdict(self.config))

    def _merged_backbone_state(self) -> dict[str, Tensor]:
        """The backbone's state dict with every LoRA update added into its base weight."""
        from peft.tuners.lora import LoraLayer

        deltas = {name: module.get_delta_weight(self.lora_adapter)
                  for name, module in self.backbone.named_modules() if isinstance(module, LoraLayer)}
        merged: dict[str, Tensor] = {}
        for key, value in self.backbone.state_dict().items():
            if ".lora_" in key:
                continue
            module_name, _, leaf = key.rpartition(".base_layer.")
            if module_name in deltas:
                key = f"{module_name}.{leaf}"
                if leaf == "weight":
                    value = (value + deltas[module_name].to(value.dtype)).detach()
            merged[key] = value
        return merged

    # ----------------------------------------------------------------------------------- running
    def forward(self, input_ids: Tensor, attention_mask: Tensor, **inputs: Any) -> Tensor:
        """Scores (B,), float32, of a batch built by `collator()`."""
        if self.family.rope_from_mask and "position_ids" not in inputs:
            # 1-D RoPE models number positions 0..T-1 regardless of padding; count real tokens instead.
            inputs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        layer_indices = self.head.layer_indices
        out = self.backbone.model(input_ids=input_ids, attention_mask=attention_mask,
                                  output_hidden_states=bool(layer_indices), use_cache=False, return_dict=True,
                                  **inputs)
        layers = [out.hidden_states[i] for i in layer_indices]
        row = self.backbone.lm_head.weight[self.good_token_id] if self.good_token_id is not None else None
        return self.head(out.last_hidden_state, attention_mask, layers, row)

    def collator(self, padding_side: str = "right") -> RewardCollator:
        """A picklable callable `(frames, prompts) -> inputs` for DataLoader workers."""
        sampling = self.config.sampling
        fps = float(sampling["fps"]) if sampling.get("mode") == "fps" else None
        return RewardCollator(self.processor, self.config.system_prompt or "", self.config.question or "",
                              padding_side, fps)

    @property
    def device(self) -> torch.device:
        """Device of the backbone's parameters."""
        return next(self.backbone.parameters()).device

    def score(self, video_paths: Sequence[str | os.PathLike], prompts: Sequence[str | None] | None = None,
              batch_size: int = 8, backend: str = "auto", progress: bool | None = None) -> list[float]:
        """Raw scores of video files, read with the checkpoint's frame sampling (eval mode, no grad).

        A video that cannot be read raises :class:`VideoReadError` naming it; ``solireward infer``
        (:func:`solireward.inference.score_records`) reports such videos per record instead.
        """
        from solireward.scoring import score_videos

        paths = [os.fspath(p) for p in video_paths]
        return self._ordered(score_videos(self, paths, prompts, batch_size=batch_size, backend=backend,
                                          on_error="raise", progress=bool(progress)))

    def score_frames(self, frames: Sequence[Any], prompts: Sequence[str | None] | None = None,
                     fps: float | Sequence[float] | None = None, batch_size: int = 8) -> list[float]:
        """Raw scores of videos already in memory, sampled with the checkpoint's frame settings.

        Each video of `frames` is either a ``(T, H, W, 3)`` uint8 array or tensor (0..255, as decoded
        from a file) or a float ``(T, C, H, W)`` tensor or array with values in [0, 1] (C = 3, what video
        generators and RL trainers hold); floats are mapped to uint8 by ``round(255 * x)``. `fps` (one
        value, or one per video) is the frame rate of the given frames; 'fps'-mode checkpoints need it.
        Frames decoded from an mp4 score as the file does (the same sampling, resizing and processor).
        """
        from solireward.scoring import score_videos

        videos = [as_uint8_frames(f, i) for i, f in enumerate(frames)]
        rates = list(fps) if isinstance(fps, Sequence) else [fps] * len(videos)
        return self._ordered(score_videos(self, videos, prompts, fps=rates, batch_size=batch_size,
                                          on_error="raise"))

    @staticmethod
    def _ordered(result: tuple[dict[int, float], dict[int, str]]) -> list[float]:
        scores, _ = result  # on_error="raise": no errors
        return [scores[i] for i in range(len(scores))]

    def collapse_note(self) -> str:
        """Why a model flagged ``collapsed`` is no reward (for the messages of the loaders that meet it)."""
        return (f"its scores collapsed in training (score std {self.config.score_std:.3g} on its evaluation videos, "
                "flagged by `solireward train`); it ranks nothing")

    def normalise(self, scores: Any) -> Any:
        """(s - score_mean) / score_std, for a float, a sequence (-> list) or a tensor/array (same type)."""
        mean, std = self.config.score_mean, self.config.score_std
        if isinstance(scores, (Tensor, np.ndarray)):
            return (scores - mean) / std
        if isinstance(scores, (int, float)):
            return (float(scores) - mean) / std
        return [(float(s) - mean) / std for s in scores]

    # ----------------------------------------------------------------------------------- training options
    def freeze_vision_tower(self) -> None:
        """Stop gradients into the vision encoder and its projector into the language model."""
        for path in self.family.vision_module_paths:
            get_module(self.backbone, path).requires_grad_(False)

    def apply_lora(self, r: int = 16, alpha: int = 16, dropout: float = 0.05,
                   target_modules: Sequence[str] = DEFAULT_LORA_TARGETS) -> None:
        """Add LoRA adapters (peft) to the language model's linear layers; everything else in the backbone is
        frozen (the head stays trainable). `save_pretrained` then writes merged weights."""
        from peft import LoraConfig, inject_adapter_in_model

        if r < 1:
            raise InputError(f"LoRA rank must be at least 1, got {r}", field="lora_r")
        prefix = self.family.language_model_path.replace(".", r"\.")
        pattern = rf"{prefix}\.layers\.\d+\..*\.({'|'.join(map(str, target_modules))})"
        lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern, bias="none")
        try:
            inject_adapter_in_model(lora, self.backbone, adapter_name="default")
        except ValueError as exc:
            raise InputError(f"no language-model layer matches LoRA target modules {list(target_modules)} ({exc})",
                             field="lora_target_modules") from None
        for name, param in self.backbone.named_parameters():
            param.requires_grad_(".lora_" in name)
        self.lora_adapter = "default"

    def gradient_checkpointing_enable(self) -> None:
        """Recompute the backbone's activations during backward (non-reentrant checkpointing)."""
        self.backbone.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})

    def _good_token_id(self) -> int:
        ids = self.processor.tokenizer.encode(GOOD_TOKEN, add_special_tokens=False)
        if not ids:
            raise InputError(f"the tokenizer cannot encode '{GOOD_TOKEN}' (needed by the good_token head)")
        if len(ids) > 1:
            logger.warning("'%s' is %d tokens for this tokenizer; the good_token head uses the first", GOOD_TOKEN,
                        len(ids))
        return int(ids[0])
