"""Reward-model losses (docs/DESIGN.md §5) and the in-batch pairing that feeds them.

Notation: for a pair, d = r_win − r_lose (difference of the two videos' scalar rewards),
m = reward margin, σ = logistic function, log σ computed with ``logsigmoid`` for stability.

- Bradley–Terry (BT), win–lose pairs: −log σ(d − m); with label smoothing ε:
  −(1−ε)·log σ(d − m) − ε·log σ(−d − m).
- BTT as released (win–tie pairs): −log σ(d − m) − log σ(−d − m); symmetric in d, minimal at d = 0.
- BT-WT as written in the paper: −μ·log σ(d) − (1−μ)·log σ(−d); μ = 1 for win–lose, 0.5 for win–tie.
- Rao–Kupper (VideoAlign, k > 1): win −log σ(d − log k); tie
  −log σ(d − log k) − log σ(−d − log k) − log(k² − 1).
- BCE: binary cross-entropy with logits of each video's score against its Pass target.

:func:`reward_loss` combines them (see its docstring for exactly how the means are taken).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Hashable, Sequence

import torch
import torch.nn.functional as F

from solireward.config import arg
from solireward.errors import ConfigError
from solireward.evaluation import PASS_THRESHOLD

TIE_LOSSES = ("btt", "bt_wt", "rao_kupper")


def bt_loss(d: torch.Tensor, margin: float = 0.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """Bradley–Terry: −(1−ε)·log σ(d − m) − ε·log σ(−d − m), element-wise (ε = label_smoothing)."""
    loss = -F.logsigmoid(d - margin)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-d - margin)
    return loss


def btt_loss(d: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """BTT tie loss as released: −log σ(d − m) − log σ(−d − m), element-wise; minimal at d = 0."""
    return -F.logsigmoid(d - margin) - F.logsigmoid(-d - margin)


def bt_wt_loss(d: torch.Tensor, mu: float | torch.Tensor) -> torch.Tensor:
    """BT-WT (paper form): −μ·log σ(d) − (1−μ)·log σ(−d); μ = 1 win–lose, μ = 0.5 win–tie."""
    return -mu * F.logsigmoid(d) - (1.0 - mu) * F.logsigmoid(-d)


def rao_kupper_loss(d: torch.Tensor, is_tie: torch.Tensor, k: float = 5.0) -> torch.Tensor:
    """Rao–Kupper negative log-likelihood, element-wise.

    Win: −log σ(d − log k). Tie: −log σ(d − log k) − log σ(−d − log k) − log(k² − 1). Needs k > 1.
    """
    if k <= 1.0:
        raise ConfigError(f"the Rao–Kupper tie parameter must be > 1, got {k}", field="rao_kupper_k")
    log_k = math.log(k)
    win = -F.logsigmoid(d - log_k)
    tie = win - F.logsigmoid(-d - log_k) - math.log(k * k - 1.0)
    return torch.where(is_tie, tie, win)


def bce_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, element-wise: −t·log σ(s) − (1−t)·log σ(−s)."""
    return F.binary_cross_entropy_with_logits(scores, targets.to(scores.dtype), reduction="none")


def consistency_loss(scores: torch.Tensor, twin_scores: torch.Tensor, min_std: float = 1.0) -> torch.Tensor:
    """Mean squared difference between each video's score and its jittered twin's, over the batch's score
    variance (detached, its std at least `min_std`): the squared shift in score std that a probe measures."""
    scale = scores.detach().std().clamp_min(min_std) if scores.numel() > 1 else scores.new_tensor(min_std)
    return ((scores - twin_scores) / scale).pow(2).mean()


