"""Choosing a mitigation recipe on the validation split, and saying so where the test split is reported.

`solireward report --choose` over the validation files of candidate recipes ranks them by their goals'
three-valued verdicts (``reporting.goals``): first the fewest accuracy goals missed (``cost``,
``below_reference``), because a model that learned nothing is invariant to every nuisance and would otherwise win
on the invariance goals (docs/MEASURED.md, "The shortcut study: its models did not learn"); then the fewest goals
missed, the most met and the highest mean validation pair accuracy. Missed before met: a recipe that meets its own
cue's goals on every label source but fails visibly elsewhere is a fix for that cue, not a mitigation
(docs/MEASURED.md, "Leave one cue out with a cue no recipe was designed on"). It writes the ranking as a table and as
``chosen.json``. The study's report on the test split reads that file back (``--selection``) and states which
split chose which recipe, so the test split is scored once, for the report, and never chooses.

Leave-one-cue-out: the study's ``selection.held_out`` label sources (planted cues) take no part in the
choice; ``chosen.json`` names the choosing and the held-out label sources, and the test-split report marks
each mitigation table of the chosen recipe with its cue's role and judges the held-out cues' goals in a
table of their own (:class:`Choice`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from solireward.errors import InputError
from solireward.io import read_json
from solireward.goal_grammar import ACCURACY_GOALS
from solireward.table import Table

CHOICE_FILE = "chosen.json"
RULE = ("fewest accuracy goals missed (cost, below_reference), then fewest goals missed, then most met, then the "
        "highest mean pair accuracy of the split, over the label sources the candidate was trained on")


def rank_candidates(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each candidate mitigation's verdict counts and mean accuracy, best first (:data:`RULE`)."""
    by_mitigation: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_mitigation.setdefault(row["mitigation"], []).append(row)
    ranked = []
    for mitigation, found in by_mitigation.items():
        counts = {kind: sum(r["verdict"].startswith(kind) for r in found) for kind in ("met", "missed", "unresolved")}
        counts["accuracy_missed"] = sum(r["verdict"].startswith("missed") for r in found
                                        if r["kind"] in ACCURACY_GOALS)
        accuracies = {(r["label_source"], r["accuracy"]) for r in found}
        ranked.append({"mitigation": mitigation, **counts, "goals": len(found),
                       "accuracy": sum(a for _, a in accuracies) / len(accuracies),
                       "label_sources": sorted({r["label_source"] for r in found})})
    return sorted(ranked, key=lambda c: (c["accuracy_missed"], c["missed"], -c["met"], -c["accuracy"],
                                         c["mitigation"]))


def choice_table(ranked: Sequence[dict[str, Any]], split: str) -> Table:
    """The candidates, ranked, with the chosen one first and in bold."""
    header = ["Candidate", "Accuracy goals missed", "Goals met", "Unresolved", "Missed", "Pair acc. (%)"]
    rows = [[c["mitigation"], str(c["accuracy_missed"]), str(c["met"]), str(c["unresolved"]), str(c["missed"]),
             f"{100 * c['accuracy']:.2f}"] for c in ranked]
    bold = [[i == 0] + [False] * 5 for i in range(len(rows))]
    note = (f"Chosen on the {split} split by the rule: {RULE}. Each candidate's goals and intervals are in the "
            "mitigation goals table; the chosen recipe is then scored once on the test split by the study's report.")
    return Table("mitigation_choice", f"Choosing a mitigation on the {split} split", header, rows, bold, 1, note)


def choice_record(ranked: Sequence[dict[str, Any]], split: str, choosing: Sequence[str] = (),
                  held_out: Sequence[str] = ()) -> dict[str, Any]:
    """What ``chosen.json`` holds: the split that chose, the rule, the chosen recipe, the label sources that chose
    it (`choosing`; default: those the candidates were trained on), those held out, and every candidate."""
    sources = list(choosing) or _trained_on(ranked)
    return {"split": split, "rule": RULE, "chosen": ranked[0]["mitigation"] if ranked else None,
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
        return cls(record["split"], record.get("rule", RULE), record["chosen"], candidates, tuple(choosing),
                   tuple(record.get("held_out", [])))

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
