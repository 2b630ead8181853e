"""The optimizer's parameter groups and learning-rate schedule of `solireward train`.

AdamW decays the weights of Linear, Embedding and Conv layers and attention projections only. The learning
rate warms up linearly over ``ceil(warmup_ratio * total_steps)`` steps (factor ``(s + 1) / warmup`` at step
s), then decays linearly to 0 (``1 - p``) or as a half-period cosine (``(1 + cos(pi p)) / 2``) with
``p = (s - warmup) / (total - warmup)``, or stays constant.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Learning-rate multiplier applied at optimizer step `step` (0-based); see the module docstring."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return max(0.0, 1.0 - progress)


class LRSchedule:
    """Picklable LR lambda (so the scheduler state carries no closures)."""

    def __init__(self, total: int, warmup: int, kind: str) -> None:
        self.total, self.warmup, self.kind = total, warmup, kind

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.warmup, self.kind)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weights of Linear/Embedding/Conv layers and attention projections decay; the rest not."""
    from solireward.models.heads import SingleQueryAttention

    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            weighty = (name == "weight" and isinstance(module, (nn.Linear, nn.Embedding, nn.modules.conv._ConvNd))) \
                or (isinstance(module, (nn.MultiheadAttention, SingleQueryAttention)) and name.endswith("proj_weight"))
            (decay if weighty else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
