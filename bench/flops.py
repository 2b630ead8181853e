"""FLOP counting and peak rates for bench_gpu.py's MFU: torch's FlopCounterMode over one video's forward and
backward pass (the CPU attention kernels counted as the CUDA ones are), and each GPU's peak dense bf16 rate."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

# Peak dense (no sparsity) bfloat16 tensor-core rates, TFLOP/s, by a part of the CUDA device name. The
# first entry whose key occurs in the name wins, so more specific names come first (H100 NVL before H100).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.0), ("H200 NVL", 835.0), ("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0),
    ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("RTX 4090", 165.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The table's peak dense bf16 TFLOP/s of a CUDA device name, or None when it is not listed."""
    lowered = device_name.lower()
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key.lower() in lowered), None)


def register_cpu_attention_flops() -> None:
    """Count the CPU flash-attention kernels as torch counts the CUDA ones (the full score matrix).

    torch's counter knows only the GPU kernels; without this the CPU smoke run would count no attention.
    """
    from torch.utils.flop_counter import flop_registry, register_flop_formula, sdpa_backward_flop_count, \
        sdpa_flop_count

    aten = torch.ops.aten
    if aten._scaled_dot_product_flash_attention_for_cpu in flop_registry:
        return

    @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu, get_raw=True)
    def forward_flops(query, key, value, *args, out_val=None, **kwargs) -> int:
        return sdpa_flop_count(query.shape, key.shape, value.shape)

    @register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward, get_raw=True)
    def backward_flops(grad_out, query, key, value, *args, out_val=None, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


@dataclasses.dataclass
class Flops:
    """Counted FLOPs of one video: training step (forward + backward) and inference (forward)."""

    train: int
    forward: int
    attention_share: float  # of the training count


def count_flops(model: Any, inputs: dict[str, torch.Tensor], device: torch.device, autocast: Callable[[], Any],
                forward: bool = True) -> Flops:
    """FlopCounterMode over one forward + backward and (with `forward`; else 0) one forward of one video."""
    from torch.utils.flop_counter import FlopCounterMode

    from solireward.scoring import to_device

    register_cpu_attention_flops()
    moved = to_device(inputs, device, next(model.backbone.parameters()).dtype)
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast():
            score = model(**moved).float()
        score.sum().backward()
    model.zero_grad(set_to_none=True)
    train = counter.get_total_flops()
    attention = sum(n for op, n in counter.get_flop_counts().get("Global", {}).items() if "attention" in str(op))
    if not forward:
        return Flops(train, 0, attention / train if train else 0.0)
    counter = FlopCounterMode(display=False)
    with counter, autocast():  # with autograd on: the counter's module hooks fail under no_grad
        model(**moved)
    return Flops(train, counter.get_total_flops(), attention / train if train else 0.0)