@dataclasses.dataclass
class LossConfig:
    """Reward loss: BT on win–lose pairs, a tie loss on win–tie pairs, optional BCE per video."""

    bt_loss_coeff: float = arg("weight of the Bradley–Terry loss on win–lose pairs", 1.0)
    bce_loss_coeff: float = arg("weight of the per-video BCE loss of the score against Pass (0 = off)", 0.0)
    btt_loss_coeff: float = arg("weight of the tie loss (--tie_loss) on win–tie pairs", 1.0)
    reward_margin: float = arg("margin m in the BT and BTT losses: −log σ(d − m)", 3.0)
    label_smoothing: float = arg("label smoothing ε of the BT loss, in [0, 0.5)", 0.0)
    enable_btt_loss: bool = arg("train on win–tie pairs with the tie loss; when off, ties are dropped", True)
    tie_loss: str = arg("loss of win–tie pairs: btt (as released, uses the margin), bt_wt (paper form, "
                        "μ = 0.5) or rao_kupper (VideoAlign, parameter --rao_kupper_k)", "btt",
                        choices=TIE_LOSSES)
    rao_kupper_k: float = arg("Rao–Kupper tie parameter k (> 1)", 5.0)

    def __post_init__(self) -> None:
        for name in ("bt_loss_coeff", "bce_loss_coeff", "btt_loss_coeff", "reward_margin"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"must be a finite number >= 0, got {value}", field=name)
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"must be in [0, 0.5), got {self.label_smoothing}", field="label_smoothing")
        if self.tie_loss not in TIE_LOSSES:
            raise ConfigError(f"expected one of {list(TIE_LOSSES)}, got {self.tie_loss!r}", field="tie_loss")
        if not math.isfinite(self.rao_kupper_k) or self.rao_kupper_k <= 1.0:
            raise ConfigError(f"must be > 1 (log(k² − 1) is undefined otherwise), got {self.rao_kupper_k}",
                              field="rao_kupper_k")


def _group_codes(groups: torch.Tensor | Sequence[Hashable], n: int, device: torch.device) -> torch.Tensor:
    if isinstance(groups, torch.Tensor):
        codes = groups.to(device)
    else:
        index: dict[Hashable, int] = {}
        codes = torch.tensor([index.setdefault(g, len(index)) for g in groups], dtype=torch.long, device=device)
    if codes.shape != (n,):
        raise ValueError(f"groups must have one entry per video ({n}), got shape {tuple(codes.shape)}")
    return codes


