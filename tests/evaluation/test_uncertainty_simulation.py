"""Intervals and paired tests checked by simulation with known truth (docs/UNCERTAINTY.md has the figures).

Each scenario draws R test sets of 448 pairs with a fixed seed. A pair joining prompts p and q (p = q
within one prompt) is right when μ + a_p + a_q + ε > 0 (a_q left out when p = q), with prompt effects
a ~ N(0, σ²) shared by the two models (difficulty) and, for the paired tests, model-specific prompt
effects as well; ε ~ N(0, 1) independent. The true accuracy is the normal probability of that event, so
coverage and rejection rates are measured against a known value. With R = 2000, a rate of 0.95 has a
standard error of 0.005, so the 0.93–0.97 and 0.04–0.06 bounds are about four standard errors wide.

Near 0 and 100 % (issue 26) the scenarios set μ so that the true accuracy is 0.95 or 0.97 with prompts of
different difficulty (σ = 0.5), at 12 and 28 prompts of 16 pairs each; the demo's layout reuses each video in
about four pairs and adds a per-video effect. Where a scenario is allowed outside 0.93–0.97 the test says why
and docs/UNCERTAINTY.md names it with its measured coverage.
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


def _coverage(a: np.ndarray, b: np.ndarray, correct: np.ndarray, truth: float) -> tuple[float, np.ndarray]:
    """Share of the (R, pairs) correctness sets whose interval holds `truth`, and the intervals."""
    design = PromptDesign.of(a, b)
    intervals = np.array([[i["low"], i["high"]] for i in (accuracy_interval(c, design) for c in correct)])
    return float(((intervals[:, 0] <= truth) & (truth <= intervals[:, 1])).mean()), intervals


@pytest.mark.parametrize("kind", ["cross", "in_prompt"])
@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_interval_covers_the_true_accuracy_95_percent(kind: str, sigma: float) -> None:
    """Mid-range accuracy. Crossed pairs without a prompt effect: the design-effect floor near 1 (k ≈ 120 wrong
    pairs) makes the interval slightly conservative, 0.973 (docs/UNCERTAINTY.md)."""
    rng = np.random.default_rng([22, int(sigma * 10), kind == "cross"])
    a, b = _design(kind, rng)
    correct = _correct(rng, a, b, rng.normal(0.0, sigma, (R, PROMPTS)), MU)
    coverage, _ = _coverage(a, b, correct, _truth(a, b, sigma ** 2))
    assert 0.93 <= coverage <= (0.975 if kind == "cross" and sigma == 0 else 0.97), coverage


def _near_boundary(kind: str, prompts: int, accuracy: float, sigma: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """16 pairs per prompt at a true accuracy near 100 %: prompt codes, (R, pairs) correctness and the truth."""
    rng = np.random.default_rng(seed)
    n = 16 * prompts
    a = rng.integers(0, prompts, n) if kind == "cross" else np.repeat(np.arange(prompts), 16)
    b = rng.integers(0, prompts, n) if kind == "cross" else a.copy()
    mu = stats.norm.ppf(accuracy) * np.sqrt(1 + (2 if kind == "cross" else 1) * sigma ** 2)
    effects = rng.normal(0.0, sigma, (R, prompts))
    latent = mu + effects[:, a] + np.where(a == b, 0.0, effects[:, b]) + rng.standard_normal((R, n))
    truth = np.where(a == b, stats.norm.cdf(mu / np.sqrt(1 + sigma ** 2)),
                     stats.norm.cdf(mu / np.sqrt(1 + 2 * sigma ** 2))).mean()
    return a, b, (latent > 0).astype(float), float(truth)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cross", "in_prompt"])
@pytest.mark.parametrize("prompts", [12, 28])
@pytest.mark.parametrize("accuracy", [0.95, 0.97])
def test_interval_near_100_percent_with_prompt_difficulty_spread(kind: str, prompts: int, accuracy: float) -> None:
    """Issue 26, D2: a few wrong pairs, concentrated in hard prompts. The design-effect floor keeps the lower
    side covered; it is conservative there (0.97–0.985 measured), hence the upper bound 0.99 (docs)."""
    a, b, correct, truth = _near_boundary(kind, prompts, accuracy, 0.5, seed=prompts * 100 + int(accuracy * 100))
    coverage, intervals = _coverage(a, b, correct, truth)
    assert 0.93 <= coverage <= 0.99, coverage
    assert float((intervals[:, 0] > truth).mean()) <= 0.025   # one-sided misses from above: at most the nominal


def test_all_correct_sets_are_judged_by_their_prompts() -> None:
    """Issue 26, D1: 192 all-correct pairs from 2 prompts say little about a third prompt; the interval widens
    continuously as prompts become few, and covers the truth in every all-correct set of a 12-prompt test."""
    two = accuracy_interval(np.ones(192), PromptDesign.of(np.repeat([0, 1], 96), np.repeat([0, 1], 96)))
    assert two["low"] < 0.5 and two["high"] == 1.0 and two["effective_pairs"] == pytest.approx(2.0)
    assert two["caveat"] is not None
    many = accuracy_interval(np.ones(448), PromptDesign.of(np.repeat(np.arange(28), 16), np.repeat(np.arange(28), 16)))
    assert two["low"] < many["low"] < 0.9 and many["caveat"] is None
    none_right = accuracy_interval(np.zeros(448), PromptDesign.of(np.arange(448) % 28, np.arange(448) % 28))
    assert none_right["low"] == 0.0 and none_right["high"] == pytest.approx(1 - many["low"])
    a, b, correct, truth = _near_boundary("in_prompt", 12, 0.97, 1.0, seed=9)
    everything = correct.mean(axis=1) == 1.0
    coverage, intervals = _coverage(a, b, correct, truth)
    assert everything.mean() > 0.03 and 0.93 <= coverage <= 0.99, (everything.mean(), coverage)
    assert (intervals[everything, 0] <= truth).all()
    replicated = replicate_interval(np.ones((3, 192)), PromptDesign.of(np.repeat([0, 1], 96), np.repeat([0, 1], 96)))
    assert replicated["low"] == pytest.approx(two["low"]) and replicated["replicates"] == 3


def _videos_reused(sigma: float, video_sd: float, mu: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The demo's test layout: 28 prompts × 8 videos, half Pass; 4 win-lose pairs per video on average, win sides
    cycling through the Pass videos and lose sides drawn among all Fail videos (solireward.data.pairing), so a
    video is in about four pairs. A pair is right when μ + prompt effects + u_win + u_lose + ε > 0."""
    rng = np.random.default_rng(seed)
    videos = PROMPTS * 8
    prompt_of = np.repeat(np.arange(PROMPTS), 8)
    passed = rng.random(videos) < 0.5
    winners, losers = np.flatnonzero(passed), np.flatnonzero(~passed)
    win = np.concatenate([rng.permutation(winners) for _ in range(PAIRS // len(winners) + 1)])[:PAIRS]
    lose = rng.choice(losers, PAIRS)
    a, b = prompt_of[win], prompt_of[lose]
    effects, own = rng.normal(0.0, sigma, (R, PROMPTS)), rng.normal(0.0, video_sd, (R, videos))
    latent = (mu + effects[:, a] + np.where(a == b, 0.0, effects[:, b]) + own[:, win] + own[:, lose]
              + rng.standard_normal((R, PAIRS)))
    spread = 1 + 2 * video_sd ** 2 + np.where(a == b, 1, 2) * sigma ** 2
    return a, b, (latent > 0).astype(float), float(stats.norm.cdf(mu / np.sqrt(spread)).mean())


@pytest.mark.slow
@pytest.mark.parametrize("sigma, video_sd", [(0.3, 0.5), (0.0, 0.7)])
def test_interval_covers_when_videos_are_reused_across_pairs(sigma: float, video_sd: float) -> None:
    """Issue 26, D4: pairs sharing a video share its prompt, so the dyadic sum over shared prompts holds them."""
    a, b, correct, truth = _videos_reused(sigma, video_sd, 0.8, seed=int(video_sd * 10))
    coverage, _ = _coverage(a, b, correct, truth)
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
    """At most 0.06; the floor at McNemar's variance makes it conservative, 0.031–0.038 (docs/UNCERTAINTY.md)."""
    level, _ = _rejections(kind, shared, 0.0, 0.0, seed=int(shared * 10) + (kind == "cross"))
    assert 0.025 <= level <= 0.06, level


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
    assert result["p_value"] >= 0.8 * exact and result["design_effect"] == pytest.approx(1.0, abs=0.02)


def test_sparse_discordance_over_shared_prompts_is_not_significant() -> None:
    """Issue 26, D3: 3 : 0 over 9 pairs of 6 prompts (exact McNemar 0.25) and 4 : 0 placed at random over
    448 cross-prompt pairs (0.125): the variance never falls below McNemar's b + c."""
    design = PromptDesign.of([3, 5, 1, 4, 0, 2, 2, 1, 3], [4, 1, 0, 0, 5, 4, 1, 5, 2])
    result = paired_test([1, 1, 1, 0, 0, 0, 0, 0, 0], np.zeros(9), design)
    assert result["p_value"] >= 0.1 and result["design_effect"] >= 1.0 and result["discordant"] == 3
    assert result["low"] < 0 < result["high"]
    rng = np.random.default_rng(26)
    design = PromptDesign.of(rng.integers(0, PROMPTS, PAIRS), rng.integers(0, PROMPTS, PAIRS))
    p_values = []
    for _ in range(1000):
        x = np.zeros(PAIRS)
        x[rng.choice(PAIRS, 4, replace=False)] = 1.0
        p_values.append(paired_test(x, np.zeros(PAIRS), design)["p_value"])
    assert float((np.array(p_values) < 0.05).mean()) <= 0.05


@pytest.mark.parametrize("kind", ["cross", "in_prompt"])
def test_paired_test_level_with_sparse_discordance_over_shared_prompts(kind: str) -> None:
    """Two equally good models that disagree rarely, and more on some prompts than others: each flips a shared
    0.97-accurate outcome with a per-prompt probability (exponential, mean 0.005 per prompt of the pair), so a set
    has about 4-8 discordant pairs, clustered by prompt. The rejection rate stays at most 0.06."""
    rng = np.random.default_rng([27, kind == "cross"])
    a, b = _design(kind, rng)
    design = PromptDesign.of(a, b)
    base = rng.random((R, PAIRS)) < 0.97
    rate = rng.exponential(0.005, (R, PROMPTS))
    flip = np.minimum(0.5, rate[:, a] + np.where(a == b, 0.0, rate[:, b]))
    x, ref = ((base ^ (rng.random((R, PAIRS)) < flip)).astype(float) for _ in range(2))
    p_values = np.array([paired_test(xi, ri, design)["p_value"] for xi, ri in zip(x, ref)])
    assert float((p_values < 0.05).mean()) <= 0.06


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


def _trainings(rng: np.random.Generator, latent: np.ndarray, seed_sd: float, k: int) -> np.ndarray:
    """(k, pairs) correctness of k trainings: each adds its own seed offset (s.d. `seed_sd`) and fresh per-pair
    noise N(0, 1) to every pair's `latent` value, and is right where the sum is above 0."""
    return (latent + rng.normal(0.0, seed_sd, (k, 1)) + rng.standard_normal((k, len(latent))) > 0).astype(float)


def _expected_accuracy(mu: float, seed_sd: float) -> float:
    """A training's expected accuracy, over seeds and pairs, where each pair's latent value is `mu` plus its own
    N(0, 1) difficulty (then :func:`_trainings`' seed offset and noise): Φ(mu / √(2 + seed_sd²))."""
    return float(stats.norm.cdf(mu / np.sqrt(2 + seed_sd ** 2)))


def test_a_single_training_compared_with_pooled_seed_variance_holds_its_level() -> None:
    """One training of a cell against 3 of the reference cell, both with the same expected accuracy over seeds:
    each training draws a seed offset on the latent scale. Without the pooled seed variance the single side's
    training noise is taken as 0; with it (pooled from two replicated cells) the test holds its level."""
    from solireward.evaluation import paired_test, pooled_seed_variance

    rng = np.random.default_rng(11)
    n, trials, seed_sd = 300, 1500, 0.25
    design = PromptDesign.of(np.arange(n), np.arange(n))   # independent pairs: only seeds and pairs vary
    rejected = {"pooled": 0, "none": 0}
    for _ in range(trials):
        easy = rng.normal(0.6, 1.0, n)   # each pair's difficulty, shared by every model
        single, reference, other = (_trainings(rng, easy, seed_sd, k) for k in (1, 3, 3))
        pooled = pooled_seed_variance([reference, other])
        rejected["pooled"] += paired_test(single, reference, design, pooled_seeds=pooled)["p_value"] < 0.05
        rejected["none"] += paired_test(single, reference, design)["p_value"] < 0.05
    assert rejected["pooled"] / trials <= 0.06, rejected
    assert rejected["none"] / trials > rejected["pooled"] / trials, rejected   # what pooling corrects


@pytest.mark.parametrize("k_ref", [5, 15])
def test_paired_interval_covers_with_more_reference_seeds_than_cell_seeds(k_ref: int) -> None:
    """`reference_replicates`: 5 trainings of a cell against 5 or 15 of the reference, whose seeds spread twice as
    far (seed offset s.d. 0.3 against 0.15 on the latent scale, as the confirmations' clean reference against its
    recipe), 300 independent pairs drawn afresh each time. The interval of x − reference (each side's s²/K, Welch
    degrees of freedom) covers the true difference in expected accuracy over seeds and pairs."""
    rng = np.random.default_rng([35, k_ref])
    n, trials, spread = 300, 1500, {"x": 0.15, "ref": 0.3}
    mu = {"x": 0.45, "ref": 0.6}
    truth = _expected_accuracy(mu["x"], spread["x"]) - _expected_accuracy(mu["ref"], spread["ref"])
    design = PromptDesign.of(np.arange(n), np.arange(n))
    hits = []
    for _ in range(trials):
        easy = rng.standard_normal(n)   # each pair's difficulty, shared by every model
        x = _trainings(rng, mu["x"] + easy, spread["x"], 5)
        found = paired_test(x, _trainings(rng, mu["ref"] + easy, spread["ref"], k_ref), design)
        hits.append(found["low"] <= truth <= found["high"])
    assert 0.93 <= float(np.mean(hits)) <= 0.97, np.mean(hits)


def test_a_second_look_with_more_reference_seeds_keeps_a_false_met_rare() -> None:
    """More reference seeds after a first look came back unresolved (config/reference_seeds.yaml) is a second
    look at the same goal. A cell exactly 5 points below the reference, goal below_reference ≤ 5: "met" (the whole
    interval inside) is false. Looking at 5 against 5 seeds, then, where unresolved, at 5 against 15 (the first
    five among them) calls it met 3.4 % of the time, against 2.2 % for the first look alone; both stay under 5 %."""
    rng = np.random.default_rng(36)
    n, trials, spread, mu_ref = 300, 3000, {"x": 0.15, "ref": 0.3}, 0.6
    target = _expected_accuracy(mu_ref, spread["ref"]) - 0.05
    mu = {"x": float(stats.norm.ppf(target)) * np.sqrt(2 + spread["x"] ** 2), "ref": mu_ref}
    design = PromptDesign.of(np.arange(n), np.arange(n))
    met = {"first": 0, "second": 0}
    for _ in range(trials):
        easy = rng.standard_normal(n)
        x, ref = (_trainings(rng, mu[side] + easy, spread[side], k) for side, k in (("x", 5), ("ref", 15)))
        first = paired_test(x, ref[:5], design)   # x − reference: met when its low end is at least −0.05
        if first["low"] >= -0.05:
            met["first"] += 1
        elif first["high"] >= -0.05:   # unresolved: look again with every reference seed
            met["second"] += paired_test(x, ref, design)["low"] >= -0.05
    assert met["first"] / trials <= 0.035 and sum(met.values()) / trials <= 0.05, met
