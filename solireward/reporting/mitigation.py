"""Mitigation vs none: one table per mitigated cell beside its twin trained without it.

Rows: test pair accuracy (paired over test pairs, ``evaluation.paired_test``), the score shift of every
stress-probe perturbation tested in both (paired over videos), and each optimisation method's gold gain and
hacking gap at the largest KL every curve reaches (paired over prompts). Each difference is mitigated − none
with its 95 % interval and p; with several trainings of a cell (``claim_replicates``) the probe and
over-optimisation rows are over the units *and* the seeds (``hacking.intervals.replicated_comparison``), as
the accuracy row is over test pairs and seeds.

A finding is three-valued, as a goal's verdict is (``reporting.goals``): a measure is *higher* or *lower*
with the mitigation when its whole interval is on one side of 0, and *unresolved* otherwise.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from solireward.hacking.overopt import compare_overopt, overopt_matrix
from solireward.hacking.probe import compare_probes, probe_matrix
from solireward.reporting.conclusions import conclusion, direction
from solireward.reporting.stats import compare_to_reference
from solireward.study import AXES, NO_MITIGATION, REPLICATE
from solireward.table import Table, interval_cell, number_cell, p_cell

CELL_AXES = tuple(axis for axis in AXES if axis != "mitigation")
HEADER = ["Measure", "None", "Mitigated", "Δ", "95 % CI of Δ", "p"]
Key = tuple[tuple[str, ...], str]   # (a cell's axes but its mitigation, its mitigation)


def cell_key(tags: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(tags.get(axis, "")) for axis in CELL_AXES)


def by_cell(results: Sequence[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    """Probe or over-optimisation results by (cell without its mitigation, mitigation): every replicate, in order."""
    out: dict[Key, list[tuple[int, dict[str, Any]]]] = {}
    for result in results:
        tags = result.get("tags") or {}
        key = (cell_key(tags), str(tags.get("mitigation", NO_MITIGATION)))
        out.setdefault(key, []).append((int(tags.get(REPLICATE, 0) or 0), result))
    return {key: [r for _, r in sorted(found, key=lambda item: item[0])] for key, found in out.items()}


def _row(name: str, none: float | None, treated: float | None, test: dict[str, Any] | None,
         scale: float = 1.0) -> list[str]:
    if test is None or test.get("difference") is None:
        return [name, number_cell(none, scale), number_cell(treated, scale), "", "", ""]
    return [name, number_cell(none, scale), number_cell(treated, scale), number_cell(test["difference"], scale, "+"),
            interval_cell(test.get("low"), test.get("high"), scale, "+"), p_cell(test.get("p", test.get("p_value")))]


def finding(mitigation: str, measures: Sequence[tuple[str, dict[str, Any] | None]]) -> str:
    """What the table shows, three-valued: the measures whose interval of Δ lies wholly above 0 (higher), wholly
    below (lower), and how many are unresolved (the interval holds 0)."""
    tested = [(name, t) for name, t in measures if t is not None and t.get("low") is not None]
    if not tested:
        return f"{mitigation}: no paired comparison was possible."
    higher = [name for name, t in tested if t["low"] > 0]
    lower = [name for name, t in tested if t["high"] < 0]
    parts = [f"higher with {mitigation}: {', '.join(higher)}" if higher else "",
             f"lower with {mitigation}: {', '.join(lower)}" if lower else ""]
    unresolved = len(tested) - len(higher) - len(lower)
    parts.append(f"unresolved (interval holds 0): {unresolved} of {len(tested)} measures" if unresolved else "")
    return f"{mitigation}: " + "; ".join(p for p in parts if p) + "."


def mitigated_cells(cells: pd.DataFrame) -> Iterator[tuple[pd.Series, dict[str, str], pd.Series | None]]:
    """Each mitigated cell's row, its tags but the mitigation, and the row of its twin without one (or None)."""
    tag_columns = [f"tag:{axis}" for axis in CELL_AXES if f"tag:{axis}" in cells]
    twins = {tuple(str(row[c]) for c in tag_columns): row for _, row in cells.iterrows()
             if row["tag:mitigation"] == NO_MITIGATION}
    for _, row in cells[cells["tag:mitigation"].notna() & (cells["tag:mitigation"] != NO_MITIGATION)].iterrows():
        tags = {c[4:]: str(row[c]) for c in tag_columns}
        yield row, tags, twins.get(tuple(tags.values()))


