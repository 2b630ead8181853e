"""`solireward evaluate`: pair accuracy, ROC-AUC, F1 and reward-hacking diagnostics of a score file.

Inputs. ``--scores`` is the output of ``solireward infer``: a list of records with ``video_path``,
``prompt`` (optional), ``label`` (optional; a quality in [0, 1], Pass when > 0.5) and ``score`` (or
``score_norm`` with ``--score_field``), or an ``error`` field instead of a score. A record whose score
is NaN/inf is counted as ``nonfinite`` and treated like an errored one. ``--pairs`` is a pair file
(``{"win": REC, "lose": REC, "meta": {"win": {"quality": q}, "lose": {"quality": q}}}``); each side's
score is looked up by ``video_path`` (by ``video_path`` and ``prompt`` when the score file holds the
same video more than once). The label of a pair is the sign of q_win − q_lose: +1 (win), 0 (tie) or
−1 (the "lose" side is better); a pair without ``meta`` is a win–lose pair. A pair with a side that
is missing from the score file or has no valid score is counted and skipped.

Metrics (with d = r_win − r_lose for a pair and r the chosen score field):

- ``pairs.accuracy`` (pair accuracy without ties, the paper's "RM ACC"): over the pairs whose label
  is not a tie, the share with sign(d) equal to the label; d = 0 counts ½ (the expected accuracy of
  breaking the tie at random). ``pairs.accuracy_cd`` = C/(C+D) leaves the d = 0 pairs out instead
  (C concordant, D discordant; ``score_ties`` counts the others).
- ``pairs.accuracy_ci``: a ``--confidence`` interval of ``pairs.accuracy`` from ``--bootstrap_samples``
  draws that resample **test prompts** with replacement (pairs of one prompt are not independent):
  a pair counts m_p times when both sides show prompt p (drawn m_p times) and m_p·m_q times when it
  joins prompts p and q (percentile interval). A side without a prompt is its own cluster.
- ``pairs.accuracy_with_ties`` (VideoGen-RewardBench): over all evaluated pairs, the largest share
  of pairs whose predicted relation (win when d > ε, tie when |d| ≤ ε, lose when d < −ε) equals the
  label, maximised over ε ≥ 0. Only ε = 0 and the values of |d| change the prediction, so exactly
  those candidates are tried; ``pairs.tie_threshold`` is the smallest best ε.
  ``pairs.accuracy_with_ties_fixed`` is the same share at the fixed ε ``--tie_epsilon`` when given.
  Accuracies with ties are comparable across papers only at a stated ε (the notes say so).
- ``pairs.by_dimension``: the pair metrics per label dimension when the pairs carry
  ``meta.labels`` with several dimensions ({dimension: +1, 0 or −1}, as ``solireward import-bench``
  writes them for VideoGen-RewardBench).
- ``per_pair``: the evaluated pairs' file rows (1-based), prompts, d and relation, for the paired
  tests of ``solireward report``.
- ``video.roc_auc``: probability that a random Pass video scores above a random Fail video, ties
  counting ½ (Mann–Whitney U / (n_pass·n_fail), from average ranks). Null with a reason unless
  both classes are present.
- ``video.best_f1``: the largest F1 of the Pass class when a video is predicted Pass iff
  score ≥ t, over every score value t (``video.best_f1_threshold``; the highest t on ties).
- ``video.spearman``: Spearman rank correlation of scores and labels, only when the labels take
  more than two distinct values (graded); null otherwise.
- Reward-hacking diagnostics (``diagnostics``):
  ``pass_score_std`` / ``pass_score_iqr``: population standard deviation and interquartile range
  (75th − 25th percentile, linear interpolation) of the Pass videos' scores (``score_std``: of all
  videos, for scale). ``top_prompts_share``: among the ``--top_k`` highest-scoring videos (ties
  broken by file order), the share held by the ``--top_prompts`` prompts with most videos there;
  ``top_prompts_share_expected`` is its mean over ``--null_samples`` random draws of k scored videos
  (seeded), i.e. what a reward with no preference among prompts would give. Group advantage
  (GRPO): within each prompt with ≥ 2 scored videos, a = (r − mean)/std (population std); groups of
  equal scores give no advantage and are counted in ``groups_constant``. ``mean_abs_advantage_pass``
  / ``_fail`` (and the signed means) average a over Pass / Fail videos of the other groups;
  ``best_is_pass_share`` is, over prompts with both a labelled Pass and Fail video, the share whose
  highest-scoring labelled video (first in file order on ties) is a Pass, next to
  ``best_is_pass_expected``, the mean Pass share of those groups (a random pick).
- ``counts``: records, scored, errored (an ``error`` field), nonfinite, labelled, pass, fail.

The metrics JSON also holds ``tags`` (``--tag``), ``version``, ``score_field`` and ``sources``: the
score and pair files, relative to the metrics file's folder (a study folder stays valid when moved).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
from scipy import stats

from solireward import __version__
from solireward.config import arg
from solireward.errors import ConfigError, InputError
from solireward.io import markdown_cell, pair_quality, read_json, read_records, relative_path

logger = logging.getLogger(__name__)

PASS_THRESHOLD = 0.5  # a video is Pass when its label (quality in [0, 1]) is > 0.5; losses use it too


@dataclasses.dataclass
class EvaluateConfig:
    """Options of `solireward evaluate` (metrics of one score file, optionally on a pair file)."""

    scores: str = arg("score file from `solireward infer` (.json list or .jsonl of records with video_path, "
                      "prompt, optional label in [0, 1], and score or error)")
    output: str = arg("metrics JSON to write; a Markdown summary goes beside it (same name, .md) "
                      "unless --markdown is given")
    pairs: str | None = arg("pair file (win/lose/meta records); each side's score is looked up by video_path. "
                            "Without it only the video-level metrics are computed", None)
    markdown: str | None = arg("Markdown summary file; when unset, --output with the suffix .md", None)
    score_field: str = arg("which score to evaluate: the raw score or the normalised score_norm",
                           "score", choices=("score", "score_norm"))
    top_k: int = arg("number of highest-scoring videos examined by the prompt-concentration diagnostic", 10)
    top_prompts: int = arg("how many of the most frequent prompts among the top-k videos to sum", 3)
    null_samples: int = arg("random draws of k videos for the expected top-prompt share", 200)
    seed: int = arg("random seed of those draws and of the bootstrap", 0)
    tie_epsilon: float | None = arg("a fixed ε for accuracy with ties (|d| <= ε predicts a tie), reported beside "
                                    "the searched ε; ties are comparable across papers only at a stated ε", None)
    bootstrap_samples: int = arg("bootstrap draws over test prompts for the interval of pair accuracy (0: none)",
                                 1000)
    confidence: float = arg("level of that interval", 0.95)

    def __post_init__(self) -> None:
        for name in ("top_k", "top_prompts", "null_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", field=name)
        if self.bootstrap_samples < 0:
            raise ConfigError(f"must be >= 0, got {self.bootstrap_samples}", field="bootstrap_samples")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.confidence}", field="confidence")
        if self.tie_epsilon is not None and self.tie_epsilon < 0:
            raise ConfigError(f"must be >= 0, got {self.tie_epsilon}", field="tie_epsilon")


# ----------------------------------------------------------------------------------------------
# Reading the score and pair files


@dataclasses.dataclass
class ScoreTable:
    """The records of a score file as arrays (one entry per record)."""

    video_path: list[str]
    prompt: list[str | None]
    score: np.ndarray       # float, NaN where the record has no valid score
    label: np.ndarray       # float in [0, 1], NaN where unlabelled
    errored: np.ndarray     # bool: an `error` field and no score
    nonfinite: np.ndarray   # bool: the score is NaN or infinite

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.score)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            return None
    return None


def load_scores(path: str, score_field: str = "score") -> ScoreTable:
    """Read and validate a score file (see the module docstring); rows are 1-based in errors."""
    records = read_records(path)
    paths, prompts, scores, labels, errored, nonfinite = [], [], [], [], [], []
    for row, rec in enumerate(records, start=1):
        video = rec.get("video_path")
        if not isinstance(video, str) or not video:
            raise InputError("expected a non-empty string video_path", file=path, row=row, field="video_path")
        prompt = rec.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise InputError(f"expected a string or null, got {prompt!r}", file=path, row=row, field="prompt")
        raw = rec.get(score_field)
        is_error = raw is None and rec.get("error") not in (None, "")
        score = math.nan
        if raw is None and not is_error:
            raise InputError(f"record has neither '{score_field}' nor 'error'", file=path, row=row,
                             field=score_field)
        if raw is not None:
            score = _number(raw) if not isinstance(raw, (str, bool)) else None
            if score is None:
                raise InputError(f"expected a number, got {raw!r}", file=path, row=row, field=score_field)
        label = rec.get("label")
        if label is None or (isinstance(label, str) and not label.strip()):
            label_value = math.nan
        else:
            label_value = _number(label)
            if label_value is None or not 0.0 <= label_value <= 1.0:
                raise InputError(f"expected a quality in [0, 1] (1 Pass, 0 Fail) or null, got {label!r}",
                                 file=path, row=row, field="label")
        paths.append(video)
        prompts.append(prompt)
        scores.append(score)
        labels.append(label_value)
        errored.append(is_error)
        nonfinite.append(raw is not None and not math.isfinite(score))
    return ScoreTable(paths, prompts, np.asarray(scores, dtype=float), np.asarray(labels, dtype=float),
                      np.asarray(errored, dtype=bool), np.asarray(nonfinite, dtype=bool))


@dataclasses.dataclass
class PairScores:
    """Scores of the evaluable pairs of a pair file, and why the others were skipped."""

    d: np.ndarray          # r_win − r_lose
    relation: np.ndarray   # +1 win, 0 tie, −1 lose (sign of q_win − q_lose)
    in_file: int
    skipped_missing: int
    skipped_error: int
    row: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # 1-based
    prompt_win: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=object))
    prompt_lose: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=object))
    labels: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # meta.labels per dimension


def pair_scores(path: str, table: ScoreTable) -> PairScores:
    """Look up each side of each pair in `table`; skip (and count) pairs with a side not scored."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of {win, lose, meta} pairs", file=path)
    by_path: dict[str, list[int]] = {}
    for i, video in enumerate(table.video_path):
        by_path.setdefault(video, []).append(i)

    def find(rec: dict, row: int, side: str) -> int | None:
        candidates = by_path.get(rec["video_path"], [])
        if len(candidates) <= 1 or len({table.score[i] for i in candidates}) == 1:
            return candidates[0] if candidates else None
        same_prompt = [i for i in candidates if table.prompt[i] == rec.get("prompt")]
        if not same_prompt:
            raise InputError(f"video {rec['video_path']} is scored more than once with different scores and "
                             "none of its records has this pair's prompt", file=path, row=row, field=side)
        return same_prompt[0]

    valid = table.valid
    win_idx, lose_idx, relation, rows, prompts = [], [], [], [], []
    dimensions: dict[str, list[int]] = {}
    missing = error = 0
    for row, pair in enumerate(data, start=1):
        if not isinstance(pair, dict):
            raise InputError("expected an object with 'win' and 'lose'", file=path, row=row)
        for side in ("win", "lose"):
            rec = pair.get(side)
            if not isinstance(rec, dict) or not isinstance(rec.get("video_path"), str):
                raise InputError("expected a video record with a string video_path", file=path, row=row,
                                 field=f"{side}.video_path")
        qw = pair_quality(pair.get("meta"), "win", path, row, default=1.0)
        ql = pair_quality(pair.get("meta"), "lose", path, row, default=0.0)
        w, lo = find(pair["win"], row, "win"), find(pair["lose"], row, "lose")
        if w is None or lo is None:
            missing += 1
            continue
        if not (valid[w] and valid[lo]):
            error += 1
            continue
        labels = (pair.get("meta") or {}).get("labels") or {}
        if not isinstance(labels, dict) or any(v not in (-1, 0, 1) for v in labels.values()):
            raise InputError(f"expected {{dimension: -1, 0 or 1}}, got {labels!r}", file=path, row=row,
                             field="meta.labels")
        if relation and set(labels) != set(dimensions):
            raise InputError(f"dimensions {sorted(labels)} differ from earlier pairs' {sorted(dimensions)}",
                             file=path, row=row, field="meta.labels")
        for key, value in labels.items():
            dimensions.setdefault(key, []).append(int(value))
        win_idx.append(w)
        lose_idx.append(lo)
        relation.append(int(np.sign(qw - ql)))
        rows.append(row)
        prompts.append(tuple(pair[side].get("prompt") or table.prompt[i] or table.video_path[i]
                             for side, i in (("win", w), ("lose", lo))))
    d = table.score[np.asarray(win_idx, dtype=np.int64)] - table.score[np.asarray(lose_idx, dtype=np.int64)]
    sides = np.array(prompts, dtype=object).reshape(-1, 2)
    return PairScores(d, np.asarray(relation, dtype=np.int64), len(data), missing, error,
                      np.asarray(rows, dtype=np.int64), sides[:, 0], sides[:, 1],
                      {k: np.asarray(v, dtype=np.int64) for k, v in dimensions.items()})


