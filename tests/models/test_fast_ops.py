"""fast_ops.speed_up: the patch embedding as a matrix product and the vision attention per segment length
compute what the `transformers` modules they replace compute, scores and gradients alike."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from solireward.models import RewardModel, RewardModelConfig
from solireward.models.fast_ops import PatchConv, SegmentAttention, segment_attention


def _original(model: RewardModel) -> RewardModel:
    """A copy of `model` whose sped-up modules are their `transformers` classes again."""
    plain = copy.deepcopy(model)
    for module in plain.modules():
        if isinstance(module, (PatchConv, SegmentAttention)):
            module.__class__ = type(module).__bases__[-1]
    return plain


def _batch(model: RewardModel) -> dict[str, torch.Tensor]:
    """Two videos of different frame counts and sizes, so the vision segments differ in length."""
    rng = np.random.default_rng(0)
    collator = model.collator()
    videos = [rng.integers(0, 256, (8, 56, 84, 3), dtype=np.uint8), rng.integers(0, 256, (4, 28, 28, 3), dtype=np.uint8)]
    return collator.pad([collator.encode(v, "a red ball bounces", fps=4.0) for v in videos])


def _scores_and_grads(model: RewardModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad()
    scores = model(**batch)
    (scores * torch.tensor([1.0, -2.0])).sum().backward()
    return scores.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("model_type", ["Qwen2-VL", "Qwen2.5-VL"])
def test_sped_up_backbone_scores_and_trains_as_the_original(tiny_model_factory, model_type: str) -> None:
    torch.manual_seed(0)
    fast = RewardModel.from_backbone(tiny_model_factory(model_type), RewardModelConfig())
    kinds = {type(m).__bases__[0] for m in fast.modules() if isinstance(m, (PatchConv, SegmentAttention))}
    assert kinds == {PatchConv, SegmentAttention}  # both replacements are in place
    plain = _original(fast)
    assert not any(isinstance(m, (PatchConv, SegmentAttention)) for m in plain.modules())
    assert list(fast.state_dict()) == list(plain.state_dict())  # same weights under the same names
    again = pickle.loads(pickle.dumps(fast.backbone))  # the replacement classes are found again
    assert [type(m) for m in again.modules()] == [type(m) for m in fast.backbone.modules()]
    batch = _batch(fast)
    fast_scores, fast_grads = _scores_and_grads(fast, batch)
    plain_scores, plain_grads = _scores_and_grads(plain, batch)
    torch.testing.assert_close(fast_scores, plain_scores, rtol=1e-5, atol=1e-5)
    assert fast_grads.keys() == plain_grads.keys() and any("patch_embed" in n for n in fast_grads)
    for name in fast_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_segment_attention_attends_within_each_segment_only() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = [3, 5, 0, 3, 1, 5]  # an empty segment too
    q, k, v = (torch.randn(sum(lengths), 2, 4, generator=gen) for _ in range(3))
    expected, start = [], 0
    for length in lengths:  # one segment at a time, by the definition of attention
        part = slice(start, start + length)
        weights = torch.softmax(torch.einsum("qhd,khd->hqk", q[part], k[part]) * 0.5, dim=-1)
        expected.append(torch.einsum("hqk,khd->qhd", weights, v[part]))
        start += length
    torch.testing.assert_close(segment_attention(q, k, v, lengths, 0.5), torch.cat(expected))
    same = [4, 4, 4]
    q4, k4, v4 = q[:12], k[:12], v[:12]
    pieces = [segment_attention(q4[i:i + 4], k4[i:i + 4], v4[i:i + 4], [4], 0.5) for i in (0, 4, 8)]
    torch.testing.assert_close(segment_attention(q4, k4, v4, same, 0.5), torch.cat(pieces))