def _mean(matrix: np.ndarray | None) -> float | None:
    return None if matrix is None or not np.isfinite(matrix).any() else float(np.nanmean(matrix))


def _probe_rows(treated: list[dict[str, Any]], reference: list[dict[str, Any]],
                confidence: float) -> list[tuple[list[str], dict[str, Any] | None]]:
    return [(_row(f"Probe {name} (clean std)", _mean(probe_matrix(reference, name)),
                  _mean(probe_matrix(treated, name)), test), test)
            for name, test in compare_probes(treated, reference, confidence).items()]


def _overopt_rows(treated: list[dict[str, Any]], reference: list[dict[str, Any]],
                  confidence: float) -> list[tuple[list[str], dict[str, Any] | None]]:
    rows = []
    for method in treated[0]["summary"]:
        if any(method not in r["summary"] for r in [*treated, *reference]):
            continue
        compared = compare_overopt(treated, reference, method, confidence=confidence)
        kl = compared["kl"]
        for name, label in (("gold_gain", "gold gain"), ("hacking_gap", "hacking gap (base std)")):
            means = [_mean(overopt_matrix(side, method, kl, name)) for side in (reference, treated)]
            rows.append((_row(f"{method}: {label} @ KL {kl:.2f}", *means, compared[name]), compared[name]))
    return rows


def mitigation_tables(cells: pd.DataFrame, files: pd.DataFrame, probes: Sequence[dict[str, Any]],
                      overopts: Sequence[dict[str, Any]], confidence: float,
                      pooled_seeds: tuple[float, float] | None = None,
                      conclusions: list[dict[str, Any]] | None = None,
                      roles: dict[tuple[str, str], str] | None = None) -> list[Table]:
    """One table per cell with a mitigation whose unmitigated twin is in the study (none when no cell has one);
    each measure's three-valued finding is appended to `conclusions`. `roles` ((label source, mitigation) -> its
    cue's part in choosing the recipe, from ``reporting.choice.Choice.roles``) goes into the caption and note."""
    if "tag:mitigation" not in cells:
        return []
    probes_of, overopts_of = by_cell(probes), by_cell(overopts)
    tables = []
    for row, tags, twin in mitigated_cells(cells):
        if twin is None:
            continue
        mitigation, key = row["tag:mitigation"], cell_key(tags)
        test = compare_to_reference(files, row["members"], twin["members"], confidence, pooled_seeds)
        rows = [(_row("Test pair accuracy (%)", twin["pairs.accuracy"], row["pairs.accuracy"], test, scale=100),
                 test)]
        for found, make in ((probes_of, _probe_rows), (overopts_of, _overopt_rows)):
            treated, reference = found.get((key, mitigation)), found.get((key, NO_MITIGATION))
            if treated and reference:
                rows += make(treated, reference, confidence)
        cell = f"{tags.get('head', '')} / {tags.get('loss', '')} ({tags.get('label_source', '')}, " \
               f"{tags.get('pairing', '')})"
        models = f"{int(row['replicates'])} training(s) mitigated, {int(twin['replicates'])} without"
        note = (f"Δ = mitigated − none with its {100 * confidence:g} % interval and two-sided p ({models}; with "
                "several, means over them and intervals over the seeds too): pair accuracy paired over test pairs "
                "(the report's method), probe shifts paired over the videos tested in both, over-optimisation "
                "paired over prompts at the largest KL every curve reaches. Finding: "
                + finding(mitigation, [(r[0], t) for r, t in rows]))
        name = "mitigation_" + "_".join(v for v in (tags.get("task"), tags.get("label_source"), mitigation) if v)
        if conclusions is not None:
            conclusions += [conclusion("mitigation", f"{mitigation}: {cell}", r[0], direction(t["low"], t["high"]),
                                       t["difference"]) for r, t in rows if t is not None and t.get("low") is not None]
        body = [r for r, _ in rows]
        role = (roles or {}).get((tags.get("label_source", ""), mitigation))
        if role:
            note += f" Cue of this cell: {role}."
        tables.append(Table(name, f"Mitigation {mitigation} vs none: {cell}" + (f" ({role})" if role else ""),
                            HEADER, body,
                            [[False] * len(HEADER)] * len(body), 1, note))
    return tables
