"""What a report concludes, as data (``conclusions.json``), and the contradictions between two reports.

A conclusion is three-valued, as the report's verdicts are: a goal is met, missed or unresolved; a
difference (a factor table's row against its reference, a mitigation table's measure against the twin) is
higher, lower or unresolved. Two runs of one study (another seed, another machine's kernels:
``scripts/kernel_check.sh``) contradict each other where one concludes *met* and the other *missed*, or one
*higher* and the other *lower*; an unresolved conclusion contradicts nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from solireward.errors import InputError
from solireward.io import read_json

CONCLUSIONS_FILE = "conclusions.json"
OPPOSITES = {("met", "missed"), ("missed", "met"), ("higher", "lower"), ("lower", "higher")}


def conclusion(kind: str, where: str, what: str, outcome: str, value: float | None = None) -> dict[str, Any]:
    """One conclusion: its kind (goal, difference, mitigation), where (table or cell), what, and its outcome."""
    return {"kind": kind, "where": where, "what": what, "outcome": outcome, "value": value}


def outcome_of_verdict(verdict: str) -> str:
    """'met', 'missed' or 'unresolved' of a goal verdict's text ('missed by 0.20' -> 'missed')."""
    return verdict.split(" ", 1)[0] if verdict.startswith(("met", "missed")) else "unresolved"


def direction(low: float | None, high: float | None, significant: bool = True) -> str:
    """'higher' when the interval lies above 0, 'lower' when below, else (or when not `significant`) 'unresolved'."""
    if low is None or high is None or not significant:
        return "unresolved"
    return "higher" if low > 0 else "lower" if high < 0 else "unresolved"


def read_conclusions(report_dir: str | Path) -> list[dict[str, Any]]:
    """The conclusions a report folder holds; an InputError names a folder without them."""
    path = Path(report_dir) / CONCLUSIONS_FILE
    found = read_json(path)
    if not isinstance(found, list) or not all(isinstance(c, dict) and {"kind", "where", "what", "outcome"} <= set(c)
                                              for c in found):
        raise InputError("expected the list of conclusions `solireward report` writes", file=str(path))
    return found


def compare(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The conclusions both reports draw, split into contradicting, agreeing, differing (one unresolved) and
    only in one of them."""
    key = lambda c: (c["kind"], c["where"], c["what"])   # noqa: E731
    first, second = {key(c): c for c in a}, {key(c): c for c in b}
    out: dict[str, list[dict[str, Any]]] = {"contradicting": [], "agreeing": [], "differing": [], "unmatched": []}
    for k in dict.fromkeys([*first, *second]):
        x, y = first.get(k), second.get(k)
        if x is None or y is None:
            out["unmatched"].append(x or y)
            continue
        pair = {**x, "outcome": x["outcome"], "other": y["outcome"], "other_value": y.get("value")}
        bucket = ("contradicting" if (x["outcome"], y["outcome"]) in OPPOSITES
                  else "agreeing" if x["outcome"] == y["outcome"] else "differing")
        out[bucket].append(pair)
    return out
