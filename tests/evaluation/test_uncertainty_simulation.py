"""Intervals and paired tests checked by simulation with known truth (docs/UNCERTAINTY.md has the figures).

Each scenario draws R test sets of 448 pairs with a fixed seed. A pair joining prompts p and q (p = q
within one prompt) is right when μ + a_p + a_q + ε > 0 (a_q left out when p = q), with prompt effects
a ~ N(0, σ²) shared by the two models (difficulty) and, for the paired tests, model-specific prompt
effects as well; ε ~ N(0, 1) independent. The true accuracy is the normal probability of that event, so
coverage and rejection rates are measured against a known value. With R = 2000, a rate of 0.95 has a
standard error of 0.005, so the 0.93–0.97 and 0.04–0.06 bounds are about four standard errors wide.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from solireward.evaluation import PromptDesign, accuracy_interval, paired_test, replicate_interval

R, PROMPTS, PAIRS, MU = 2000, 28, 448, 0.6


def _design(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Prompt codes of the two sides: cross-prompt pairing, pairs within one prompt, or no shared prompt."""
    if kind == "independent":
        return np.arange(PAIRS), np.arange(PAIRS, 2 * PAIRS)
    a = rng.integers(0, PROMPTS, PAIRS)
    return a, (rng.integers(0, PROMPTS, PAIRS) if kind == "cross" else a.copy())


def _correct(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, effects: np.ndarray, mu: float) -> np.ndarray:
    """(R, pairs) 0/1 correctness given per-prompt effects of shape (R, prompts)."""
    latent = mu + effects[:, a] + np.where(a == b, 0.0, effects[:, b]) + rng.standard_normal((len(effects), len(a)))
    return (latent > 0).astype(float)


def _truth(a: np.ndarray, b: np.ndarray, variance: float, offset_variance: float = 0.0) -> float:
    """Expected accuracy of the design: P(μ + offset + effects + ε > 0) averaged over its pairs."""
    same = stats.norm.cdf(MU / np.sqrt(1 + offset_variance + variance))
    cross = stats.norm.cdf(MU / np.sqrt(1 + offset_variance + 2 * variance))
    return float(np.where(a == b, same, cross).mean())


@pytest.mark.parametrize("kind", ["cross", "in_prompt"])
@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_interval_covers_the_true_accuracy_95_percent(kind: str, sigma: float) -> None:
    rng = np.random.default_rng([22, int(sigma * 10), kind == "cross"])
    a, b = _design(kind, rng)
    design = PromptDesign.of(a, b)
    correct = _correct(rng, a, b, rng.normal(0.0, sigma, (R, PROMPTS)), MU)
    truth = _truth(a, b, sigma ** 2)
    intervals = np.array([[i["low"], i["high"]] for i in (accuracy_interval(c, design) for c in correct)])
    coverage = float(((intervals[:, 0] <= truth) & (truth <= intervals[:, 1])).mean())
    assert 0.93 <= coverage <= 0.97, coverage


def _rejections(kind: str, shared: float, own: float, effect: float, seed: int) -> tuple[float, float]:
    """Rejection rates at α = 0.05 of `paired_test` and of exact McNemar on the same R data sets."""
    rng = np.random.default_rng(seed)
    a, b = _design(kind, rng)
    design = PromptDesign.of(a, b)
    prompts = 2 * PAIRS if kind == "independent" else PROMPTS
    difficulty = rng.normal(0.0, shared, (R, prompts))
    x = _correct(rng, a, b, difficulty + rng.normal(0.0, own, (R, prompts)), MU + effect)
    ref = _correct(rng, a, b, difficulty + rng.normal(0.0, own, (R, prompts)), MU)
    ours = np.array([paired_test(xi, ri, design)["p_value"] for xi, ri in zip(x, ref)])
    wins, losses = ((x - ref) > 0).sum(axis=1), ((x - ref) < 0).sum(axis=1)
    mcnemar = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(wins, losses), wins + losses, 0.5))
    return float((ours < 0.05).mean()), float((mcnemar < 0.05).mean())


