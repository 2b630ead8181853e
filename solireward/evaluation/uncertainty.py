"""Intervals and paired tests of pair accuracy when pairs share prompts (why: docs/UNCERTAINTY.md).

Pairs are dependent when they share a prompt: every pair within prompt p, and every pair that has p on
either side, carries p's difficulty. The variance of a sum of per-pair values v_i is estimated by the
dyadic cluster-robust estimator (Fafchamps & Gubert 2007; Aronow, Samii & Assenova 2015):
Σ_i Σ_j e_i e_j over the pairs i, j that share at least one prompt, e = v − mean. Pairs within one
prompt make it the one-way cluster-robust variance (Liang & Zeger 1986); pairs that share no prompt
make it the independent-pairs variance Σ e². It is divided by 1 − ΣM/n² (M_ij = 1 when pairs i and j
share a prompt), which makes it unbiased when the pairs are in fact independent with equal variance
(for equal one-way clusters this is the usual G/(G − 1)). A non-positive estimate falls back to the
independent-pairs variance.

- Interval of one accuracy: Wilson's interval at the effective number of pairs p(1 − p)/Var(mean) (Kish 1965;
  Korn & Graubard 1998), capped at n, with Student's t quantile: its degrees of freedom come from a moment split of the
  variance into a pair part (n − 1 df) and a prompt part ((prompts − 1) / (1 + share of cross-prompt pairs) df),
  so they are large when prompts do not matter and near the number of prompts when they dominate
  (Welch–Satterthwaite). The design effect n / n_eff is never below ``design_effect_floor``: 1 + (n/prompts − 1)/(1 + k),
  k the number of minority outcomes (wrong pairs near 100 %). Clustering shows only through those outcomes: at
  accuracy 0 or 1 (k = 0) nothing can be estimated and each prompt counts once (n_eff = prompts, the prompts'
  degrees of freedom), and with a few wrong pairs that happen to fall in different prompts the estimate says
  "independent" although hard prompts hold most errors; the floor fades as k grows (1.12 at k = 120 with 16
  pairs per prompt). Near 100 % it keeps the lower side covered and is conservative (docs/UNCERTAINTY.md).
- Paired test of two models on the same pairs: d_i = their correctness difference; t = Σd / √V(Σd)
  against Student's t with the Satterthwaite degrees of freedom of V under working independence,
  ν = (Σe²)² / Σ_{i,j share} e_i² e_j² (Bell & McCaffrey 2002). V is never below McNemar's b + c = Σd², the
  variance of Σd under "no difference" for independent pairs (then with its own degrees of freedom
  (Σd²)²/Σd⁴, about the number of discordant pairs): with sparse discordance the centred dyadic sum can come
  out near 0 (issue 26: 3 : 0 over 9 pairs gave p = 2e-15), and a design effect below 1 is noise, not pairs
  that share a prompt disagreeing. With pairs that share no prompt the test is a t-version of McNemar's.
- Replicates (K models of one cell, different seeds): the variance of the mean is the test-set variance of
  the replicate-averaged correctness plus s²/K over the replicates' accuracies; Welch–Satterthwaite degrees
  of freedom. s² also holds the per-pair noise that the test-set part already counts, so the interval is
  conservative when replicates differ by that noise alone (docs/UNCERTAINTY.md); subtracting it (a
  two-way ANOVA) under-covered with K = 3, because the smaller s² then set too many degrees of freedom.
  Replicates that are all right (or all wrong) on every pair get the one-model interval at 0 or 1.
- ``coverage_caveat``: the sentence a report shows beside an interval whose design is outside the range the
  simulation checked, or in the one scenario that fell short (also the ``caveat`` of each interval).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

INTERVAL_METHOD = ("intervals and paired tests treat test pairs that share a prompt as dependent "
                   "(dyadic cluster-robust variance over prompts; Wilson interval at the effective number of "
                   "pairs, each prompt counting once at 0 or 100 %; paired t-test with Satterthwaite degrees of "
                   "freedom, its variance never below McNemar's; replicates add the seed-to-seed variance). "
                   "See docs/UNCERTAINTY.md.")


CHECKED_MIN_PROMPTS = 12     # the fewest test prompts the simulation checks (docs/UNCERTAINTY.md)
SHORT_CROSSED_PROMPTS = 20   # below this many prompts, cross-prompt designs covered 0.93 in one scenario


def method_footnote() -> str:
    """The sentence a report's footnote uses to name the interval and test method."""
    return INTERVAL_METHOD


