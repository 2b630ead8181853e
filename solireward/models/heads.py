"""Reward heads (`--reduce_sequence`): hidden states of the backbone -> one score per sequence.

Conventions shared by every head:

* ``H`` is the backbone's hidden-state tuple: ``H[0]`` the embeddings, ``H[i]`` the output of
  decoder layer ``i`` and ``H[-1] = H[L]`` the final, normed output. A head lists the layer
  indices it reads in ``layer_indices`` and receives ``[H[l] for l in layer_indices]`` plus ``H[-1]``.
* ``attention_mask`` (B, T) marks real tokens with 1. Every pooling and attention ignores the
  padding, whether it sits on the left or on the right.
* Heads compute in the dtype of their own parameters, which the reward model creates in float32
  whatever the backbone's dtype (bfloat16 hidden states are upcast first): a scalar score learned
  from a few hundred pairs is sensitive to rounding. Scores are returned as float32.
* ``MHA`` in the formulas below is a multi-head attention with one query, computed by
  :class:`SingleQueryAttention`: the function and weights of ``nn.MultiheadAttention`` at about
  heads / D of its cost, since the keys and values of the T tokens are never projected.
* Every learned head ends in the same scorer, Linear(D, D) -> SiLU -> Linear(D, 1), so ablations
  compare the pooling and not the scorer's capacity. ``good_token`` has no parameters of its own.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from solireward.errors import InputError

logger = logging.getLogger(__name__)

HEADS = ("progressive_hierarchical_attention", "hierarchical_attention", "attention", "last_token", "mean", "max",
         "good_token")
DEFAULT_HEAD = "progressive_hierarchical_attention"
MULTI_LAYER_HEADS = ("progressive_hierarchical_attention", "hierarchical_attention")
GOOD_TOKEN = "good"


def default_layers(num_layers: int, count: int = 4) -> list[int]:
    """`count` evenly spaced layers ending at the last one (24 layers -> 6 12 18 24)."""
    return sorted({max(1, round(num_layers * k / count)) for k in range(1, count + 1)})


def validate_layers(layers: Sequence[int] | None, num_layers: int) -> list[int]:
    """Check `--hierarchical_query_attn_layers` against the backbone's layer count (None -> default)."""
    if layers is None:
        return default_layers(num_layers)
    layers = list(layers)
    field = "hierarchical_query_attn_layers"
    if not layers:
        raise InputError(f"empty layer list; give layer numbers between 1 and {num_layers}, e.g. "
                         f"'{' '.join(map(str, default_layers(num_layers)))}'", field=field)
    bad = [l for l in layers if not 1 <= l <= num_layers]
    if bad:
        raise InputError(f"layer(s) {bad} out of range: the backbone has {num_layers} decoder layers, so layers "
                         f"must be between 1 and {num_layers}", field=field)
    if any(b <= a for a, b in zip(layers, layers[1:])):
        raise InputError(f"layers {layers} must be strictly increasing (l1 < l2 < ...)", field=field)
    return layers


def attention_heads(hidden_size: int, requested: int) -> int:
    """The largest head count <= `requested` that divides `hidden_size` (a warning when it is fewer)."""
    if requested < 1:
        raise InputError(f"must be at least 1, got {requested}", field="num_query_heads")
    heads = next(h for h in range(min(requested, hidden_size), 0, -1) if hidden_size % h == 0)
    if heads != requested:
        logger.warning("hidden size %d is not divisible by %d query heads; using %d", hidden_size, requested, heads)
    return heads


def last_index(attention_mask: Tensor) -> Tensor:
    """Index of the last real token of each row (works for left and right padding)."""
    T = attention_mask.shape[1]
    return T - 1 - attention_mask.flip(1).long().argmax(dim=1)


def _scorer(hidden_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, 1))


def _query(hidden_size: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(1, 1, hidden_size) * hidden_size ** -0.5)