@pytest.mark.parametrize("kind, shared", [("cross", 0.0), ("cross", 0.5), ("in_prompt", 0.0), ("in_prompt", 0.5)])
def test_paired_test_holds_its_level(kind: str, shared: float) -> None:
    level, _ = _rejections(kind, shared, 0.0, 0.0, seed=int(shared * 10) + (kind == "cross"))
    assert 0.04 <= level <= 0.06, level


@pytest.mark.parametrize("kind", ["cross", "in_prompt", "independent"])
def test_paired_test_is_not_liberal_when_models_differ_by_prompt(kind: str) -> None:
    """Model-specific prompt effects make pairs of a prompt agree; exact McNemar then rejects far too often."""
    level, mcnemar = _rejections(kind, 0.5, 0.4, 0.0, seed=7)
    assert level <= 0.06, level
    if kind != "independent":
        assert mcnemar > 0.15, mcnemar


def test_paired_test_power_at_least_exact_mcnemar_on_independent_pairs() -> None:
    power, mcnemar = _rejections("independent", 0.0, 0.0, 0.15, seed=3)
    assert power >= mcnemar and power > 0.3, (power, mcnemar)


@pytest.mark.parametrize("wins, losses, rejects", [(5, 0, False), (6, 0, True), (7, 1, False), (30, 15, True)])
def test_sparse_discordance_is_judged_like_exact_mcnemar(wins: int, losses: int, rejects: bool) -> None:
    """Independent pairs (no shared prompt): rejection at 0.05 as exact McNemar's (0.0625, 0.031, 0.070, 0.036)."""
    n = 448
    ref = np.zeros(n)
    x = ref.copy()
    x[:wins] = 1.0
    ref[wins:wins + losses] = 1.0
    design = PromptDesign.of(np.arange(n), np.arange(n, 2 * n))
    result = paired_test(x, ref, design)
    exact = stats.binomtest(wins, wins + losses).pvalue
    assert (result["p_value"] < 0.05) == rejects == (exact < 0.05)
    assert result["p_value"] >= 0.8 * exact and result["design_effect"] == pytest.approx(1.0)


@pytest.mark.parametrize("sigma, seed_sd", [(0.3, 0.15), (0.5, 0.0)])
def test_replicate_interval_covers_the_mean_over_seeds_and_test_sets(sigma: float, seed_sd: float) -> None:
    """K = 3 seeds per cell: each model adds its own offset (s.d. `seed_sd`) and fresh per-pair noise."""
    rng = np.random.default_rng(33)
    a, b = _design("cross", rng)
    design = PromptDesign.of(a, b)
    runs, k = 1000, 3
    difficulty = rng.normal(0.0, sigma, (runs, PROMPTS))
    correct = np.stack([_correct(rng, a, b, difficulty, MU + rng.normal(0.0, seed_sd, (runs, 1))) for _ in range(k)],
                       axis=1)
    truth = _truth(a, b, sigma ** 2, seed_sd ** 2)
    hits = [(i["low"] <= truth <= i["high"]) for i in (replicate_interval(c, design) for c in correct)]
    assert 0.93 <= float(np.mean(hits)) <= 0.97, np.mean(hits)


def test_paired_test_edge_cases_and_replicates() -> None:
    """Every pair won (variance 0 around the mean): judged under "no difference"; equal replicates add nothing."""
    design = PromptDesign.of(np.arange(5), np.arange(5, 10))
    every = paired_test(np.ones(5), np.zeros(5), design)
    assert every["difference"] == 1.0 and 0.05 < every["p_value"] < 0.1          # exact McNemar: 0.0625
    assert paired_test(np.ones(5), np.ones(5), design)["p_value"] == 1.0
    rng = np.random.default_rng(0)
    prompts = rng.integers(0, 20, (2, 200))
    design = PromptDesign.of(*prompts)
    x, ref = (rng.random(200) < 0.8).astype(float), (rng.random(200) < 0.6).astype(float)
    one = paired_test(x, ref, design)
    twice = paired_test(np.stack([x, x]), np.stack([ref, ref]), design)
    assert twice["p_value"] == pytest.approx(one["p_value"]) and one["p_value"] < 0.01
    noisy = paired_test(np.stack([x, 1 - x]), np.stack([ref, ref]), design)   # replicates that disagree
    assert noisy["df"] < one["df"] and noisy["p_value"] > one["p_value"]
