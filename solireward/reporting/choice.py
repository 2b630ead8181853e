"""Choosing a mitigation recipe on the validation split, and saying so where the test split is reported.

`solireward report --choose` over the validation files of candidate recipes ranks them by one of two rules
(:data:`CHOICE_RULES`). Both put the accuracy goals (``cost``, ``below_reference``) first, because a model that
learned nothing is invariant to every nuisance and would otherwise win on the invariance goals (docs/MEASURED.md,
"The shortcut study: its models did not learn"), and both end with the highest mean validation pair accuracy.

- ``wins`` (the default) compares the candidates goal by goal: on each goal of each label source, the better
  point estimate wins. Limits judge the chosen recipe; they do not choose it. With equal truths each candidate
  wins a goal half of the time whatever its noise, so a noisier candidate gains nothing (a simulation with known
  truth checks this in tests/test_choice.py).
- ``verdicts`` counts the goals' three-valued verdicts (``reporting.goals``): fewest accuracy goals missed, then
  fewest missed, then most met. Missed before met: a recipe that meets its own cue's goals on every label source
  but fails visibly elsewhere is a fix for that cue, not a mitigation (docs/MEASURED.md, "Leave one cue out with a
  cue no recipe was designed on"). It rewards noise: a goal beyond its limit counts as missed only when its whole
  interval is, so a wider interval turns a miss into "unresolved" (docs/MEASURED.md, "A choice rule that does not
  reward noise"). The studies up to the vignette study chose by it, and their configs keep it.

It writes the ranking as a table and as ``chosen.json``. The study's report on the test split reads that file back
(``--selection``) and states which split chose which recipe, so the test split is scored once, for the report, and
never chooses.

Leave-one-cue-out: the study's ``selection.held_out`` label sources (planted cues) take no part in the
choice; ``chosen.json`` names the choosing and the held-out label sources, and the test-split report marks
each mitigation table of the chosen recipe with its cue's role and judges the held-out cues' goals in a
table of their own (:class:`Choice`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Sequence

from solireward.errors import InputError
from solireward.io import read_json
from solireward.goal_grammar import ACCURACY_GOALS, GOAL_KINDS
from solireward.table import Table

CHOICE_FILE = "chosen.json"
_OVER = "over the label sources the candidate was trained on"
CHOICE_RULES = {  # rule -> how it ranks, as chosen.json and the reports state it
    "wins": ("most accuracy goals won minus lost (cost, below_reference), then most goals won minus lost, then the "
             "highest mean pair accuracy of the split; a goal is won against another candidate by the better point "
             f"estimate, {_OVER}"),
    "verdicts": ("fewest accuracy goals missed (cost, below_reference), then fewest goals missed, then most met, "
                 f"then the highest mean pair accuracy of the split, {_OVER}"),
}
DEFAULT_RULE = "wins"


def rank_candidates(rows: Sequence[dict[str, Any]], rule: str = DEFAULT_RULE) -> list[dict[str, Any]]:
    """Each candidate mitigation's verdict counts, goals won minus lost and mean accuracy, best first by `rule`
    (:data:`CHOICE_RULES`)."""
    if rule not in CHOICE_RULES:
        raise InputError(f"unknown choice rule {rule!r} (expected one of {', '.join(CHOICE_RULES)})",
                         field="choice_rule")
    by_mitigation: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_mitigation.setdefault(row["mitigation"], []).append(row)
    net = _net_wins(rows)   # shown beside the verdict counts whichever rule ranks
    ranked = []
    for mitigation, found in by_mitigation.items():
        counts = {kind: sum(r["verdict"].startswith(kind) for r in found) for kind in ("met", "missed", "unresolved")}
        counts["accuracy_missed"] = sum(r["verdict"].startswith("missed") for r in found
                                        if r["kind"] in ACCURACY_GOALS)
        accuracies = {(r["label_source"], r["accuracy"]) for r in found}
        accuracy_wins, wins = net[mitigation]
        ranked.append({"mitigation": mitigation, **counts, "accuracy_wins": accuracy_wins, "wins": wins,
                       "goals": len(found), "accuracy": sum(a for _, a in accuracies) / len(accuracies),
                       "label_sources": sorted({r["label_source"] for r in found})})
    if rule == "wins":
        return sorted(ranked, key=lambda c: (-c["accuracy_wins"], -c["wins"], -c["accuracy"], c["mitigation"]))
    return sorted(ranked, key=lambda c: (c["accuracy_missed"], c["missed"], -c["met"], -c["accuracy"],
                                         c["mitigation"]))


def _net_wins(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per candidate: goals won minus lost against every other candidate, on the accuracy goals and on all goals
    (a goal: a kind and name on one label source; the better point estimate wins, a tie or a goal one of the two
    did not measure counts for neither)."""
    better: dict[tuple[str, str, str], dict[str, float]] = {}   # goal -> candidate -> value, lower is better
    for row in rows:
        value = row.get("value")
        if value is not None and math.isfinite(value):
            sign = 1.0 if GOAL_KINDS[row["kind"]][1] else -1.0
            better.setdefault((row["label_source"], row["kind"], row.get("name") or ""), {})[row["mitigation"]] = (
                sign * value)
    net = {row["mitigation"]: [0, 0] for row in rows}
    for (_, kind, _), values in better.items():
        for a, b in itertools.combinations(values, 2):
            outcome = (values[a] < values[b]) - (values[a] > values[b])
            for i in ((0, 1) if kind in ACCURACY_GOALS else (1,)):
                net[a][i] += outcome
                net[b][i] -= outcome
    return {mitigation: (won[0], won[1]) for mitigation, won in net.items()}


