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

- Interval of one accuracy: Wilson's interval at the effective number of pairs n·(design effect)⁻¹,
  capped at n (a design effect below 1 is taken as noise; Kish 1965; Korn & Graubard 1998), with
  Student's t quantile: its degrees of freedom come from a moment split of the variance into a pair
  part (n − 1 df) and a prompt part ((prompts − 1) / (1 + share of cross-prompt pairs) df), so they are
  large when prompts do not matter and near the number of prompts when they dominate (Welch–Satterthwaite).
- Paired test of two models on the same pairs: d_i = their correctness difference; t = Σd / √V(Σd)
  against Student's t with the Satterthwaite degrees of freedom of V under working independence,
  ν = (Σe²)² / Σ_{i,j share} e_i² e_j² (Bell & McCaffrey 2002); with pairs that share no prompt ν is
  about the number of discordant pairs, so sparse discordance is judged about as conservatively as
  exact McNemar.
- Replicates (K models of one cell, different seeds): the variance of the mean is the test-set variance of
  the replicate-averaged correctness plus s²/K over the replicates' accuracies; Welch–Satterthwaite degrees
  of freedom. s² also holds the per-pair noise that the test-set part already counts, so the interval is
  conservative when replicates differ by that noise alone (docs/UNCERTAINTY.md); subtracting it (a
  two-way ANOVA) under-covered with K = 3, because the smaller s² then set too many degrees of freedom.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

INTERVAL_METHOD = ("intervals and paired tests treat test pairs that share a prompt as dependent "
                   "(dyadic cluster-robust variance over prompts; Wilson interval at the effective number of "
                   "pairs; paired t-test with Satterthwaite degrees of freedom; replicates add the "
                   "seed-to-seed variance). See docs/UNCERTAINTY.md.")


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

    @property
    def design_effect(self) -> float:
        return self.variance / self.independent if self.independent > 0 else 1.0


def _component_df(e: np.ndarray, design: PromptDesign, shared: float, shared_ones: float) -> float:
    """Degrees of freedom from a moment split of the variance into a pair part (n − 1 df) and a prompt part,
    pairs sharing a prompt covarying by τ²: large without prompt effects, near the number of prompts when
    they dominate (halved when every pair joins two prompts, whose effects both enter)."""
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
    pair_part, prompt_part = sigma * n, tau * shared_ones
    if prompt_part == 0 or design.prompts < 2:
        return float(n - 1)
    prompt_df = (design.prompts - 1) / (1.0 + float(design.cross.mean()))   # crossed pairs: about half (see docs)
    return (pair_part + prompt_part) ** 2 / (pair_part ** 2 / (n - 1) + prompt_part ** 2 / prompt_df)


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
    return SumVariance(variance, independent, max(df_pairs, 1.0), _component_df(e, design, shared, shared_ones))


def accuracy_interval(correct: np.ndarray, design: PromptDesign, confidence: float = 0.95) -> dict[str, Any] | None:
    """Wilson interval of mean(correct) at the effective number of pairs; None without pairs."""
    correct = np.asarray(correct, dtype=float)
    n = correct.size
    if n == 0:
        return None
    p = float(correct.mean())
    var = sum_variance(correct, design)
    var_mean = var.variance / n ** 2 if var else 0.0
    n_eff = min(float(n), p * (1 - p) / var_mean) if var_mean > 0 and 0 < p < 1 else float(n)
    z = float(stats.t.ppf(0.5 + confidence / 2, var.df_prompts if var else float("inf")))
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z / (1 + z * z / n_eff) * np.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff ** 2))
    return {"low": float(max(0.0, centre - half)), "high": float(min(1.0, centre + half)),
            "se": float(np.sqrt(var_mean)), "effective_pairs": n_eff,
            "design_effect": var.design_effect if var else 1.0}


