"""The lab's intervals cover the truth as often as they claim (simulation with known truth), and pair correctly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from solireward.errors import InputError
from solireward.hacking.intervals import mean_interval, mean_magnitude, paired_comparison, replicated_comparison


NORMAL = (lambda rng, n: rng.normal(0.7, 2.0, n), 0.7)            # normal per-unit effects
SKEWED = (lambda rng, n: rng.exponential(1.0, n) - 1.0, 0.0)        # skewed ones
TWO_VALUED = (lambda rng, n: rng.binomial(1, 0.3, n) * 2.0, 0.6)    # two-valued ones (a gold gain per prompt)


@pytest.mark.parametrize("draw, truth, n, at_least", [
    (*NORMAL, 12, 0.93), (*NORMAL, 28, 0.93),
    (*SKEWED, 28, 0.92), (*TWO_VALUED, 28, 0.92), (*SKEWED, 64, 0.93), (*TWO_VALUED, 64, 0.93),
    (*SKEWED, 12, 0.88), (*TWO_VALUED, 12, 0.88),  # a t interval on few skewed units covers about 90 %
])
def test_mean_interval_covers_the_true_mean_95_percent_of_the_time(draw, truth: float, n: int,
                                                                   at_least: float) -> None:
    rng = np.random.default_rng(n)
    trials = 2000
    hits = 0
    for _ in range(trials):
        interval = mean_interval(draw(rng, n))
        hits += interval["low"] <= truth <= interval["high"]
    # 2000 trials: the share has a standard error of 0.005 around the interval's true coverage
    assert at_least <= hits / trials <= 0.97, hits / trials


def test_paired_comparison_is_calibrated_under_no_difference_and_finds_a_real_one() -> None:
    rng = np.random.default_rng(1)
    units = rng.normal(0, 3, (2000, 20))  # a shared per-unit effect that pairing removes
    null_p = [paired_comparison(u + rng.normal(0, 1, 20), u + rng.normal(0, 1, 20))["p"] for u in units]
    assert 0.035 <= np.mean(np.array(null_p) < 0.05) <= 0.065  # 5 % false positives
    shifted = [paired_comparison(u + 0.8 + rng.normal(0, 0.5, 20), u + rng.normal(0, 0.5, 20)) for u in units[:200]]
    assert np.mean([r["p"] < 0.05 for r in shifted]) > 0.9
    covered = np.mean([r["low"] <= 0.8 <= r["high"] for r in shifted])
    assert 0.9 <= covered <= 0.99


def test_edge_cases() -> None:
    one = mean_interval([2.0])
    assert one == {"mean": 2.0, "low": None, "high": None, "n": 1}
    same = paired_comparison([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert same["difference"] == pytest.approx(0.5) and same["p"] == 0.0 and same["low"] == pytest.approx(0.5)
    assert paired_comparison([1.0, 2.0], [1.0, 2.0])["p"] == 1.0
    with pytest.raises(InputError, match="same units"):
        paired_comparison([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="finite"):
        mean_interval([1.0, float("nan")])


@pytest.mark.parametrize("seed_sd, at_least, at_most", [(0.0, 0.95, 0.999), (1.0, 0.93, 0.975)])
def test_replicated_comparison_covers_the_mean_over_seeds_and_units(seed_sd: float, at_least: float,
                                                                    at_most: float) -> None:
    """K = 3 trainings of each of two cells on the same 24 units: unit effects shared by both cells, a seed
    effect per training, per-(training, unit) noise; the truth is the difference expected over seeds and units."""
    rng = np.random.default_rng(7)
    trials, k, n, truth = 2000, 3, 24, 0.4
    hits = nulls = 0
    for _ in range(trials):
        units = rng.normal(0, 1.5, n)
        x = truth + units + rng.normal(0, seed_sd, (k, 1)) + rng.normal(0, 1, (k, n))
        y = units + rng.normal(0, seed_sd, (k, 1)) + rng.normal(0, 1, (k, n))
        found = replicated_comparison(x, y)
        hits += found["low"] <= truth <= found["high"]
        nulls += replicated_comparison(x - truth, y)["p"] < 0.05
    assert at_least <= hits / trials <= at_most, hits / trials
    assert nulls / trials <= 0.06, nulls / trials


def test_replicated_comparison_with_one_training_is_the_paired_t_test() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 1, 20), rng.normal(0, 1, 20)
    one, paired = replicated_comparison(a, b), paired_comparison(a, b)
    assert one["difference"] == pytest.approx(paired["difference"]) and one["p"] == pytest.approx(paired["p"])
    assert one["low"] == pytest.approx(paired["low"]) and one["high"] == pytest.approx(paired["high"])
    alone = replicated_comparison(a)
    assert alone["low"] == pytest.approx(mean_interval(a)["low"])
    with pytest.raises(InputError, match="same units"):
        replicated_comparison(np.ones((2, 3)), np.ones((2, 4)))


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("shift, seed_sd", [(0.0, 0.5), (0.3, 0.3), (1.0, 0.3), (0.5, 0.0)])
def test_mean_magnitude_bounds_how_far_a_model_moves_on_each_side_as_claimed(k: int, shift: float,
                                                                           seed_sd: float) -> None:
    """K trainings of one cell on the same 24 units: a unit effect shared by all, a seed effect per training,
    per-(training, unit) noise. The truth is a training's expected |shift| over units, E|shift + seed effect| (a
    folded normal's mean); each bound misses it at most about 2.5 % of the time (the upper one, which a 'met'
    verdict rests on, is the one an interval on the magnitudes alone misses 7 %)."""
    rng = np.random.default_rng(k)
    trials, n = 2000, 24
    truth = abs(shift) if seed_sd == 0 else seed_sd * math.sqrt(2 / math.pi) * math.exp(
        -shift ** 2 / (2 * seed_sd ** 2)) + shift * (1 - 2 * stats.norm.cdf(-shift / seed_sd))
    above = below = 0
    for _ in range(trials):
        units = rng.normal(0, 1, n)
        found = mean_magnitude(shift + units + rng.normal(0, seed_sd, (k, 1)) + rng.normal(0, 1, (k, n)))
        above += truth > found["high"]
        below += truth < found["low"]
    assert above / trials <= 0.035 and below / trials <= 0.035, (above / trials, below / trials)


def test_mean_magnitude_does_not_let_opposite_seeds_cancel() -> None:
    """Two trainings that move +1 and -1: each model moves by 1, which a mean of signed values calls 0."""
    values = np.array([[1.0, 1.1, 0.9], [-1.0, -0.9, -1.1]])
    found = mean_magnitude(values)
    assert found["mean"] == pytest.approx(1.0) and found["per_replicate"] == pytest.approx([1.0, 1.0])
    assert replicated_comparison(values)["difference"] == pytest.approx(0.0)
    one = mean_magnitude([[-0.5, -0.7, -0.6]])   # one training: |mean| with the units' interval folded at 0
    signed = mean_interval([-0.5, -0.7, -0.6])
    assert (one["mean"], one["low"], one["high"]) == pytest.approx((0.6, -signed["high"], -signed["low"]))
    with pytest.raises(InputError, match="finite"):
        mean_magnitude([[1.0, float("nan")]])


def test_the_parts_of_the_variance_say_whether_seeds_or_units_bind() -> None:
    """Trainings that disagree by 1 with units alike: the seeds hold the variance; the other way round, the units."""
    rng = np.random.default_rng(8)
    seeds = rng.normal(0.0, 1.0, (5, 1)) + rng.normal(0.0, 0.01, (5, 40))
    units = rng.normal(0.0, 0.01, (5, 1)) + rng.normal(0.0, 1.0, (1, 40))
    for found in (mean_magnitude(2 + seeds), replicated_comparison(seeds)):
        assert found["variance_shares"]["seeds"] > 0.9 and sum(found["variance_shares"].values()) == pytest.approx(1)
    assert mean_magnitude(2 + units)["variance_shares"]["units"] > 0.9
    assert replicated_comparison(units, seeds)["variance_shares"]["reference_seeds"] > 0.5
    assert mean_magnitude([[1.0, 2.0]])["variance_shares"] == {"units": 1.0}   # one training: the units alone
