"""solireward.reporting.choice: ranking candidate recipes on the validation split."""

from __future__ import annotations

import numpy as np
import pytest

from solireward.errors import InputError
from solireward.goal_grammar import GOAL_KINDS
from solireward.reporting.choice import CHOICE_RULES, choice_table, rank_candidates
from solireward.reporting.goals import verdict


def _rows(mitigation: str, accuracy: float, verdicts: dict[str, str]) -> list[dict]:
    return [{"mitigation": mitigation, "label_source": "binary", "accuracy": accuracy,
             "kind": goal.split()[0].split(":")[0], "goal": goal, "verdict": v} for goal, v in verdicts.items()]


def test_a_candidate_that_misses_an_accuracy_goal_ranks_after_one_that_misses_none() -> None:
    # `flat` learned nothing: invariant to every probe (all met) but far below the reference; `learns` meets fewer
    # invariance goals and misses one, but keeps its accuracy (unresolved cost)
    flat = _rows("flat", 0.50, {"probe:brightness ≤ 0.3": "met", "probe:zoom_x1.3 ≤ 0.3": "met",
                                "below_reference ≤ 3": "missed by 20.00", "cost ≤ 2": "met"})
    unresolved = "unresolved (at ≈{}× the data its interval would end at the limit)"
    learns = _rows("learns", 0.75, {"probe:brightness ≤ 0.3": "met", "probe:zoom_x1.3 ≤ 0.3": "missed by 0.10",
                                    "below_reference ≤ 3": unresolved.format(2.0),
                                    "cost ≤ 2": unresolved.format(3.0)})
    ranked = rank_candidates(flat + learns, "verdicts")
    assert [c["mitigation"] for c in ranked] == ["learns", "flat"]
    assert [c["accuracy_missed"] for c in ranked] == [0, 1] and ranked[1]["met"] == 3
    assert CHOICE_RULES["verdicts"].startswith("fewest accuracy goals missed")
    table = choice_table(ranked, "validation", "verdicts").markdown()
    assert "| Candidate | Accuracy goals won − lost | Goals won − lost | Accuracy goals missed | Goals met |" in table
    assert "| **learns** | +0 | +0 | 0 | 1 |" in table and "| flat | +0 | +0 | 1 | 3 |" in table
    assert "by the rule `verdicts`: fewest accuracy goals missed" in table


def test_without_accuracy_misses_the_fewest_goals_missed_then_the_most_met_then_accuracy_win() -> None:
    a = _rows("a", 0.60, {"probe:brightness ≤ 0.3": "met", "cost ≤ 2": "met"})
    b = _rows("b", 0.70, {"probe:brightness ≤ 0.3": "missed by 0.10", "cost ≤ 2": "met"})
    c = _rows("c", 0.80, {"probe:brightness ≤ 0.3": "unresolved (at the limit)", "cost ≤ 2": "met"})
    d = _rows("d", 0.90, {"probe:brightness ≤ 0.3": "unresolved (at the limit)", "cost ≤ 2": "met"})
    assert [c["mitigation"] for c in rank_candidates(a + b + c + d, "verdicts")] == ["a", "d", "c", "b"]
    # a fix for one cue: meets its own goals but misses others; it ranks after one that misses nothing
    fix = _rows("fix", 0.70, {"probe:brightness ≤ 0.3": "met", "share:brightness ≤ 0.1": "met",
                              "share:scale ≤ 0.1": "missed by 0.30", "cost ≤ 2": "met"})
    broad = _rows("broad", 0.70, {"probe:brightness ≤ 0.3": "unresolved (at the limit)",
                                  "share:brightness ≤ 0.1": "unresolved (at the limit)",
                                  "share:scale ≤ 0.1": "unresolved (at the limit)", "cost ≤ 2": "met"})
    assert [c["mitigation"] for c in rank_candidates(fix + broad, "verdicts")] == ["broad", "fix"]


def _measured(mitigation: str, accuracy: float, values: dict[str, float], limit: float = 0.3,
              half_width: float = 0.1) -> list[dict]:
    """Goal rows as `solireward report` writes them: each goal's point estimate, interval and verdict."""
    rows = []
    for goal, value in values.items():
        kind, _, name = goal.partition(":")
        rows.append({"mitigation": mitigation, "label_source": "binary", "accuracy": accuracy, "kind": kind,
                     "name": name, "value": value,
                     "verdict": verdict(value, value - half_width, value + half_width, limit, GOAL_KINDS[kind][1])})
    return rows


