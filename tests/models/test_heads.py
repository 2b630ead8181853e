"""Reward heads on synthetic hidden states: padding, layer selection, validation, initialisation."""

from __future__ import annotations

import pytest
import torch

from solireward.errors import InputError
from solireward.models.heads import (HEADS, attention_heads, build_head, default_layers, last_index,
                                     validate_layers)

D, L = 32, 6


def _sample(n: int, seed: int) -> list[torch.Tensor]:
    """Hidden states H[0..L] of one sequence of n tokens."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, D, generator=gen) for _ in range(L + 1)]


def _batch(samples: list[list[torch.Tensor]], side: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Pad samples on `side` with huge values (padding must never leak into a score) and stack them."""
    T = max(len(s[0]) for s in samples)
    hidden = []
    for i in range(L + 1):
        rows = [torch.cat([s[i], torch.full((T - len(s[i]), D), 1e4)][::1 if side == "right" else -1])
                for s in samples]
        hidden.append(torch.stack(rows))
    mask = torch.zeros(len(samples), T, dtype=torch.long)
    for b, s in enumerate(samples):
        if side == "right":
            mask[b, :len(s[0])] = 1
        else:
            mask[b, T - len(s[0]):] = 1
    return hidden, mask


def _states(lengths: list[int], side: str, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    return _batch([_sample(n, seed + k) for k, n in enumerate(lengths)], side)


def _run(head, hidden, mask, row=None):
    return head(hidden[-1], mask, [hidden[i] for i in head.layer_indices], row)


@pytest.mark.parametrize("name", HEADS)
def test_head_ignores_padding_left_and_right(name: str) -> None:
    torch.manual_seed(0)
    head = build_head(name, D, L, [2, 4, 6])
    row = torch.randn(D)
    short, long = _sample(5, seed=1), _sample(9, seed=2)
    expected = _run(head, *_batch([short], "right"), row)
    for side in ("right", "left"):
        scores = _run(head, *_batch([short, long], side), row)
        assert scores.shape == (2,) and scores.dtype == torch.float32
        assert torch.isfinite(scores).all()
        torch.testing.assert_close(scores[:1], expected, atol=1e-5, rtol=0)


def test_last_index_both_sides() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_index(mask).tolist() == [2, 4, 4]


@pytest.mark.parametrize("name", ["progressive_hierarchical_attention", "hierarchical_attention"])
def test_hierarchical_heads_read_exactly_their_layers(name: str) -> None:
    torch.manual_seed(0)
    head = build_head(name, D, L, [2, 5])
    hidden, mask = _states([7, 4], "right")
    base = head(hidden[-1], mask, [hidden[2], hidden[5]])
    for layer in range(L + 1):
        changed = [h.clone() for h in hidden]
        changed[layer] = changed[layer] + torch.randn_like(changed[layer])
        scores = head(changed[-1], mask, [changed[2], changed[5]])
        reads = layer in (2, 5, L)  # both also attend over H[-1]
        assert (not torch.allclose(scores, base)) == reads, f"layer {layer}"


def _mha(attn: torch.nn.Module) -> torch.nn.MultiheadAttention:
    """A torch `nn.MultiheadAttention` holding the weights of a head's attention (loaded strictly)."""
    mha = torch.nn.MultiheadAttention(D, attn.num_heads, batch_first=True)
    mha.load_state_dict(attn.state_dict())
    return mha


def _attend(attn: torch.nn.Module, query: torch.Tensor, states: torch.Tensor, pad: torch.Tensor | None = None
            ) -> torch.Tensor:
    return _mha(attn)(query, states, states, key_padding_mask=pad)[0]


def test_hpqa_matches_the_formula() -> None:
    """score = MLP(q_N + o), q_i = MHA_i(q_{i-1}, H[l_i]), o = MHA_res(q_res, H[-1])."""
    torch.manual_seed(3)
    head = build_head("progressive_hierarchical_attention", D, L, [1, 3, 6], num_query_heads=4)
    hidden, mask = _states([6, 3], "right")
    pad = ~mask.bool()
    q = head.q0.expand(2, -1, -1)
    for attn, layer in zip(head.attns, (1, 3, 6)):
        q = _attend(attn, q, hidden[layer], pad)
    o = _attend(head.attn_res, head.q_res.expand(2, -1, -1), hidden[-1], pad)
    expected = head.scorer((q + o)[:, 0]).squeeze(-1)
    torch.testing.assert_close(head(hidden[-1], mask, [hidden[1], hidden[3], hidden[6]]), expected)
    assert head.attns[0].num_heads == 4


def test_hierarchical_attention_is_the_released_parallel_form() -> None:
    """score = MLP(r + f), o_i = MHA_i(q_i, H[l_i]), r = MHA_reduce(q_reduce, o_1..N), f = MHA_res(q_res, H[-1])."""
    torch.manual_seed(4)
    head = build_head("hierarchical_attention", D, L, [1, 3, 6], num_query_heads=4)
    hidden, mask = _states([6, 3], "left")
    pad = ~mask.bool()
    layers = [hidden[1], hidden[3], hidden[6]]
    per_layer = torch.cat([_attend(attn, q.expand(2, -1, -1), h, pad)
                           for q, attn, h in zip(head.queries, head.attns, layers)], dim=1)
    r = _attend(head.attn_reduce, head.q_reduce.expand(2, -1, -1), per_layer)
    f = _attend(head.attn_res, head.q_res.expand(2, -1, -1), hidden[-1], pad)
    expected = head.scorer((r + f)[:, 0]).squeeze(-1)
    base = head(hidden[-1], mask, layers)
    torch.testing.assert_close(base, expected)
    assert {name for name, _ in head.named_parameters()} >= {"q_reduce", "q_res", "attn_reduce.in_proj_weight"}

    changed_final = hidden[-1] + torch.randn_like(hidden[-1])
    assert not torch.allclose(head(changed_final, mask, layers), base)
    with torch.no_grad():
        head.q_reduce.add_(torch.randn_like(head.q_reduce))
    assert not torch.allclose(head(hidden[-1], mask, layers), base)


def test_good_token_is_the_lm_logit_at_the_last_real_token() -> None:
    head = build_head("good_token", D, L)
    hidden, mask = _states([3, 5], "left")
    row = torch.randn(D)
    expected = torch.stack([hidden[-1][0, -1] @ row, hidden[-1][1, -1] @ row])
    torch.testing.assert_close(head(hidden[-1], mask, [], row), expected)
    assert not list(head.parameters())


def test_bfloat16_hidden_states_are_scored_in_float32() -> None:
    torch.manual_seed(0)
    head = build_head("attention", D, L)
    hidden, mask = _states([4, 6], "right")
    scores = head(hidden[-1].bfloat16(), mask)
    assert scores.dtype == torch.float32 and all(p.dtype == torch.float32 for p in head.parameters())


def test_initialisation_is_deterministic_under_manual_seed() -> None:
    states = []
    for _ in range(2):
        torch.manual_seed(7)
        states.append(build_head("progressive_hierarchical_attention", D, L).state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_default_layers() -> None:
    assert default_layers(24) == [6, 12, 18, 24]
    assert default_layers(28) == [7, 14, 21, 28]
    assert default_layers(4) == [1, 2, 3, 4]
    assert default_layers(2) == [1, 2]
    assert validate_layers(None, 24) == [6, 12, 18, 24]


@pytest.mark.parametrize("layers, message", [
    ([], "empty layer list"),
    ([2, 7], r"layer\(s\) \[7\] out of range: the backbone has 6 decoder layers"),
    ([0, 3], r"layer\(s\) \[0\] out of range"),
    ([4, 2, 6], "strictly increasing"),
    ([2, 2], "strictly increasing"),
])
def test_bad_layer_lists_are_named(layers: list[int], message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        build_head("progressive_hierarchical_attention", D, L, layers)
    assert err.value.field == "hierarchical_query_attn_layers"


def test_unknown_head_is_named() -> None:
    with pytest.raises(InputError, match="unknown head 'cls_token'") as err:
        build_head("cls_token", D, L)
    assert err.value.field == "reduce_sequence"


def test_head_count_falls_back_to_a_divisor() -> None:
    assert attention_heads(64, 8) == 8
    assert attention_heads(36, 8) == 6
    assert attention_heads(7, 8) == 7
    assert build_head("attention", 36, L, num_query_heads=8).attn.num_heads == 6
