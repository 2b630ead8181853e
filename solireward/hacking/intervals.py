"""Intervals of the lab's effects over their units (videos for a probe shift, prompts for over-optimisation).

Each effect is a mean over independent units (a probe shift is the mean over videos of each video's
score change; a hacking gap the mean over prompts of each prompt's gap), so its interval is the
Student-t interval of a mean: mean ± t(1 - α/2, n - 1) · sd / √n, with sd the sample standard
deviation (ddof 1). It is exact for normal unit effects; for skewed or two-valued ones it covers
about 93-95 % from 28 units on and about 90 % at 12 (tests/hacking/test_intervals.py checks this by
simulation). A probe shift is in units of the clean scores' standard deviation, which is held fixed
(the interval is conditional on it).

Two cells measured on the same units (a mitigated cell and its unmitigated twin: the same videos or
test prompts) are compared by :func:`paired_comparison`: the mean of the per-unit differences, its
t interval, and the two-sided paired t-test p-value. Several trainings (seeds) of a cell: the mean over them
with seeds' and units' variance (:func:`replicated_comparison`), or how far each one's mean moves whichever way
(:func:`mean_magnitude`, a probe or share goal).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from solireward.errors import InputError
from solireward.evaluation.uncertainty import variance_shares, welch

CONFIDENCE = 0.95


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """``{"mean", "low", "high", "n"}``: the t interval of the mean of `values` (bounds None below 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or not len(x) or not np.isfinite(x).all():
        raise InputError(f"expected one or more finite values, got {x.tolist()[:5]}", field="values")
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "low": None, "high": None, "n": 1}
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(x)}


def beyond(low: float | None, high: float | None, threshold: float) -> int:
    """+1 when the interval [low, high] lies wholly above `threshold`, -1 wholly below -`threshold`, else 0 (also
    without an interval): the lab's flags on an effect that should be 0."""
    if low is None or high is None:
        return 0
    return 1 if low > threshold else -1 if high < -threshold else 0


def paired_comparison(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                      confidence: float = CONFIDENCE) -> dict[str, Any]:
    """``{"difference", "low", "high", "p", "n"}`` of a - b over the same units: t interval and paired t-test p."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise InputError(f"paired values need the same units: {x.shape} vs {y.shape}", field="values")
    d = x - y
    interval = mean_interval(d, confidence)
    if len(d) < 2:
        p = None
    elif np.ptp(d) == 0:  # every unit differs by the same amount: certain unless that amount is 0
        p = 1.0 if d[0] == 0 else 0.0
    else:
        p = float(stats.ttest_1samp(d, 0.0).pvalue)
    return {"difference": interval["mean"], "low": interval["low"], "high": interval["high"], "p": p,
            "n": interval["n"]}


def replicated_comparison(x: Sequence[Sequence[float]] | np.ndarray, y: Sequence[Sequence[float]] | np.ndarray | None = None,
                          confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The mean of `x` − `y` over units when each side holds K trainings (seeds) of one cell: ``(K, units)``
    arrays, the same units in the same order; without `y` the mean of `x` itself.

    ``{"difference", "low", "high", "p", "n", "replicates", "variance_shares"}``: the variance of the mean is the
    units' part (the variance over units of the replicate-averaged difference, / n) plus each side's seed part (the
    variance of its replicates' means, / K), with Welch–Satterthwaite degrees of freedom (their shares of the
    total: ``units``, ``seeds`` of `x`, ``reference_seeds`` of `y`); with one training a
    side this is :func:`paired_comparison` (or :func:`mean_interval`). The seed part also holds the units'
    noise that the units' part counts, so the interval is conservative when seeds do not matter
    (tests/hacking/test_intervals.py measures both cases), as the report's accuracy intervals are.
    """
    from scipy import stats

    sides = [np.atleast_2d(np.asarray(side, dtype=float)) for side in (x, y) if side is not None]
    if len({side.shape[1] for side in sides}) != 1:
        raise InputError(f"paired values need the same units: {' vs '.join(str(s.shape) for s in sides)}",
                         field="values")
    if not all(np.isfinite(side).all() and side.size for side in sides):
        raise InputError("expected finite values for every replicate and unit", field="values")
    d = sides[0].mean(axis=0) - (sides[1].mean(axis=0) if len(sides) > 1 else 0.0)
    n, mean = d.size, float(d.mean())
    out = {"difference": mean, "low": None, "high": None, "p": None, "n": int(n),
           "replicates": [len(side) for side in sides], "variance_shares": None}
    parts = {"units": (float(d.var(ddof=1)) / n, n - 1)} if n > 1 else {}
    parts |= {name: (float(side.mean(axis=1).var(ddof=1)) / len(side), len(side) - 1)
              for name, side in zip(("seeds", "reference_seeds"), sides) if len(side) > 1}
    if not parts:
        return out
    total, df = welch(list(parts.values()))
    if total == 0:   # every unit and replicate agrees: certain unless the difference is 0
        return {**out, "low": mean, "high": mean, "p": 1.0 if mean == 0 else 0.0}
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(total)
    p = float(2 * stats.t.sf(abs(mean) / math.sqrt(total), df))
    return {**out, "low": mean - half, "high": mean + half, "p": p, "df": float(df),
            "variance_shares": variance_shares(parts, total)}


def mean_magnitude(values: Sequence[Sequence[float]] | np.ndarray, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """How far a trained model's mean moves, whichever way: the mean over K trainings of |mean over units|.

    ``values``: ``(K, units)``, the same units for every training. ``{"mean", "low", "high", "per_replicate", "n",
    "replicates", "variance_shares"}`` (the shares of the variance: ``units``, ``seeds``). A mean of signed values
    would let seeds that lean opposite ways cancel, though each model moves, and a reward model is used one training
    at a time. The magnitude is the mean over units of each unit's values with each training's sign turned to make
    its mean positive, so its variance has the units' part (the variance over units of those values, / n) and the
    seeds' part, as in :func:`replicated_comparison`; the seeds' part is the variance of the trainings' *signed*
    means / K, since |·| shrinks distances and the few magnitudes themselves, skewed near 0, give an upper bound
    that misses about 7 % of the time instead of 2.5 %. Welch–Satterthwaite degrees of freedom; the lower bound is
    cut at 0. In simulation each bound misses a training's expected |shift| at most about 2.5 % of the time
    (tests/hacking/test_intervals.py).
    """
    from scipy import stats

    x = np.atleast_2d(np.asarray(values, dtype=float))
    if not x.size or not np.isfinite(x).all():
        raise InputError("expected finite values for every replicate and unit", field="values")
    k, n = x.shape
    means = x.mean(axis=1)
    aligned = (np.where(means < 0, -1.0, 1.0)[:, None] * x).mean(axis=0)
    magnitude = float(aligned.mean())
    out = {"mean": magnitude, "low": None, "high": None, "per_replicate": [abs(float(m)) for m in means], "n": n,
           "replicates": k, "variance_shares": None}
    parts = ({"units": (float(aligned.var(ddof=1)) / n, n - 1)} if n > 1 else {}) | (
        {"seeds": (float(means.var(ddof=1)) / k, k - 1)} if k > 1 else {})
    if not parts:
        return out
    total, df = welch(list(parts.values()))
    if total == 0:
        return {**out, "low": magnitude, "high": magnitude}
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(total)
    return {**out, "low": max(magnitude - half, 0.0), "high": magnitude + half,
            "variance_shares": variance_shares(parts, total)}
