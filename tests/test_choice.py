"""solireward.reporting.choice: ranking candidate recipes on the validation split."""

from __future__ import annotations

from solireward.reporting.choice import RULE, choice_table, rank_candidates


def _rows(mitigation: str, accuracy: float, verdicts: dict[str, str]) -> list[dict]:
    return [{"mitigation": mitigation, "label_source": "binary", "accuracy": accuracy,
             "kind": goal.split()[0].split(":")[0], "goal": goal, "verdict": v} for goal, v in verdicts.items()]


def test_a_candidate_that_misses_an_accuracy_goal_ranks_after_one_that_misses_none() -> None:
    # `flat` learned nothing: invariant to every probe (all met) but far below the reference; `learns` meets fewer
    # invariance goals and misses one, but keeps its accuracy (unresolved cost)
    flat = _rows("flat", 0.50, {"probe:brightness ≤ 0.3": "met", "probe:zoom_x1.3 ≤ 0.3": "met",
                                "below_reference ≤ 3": "missed by 20.00", "cost ≤ 2": "met"})
    learns = _rows("learns", 0.75, {"probe:brightness ≤ 0.3": "met", "probe:zoom_x1.3 ≤ 0.3": "missed by 0.10",
                                    "below_reference ≤ 3": "unresolved (≈2.0× the data would likely resolve it)",
                                    "cost ≤ 2": "unresolved (≈3.0× the data would likely resolve it)"})
    ranked = rank_candidates(flat + learns)
    assert [c["mitigation"] for c in ranked] == ["learns", "flat"]
    assert [c["accuracy_missed"] for c in ranked] == [0, 1] and ranked[1]["met"] == 3
    assert RULE.startswith("fewest accuracy goals missed")
    table = choice_table(ranked, "validation").markdown()
    assert "| Candidate | Accuracy goals missed | Goals met |" in table
    assert "| **learns** | 0 | 1 |" in table and "| flat | 1 | 3 |" in table


def test_without_accuracy_misses_the_fewest_goals_missed_then_the_most_met_then_accuracy_win() -> None:
    a = _rows("a", 0.60, {"probe:brightness ≤ 0.3": "met", "cost ≤ 2": "met"})
    b = _rows("b", 0.70, {"probe:brightness ≤ 0.3": "missed by 0.10", "cost ≤ 2": "met"})
    c = _rows("c", 0.80, {"probe:brightness ≤ 0.3": "unresolved (at the limit)", "cost ≤ 2": "met"})
    d = _rows("d", 0.90, {"probe:brightness ≤ 0.3": "unresolved (at the limit)", "cost ≤ 2": "met"})
    assert [c["mitigation"] for c in rank_candidates(a + b + c + d)] == ["a", "d", "c", "b"]
    # a fix for one cue: meets its own goals but misses others; it ranks after one that misses nothing
    fix = _rows("fix", 0.70, {"probe:brightness ≤ 0.3": "met", "share:brightness ≤ 0.1": "met",
                              "share:scale ≤ 0.1": "missed by 0.30", "cost ≤ 2": "met"})
    broad = _rows("broad", 0.70, {"probe:brightness ≤ 0.3": "unresolved (at the limit)",
                                  "share:brightness ≤ 0.1": "unresolved (at the limit)",
                                  "share:scale ≤ 0.1": "unresolved (at the limit)", "cost ≤ 2": "met"})
    assert [c["mitigation"] for c in rank_candidates(fix + broad)] == ["broad", "fix"]
