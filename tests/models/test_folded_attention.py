"""SingleQueryAttention: the folded single-query attention is nn.MultiheadAttention, only cheaper."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from solireward.models.heads import SingleQueryAttention, build_head

D = 32


def _pair(num_heads: int, seed: int = 0) -> tuple[nn.MultiheadAttention, SingleQueryAttention]:
    """An nn.MultiheadAttention with non-zero biases (b_k must cancel, b_v must not) and its folded copy."""
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(D, num_heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    folded = SingleQueryAttention(D, num_heads)
    folded.load_state_dict(mha.state_dict(), strict=True)
    return mha, folded


def _inputs(side: str, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query (3, 1, D), states (3, 7, D) and mask (3, 7); padding holds huge values that must not leak."""
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(3, 1, D, generator=gen)
    states = torch.randn(3, 7, D, generator=gen)
    mask = torch.ones(3, 7, dtype=torch.bool)
    if side != "none":
        for row, length in ((1, 4), (2, 1)):
            mask[row] = torch.arange(7) < length if side == "right" else torch.arange(7) >= 7 - length
    states = states.masked_fill(~mask[..., None], 1e4)
    return query, states, mask


def _run(module: nn.Module, query: torch.Tensor, states: torch.Tensor, mask: torch.Tensor
         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and gradients (inputs and every parameter) of a fixed random linear function of it."""
    query, states = query.clone().requires_grad_(True), states.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    if isinstance(module, nn.MultiheadAttention):
        out = module(query, states, states, key_padding_mask=~mask, need_weights=False)[0]
    else:
        out = module(query, states, mask)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out * weights).sum().backward()
    grads = {"query": query.grad, "states": states.grad}
    grads.update({name: p.grad for name, p in module.named_parameters()})
    return out, grads


@pytest.mark.parametrize("num_heads", [1, 4])
@pytest.mark.parametrize("side", ["none", "right", "left"])
def test_equals_multihead_attention_forward_and_backward(side: str, num_heads: int) -> None:
    mha, folded = _pair(num_heads)
    inputs = _inputs(side)
    expected, expected_grads = _run(mha, *inputs)
    out, grads = _run(folded, *inputs)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert grads.keys() == expected_grads.keys() == {"query", "states", "in_proj_weight", "in_proj_bias",
                                                     "out_proj.weight", "out_proj.bias"}
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-5, rtol=0, msg=name)


def test_a_row_without_real_tokens_behaves_as_multihead_attention() -> None:
    """nn.MultiheadAttention gives such a row zero attention weights: its output is out_proj.bias."""
    mha, folded = _pair(4)
    query, states, mask = _inputs("right")
    mask[1] = False
    expected, expected_grads = _run(mha, query, states, mask)
    out, grads = _run(folded, query, states, mask)
    torch.testing.assert_close(out[1, 0], folded.out_proj.bias.detach())
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-5, rtol=0, msg=name)


def test_state_dicts_are_interchangeable() -> None:
    mha, folded = _pair(4)
    old, new = mha.state_dict(), folded.state_dict()
    assert {k: v.shape for k, v in old.items()} == {k: v.shape for k, v in new.items()}
    back = nn.MultiheadAttention(D, 4, batch_first=True)
    back.load_state_dict(new, strict=True)
    assert all(torch.equal(old[k], v) for k, v in back.state_dict().items())


class _MHAProgressiveHead(nn.Module):
    """HPQA as it was built before the folding: nn.MultiheadAttention modules, same attribute names."""

    def __init__(self, layers: int, num_heads: int) -> None:
        super().__init__()
        self.q0 = nn.Parameter(torch.randn(1, 1, D) * D ** -0.5)
        self.q_res = nn.Parameter(torch.randn(1, 1, D) * D ** -0.5)
        self.attns = nn.ModuleList([nn.MultiheadAttention(D, num_heads, batch_first=True) for _ in range(layers)])
        self.attn_res = nn.MultiheadAttention(D, num_heads, batch_first=True)
        self.scorer = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, 1))

    def forward(self, final: torch.Tensor, mask: torch.Tensor, layers: list[torch.Tensor]) -> torch.Tensor:
        pad, B = ~mask, final.shape[0]
        q = self.q0.expand(B, -1, -1)
        for attn, h in zip(self.attns, layers):
            q = attn(q, h, h, key_padding_mask=pad, need_weights=False)[0]
        o = self.attn_res(self.q_res.expand(B, -1, -1), final, final, key_padding_mask=pad, need_weights=False)[0]
        return self.scorer((q + o)[:, 0]).squeeze(-1)


def test_heads_load_state_dicts_saved_from_multihead_attention() -> None:
    """A head saved when its attentions were nn.MultiheadAttention loads strictly and scores the same; a seed
    initialises both forms alike."""
    torch.manual_seed(5)
    old = _MHAProgressiveHead(2, 4)
    torch.manual_seed(5)
    fresh = build_head("progressive_hierarchical_attention", D, 6, [2, 4], num_query_heads=4)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in old.state_dict().items())
    with torch.no_grad():
        for p in old.parameters():
            p.add_(0.1 * torch.randn_like(p))
    head = build_head("progressive_hierarchical_attention", D, 6, [2, 4], num_query_heads=4)
    head.load_state_dict(old.state_dict(), strict=True)
    _, states, mask = _inputs("left")
    layers = [states + 0.1 * k for k in range(2)]
    torch.testing.assert_close(head(states, mask, layers), old(states, mask, layers), atol=1e-5, rtol=0)


def test_initialisation_is_that_of_multihead_attention() -> None:
    torch.manual_seed(9)
    expected = nn.MultiheadAttention(D, 4, batch_first=True).state_dict()
    torch.manual_seed(9)
    state = SingleQueryAttention(D, 4).state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())


def test_bfloat16() -> None:
    mha, folded = _pair(4)
    query, states, mask = _inputs("left")
    expected = mha(query, states, states, key_padding_mask=~mask, need_weights=False)[0]
    folded = folded.to(torch.bfloat16)
    query, states = query.bfloat16().requires_grad_(True), states.bfloat16().requires_grad_(True)
    out = folded(query, states, mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.02)
    out.float().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (query, states, *folded.parameters()))


def test_costs_a_fraction_of_multihead_attention() -> None:
    """Forward + backward FLOPs at D = 256, 8 heads, T = 512: the K and V projections (2 T D^2) are gone."""
    dim, heads, tokens = 256, 8, 512
    mha = nn.MultiheadAttention(dim, heads, batch_first=True)
    folded = SingleQueryAttention(dim, heads)
    query = torch.randn(1, 1, dim, requires_grad=True)
    states = torch.randn(1, tokens, dim, requires_grad=True)
    mask = torch.ones(1, tokens, dtype=torch.bool)
    flops = {}
    for name, fn in (("mha", lambda: mha(query, states, states, key_padding_mask=~mask, need_weights=False)[0]),
                     ("folded", lambda: folded(query, states, mask))):
        counter = FlopCounterMode(display=False)
        with counter:
            fn().sum().backward()
        flops[name] = counter.get_total_flops()
    # folded: 4 T D heads (logits, pooling) + 8 D^2 (four D x D products), x 3 for forward + backward = 14.2 MFLOP;
    # nn.MultiheadAttention: 403 MFLOP
    assert flops["folded"] < 16e6
    assert flops["folded"] * 10 < flops["mha"]


def test_weight_decay_groups_treat_it_as_an_attention() -> None:
    from solireward.training.optimization import parameter_groups

    head = build_head("attention", D, 6, num_query_heads=4)
    decay, no_decay = (group["params"] for group in parameter_groups(head, 0.1))
    assert any(p is head.attn.in_proj_weight for p in decay)
    assert any(p is head.attn.in_proj_bias for p in no_decay) and any(p is head.query for p in no_decay)