def in_batch_pairs(qualities: torch.Tensor, groups: torch.Tensor | Sequence[Hashable] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every usable pair among the B videos of a batch: ``(win_idx, lose_idx, is_tie)``.

    A video is Pass when its quality is > 0.5. Each unordered pair {i, j} (i < j) with at least one
    Pass video is used: different qualities make a win–lose pair (the higher quality wins), equal
    qualities a win–tie pair (win = the lower index). Fail × Fail pairs are never used, so binary
    labels give every Pass × Fail pair once and every Pass × Pass pair once. With ``groups`` (one id
    per video, e.g. a prompt index), only pairs whose ids are equal are kept (in-prompt pairing).
    Indices are int64 on the device of ``qualities``; pairs are ordered by (i, j).
    """
    if qualities.dim() != 1:
        raise ValueError(f"qualities must be 1-D (one per video), got shape {tuple(qualities.shape)}")
    n = qualities.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=qualities.device)
    qi, qj = qualities[i], qualities[j]
    keep = (qi > PASS_THRESHOLD) | (qj > PASS_THRESHOLD)
    if groups is not None:
        codes = _group_codes(groups, n, qualities.device)
        keep &= codes[i] == codes[j]
    i, j, qi, qj = i[keep], j[keep], qi[keep], qj[keep]
    i_wins = qi >= qj
    return torch.where(i_wins, i, j), torch.where(i_wins, j, i), qi == qj


def count_correct_pairs(scores: torch.Tensor, win_idx: torch.Tensor, lose_idx: torch.Tensor,
                 is_tie: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(number correct, number) over win–lose pairs: r_win > r_lose counts 1, equal scores ½.

    correct / number is ``evaluation.pair_accuracy`` of these pairs' d = r_win − r_lose.
    """
    with torch.no_grad():
        d = (scores[win_idx] - scores[lose_idx])[~is_tie]
        correct = (d > 0).sum() + 0.5 * (d == 0).sum()
    return correct.to(torch.float32), torch.tensor(d.numel(), device=scores.device)


def reward_loss(scores: torch.Tensor, win_idx: torch.Tensor, lose_idx: torch.Tensor, is_tie: torch.Tensor,
                qualities: torch.Tensor, config: LossConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total reward loss of a batch of B scored videos and P pairs among them, and its parts.

    With d_p = scores[win_idx[p]] − scores[lose_idx[p]], the *contributing* pairs are the win–lose
    pairs plus, when ``enable_btt_loss``, the win–tie pairs (otherwise ties are dropped, exactly as
    if the batch had none). With N = number of contributing pairs:

        loss = (1/N)·Σ_p [bt_loss_coeff·BT(d_p)·[not tie] + btt_loss_coeff·TIE(d_p)·[tie]]
               + bce_loss_coeff·(1/B)·Σ_v BCE(score_v, quality_v > 0.5)

    BT uses ``reward_margin`` and ``label_smoothing``; TIE is ``tie_loss``: BTT with the margin,
    BT-WT with μ = 0.5, or the Rao–Kupper tie term with ``rao_kupper_k`` (win–lose pairs always use
    BT; for the full Rao–Kupper model set the margin to log k). The pair term is 0 when N = 0 and the
    BCE term is skipped when its weight is 0, so no part is NaN and gradients stay defined.

    ``parts`` (all detached): ``bt`` and ``tie`` (mean loss over win–lose and win–tie pairs, 0 when
    there are none), ``bce`` (mean over videos), ``n_win_lose``, ``n_tie``, ``n_pairs`` (= N) and
    ``correct`` (win–lose pairs ordered right, equal scores ½) for pair accuracy.
    """
    if scores.dim() != 1 or qualities.shape != scores.shape:
        raise ValueError(f"scores and qualities must be 1-D of equal length, got {tuple(scores.shape)} "
                         f"and {tuple(qualities.shape)}")
    is_tie = is_tie.to(torch.bool)
    d = scores[win_idx] - scores[lose_idx]
    not_tie = ~is_tie
    bt = bt_loss(d, config.reward_margin, config.label_smoothing)
    if config.tie_loss == "btt":
        tie = btt_loss(d, config.reward_margin)
    elif config.tie_loss == "bt_wt":
        tie = bt_wt_loss(d, 0.5)
    else:
        tie = rao_kupper_loss(d, torch.ones_like(is_tie), config.rao_kupper_k)
    use_tie = is_tie if config.enable_btt_loss else torch.zeros_like(is_tie)
    per_pair = torch.where(not_tie, config.bt_loss_coeff * bt, config.btt_loss_coeff * tie)
    contributing = not_tie | use_tie
    n_pairs = contributing.sum()
    # masked sum (not indexing) keeps the graph connected to `scores` even when nothing contributes
    pair_term = torch.where(contributing, per_pair, torch.zeros_like(per_pair)).sum() / n_pairs.clamp(min=1)
    bce = bce_loss(scores, (qualities > PASS_THRESHOLD).to(scores.dtype))
    use_bce = bool(config.bce_loss_coeff) and scores.numel() > 0
    loss = pair_term + (config.bce_loss_coeff * bce.mean() if use_bce else 0.0 * scores.sum())
    n_win_lose, n_tie = not_tie.sum(), is_tie.sum()
    correct, _ = count_correct_pairs(scores, win_idx, lose_idx, is_tie)
    with torch.no_grad():
        parts = {
            "bt": (bt * not_tie).sum() / n_win_lose.clamp(min=1),
            "tie": (tie * is_tie).sum() / n_tie.clamp(min=1),
            "bce": bce.mean() if bce.numel() else torch.zeros((), device=scores.device),
            "n_win_lose": n_win_lose,
            "n_tie": n_tie,
            "n_pairs": n_pairs,
            "correct": correct,
        }
    return loss, {k: v.detach() for k, v in parts.items()}