@dataclasses.dataclass(frozen=True)
class PromptDesign:
    """Which prompts each pair joins, coded for the dyadic sums."""

    side_a: np.ndarray   # prompt code of each pair's first side
    side_b: np.ndarray
    cross: np.ndarray    # bool: the two sides have different prompts
    dyad: np.ndarray     # code of each cross pair's unordered prompt pair
    prompts: int
    dyads: int

    @classmethod
    def of(cls, prompt_a: np.ndarray, prompt_b: np.ndarray) -> PromptDesign:
        """Code the prompts of `prompt_a` / `prompt_b` (one entry per pair; any hashable values)."""
        n = len(prompt_a)
        codes, names = pd.factorize(np.concatenate([np.asarray(prompt_a, dtype=object),
                                                    np.asarray(prompt_b, dtype=object)]))
        a, b = codes[:n], codes[n:]
        cross = a != b
        lo, hi = np.minimum(a, b)[cross], np.maximum(a, b)[cross]
        dyad, dyad_names = pd.factorize(lo.astype(np.int64) * len(names) + hi)
        return cls(a, b, cross, dyad, len(names), len(dyad_names))

    def shared_sum(self, v: np.ndarray) -> float:
        """Σ_i Σ_j v_i v_j over the pairs i, j that share at least one prompt."""
        per_prompt = (np.bincount(self.side_a, v, self.prompts)
                      + np.bincount(self.side_b[self.cross], v[self.cross], self.prompts))
        per_dyad = np.bincount(self.dyad, v[self.cross], self.dyads)
        return float((per_prompt ** 2).sum() - (per_dyad ** 2).sum())


@dataclasses.dataclass(frozen=True)
class SumVariance:
    """Variance of Σ v over the pairs, and what it rests on."""

    variance: float
    independent: float   # the same if every pair were independent
    df_pairs: float      # Satterthwaite degrees of freedom of `variance` under working independence
    df_prompts: float    # Welch–Satterthwaite degrees of freedom of its pair and prompt components
    pair_part: float = 0.0     # moment split of the variance: pairs' own noise ...
    prompt_part: float = 0.0   # ... and what pairs sharing a prompt have in common

    @property
    def design_effect(self) -> float:
        return self.variance / self.independent if self.independent > 0 else 1.0


def _prompt_df(design: PromptDesign) -> float:
    """Degrees of freedom of a variance that prompts dominate: prompts − 1, halved when every pair joins two
    prompts, whose effects both enter (docs/UNCERTAINTY.md); at least 1."""
    return max(1.0, (design.prompts - 1) / (1.0 + float(design.cross.mean())))


def _welch_df(pair_part: float, prompt_part: float, n: int, design: PromptDesign) -> float:
    """Welch–Satterthwaite degrees of freedom of a pair part (n − 1 df) plus a prompt part (``_prompt_df``)."""
    if prompt_part <= 0 or design.prompts < 2:
        return float(n - 1)
    return (pair_part + prompt_part) ** 2 / (pair_part ** 2 / (n - 1) + prompt_part ** 2 / _prompt_df(design))


def _split(e: np.ndarray, design: PromptDesign, shared: float, shared_ones: float) -> tuple[float, float]:
    """Moment split of the variance of Σe into a pair part σ²n and a prompt part τ²ΣM, pairs sharing a prompt
    covarying by τ²: the prompt part is zero without prompt effects and dominates when they do."""
    n = e.size
    touches = (np.bincount(design.side_a, minlength=design.prompts)
               + np.bincount(design.side_b[design.cross], minlength=design.prompts))
    row = touches[design.side_a].astype(float)
    row[design.cross] += touches[design.side_b[design.cross]] - np.bincount(design.dyad)[design.dyad]
    cross_moment = n - shared_ones / n                                    # E of Σe² per τ², of e'Me per σ²
    trace = shared_ones - 2 * float((row ** 2).sum()) / n + shared_ones ** 2 / n ** 2
    ee = float((e ** 2).sum())
    det = (n - 1) * trace - cross_moment ** 2
    tau = max(0.0, ((n - 1) * shared - cross_moment * ee) / det) if det > 0 else 0.0
    sigma = max(0.0, (ee - tau * cross_moment) / (n - 1))
    return sigma * n, tau * shared_ones


def sum_variance(values: np.ndarray, design: PromptDesign) -> SumVariance | None:
    """Dyadic cluster-robust variance of Σ values (module docstring); None with fewer than two pairs."""
    v = np.asarray(values, dtype=float)
    n = v.size
    if n < 2:
        return None
    e = v - v.mean()
    independent = float((e ** 2).sum()) * n / (n - 1)
    shared_ones = design.shared_sum(np.ones(n))
    shared = design.shared_sum(e)
    shrink = 1.0 - shared_ones / n ** 2
    variance = shared / shrink if shrink > 0 else 0.0
    if variance <= 0:
        variance = independent
    fourth = design.shared_sum(e ** 2)
    df_pairs = float((e ** 2).sum()) ** 2 / fourth if fourth > 0 else float("inf")
    pair_part, prompt_part = _split(e, design, shared, shared_ones)
    return SumVariance(variance, independent, max(df_pairs, 1.0), _welch_df(pair_part, prompt_part, n, design),
                       pair_part, prompt_part)