class Head(nn.Module):
    """Base class: `forward(final, attention_mask, layers)` -> scores (B,), float32."""

    layer_indices: tuple[int, ...] = ()

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the head computes in (its parameters' dtype; float32 for parameter-free heads)."""
        return next(self.parameters(), torch.empty(0)).dtype

    def forward(self, final: Tensor, attention_mask: Tensor, layers: Sequence[Tensor] = (),
                lm_head_row: Tensor | None = None) -> Tensor:
        dtype = self.compute_dtype
        mask = attention_mask.to(final.device).bool()
        scores = self.reduce(final.to(dtype), mask, [h.to(dtype) for h in layers], lm_head_row)
        return scores.float()

    def reduce(self, final: Tensor, mask: Tensor, layers: list[Tensor], lm_head_row: Tensor | None) -> Tensor:
        """Score each sequence from the final hidden states (and the chosen layers); subclasses define it."""
        raise NotImplementedError


class LastTokenHead(Head):
    """Score of H[-1] at the last real token."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.scorer = _scorer(hidden_size)

    def reduce(self, final, mask, layers, lm_head_row):
        rows = torch.arange(final.shape[0], device=final.device)
        return self.scorer(final[rows, last_index(mask)]).squeeze(-1)


class MeanHead(Head):
    """Score of the mean of H[-1] over real tokens."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.scorer = _scorer(hidden_size)

    def reduce(self, final, mask, layers, lm_head_row):
        m = mask.unsqueeze(-1).to(final.dtype)
        pooled = (final * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.scorer(pooled).squeeze(-1)


class MaxHead(Head):
    """Score of the element-wise maximum of H[-1] over real tokens."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.scorer = _scorer(hidden_size)

    def reduce(self, final, mask, layers, lm_head_row):
        pooled = final.masked_fill(~mask.unsqueeze(-1), torch.finfo(final.dtype).min).amax(1)
        return self.scorer(pooled).squeeze(-1)


class SingleQueryAttention(nn.Module):
    """`nn.MultiheadAttention` (batch first, no dropout) for one query, computed in folded form.

    Same parameters, initialisation and state-dict keys as ``nn.MultiheadAttention(D, heads)``
    (``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``), and the same
    function, but the T keys and values are never projected. For head h with scaled query q_h:

    * logit_i = q_h . (W_k,h x_i + b_k,h) = (W_k,h^T q_h) . x_i + q_h . b_k,h, and the last term,
      equal for every i, cancels in the softmax;
    * sum_i a_i (W_v,h x_i + b_v,h) = W_v,h (sum_i a_i x_i) + (sum_i a_i) b_v,h.

    So a head costs two T x D products instead of 2 T D^2 / heads. Padded keys get zero weight;
    a row without any real key gets all-zero weights, as in ``nn.MultiheadAttention`` (its output
    is ``out_proj.bias``).
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        # created and initialised in nn.MultiheadAttention's order, so a seed gives the same weights
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, states: Tensor, mask: Tensor | None = None) -> Tensor:
        """Query (B, 1, D) attends over `states` (B, T, D); bool `mask` (B, T) marks real tokens. -> (B, 1, D)."""
        B, _, D = states.shape
        h, d = self.num_heads, self.head_dim
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, _, b_v = self.in_proj_bias.chunk(3)
        q = F.linear(query[:, 0], w_q, b_q).view(B, h, d) * d ** -0.5
        folded = torch.einsum("bhd,hdn->bhn", q, w_k.view(h, d, D))  # W_k,h^T q_h: (B, h, D)
        logits = folded @ states.transpose(1, 2)  # (B, h, T)
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None], torch.finfo(logits.dtype).min)
        weights = logits.softmax(-1)
        if mask is not None:
            weights = weights * mask[:, None]  # zero for padding and for every key of a row without any
        pooled = weights @ states  # sum_i a_i x_i: (B, h, D)
        values = (torch.einsum("bhn,hdn->bhd", pooled, w_v.view(h, d, D))
                  + weights.sum(-1, keepdim=True) * b_v.view(h, d))
        return self.out_proj(values.reshape(B, 1, D))