# ----------------------------------------------------------------------------------------------
# Metrics (numpy); each returns None where it is undefined


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


def pair_metrics(d: np.ndarray, relation: np.ndarray, tie_epsilon: float | None) -> dict[str, Any]:
    """Accuracy without ties (½ and C/(C+D)), with ties at the searched and the fixed ε, and counts."""
    d, relation = np.asarray(d, dtype=float), np.asarray(relation)
    win_lose = relation != 0
    signed = d[win_lose] * relation[win_lose]
    concordant, discordant = int((signed > 0).sum()), int((signed < 0).sum())
    acc_ties, eps = accuracy_with_ties(d, relation)
    return {"evaluated": int(d.size), "win_lose": int(win_lose.sum()), "ties": int((~win_lose).sum()),
            "accuracy": pair_accuracy(signed), "concordant": concordant, "discordant": discordant,
            "score_ties": int((signed == 0).sum()),
            "accuracy_cd": concordant / (concordant + discordant) if concordant + discordant else None,
            "accuracy_with_ties": acc_ties, "tie_threshold": eps, "tie_epsilon": tie_epsilon,
            "accuracy_with_ties_fixed": None if tie_epsilon is None else accuracy_at_epsilon(d, relation, tie_epsilon)}


def prompt_weights(prompt_a: np.ndarray, prompt_b: np.ndarray, samples: int, seed: int,
                   chunk_elements: int = 4_000_000) -> Iterator[np.ndarray]:
    """Bootstrap weights of pairs, resampling prompts: chunks of shape (draws, pairs).

    Each draw takes as many prompts as there are, with replacement (m_p copies of prompt p); a pair
    within prompt p then counts m_p times and a pair joining prompts p and q m_p·m_q times.
    """
    codes, uniques = pd.factorize(np.concatenate([np.asarray(prompt_a, dtype=object),
                                                  np.asarray(prompt_b, dtype=object)]))
    n = len(prompt_a)
    ca, cb = codes[:n], codes[n:]
    same = ca == cb
    rng = np.random.default_rng(np.random.SeedSequence([seed, 14]))
    step = max(1, chunk_elements // max(n + len(uniques), 1))
    for start in range(0, samples, step):
        draws = min(step, samples - start)
        m = rng.multinomial(len(uniques), np.full(len(uniques), 1.0 / len(uniques)), size=draws).astype(float)
        yield m[:, ca] * np.where(same, 1.0, m[:, cb])


def bootstrap_interval(correct: np.ndarray, prompt_a: np.ndarray, prompt_b: np.ndarray, samples: int,
                       confidence: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """Percentile interval of the mean of `correct` (per pair) over prompt-resampling draws."""
    correct = np.asarray(correct, dtype=float)
    if correct.size == 0 or samples < 1:
        return None
    values = []
    for w in prompt_weights(prompt_a, prompt_b, samples, seed):
        total = w.sum(axis=1)
        keep = total > 0
        values.append((w[keep] @ correct) / total[keep])
    values = np.concatenate(values)
    alpha = (1.0 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def paired_bootstrap(correct_x: np.ndarray, correct_ref: np.ndarray, prompt_a: np.ndarray,
                     prompt_b: np.ndarray, samples: int, confidence: float = 0.95,
                     seed: int = 0) -> dict[str, float | None]:
    """Paired test of a model (or its replicates) against a reference on the same pairs.

    `correct_x` and `correct_ref` are (replicates, pairs) arrays of ``pair_correct`` on one list of
    pairs. Each draw resamples the prompts (``prompt_weights``) and, with more than one replicate,
    each side's replicates with replacement; the difference of the mean accuracies gives a percentile
    interval and a two-sided p = 2·min(P(Δ* ≤ 0), P(Δ* ≥ 0)) (capped at 1).
    """
    x, ref = np.atleast_2d(np.asarray(correct_x, dtype=float)), np.atleast_2d(np.asarray(correct_ref, dtype=float))
    if x.shape[1] != ref.shape[1]:
        raise ValueError(f"the two sides have {x.shape[1]} and {ref.shape[1]} pairs")
    if x.shape[1] == 0 or samples < 1:
        return {"difference": None, "low": None, "high": None, "p_value": None, "samples": 0}
    rng = np.random.default_rng(np.random.SeedSequence([seed, 15]))
    diffs = []
    for w in prompt_weights(prompt_a, prompt_b, samples, seed):
        draws = w.shape[0]
        mean_x = x[rng.integers(0, len(x), size=(draws, len(x)))].mean(axis=1) if len(x) > 1 else np.repeat(x, draws, 0)
        mean_r = (ref[rng.integers(0, len(ref), size=(draws, len(ref)))].mean(axis=1) if len(ref) > 1
                  else np.repeat(ref, draws, 0))
        total = w.sum(axis=1)
        keep = total > 0
        diffs.append(((w * (mean_x - mean_r)).sum(axis=1)[keep]) / total[keep])
    diffs = np.concatenate(diffs)
    alpha = (1.0 - confidence) / 2
    p = min(1.0, 2 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
    return {"difference": float(x.mean() - ref.mean()), "low": float(np.quantile(diffs, alpha)),
            "high": float(np.quantile(diffs, 1 - alpha)), "p_value": p, "samples": int(diffs.size)}


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


def group_advantages(scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, int, int]:
    """GRPO advantage (r − mean)/std (population std) within each group.

    Returns (advantage per video, NaN in groups of one video or of equal scores; number of groups of
    ≥ 2 videos; number of those whose scores are all equal).
    """
    frame = pd.DataFrame({"g": groups, "s": scores})
    grouped = frame.groupby("g", sort=False)["s"]
    size, mean, std = grouped.transform("size"), grouped.transform("mean"), grouped.transform("std", ddof=0)
    usable = (size >= 2) & (std > 0)
    advantage = np.where(usable, (frame["s"] - mean) / std.where(usable, 1.0), np.nan)
    sizes, stds = grouped.size(), grouped.std(ddof=0)
    return advantage, int((sizes >= 2).sum()), int(((sizes >= 2) & (stds == 0)).sum())


def top_prompt_share(scores: np.ndarray, groups: np.ndarray, top_k: int, top_prompts: int,
                     null_samples: int = 200, seed: int = 0) -> dict[str, Any]:
    """Share of the top-k videos held by the `top_prompts` most frequent prompts there, and its null."""
    n = scores.size
    k = min(top_k, n)
    codes, names = pd.factorize(pd.Series(groups, dtype=object))
    top = np.argsort(-scores, kind="stable")[:k]
    counts = np.bincount(codes[top], minlength=len(names))
    leaders = np.argsort(-counts, kind="stable")[:top_prompts]
    observed = counts[leaders].sum() / k
    rng = np.random.default_rng(seed)
    shares = []
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, null_samples, chunk):
        r = min(chunk, null_samples - start)
        draw = rng.random((r, n)).argpartition(k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (r, 1))
        flat = (np.arange(r)[:, None] * len(names) + codes[draw]).ravel()
        per_row = np.bincount(flat, minlength=r * len(names)).reshape(r, len(names))
        m = min(top_prompts, len(names))
        shares.append(np.partition(per_row, len(names) - m, axis=1)[:, len(names) - m:].sum(axis=1) / k)
    return {"top_k": int(k), "top_prompts_share": float(observed),
            "top_prompts_share_expected": float(np.concatenate(shares).mean()),
            "top_k_prompts": [{"prompt": str(names[i]), "count": int(counts[i])} for i in leaders if counts[i] > 0]}


# ----------------------------------------------------------------------------------------------
# The report of one score file


def evaluate(config: EvaluateConfig, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """All metrics of `config.scores` (and `config.pairs`) as a JSON-ready dict."""
    table = load_scores(config.scores, config.score_field)
    notes: dict[str, str] = {}
    valid = table.valid
    labelled = valid & np.isfinite(table.label)
    is_pass = table.label > PASS_THRESHOLD
    counts = {"records": len(table.video_path), "scored": int(valid.sum()), "errored": int(table.errored.sum()),
              "nonfinite": int(table.nonfinite.sum()), "labelled": int(labelled.sum()),
              "pass": int((labelled & is_pass).sum()), "fail": int((labelled & ~is_pass).sum())}
    if counts["nonfinite"]:
        logger.warning("%d record(s) of %s have a NaN or infinite %s; they are treated as errored",
                       counts["nonfinite"], config.scores, config.score_field)

    pairs = per_pair = None
    if config.pairs:
        ps = pair_scores(config.pairs, table)
        win_lose = ps.relation != 0
        pairs = {"in_file": ps.in_file, "skipped_missing": ps.skipped_missing, "skipped_error": ps.skipped_error,
                 **pair_metrics(ps.d, ps.relation, config.tie_epsilon)}
        interval = bootstrap_interval(pair_correct(ps.d[win_lose], ps.relation[win_lose]), ps.prompt_win[win_lose],
                                      ps.prompt_lose[win_lose], config.bootstrap_samples, config.confidence,
                                      config.seed)
        pairs.update(accuracy_ci=list(interval) if interval else None, confidence=config.confidence,
                     bootstrap_samples=config.bootstrap_samples,
                     prompts=int(len(set(ps.prompt_win[win_lose]) | set(ps.prompt_lose[win_lose]))))
        if len(ps.labels) > 1:
            pairs["by_dimension"] = {name: pair_metrics(ps.d, rel, config.tie_epsilon)
                                     for name, rel in ps.labels.items()}
        per_pair = {"row": ps.row.tolist(), "prompt_win": ps.prompt_win.tolist(),
                    "prompt_lose": ps.prompt_lose.tolist(), "d": ps.d.tolist(), "relation": ps.relation.tolist()}
        if pairs["accuracy"] is None:
            notes["pairs.accuracy"] = "no win–lose pair could be evaluated"
        if pairs["ties"] or ps.labels:
            notes["pairs.accuracy_with_ties"] = (
                "accuracies with ties depend on ε and are not comparable across papers unless ε is stated: "
                f"searched ε = {markdown_cell(pairs['tie_threshold'], 6)}"
                + (f", fixed ε = {config.tie_epsilon}" if config.tie_epsilon is not None else ""))
        if ps.skipped_missing or ps.skipped_error:
            notes["pairs.skipped"] = (f"{ps.skipped_missing} pair(s) name a video missing from the score file, "
                                      f"{ps.skipped_error} have a side without a valid score")

    s, y = table.score[labelled], is_pass[labelled]
    both = counts["pass"] > 0 and counts["fail"] > 0
    f1, f1_threshold = best_f1(s, y)
    video: dict[str, Any] = {"roc_auc": roc_auc(s, y), "best_f1": f1, "best_f1_threshold": f1_threshold,
                             "spearman": None, "spearman_pvalue": None}
    if not both:
        notes["video.roc_auc"] = notes["video.best_f1"] = (
            f"needs both Pass and Fail videos with scores; found {counts['pass']} Pass, {counts['fail']} Fail")
    graded = np.unique(table.label[labelled]).size > 2
    if not graded:
        notes["video.spearman"] = "labels are binary (at most two distinct values); see ROC-AUC"
    elif np.unique(s).size < 2:
        notes["video.spearman"] = "all scores are equal"
    else:
        rho = stats.spearmanr(s, table.label[labelled])
        video["spearman"], video["spearman_pvalue"] = float(rho.statistic), float(rho.pvalue)

    diagnostics = _diagnostics(table, config, notes)
    return {"tags": dict(tags or {}), "version": __version__,
            "sources": {"scores": relative_path(config.scores, Path(config.output).parent),
                        "pairs": relative_path(config.pairs, Path(config.output).parent) if config.pairs else None},
            "score_field": config.score_field, "counts": counts, "pairs": pairs, "video": video,
            "diagnostics": diagnostics, "notes": notes, "per_pair": per_pair}


def _diagnostics(table: ScoreTable, config: EvaluateConfig, notes: dict[str, str]) -> dict[str, Any]:
    valid = table.valid
    labelled = valid & np.isfinite(table.label)
    is_pass = table.label > PASS_THRESHOLD
    out: dict[str, Any] = {"score_std": float(table.score[valid].std()) if valid.any() else None,
                           "pass_score_std": None, "pass_score_iqr": None}
    pass_scores = table.score[labelled & is_pass]
    if pass_scores.size >= 2:
        q25, q75 = np.percentile(pass_scores, [25, 75])
        out.update(pass_score_std=float(pass_scores.std()), pass_score_iqr=float(q75 - q25))
    else:
        notes["diagnostics.pass_score_std"] = f"needs at least two scored Pass videos, found {pass_scores.size}"

    has_prompt = valid & np.array([p is not None for p in table.prompt], dtype=bool)
    keys = ("top_k", "top_prompts_share", "top_prompts_share_expected", "top_k_prompts", "groups",
            "groups_constant", "mean_abs_advantage_pass", "mean_abs_advantage_fail", "mean_advantage_pass",
            "mean_advantage_fail", "best_is_pass_share", "best_is_pass_expected", "groups_with_both")
    out.update(dict.fromkeys(keys))
    if not has_prompt.any():
        notes["diagnostics.prompts"] = "no scored video has a prompt; prompt diagnostics skipped"
        return out
    prompts = np.array([p for p, h in zip(table.prompt, has_prompt) if h], dtype=object)
    scores, labels = table.score[has_prompt], table.label[has_prompt]
    out.update(top_prompt_share(scores, prompts, config.top_k, config.top_prompts, config.null_samples,
                                config.seed))
    advantage, n_groups, n_constant = group_advantages(scores, prompts)
    out.update(groups=n_groups, groups_constant=n_constant)
    lab = np.isfinite(labels) & np.isfinite(advantage)
    for name, mask in (("pass", lab & (labels > PASS_THRESHOLD)), ("fail", lab & (labels <= PASS_THRESHOLD))):
        if mask.any():
            out[f"mean_abs_advantage_{name}"] = float(np.abs(advantage[mask]).mean())
            out[f"mean_advantage_{name}"] = float(advantage[mask].mean())
    frame = pd.DataFrame({"g": prompts, "s": scores, "p": labels > PASS_THRESHOLD})[np.isfinite(labels)]
    per_group = frame.groupby("g", sort=False)["p"].agg(["sum", "size"])
    both = per_group.index[(per_group["sum"] > 0) & (per_group["sum"] < per_group["size"])]
    out["groups_with_both"] = int(len(both))
    if len(both):
        sub = frame[frame["g"].isin(both)]
        best = sub.loc[sub.groupby("g", sort=False)["s"].idxmax(), "p"]
        share = per_group.loc[both, "sum"] / per_group.loc[both, "size"]
        out.update(best_is_pass_share=float(best.mean()), best_is_pass_expected=float(share.mean()))
    else:
        notes["diagnostics.best_is_pass_share"] = "no prompt has both a scored Pass and a scored Fail video"
    return out


# ----------------------------------------------------------------------------------------------
# Markdown


def summary_line(result: dict[str, Any]) -> str:
    """One line for the log: videos scored, pair accuracy and ROC-AUC."""
    pairs = result["pairs"] or {}
    interval = pairs.get("accuracy_ci")
    ci = f" [{markdown_cell(interval[0])}, {markdown_cell(interval[1])}]" if interval else ""
    return (f"{result['counts']['scored']} of {result['counts']['records']} videos scored; pair accuracy "
            f"{markdown_cell(pairs.get('accuracy'))}{ci} on {pairs.get('win_lose', 0)} win-lose pairs; "
            f"ROC-AUC {markdown_cell(result['video']['roc_auc'])}")


def metrics_markdown(result: dict[str, Any]) -> str:
    """A readable summary of one metrics dict (tables of the values, notes and definitions)."""
    tags = ", ".join(f"{k}={v}" for k, v in result["tags"].items()) or "no tags"
    lines = [f"# Evaluation ({tags})", "",
             f"Scores: `{result['sources']['scores']}` (field `{result['score_field']}`)  ",
             f"Pairs: `{result['sources']['pairs']}`" if result["sources"]["pairs"] else "Pairs: none given", ""]

    def section(title: str, values: dict[str, Any] | None) -> None:
        lines.extend([f"## {title}", ""])
        if values is None:
            lines.extend(["Not computed (no pair file).", ""])
            return
        lines.extend(["| metric | value |", "|---|---|"])
        for key, value in values.items():
            if key == "by_dimension":
                continue
            if key == "top_k_prompts":
                value = "; ".join(f"{p['prompt']} ({p['count']})" for p in value or []) or None
            if isinstance(value, list):
                value = "[" + ", ".join(markdown_cell(v) for v in value) + "]"
            lines.append(f"| {key} | {markdown_cell(value)} |")
        lines.append("")

    section("Counts", result["counts"])
    section("Pairs", result["pairs"])
    by_dimension = (result["pairs"] or {}).get("by_dimension")
    if by_dimension:
        keys = list(next(iter(by_dimension.values())))
        lines.extend(["## Pairs per label dimension", "", "| dimension | " + " | ".join(keys) + " |",
                      "|---|" + "---:|" * len(keys)])
        lines.extend(f"| {name} | " + " | ".join(markdown_cell(values[k]) for k in keys) + " |"
                     for name, values in by_dimension.items())
        lines.append("")
    section("Videos", result["video"])
    section("Reward-hacking diagnostics", result["diagnostics"])
    if result["notes"]:
        lines.extend(["## Notes", ""] + [f"- `{k}`: {v}" for k, v in result["notes"].items()] + [""])
    lines.extend(["## Definitions", "",
                  "- accuracy: share of win–lose pairs with r_win > r_lose (equal scores count ½); "
                  "accuracy_cd = C/(C+D) leaves equal scores out; accuracy_ci: bootstrap interval over test prompts.",
                  "- accuracy_with_ties: best over ε ≥ 0 of the share of pairs whose predicted relation "
                  "(win if d > ε, tie if |d| ≤ ε, lose if d < −ε; d = r_win − r_lose) matches the label; "
                  "tie_threshold = the smallest best ε; accuracy_with_ties_fixed: at the given tie_epsilon. "
                  "Accuracies with ties are comparable across papers only at a stated ε.",
                  "- roc_auc: P(score of a random Pass > score of a random Fail), ties ½.",
                  "- best_f1: largest F1 of Pass when predicting Pass iff score ≥ best_f1_threshold.",
                  "- spearman: rank correlation of scores and graded labels (binary labels: skipped).",
                  "- pass_score_std / pass_score_iqr: spread of the Pass videos' scores.",
                  "- top_prompts_share: share of the top-k videos held by the most frequent prompts there "
                  "(expected: mean over random draws of k videos).",
                  "- advantage: (r − mean)/std within a prompt; best_is_pass_share: prompts whose top-scored "
                  "video is Pass (expected: mean Pass share).", ""])
    return "\n".join(lines)