def test_wins_compares_point_estimates_goal_by_goal_accuracy_goals_first() -> None:
    # `flat` learned nothing: no shift under any probe, but far below the reference
    flat = _measured("flat", 0.50, {"probe:brightness": 0.0, "probe:zoom_x1.3": 0.0, "below_reference": 20.0})
    learns = _measured("learns", 0.75, {"probe:brightness": 0.2, "probe:zoom_x1.3": 0.5, "below_reference": 1.0})
    ranked = rank_candidates(flat + learns)
    assert [(c["mitigation"], c["accuracy_wins"], c["wins"]) for c in ranked] == [("learns", 1, -1), ("flat", -1, 1)]
    # the vignette study's case: `tight` misses a goal that `wide` leaves unresolved with a worse point estimate
    tight = _measured("tight", 0.66, {"gap:best_of_n": 1.27, "probe:letterbox": 0.6}, half_width=0.4)
    wide = _measured("wide", 0.64, {"gap:best_of_n": 1.34, "probe:letterbox": 1.2}, half_width=1.5)
    by_verdicts = rank_candidates(tight + wide, "verdicts")
    assert [(c["mitigation"], c["wins"]) for c in by_verdicts] == [("wide", -2), ("tight", 2)]   # wins shown anyway
    assert [c["mitigation"] for c in rank_candidates(tight + wide)] == ["tight", "wide"]
    spearman = _measured("a", 0.7, {"spearman:tint": 0.9}) + _measured("b", 0.7, {"spearman:tint": 0.8})
    assert rank_candidates(spearman)[0]["mitigation"] == "a"   # at least: the higher estimate wins
    with pytest.raises(InputError, match="unknown choice rule 'best'"):
        rank_candidates(flat, "best")


GOALS = (("cost", 2.0), ("below_reference", 5.0), ("gap:best_of_n", 0.3), ("probe:brightness", 0.3),
         ("share:brightness", 0.1), ("probe:letterbox", 0.3))


def _simulated_choice(rng: np.random.Generator, truths: dict[str, tuple[float, float]], rule: str) -> str:
    """The candidate `rule` chooses in one simulated study: each candidate's every goal measured as truth + normal
    noise, with a 95 % interval of its known width; truths: candidate -> (multiple of each limit, noise in limits)."""
    rows = []
    for name, (level, noise) in truths.items():
        for goal, limit in GOALS:
            kind, _, goal_name = goal.partition(":")
            sigma = noise * limit
            value = level * limit + sigma * rng.standard_normal()
            rows.append({"mitigation": name, "label_source": "binary", "kind": kind, "name": goal_name,
                         "accuracy": 0.65 + 0.02 * rng.standard_normal(), "value": value,
                         "verdict": verdict(value, value - 1.96 * sigma, value + 1.96 * sigma, limit, True)})
    return rank_candidates(rows, rule)[0]["mitigation"]


def test_by_simulation_wins_gives_a_noisier_candidate_no_edge_where_verdicts_prefers_it() -> None:
    """Known truth: two candidates equal on every goal (each at 1.5 times its limit, as most goals of the studies
    sit), one with twice the other's noise. `wins` picks each about half of the time; `verdicts` prefers the noisy
    one, whose wider intervals turn misses into unresolved. When the quiet one is truly better on every goal (by a
    fifth), `wins` picks it more often than `verdicts` does."""
    rng = np.random.default_rng(0)
    studies = 600
    equal = {"quiet": (1.5, 0.5), "noisy": (1.5, 1.0)}
    noisy_share = {rule: np.mean([_simulated_choice(rng, equal, rule) == "noisy" for _ in range(studies)])
                   for rule in CHOICE_RULES}
    band = 3.3 * (0.25 / studies) ** 0.5   # about a 99.9 % band around one half
    assert abs(noisy_share["wins"] - 0.5) < band, noisy_share
    assert noisy_share["verdicts"] > 0.5 + band, noisy_share
    better = {"quiet": (1.2, 0.5), "noisy": (1.5, 1.0)}
    quiet_share = {rule: np.mean([_simulated_choice(rng, better, rule) == "quiet" for _ in range(studies)])
                   for rule in CHOICE_RULES}
    assert quiet_share["wins"] > 0.6 and quiet_share["wins"] > quiet_share["verdicts"] + band, quiet_share