def design_effect_floor(n: int, minority: float, design: PromptDesign) -> float:
    """The least design effect an interval of n pairs with `minority` wrong (or right) pairs may use.

    Clustering shows only through the minority outcomes: with none (accuracy 0 or 1) the data cannot tell
    "prompts decide" from "pairs are independent", so each prompt counts once (design effect n / prompts);
    the floor falls to 1 as minority outcomes accumulate, 1 + (n / prompts − 1) / (1 + minority). An all-correct
    set, which says least about clustering, can therefore get a lower bound below that of a set with one error
    (docs/UNCERTAINTY.md, "Near 0 and 100 %").
    """
    boundary = n / min(n, max(design.prompts, 1))
    return 1.0 + (boundary - 1.0) / (1.0 + minority)


def _floored(var: SumVariance | None, base: float, n: int, mean: float, design: PromptDesign) -> tuple[float, float]:
    """Variance of the sum an interval uses, never below ``design_effect_floor`` × `base` (the variance of the sum
    for independent pairs), and its degrees of freedom; the floor's excess over the estimate is prompt variance."""
    floor = design_effect_floor(n, n * min(mean, 1.0 - mean), design) * base
    if var is None or base <= 0:   # nothing varies: as if prompts decided every pair
        return floor, (_prompt_df(design) if design_effect_floor(n, 0.0, design) > 1 else float("inf"))
    used = max(var.variance, floor)
    return used, _welch_df(var.pair_part, max(var.prompt_part, used - var.pair_part), n, design)


def coverage_caveat(design: PromptDesign) -> str | None:
    """Why an interval over this design may cover less than it says, from the simulation (docs/UNCERTAINTY.md,
    "Simulation with known truth"); None inside the range where coverage was 0.93 or more."""
    if design.prompts < CHECKED_MIN_PROMPTS:
        return (f"{design.prompts} test prompts: coverage checked by simulation from {CHECKED_MIN_PROMPTS} "
                "prompts on; read the interval as approximate")
    if design.prompts < SHORT_CROSSED_PROMPTS and design.cross.mean() > 0.5:
        return (f"{design.prompts} test prompts, mostly cross-prompt pairs: simulated coverage of a 95 % interval "
                "was 0.93 with weak prompt effects")
    return None


def _wilson(p: float, n_eff: float, q: float) -> tuple[float, float]:
    """Wilson's interval of a share p of n_eff independent trials at quantile q."""
    centre = (p + q * q / (2 * n_eff)) / (1 + q * q / n_eff)
    half = q / (1 + q * q / n_eff) * np.sqrt(p * (1 - p) / n_eff + q * q / (4 * n_eff ** 2))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def accuracy_interval(correct: np.ndarray, design: PromptDesign, confidence: float = 0.95) -> dict[str, Any] | None:
    """Wilson interval of mean(correct) at the effective number of pairs, the design effect never below
    ``design_effect_floor`` (cluster-aware at 0 and 1); None without pairs."""
    correct = np.asarray(correct, dtype=float)
    n = correct.size
    if n == 0:
        return None
    p = float(correct.mean())
    var = sum_variance(correct, design)
    binomial = n * p * (1 - p)
    used, df = _floored(var, binomial, n, p, design)
    n_eff = n * binomial / used if used > 0 else n / design_effect_floor(n, 0.0, design)
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    low, high = _wilson(p, n_eff, q)
    return {"low": low, "high": high, "se": float(np.sqrt(used)) / n, "effective_pairs": n_eff,
            "design_effect": n / n_eff, "design_effect_estimate": var.design_effect if var else 1.0, "df": float(df),
            "caveat": coverage_caveat(design)}


def replicate_interval(correct: np.ndarray, design: PromptDesign, confidence: float = 0.95) -> dict[str, Any] | None:
    """Interval of the mean accuracy of K replicates ((K, pairs) correctness): test set plus seeds."""
    correct = np.atleast_2d(np.asarray(correct, dtype=float))
    k, n = correct.shape
    if k < 2:
        return accuracy_interval(correct[0], design, confidence)
    if n == 0:
        return None
    mean = float(correct.mean())
    if mean in (0.0, 1.0):   # every replicate right (or wrong) on every pair: the boundary rule of one model
        return {**accuracy_interval(correct.mean(axis=0), design, confidence), "se_test": 0.0, "se_seeds": 0.0,
                "replicates": int(k)}
    var = sum_variance(correct.mean(axis=0), design)
    used, df_test = _floored(var, var.independent if var else 0.0, n, mean, design)   # as in `accuracy_interval`
    test = used / n ** 2
    seeds = float(correct.mean(axis=1).var(ddof=1)) / k
    total = test + seeds
    df = total ** 2 / (test ** 2 / df_test + seeds ** 2 / (k - 1)) if total > 0 else float("inf")
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    return {"low": max(0.0, mean - q * np.sqrt(total)), "high": min(1.0, mean + q * np.sqrt(total)),
            "se": float(np.sqrt(total)), "se_test": float(np.sqrt(test)), "se_seeds": float(np.sqrt(seeds)),
            "df": float(df), "replicates": int(k), "caveat": coverage_caveat(design)}