def replicate_interval(correct: np.ndarray, design: PromptDesign, confidence: float = 0.95) -> dict[str, Any] | None:
    """Interval of the mean accuracy of K replicates ((K, pairs) correctness): test set plus seeds."""
    correct = np.atleast_2d(np.asarray(correct, dtype=float))
    k, n = correct.shape
    if k < 2:
        return accuracy_interval(correct[0], design, confidence)
    if n == 0:
        return None
    var = sum_variance(correct.mean(axis=0), design)
    # the test-set part never below that of independent pairs, as in `accuracy_interval`
    test, df_test = (max(var.variance, var.independent) / n ** 2, var.df_prompts) if var else (0.0, float("inf"))
    seeds = float(correct.mean(axis=1).var(ddof=1)) / k
    total = test + seeds
    df = total ** 2 / (test ** 2 / df_test + seeds ** 2 / (k - 1)) if total > 0 else float("inf")
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    mean = float(correct.mean())
    return {"low": max(0.0, mean - q * np.sqrt(total)), "high": min(1.0, mean + q * np.sqrt(total)),
            "se": float(np.sqrt(total)), "se_test": float(np.sqrt(test)), "se_seeds": float(np.sqrt(seeds)),
            "df": float(df), "replicates": int(k)}


def pooled_seed_variance(replicated: list[np.ndarray]) -> tuple[float, float] | None:
    """(s², degrees of freedom) of one training's accuracy over seeds, pooled over cells trained K > 1 times:
    Σ (K − 1) s²_cell / Σ (K − 1), from each cell's (K, pairs) correctness; None without such a cell."""
    parts = [(float(m.mean(axis=1).var(ddof=1)), len(m) - 1) for m in replicated if len(m) > 1]
    df = sum(k for _, k in parts)
    return (sum(v * k for v, k in parts) / df, float(df)) if df else None


def paired_test(correct_x: np.ndarray, correct_ref: np.ndarray, design: PromptDesign,
                confidence: float = 0.95, pooled_seeds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Two-sided paired t-test of accuracy x − reference on the same pairs (module docstring).

    `correct_x` and `correct_ref` are (replicates, pairs) arrays of ``pair_correct``; with several
    replicates a side's seed-to-seed variance s²/K is added and the degrees of freedom are Welch–Satterthwaite.
    `pooled_seeds` = (s², degrees of freedom) of one training's accuracy over seeds, pooled from other cells
    (``pooled_seed_variance``): added for a side trained once, so that side's seed variance is not taken as 0.
    """
    x, ref = np.atleast_2d(np.asarray(correct_x, dtype=float)), np.atleast_2d(np.asarray(correct_ref, dtype=float))
    if x.shape[1] != ref.shape[1]:
        raise ValueError(f"the two sides have {x.shape[1]} and {ref.shape[1]} pairs")
    n = x.shape[1]
    empty = {"difference": None, "low": None, "high": None, "p_value": None, "df": None, "design_effect": None,
             "discordant": 0}
    if n == 0:
        return empty
    d = x.mean(axis=0) - ref.mean(axis=0)
    difference = float(x.mean() - ref.mean())
    discordant = int((d != 0).sum())
    seeds = [(float(side.mean(axis=1).var(ddof=1)) / len(side), len(side) - 1) for side in (x, ref) if len(side) > 1]
    if pooled_seeds is not None and pooled_seeds[1] > 0:
        seeds += [pooled_seeds for side in (x, ref) if len(side) == 1]
    if discordant == 0 and not any(v for v, _ in seeds):
        return {**empty, "difference": difference, "low": difference, "high": difference, "p_value": 1.0}
    var = sum_variance(d, design)
    if var and var.variance > 0:
        test, df_test, effect = var.variance / n ** 2, var.df_pairs, var.design_effect
    else:   # every pair has the same difference (or one pair): the variance under "no difference", Σd²
        test, df_test, effect = float((d ** 2).sum()) / n ** 2, float((d ** 2).sum() ** 2 / (d ** 4).sum()), 1.0
    parts = [(test, df_test), *seeds]
    total = sum(v for v, _ in parts)
    df = total ** 2 / sum(v ** 2 / f for v, f in parts if v > 0)
    se = float(np.sqrt(total))
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    p = float(2 * stats.t.sf(abs(difference) / se, df))
    return {"difference": difference, "low": difference - q * se, "high": difference + q * se,
            "p_value": min(1.0, p), "df": float(df), "design_effect": effect, "discordant": discordant}
