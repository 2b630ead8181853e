"""solireward.reporting.goals: three-valued verdicts on intervals, and the intervals they judge."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

from solireward.goal_grammar import parse_goals
from solireward.hacking.intervals import replicated_comparison
from solireward.reporting.goals import share_at, share_goal, spearman_interval, verdict


@pytest.mark.parametrize("value, low, high, limit, at_most, expected", [
    (0.10, 0.02, 0.20, 0.3, True, "met"),                  # the whole interval under the limit
    (0.50, 0.40, 0.60, 0.3, True, "missed by 0.20"),       # wholly over it
    (0.25, 0.10, 0.40, 0.3, True, "unresolved (at ≈9.0× the data its interval would end at the limit)"),   # (3)²
    (0.35, 0.20, 0.50, 0.3, True, "unresolved (at ≈9.0× the data its interval would end at the limit)"),
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


def test_an_unresolved_verdict_says_which_data_would_narrow_it_alone() -> None:
    """At 9× the data, (0.15 / 0.05)², the interval would end at the limit, keeping 1/9 of its variance: seeds holding
    95 % of it alone need 0.95 / (1/9 − 0.05) ≈ 15.5× as many; at 50 % no one kind of data alone will do."""
    parts = {"the cell's seeds": 0.95, "videos": 0.05}
    assert verdict(0.25, 0.10, 0.40, 0.3, True, parts) == (
        "unresolved (at ≈9.0× the data its interval would end at the limit; most of its variance: the cell's seeds, "
        "95 %, ≈15.5× those alone would)")
    assert verdict(0.25, 0.10, 0.40, 0.3, True, {"prompts": 0.5, "the cell's seeds": 0.5}).endswith(
        "most of its variance: prompts, 50 %, and no one kind of data alone would get it there)")
    assert verdict(0.29, 0.00, 0.60, 0.3, True, parts) == (
        "unresolved (too close to the limit: over 100× the data; most of its variance: the cell's seeds, 95 %)")
    assert verdict(0.10, 0.02, 0.20, 0.3, True, parts) == "met"   # a resolved verdict names no part


def _gaps(rng: np.random.Generator, truth: float, seeds: int, prompts: int) -> np.ndarray:
    """(seeds, prompts) hacking gaps around `truth`: a seed effect, a prompt effect and noise."""
    return (truth + rng.normal(0, 0.6, (seeds, 1)) + rng.normal(0, 0.3, (1, prompts))
            + rng.normal(0, 0.5, (seeds, prompts)))


def test_the_data_factor_is_a_projection_not_a_promise() -> None:
    """Gaps of 5 seeds x 28 prompts whose truth lies 0.3 or 0.15 under a limit of 0.5: for each first look whose
    interval straddles the limit, a second study with the verdict's factor times the seeds and prompts resolves the
    goal only a third to seven tenths of the time (docs/UNCERTAINTY.md, "Verdicts"); where the truth is nearer the
    limit, less than half the time."""
    rng = np.random.default_rng(1)
    rates = []
    for truth in (0.2, 0.35):
        resolved = looks = 0
        while looks < 300:
            found = replicated_comparison(_gaps(rng, truth, 5, 28))
            factor = re.search(r"at ≈([\d.]+)× the data", verdict(found["difference"], found["low"], found["high"],
                                                                  0.5, True))
            if factor is None:
                continue
            again = replicated_comparison(_gaps(rng, truth, round(5 * float(factor[1])), round(28 * float(factor[1]))))
            resolved += again["high"] <= 0.5 or again["low"] >= 0.5
            looks += 1
        rates.append(resolved / looks)
    assert 0.33 < rates[1] < 0.5 < rates[0] < 0.7, rates


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


def _overopt(large_share: list[float]) -> dict:
    """A best-of-n result on 4 prompts x 4 settings (object size 1.0 or 1.3, half each) whose picks at n=16 land
    on the large object with the given share per prompt (and at n=4 on half of them)."""
    settings = [[{"defect": d, "scale": s} for d in ("none", "morph") for s in (1.0, 1.3)]] * 4

    def point(n: int, large: list[float]) -> dict:
        return {"n": n, "per_prompt": {"share": {"scale=1": [1 - x for x in large], "scale=1.3": list(large)}}}

    return {"prompts": ["a", "b", "c", "d"], "settings": settings,
            "curves": {"best_of_n": [point(4, [0.5] * 4), point(16, large_share)]}}


def test_a_share_goal_measures_the_largest_n_at_the_most_departed_value_over_seeds_and_prompts() -> None:
    assert parse_goals(["share:scale=0.1"]) == [("share", "scale", 0.1)]
    seeds = [_overopt([0.9, 0.95, 1.0, 0.85]), _overopt([0.8, 1.0, 0.9, 0.9])]
    ((value, low, high), per_seed, shares), name = share_goal("scale", seeds, 0.95)
    assert name in ("scale=1 @ best-of-16", "scale=1.3 @ best-of-16") and value == pytest.approx(0.4125)
    assert per_seed == pytest.approx([0.425, 0.4])
    assert set(shares) == {"units", "seeds"} and sum(shares.values()) == pytest.approx(1.0)   # prompts, seeds
    assert low > 0.1 and verdict(value, low, high, 0.1, True).startswith("missed")
    ((value, low, high), _, _), _ = share_goal("scale", [_overopt([0.5, 0.55, 0.45, 0.5])] * 2, 0.95)
    assert value == pytest.approx(0.0) and verdict(value, low, high, 0.1, True) == "met"
    assert share_goal("brightness", seeds, 0.95)[0] == ((None, None, None), None, None)  # the grid has no such axis


def test_a_share_goal_does_not_let_seeds_that_pick_opposite_ways_cancel() -> None:
    """One training picks the large object on every prompt, the other never: each model departs by 0.5."""
    ((value, low, high), per_seed, _), _ = share_goal("scale", [_overopt([1.0] * 4), _overopt([0.0] * 4)], 0.95)
    assert per_seed == [0.5, 0.5] and value == pytest.approx(0.5)
    assert high > 0.5 and not verdict(value, low, high, 0.1, True) == "met"


def test_the_reference_share_is_read_where_the_mitigated_cells_picks_departed_most() -> None:
    treated = [_overopt([0.9, 0.95, 1.0, 0.85]), _overopt([0.8, 1.0, 0.9, 0.9])]
    _, where = share_goal("scale", treated, 0.95)
    (value, low, high), _, _ = share_at(where, [_overopt([0.6, 0.7, 0.6, 0.7])] * 2, 0.95)
    assert value == pytest.approx(0.15) and low <= 0.15 <= high
    nothing = ((None, None, None), None, None)
    assert share_at(where.replace("best-of-16", "best-of-64"), treated, 0.95) == nothing   # no such n
    assert share_at("size=2 @ best-of-16", treated, 0.95) == nothing   # no such nuisance value


def test_goals_that_the_twin_meets_too_are_named_as_showing_nothing() -> None:
    """A held-out cue its twin never learnt passes its own goals with or without the mitigation: the note says so,
    and names no other cue's goal that the twin meets too (the grain twin never learnt a colour cast either)."""
    from solireward.reporting.goals import unlearnt_note

    def row(goal: str, meets: bool) -> dict:
        kind, _, name = goal.split(" ")[0].partition(":")
        return {"label_source": "biased_grain", "mitigation": "long", "kind": kind, "name": name, "goal": goal,
                "twin_meets": meets}

    rows = [row("probe:grain ≤ 0.3", True), row("probe:tint ≤ 0.3", True), row("share:grain ≤ 0.1", False),
            row("cost ≤ 2", False)]
    own = parse_goals(["probe:grain=0.3", "share:grain=0.1"])
    note = unlearnt_note(rows, own, "the cues held out of the choice")
    assert note is not None and note.endswith("biased_grain / long: probe:grain ≤ 0.3.") and "tint" not in note
    assert unlearnt_note(rows[2:], own, "x") is None and unlearnt_note(rows, [], "x") is None


def test_the_choice_never_takes_the_held_out_cues_goals(tmp_path, capsys) -> None:
    """`solireward report --choose` with --held_out_goals is refused, naming the flag."""
    from tests.conftest import run_cli

    metrics = tmp_path / "metrics.json"
    metrics.write_text("{}")
    assert run_cli("report", "--metrics", metrics, "--output_dir", tmp_path / "r", "--choose", "--split",
                   "validation", "--mitigation_goals", "cost=2", "--held_out_goals", "probe:grain=0.3") == 2
    assert "held_out_goals" in capsys.readouterr().err and not (tmp_path / "r").exists()
