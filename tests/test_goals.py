"""solireward.reporting.goals: three-valued verdicts on intervals, and the intervals they judge."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from solireward.reporting.goals import absolute, parse_goals, spearman_interval, verdict


@pytest.mark.parametrize("value, low, high, limit, at_most, expected", [
    (0.10, 0.02, 0.20, 0.3, True, "met"),                  # the whole interval under the limit
    (0.50, 0.40, 0.60, 0.3, True, "missed by 0.20"),       # wholly over it
    (0.25, 0.10, 0.40, 0.3, True, "unresolved (≈9.0× the data would likely resolve it)"),   # (0.15 / 0.05)²
    (0.35, 0.20, 0.50, 0.3, True, "unresolved (≈9.0× the data would likely resolve it)"),
    (0.95, 0.92, 0.97, 0.9, False, "met"),                 # at least: the whole interval over the limit
    (0.80, 0.70, 0.88, 0.9, False, "missed by 0.10"),
    (0.30, 0.30, 0.30, 0.3, True, "met"),                  # on the limit, no spread: inside
    (0.30, 0.20, 0.40, 0.3, True, "unresolved (at the limit)"),
    (0.29, 0.00, 0.60, 0.3, True, "unresolved (too close to the limit: over 100× the data)"),   # (0.31 / 0.01)²
    (0.30, None, None, 0.3, True, "unresolved (no interval)"),
    (None, None, None, 0.3, True, "not measured"),
])
def test_a_verdict_is_met_missed_or_unresolved_by_where_the_interval_lies(value, low, high, limit, at_most,
                                                                          expected) -> None:
    assert verdict(value, low, high, limit, at_most) == expected


def test_the_absolute_shift_folds_the_signed_interval_at_zero() -> None:
    assert absolute({"difference": 0.2, "low": 0.1, "high": 0.3}) == (0.2, 0.1, 0.3)
    assert absolute({"difference": -0.2, "low": -0.3, "high": -0.1}) == (0.2, 0.1, 0.3)
    assert absolute({"difference": -0.05, "low": -0.4, "high": 0.3}) == (0.05, 0.0, 0.4)


def test_parse_goals_names_a_bad_goal() -> None:
    assert parse_goals(["probe:brightness=0.3", "cost=2"]) == [("probe", "brightness", 0.3), ("cost", "", 2.0)]
    with pytest.raises(Exception, match="expected probe:NAME"):
        parse_goals(["cost:x=2"])


def test_the_spearman_interval_covers_the_true_rank_correlation() -> None:
    """24 videos of a bivariate normal with ρ = 0.8, whose Spearman correlation is (6/π) asin(ρ/2)."""
    rng = np.random.default_rng(0)
    rho, n, trials = 0.8, 24, 1500
    truth = 6 / np.pi * np.arcsin(rho / 2)
    hits = 0
    for _ in range(trials):
        x = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
        _, low, high = spearman_interval([stats.spearmanr(x[:, 0], x[:, 1]).statistic], n, 0.95)
        hits += low <= truth <= high
    assert 0.93 <= hits / trials <= 0.98, hits / trials
