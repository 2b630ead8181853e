"""Faster equivalents of two backbone operations that cost a small model most of its step on CPU.

:func:`speed_up` changes how a loaded backbone computes, never what: its weights, state-dict keys
and outputs stay (up to float rounding) those of the ``transformers`` modules it replaces.

- *Patch embedding as a matrix product.* Qwen2-VL's and Qwen2.5-VL's processors cut a video into
  patches (2 frames x 14 x 14 pixels) and the vision tower embeds each with a ``Conv3d`` whose kernel
  is the patch. A convolution whose input is exactly one kernel is one dot product per output
  channel, so :class:`PatchConv` computes it as ``linear(patch, weight)``: one matrix product instead
  of thousands of tiny convolutions (on one CPU thread it took 15 % of the tiny model's training step).
- *Vision attention in one call per segment length.* The Qwen vision towers attend within segments
  (one frame pair of a video, or a window) given by ``cu_seqlens``; with ``sdpa`` attention,
  ``transformers`` calls it once per segment in a Python loop (128 calls per layer for 16 videos of
  16 frames). :class:`SegmentAttention` stacks the segments of each length and makes one call per
  distinct length (one for a batch of videos of one size).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (module, class) of the vision attentions whose per-segment loop SegmentAttention replaces
_SEGMENT_ATTENTIONS = (("transformers.models.qwen2_vl.modeling_qwen2_vl", "VisionAttention"),
                       ("transformers.models.qwen2_5_vl.modeling_qwen2_5_vl", "Qwen2_5_VLVisionAttention"))


class PatchConv:
    """Mixin of a patch-embedding convolution (kernel = stride, no padding): an input of exactly one
    kernel is embedded by a matrix product; any other input by the convolution itself."""

    def forward(self, x: Tensor) -> Tensor:
        """As the convolution's forward."""
        conv: Any = self
        if tuple(x.shape[2:]) != tuple(conv.kernel_size):
            return super().forward(x)  # type: ignore[misc]
        out = F.linear(x.reshape(x.shape[0], -1), conv.weight.reshape(conv.out_channels, -1), conv.bias)
        return out.reshape(x.shape[0], conv.out_channels, *([1] * (x.dim() - 2)))


class PatchConv2d(PatchConv, nn.Conv2d):
    """A patch-embedding Conv2d (see :class:`PatchConv`)."""


class PatchConv3d(PatchConv, nn.Conv3d):
    """A patch-embedding Conv3d (see :class:`PatchConv`)."""


def _is_patch_conv(module: nn.Module) -> bool:
    return type(module) in (nn.Conv2d, nn.Conv3d) and tuple(module.stride) == tuple(module.kernel_size) \
        and all(p == 0 for p in module.padding) and all(d == 1 for d in module.dilation) \
        and module.groups == 1 and module.padding_mode == "zeros"


def segment_attention(q: Tensor, k: Tensor, v: Tensor, lengths: list[int], scale: float) -> Tensor:
    """Attention of ``(S, H, D)`` queries, keys and values within consecutive segments of `lengths` (summing to S),
    one ``scaled_dot_product_attention`` call per distinct length; returns ``(S, H, D)``."""
    seq, heads, dim = q.shape
    if len(set(lengths)) == 1 and lengths[0] > 0:
        n, length = len(lengths), lengths[0]
        q, k, v = (t.reshape(n, length, heads, dim).transpose(1, 2) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).reshape(seq, heads, dim)
    starts = torch.tensor([0, *lengths[:-1]], device=q.device).cumsum(0)
    sizes = torch.tensor(lengths, device=q.device)
    out = q.new_empty(seq, heads, dim)
    for length in sorted(set(lengths) - {0}):
        first = starts[sizes == length]
        index = (first[:, None] + torch.arange(length, device=q.device)).reshape(-1)
        part = [t.index_select(0, index).reshape(len(first), length, heads, dim).transpose(1, 2) for t in (q, k, v)]
        result = F.scaled_dot_product_attention(*part, scale=scale).transpose(1, 2).reshape(-1, heads, dim)
        out = out.index_copy(0, index, result)
    return out


class SegmentAttention:
    """Mixin of a Qwen vision attention: with ``sdpa``, one attention call per segment length instead of
    one per segment; otherwise (eager, flash attention, dropout) the original forward."""

    def forward(self, hidden_states: Tensor, cu_seqlens: Tensor, position_embeddings: tuple[Tensor, Tensor]
                | None = None, max_seqlen: int | None = None, **kwargs: Any) -> Tensor:
        """As the attention's forward."""
        attn: Any = self
        if attn.config._attn_implementation != "sdpa" or (attn.training and attn.attention_dropout > 0) \
                or position_embeddings is None:
            return super().forward(hidden_states, cu_seqlens, position_embeddings, max_seqlen,  # type: ignore[misc]
                                   **kwargs)
        rotary = sys.modules[type(self).__bases__[1].__module__].apply_rotary_pos_emb_vision
        seq = hidden_states.shape[0]
        q, k, v = attn.qkv(hidden_states).reshape(seq, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = rotary(q, k, *position_embeddings)
        lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
        out = segment_attention(q, k, v, lengths, attn.scaling)
        return attn.proj(out.reshape(seq, -1))


def _segment_classes() -> dict[type, type]:
    """Each importable vision attention class -> its SegmentAttention subclass."""
    found = {}
    for module_name, class_name in _SEGMENT_ATTENTIONS:
        try:
            base = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        found[base] = _subclass(SegmentAttention, base)
    return found


_SUBCLASSES: dict[tuple[type, type], type] = {}


def _subclass(mixin: type, base: type) -> type:
    """One ``mixin + base`` class per pair, a global of this module (so a pickled model finds it again)."""
    key = (mixin, base)
    if key not in _SUBCLASSES:
        name = f"{mixin.__name__}{base.__name__}"
        _SUBCLASSES[key] = type(name, (mixin, base), {"__module__": __name__, "__qualname__": name})
        setattr(sys.modules[__name__], name, _SUBCLASSES[key])
    return _SUBCLASSES[key]


def speed_up(model: nn.Module) -> nn.Module:
    """Switch `model`'s patch-embedding convolutions and Qwen vision attentions to the faster equivalents
    above, in place (weights and state-dict keys unchanged); returns `model`."""
    segment = _segment_classes()
    for module in model.modules():
        if _is_patch_conv(module):
            module.__class__ = PatchConv2d if isinstance(module, nn.Conv2d) else PatchConv3d
        elif type(module) in segment:
            module.__class__ = segment[type(module)]
    return model