def choice_table(ranked: Sequence[dict[str, Any]], split: str, rule: str = DEFAULT_RULE) -> Table:
    """The candidates, ranked by `rule`, with the chosen one first and in bold."""
    header = ["Candidate", "Accuracy goals won − lost", "Goals won − lost", "Accuracy goals missed", "Goals met",
              "Unresolved", "Missed", "Pair acc. (%)"]
    rows = [[c["mitigation"], f"{c['accuracy_wins']:+d}", f"{c['wins']:+d}", str(c["accuracy_missed"]), str(c["met"]),
             str(c["unresolved"]), str(c["missed"]), f"{100 * c['accuracy']:.2f}"] for c in ranked]
    bold = [[i == 0] + [False] * (len(header) - 1) for i in range(len(rows))]
    note = (f"Chosen on the {split} split by the rule `{rule}`: {CHOICE_RULES[rule]}. Each candidate's goals and "
            "intervals are in the mitigation goals table; the chosen recipe is then scored once on the test split "
            "by the study's report.")
    return Table("mitigation_choice", f"Choosing a mitigation on the {split} split", header, rows, bold, 1, note)


def choice_record(ranked: Sequence[dict[str, Any]], split: str, choosing: Sequence[str] = (),
                  held_out: Sequence[str] = (), rule: str = DEFAULT_RULE) -> dict[str, Any]:
    """What ``chosen.json`` holds: the split that chose, the rule, the chosen recipe, the label sources that chose
    it (`choosing`; default: those the candidates were trained on), those held out, and every candidate."""
    sources = list(choosing) or _trained_on(ranked)
    return {"split": split, "rule": CHOICE_RULES[rule], "chosen": ranked[0]["mitigation"] if ranked else None,
            "label_sources": sources, "held_out": list(held_out), "candidates": list(ranked)}


def _trained_on(candidates: Sequence[dict[str, Any]]) -> list[str]:
    """The label sources the candidates were trained on (the choosing ones when a record names none)."""
    return sorted({s for c in candidates for s in c.get("label_sources", [])})


@dataclasses.dataclass(frozen=True)
class Choice:
    """A ``chosen.json`` read back: which recipe which split chose, with which label sources, and which were held
    out of the choice."""

    split: str
    rule: str
    chosen: str
    candidates: tuple[str, ...]
    label_sources: tuple[str, ...]
    held_out: tuple[str, ...]

    @classmethod
    def read(cls, path: str) -> "Choice":
        """The choice recorded in `path` (a file without the keys of :func:`choice_record` is an InputError)."""
        record = read_json(path)
        if not isinstance(record, dict) or not {"split", "chosen", "candidates"} <= set(record):
            raise InputError(f"expected the {CHOICE_FILE} of `solireward report --choose` (keys split, chosen, "
                             "candidates)", file=path)
        candidates = tuple(c["mitigation"] for c in record["candidates"])
        choosing = record.get("label_sources") or _trained_on(record["candidates"])
        return cls(record["split"], record.get("rule", CHOICE_RULES["verdicts"]), record["chosen"], candidates,
                   tuple(choosing), tuple(record.get("held_out", [])))

    def note(self) -> str:
        """The sentence a test-split report gives about how its recipes were chosen."""
        held = (f"; held out of the choice: {', '.join(self.held_out)} (cues that took no part in it, trained with "
                f"the chosen recipe afterwards; their goals are judged in a table of their own)"
                if self.held_out else "")
        return (f"Mitigation recipe chosen on the {self.split} split: {self.chosen}, among "
                f"{', '.join(self.candidates)} ({self.rule}), by the label sources {', '.join(self.label_sources)}"
                f"{held}; the test split took no part in the choice.")

    def is_held_out(self, label_source: str, mitigation: str) -> bool:
        """Whether a cell is the chosen recipe on a cue held out of the choice."""
        return mitigation == self.chosen and label_source in self.held_out

    def scope(self, held_out: bool) -> str:
        """What a goals table of the test split covers: the cues held out of the choice, or the others."""
        if held_out:
            return f"; cues held out of the choice of {self.chosen}: {', '.join(self.held_out)}"
        return f"; {self.chosen} chosen by {', '.join(self.label_sources)}"

    def roles(self) -> dict[tuple[str, str], str]:
        """(label source, mitigation) of each cell of the chosen recipe -> its cue's part in the choice."""
        out = {(s, self.chosen): f"its labels chose {self.chosen} on the {self.split} split"
               for s in self.label_sources}
        out.update({(s, self.chosen): f"held out: its labels took no part in choosing {self.chosen}"
                    for s in self.held_out})
        return out