class AttentionHead(Head):
    """One learned query attends over H[-1]; the result is scored."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.query = _query(hidden_size)
        self.attn = SingleQueryAttention(hidden_size, num_heads)
        self.scorer = _scorer(hidden_size)

    def reduce(self, final, mask, layers, lm_head_row):
        q = self.query.expand(final.shape[0], -1, -1)
        return self.scorer(self.attn(q, final, mask)[:, 0]).squeeze(-1)


class HierarchicalAttentionHead(Head):
    """Parallel form, as released: o_i = MHA_i(q_i, H[l_i]); r = MHA_reduce(q_reduce, [o_1 .. o_N]);
    f = MHA_res(q_res, H[-1]); score = MLP(r + f).

    Each of the N learned queries q_i attends over its own layer; a second learned query attends
    over the N per-layer vectors (all N are real, so no mask), and a third one over the final
    hidden states, as in HPQA's residual branch.
    """

    def __init__(self, hidden_size: int, num_heads: int, layer_indices: Sequence[int]) -> None:
        super().__init__()
        self.layer_indices = tuple(layer_indices)
        self.queries = nn.ParameterList([_query(hidden_size) for _ in self.layer_indices])
        self.attns = nn.ModuleList([SingleQueryAttention(hidden_size, num_heads) for _ in self.layer_indices])
        self.q_reduce = _query(hidden_size)
        self.attn_reduce = SingleQueryAttention(hidden_size, num_heads)
        self.q_res = _query(hidden_size)
        self.attn_res = SingleQueryAttention(hidden_size, num_heads)
        self.scorer = _scorer(hidden_size)

    def reduce(self, final, mask, layers, lm_head_row):
        B = final.shape[0]
        per_layer = torch.cat([attn(q.expand(B, -1, -1), h, mask)
                               for q, attn, h in zip(self.queries, self.attns, layers)], dim=1)  # (B, N, D)
        r = self.attn_reduce(self.q_reduce.expand(B, -1, -1), per_layer)
        f = self.attn_res(self.q_res.expand(B, -1, -1), final, mask)
        return self.scorer((r + f)[:, 0]).squeeze(-1)


class ProgressiveHierarchicalAttentionHead(Head):
    """HPQA (docs/DESIGN.md §4): q_i = MHA_i(q_{i-1}, H[l_i]); o = MHA_res(q_res, H[-1]); score = MLP(q_N + o)."""

    def __init__(self, hidden_size: int, num_heads: int, layer_indices: Sequence[int]) -> None:
        super().__init__()
        self.layer_indices = tuple(layer_indices)
        self.q0 = _query(hidden_size)
        self.q_res = _query(hidden_size)
        self.attns = nn.ModuleList([SingleQueryAttention(hidden_size, num_heads) for _ in self.layer_indices])
        self.attn_res = SingleQueryAttention(hidden_size, num_heads)
        self.scorer = _scorer(hidden_size)

    def reduce(self, final, mask, layers, lm_head_row):
        B = final.shape[0]
        q = self.q0.expand(B, -1, -1)
        for attn, h in zip(self.attns, layers):
            q = attn(q, h, mask)
        o = self.attn_res(self.q_res.expand(B, -1, -1), final, mask)
        return self.scorer((q + o)[:, 0]).squeeze(-1)


class GoodTokenHead(Head):
    """The language-model logit of the token "good" at the last real token (no parameters of its own).

    The reward model passes `lm_head_row`, the LM head's weight row of that token, so the full
    vocabulary projection is never computed and the LM head row is trained with the backbone.
    """

    def reduce(self, final, mask, layers, lm_head_row):
        if lm_head_row is None:
            raise ValueError("good_token head needs the LM head row of the token 'good'")
        rows = torch.arange(final.shape[0], device=final.device)
        return final[rows, last_index(mask)] @ lm_head_row.to(final.dtype)


def build_head(name: str, hidden_size: int, num_layers: int, layers: Sequence[int] | None = None,
               num_query_heads: int = 8) -> Head:
    """A freshly initialised head (deterministic under `torch.manual_seed`), created in float32."""
    if name not in HEADS:
        raise InputError(f"unknown head '{name}'; expected one of {list(HEADS)}", field="reduce_sequence")
    if name in MULTI_LAYER_HEADS:
        layer_list = validate_layers(layers, num_layers)
        heads = attention_heads(hidden_size, num_query_heads)
        cls = ProgressiveHierarchicalAttentionHead if name == DEFAULT_HEAD else HierarchicalAttentionHead
        return cls(hidden_size, heads, layer_list).float()
    if name == "attention":
        return AttentionHead(hidden_size, attention_heads(hidden_size, num_query_heads)).float()
    if name == "good_token":
        return GoodTokenHead()
    return {"last_token": LastTokenHead, "mean": MeanHead, "max": MaxHead}[name](hidden_size).float()
