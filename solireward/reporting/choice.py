"""Choosing a mitigation recipe on the validation split, and saying so where the test split is reported.

`solireward report --choose` over the validation files of candidate recipes ranks them by their goals'
three-valued verdicts (``reporting.goals``): the most goals met, then the fewest missed, then the highest
mean validation pair accuracy; it writes the ranking as a table and as ``chosen.json``. The study's report on
the test split reads that file back (``--selection``) and states which split chose which recipe, so the
test split is scored once, for the report, and never chooses.
"""

from __future__ import annotations

from typing import Any, Sequence

from solireward.errors import InputError
from solireward.io import read_json
from solireward.table import Table

CHOICE_FILE = "chosen.json"
RULE = ("most goals met, then fewest missed, then the highest mean pair accuracy of the split, over the label "
        "sources the candidate was trained on")


def rank_candidates(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each candidate mitigation's verdict counts and mean accuracy, best first (:data:`RULE`)."""
    by_mitigation: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_mitigation.setdefault(row["mitigation"], []).append(row)
    ranked = []
    for mitigation, found in by_mitigation.items():
        counts = {kind: sum(r["verdict"].startswith(kind) for r in found) for kind in ("met", "missed", "unresolved")}
        accuracies = {(r["label_source"], r["accuracy"]) for r in found}
        ranked.append({"mitigation": mitigation, **counts, "goals": len(found),
                       "accuracy": sum(a for _, a in accuracies) / len(accuracies),
                       "label_sources": sorted({r["label_source"] for r in found})})
    return sorted(ranked, key=lambda c: (-c["met"], c["missed"], -c["accuracy"], c["mitigation"]))


def choice_table(ranked: Sequence[dict[str, Any]], split: str) -> Table:
    """The candidates, ranked, with the chosen one first and in bold."""
    header = ["Candidate", "Goals met", "Unresolved", "Missed", "Pair acc. (%)"]
    rows = [[c["mitigation"], str(c["met"]), str(c["unresolved"]), str(c["missed"]), f"{100 * c['accuracy']:.2f}"]
            for c in ranked]
    bold = [[i == 0] + [False] * 4 for i in range(len(rows))]
    note = (f"Chosen on the {split} split by the rule: {RULE}. Each candidate's goals and intervals are in the "
            "mitigation goals table; the chosen recipe is then scored once on the test split by the study's report.")
    return Table("mitigation_choice", f"Choosing a mitigation on the {split} split", header, rows, bold, 1, note)


def choice_record(ranked: Sequence[dict[str, Any]], split: str) -> dict[str, Any]:
    """What ``chosen.json`` holds: the split that chose, the rule, the chosen recipe and every candidate."""
    return {"split": split, "rule": RULE, "chosen": ranked[0]["mitigation"] if ranked else None,
            "candidates": list(ranked)}


def selection_note(path: str) -> str:
    """The sentence a test-split report gives about how its recipes were chosen (from a ``chosen.json``)."""
    record = read_json(path)
    if not isinstance(record, dict) or not {"split", "chosen", "candidates"} <= set(record):
        raise InputError(f"expected the {CHOICE_FILE} of `solireward report --choose` (keys split, chosen, "
                         "candidates)", file=path)
    names = ", ".join(c["mitigation"] for c in record["candidates"])
    return (f"Mitigation recipe chosen on the {record['split']} split: {record['chosen']}, among {names} "
            f"({record['rule']}); the test split took no part in the choice.")