def pooled_seed_variance(replicated: list[np.ndarray]) -> tuple[float, float] | None:
    """(s², degrees of freedom) of one training's accuracy over seeds, pooled over cells trained K > 1 times:
    Σ (K − 1) s²_cell / Σ (K − 1), from each cell's (K, pairs) correctness; None without such a cell."""
    parts = [(float(m.mean(axis=1).var(ddof=1)), len(m) - 1) for m in replicated if len(m) > 1]
    df = sum(k for _, k in parts)
    return (sum(v * k for v, k in parts) / df, float(df)) if df else None


def welch(parts: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The variance of a mean made of independent parts (each a variance and its degrees of freedom), and the
    Welch–Satterthwaite degrees of freedom of the sum (inf when every part is 0)."""
    total = sum(v for v, _ in parts)
    return total, (total ** 2 / sum(v ** 2 / f for v, f in parts if v > 0) if total > 0 else math.inf)


def variance_shares(parts: Mapping[str, tuple[float, float]], total: float) -> dict[str, float]:
    """Each named part's share of the `total` variance (parts: a variance and its degrees of freedom), which says
    what more data would narrow an interval most."""
    return {name: variance / total for name, (variance, _) in parts.items()}


def paired_test(correct_x: np.ndarray, correct_ref: np.ndarray, design: PromptDesign,
                confidence: float = 0.95, pooled_seeds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Two-sided paired t-test of accuracy x − reference on the same pairs (module docstring).

    `correct_x` and `correct_ref` are (replicates, pairs) arrays of ``pair_correct``; with several
    replicates a side's seed-to-seed variance s²/K is added and the degrees of freedom are Welch–Satterthwaite.
    `pooled_seeds` = (s², degrees of freedom) of one training's accuracy over seeds, pooled from other cells
    (``pooled_seed_variance``): added for a side trained once, so that side's seed variance is not taken as 0.
    ``variance_shares`` splits the difference's variance into its parts, as shares of 1: ``units`` (the test
    pairs), ``seeds`` (x's) and ``reference_seeds``, named as ``hacking.intervals`` names its own; they say what
    more data would narrow the interval most.
    """
    x, ref = np.atleast_2d(np.asarray(correct_x, dtype=float)), np.atleast_2d(np.asarray(correct_ref, dtype=float))
    if x.shape[1] != ref.shape[1]:
        raise ValueError(f"the two sides have {x.shape[1]} and {ref.shape[1]} pairs")
    n = x.shape[1]
    empty = {"difference": None, "low": None, "high": None, "p_value": None, "df": None, "design_effect": None,
             "discordant": 0, "variance_shares": None}
    if n == 0:
        return empty
    d = x.mean(axis=0) - ref.mean(axis=0)
    difference = float(x.mean() - ref.mean())
    discordant = int((d != 0).sum())
    sides = (("seeds", x), ("reference_seeds", ref))
    seeds = {name: (float(side.mean(axis=1).var(ddof=1)) / len(side), len(side) - 1)
             for name, side in sides if len(side) > 1}
    if pooled_seeds is not None and pooled_seeds[1] > 0:
        seeds |= {name: pooled_seeds for name, side in sides if len(side) == 1}
    if discordant == 0 and not any(v for v, _ in seeds.values()):
        return {**empty, "difference": difference, "low": difference, "high": difference, "p_value": 1.0}
    var = sum_variance(d, design)
    null = float((d ** 2).sum())   # Var(Σd) under "no difference" for independent pairs: McNemar's b + c
    if var and var.variance >= null:
        test, df_test = var.variance / n ** 2, var.df_pairs
    else:   # never below the independent pairs' null variance, with its own Satterthwaite df (≈ discordant pairs)
        test, df_test = null / n ** 2, null ** 2 / float((d ** 4).sum()) if null > 0 else float("inf")
    effect = test * n ** 2 / var.independent if var and var.independent > 0 else 1.0
    parts = {"units": (test, df_test), **seeds}
    total, df = welch(list(parts.values()))
    se = float(np.sqrt(total))
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    p = float(2 * stats.t.sf(abs(difference) / se, df))
    return {"difference": difference, "low": difference - q * se, "high": difference + q * se,
            "p_value": min(1.0, p), "df": float(df), "design_effect": effect, "discordant": discordant,
            "variance_shares": variance_shares(parts, total)}
