"""Pair and video metrics (numpy); each returns None where it is undefined. Definitions: the package docstring."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

PASS_THRESHOLD = 0.5  # a video is Pass when its label (quality in [0, 1]) is > 0.5; losses use it too


def pair_accuracy(d: np.ndarray) -> float | None:
    """Share of win–lose pairs with d = r_win − r_lose > 0, d = 0 counting ½; None without pairs."""
    d = np.asarray(d, dtype=float)
    if d.size == 0:
        return None
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size)


def accuracy_with_ties(d: np.ndarray, relation: np.ndarray) -> tuple[float | None, float | None]:
    """(best accuracy, smallest best ε): relation ∈ {+1, 0, −1}; prediction win/tie/lose by d vs ±ε.

    Sorting |d| makes "which pairs are predicted tie" a prefix; the accuracy of each prefix is the
    correct ties inside it plus the correct signs outside, from two cumulative sums.
    """
    d, relation = np.asarray(d, dtype=float), np.asarray(relation)
    if d.size == 0:
        return None, None
    order = np.argsort(np.abs(d), kind="stable")
    abs_d, sign, rel = np.abs(d)[order], np.sign(d)[order], relation[order]
    tie_right = np.concatenate([[0], np.cumsum(rel == 0)])                 # right among the first k
    sign_right = np.concatenate([np.cumsum((sign == rel)[::-1])[::-1], [0]])  # right from k on
    candidates = np.unique(np.concatenate([[0.0], abs_d]))
    k = np.searchsorted(abs_d, candidates, side="right")
    accuracy = (tie_right[k] + sign_right[k]) / d.size
    best = int(np.argmax(accuracy))
    return float(accuracy[best]), float(candidates[best])


def accuracy_at_epsilon(d: np.ndarray, relation: np.ndarray, epsilon: float) -> float | None:
    """Share of pairs whose predicted relation (win d > ε, tie |d| ≤ ε, lose d < −ε) is the label."""
    d, relation = np.asarray(d, dtype=float), np.asarray(relation)
    if d.size == 0:
        return None
    predicted = np.where(d > epsilon, 1, np.where(d < -epsilon, -1, 0))
    return float((predicted == relation).mean())


def pair_correct(d: np.ndarray, relation: np.ndarray) -> np.ndarray:
    """Per win–lose pair: 1 when the score order matches the label, ½ on equal scores, else 0."""
    signed = np.asarray(d, dtype=float) * np.asarray(relation)
    return np.where(signed > 0, 1.0, np.where(signed == 0, 0.5, 0.0))


def videoalign_accuracy(d: np.ndarray, relation: np.ndarray) -> dict[str, float | None]:
    """Accuracies as VideoAlign's ``calc_accuracy.py`` computes them (published VideoGen-RewardBench numbers).

    Without ties: C/(C+D) over win–lose pairs, where d = 0 counts as discordant (wrong). With ties: the
    pairs are sorted by |d| (stable, file order on equal |d|) and the first k predicted tie, the others
    by the sign of d (d = 0 wrong); the best share of correct pairs over k = 1..N, with ``tie_threshold``
    the |d| of the k-th pair. k = 0 (no predicted tie) is not tried and equal |d| may be split, as there.
    """
    d, relation = np.asarray(d, dtype=float), np.asarray(relation, dtype=float)
    win_lose = relation != 0
    concordant = int((d[win_lose] * relation[win_lose] > 0).sum())
    out: dict[str, float | None] = {
        "accuracy": concordant / int(win_lose.sum()) if win_lose.any() else None,
        "accuracy_with_ties": None, "tie_threshold": None}
    if d.size:
        order = np.argsort(np.abs(d), kind="stable")
        rel, right = relation[order], (d * relation)[order] > 0
        ties_in_prefix = np.cumsum(rel == 0)                                  # first k = 1..N predicted tie
        signs_after = np.concatenate([np.cumsum(right[::-1])[::-1][1:], [0]])  # right among the rest
        share = (ties_in_prefix + signs_after) / d.size
        best = int(np.argmax(share))
        out.update(accuracy_with_ties=float(share[best]), tie_threshold=float(np.abs(d)[order][best]))
    return out


def pair_metrics(d: np.ndarray, relation: np.ndarray, tie_epsilon: float | None) -> dict[str, Any]:
    """Accuracy without ties (½ and C/(C+D)), with ties at the searched and the fixed ε, VideoAlign's, counts.

    Pairs whose relation is NaN (a dimension the pair was not judged on) are left out.
    """
    d, relation = np.asarray(d, dtype=float), np.asarray(relation, dtype=float)
    judged = np.isfinite(relation)
    d, relation = d[judged], relation[judged].astype(np.int64)
    win_lose = relation != 0
    signed = d[win_lose] * relation[win_lose]
    concordant, discordant = int((signed > 0).sum()), int((signed < 0).sum())
    acc_ties, eps = accuracy_with_ties(d, relation)
    published = videoalign_accuracy(d, relation)
    return {"evaluated": int(d.size), "win_lose": int(win_lose.sum()), "ties": int((~win_lose).sum()),
            "accuracy": pair_accuracy(signed), "concordant": concordant, "discordant": discordant,
            "score_ties": int((signed == 0).sum()),
            "accuracy_cd": concordant / (concordant + discordant) if concordant + discordant else None,
            "accuracy_with_ties": acc_ties, "tie_threshold": eps, "tie_epsilon": tie_epsilon,
            "accuracy_with_ties_fixed": None if tie_epsilon is None else accuracy_at_epsilon(d, relation, tie_epsilon),
            "accuracy_videoalign": published["accuracy"],
            "accuracy_with_ties_videoalign": published["accuracy_with_ties"],
            "tie_threshold_videoalign": published["tie_threshold"]}


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Mann–Whitney ROC-AUC (ties ½); None unless both classes are present."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(scores)  # average ranks for ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_f1(scores: np.ndarray, positive: np.ndarray) -> tuple[float | None, float | None]:
    """(largest F1 of the Pass class predicting Pass iff score ≥ t, that t); None unless both classes."""
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == positive.size:
        return None, None
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positive[order]
    tp, fp = np.cumsum(y), np.cumsum(~y)
    last = np.concatenate([s[1:] != s[:-1], [True]])  # end of each run of equal scores
    tp, fp, thresholds = tp[last], fp[last], s[last]
    f1 = 2 * tp / (tp + fp + n_pos)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])

