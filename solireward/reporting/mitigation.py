"""Mitigation vs none: one table per mitigated cell beside its twin trained without it.

Rows: test pair accuracy (paired over test pairs, ``evaluation.paired_test``), the score shift of every
stress-probe perturbation tested in both (paired over videos, ``hacking.probe.compare_probes``), and each
optimisation method's gold gain and hacking gap at the largest KL both curves reach (paired over prompts,
``hacking.overopt.compare_overopt``). Each difference is mitigated − none, with its 95 % interval and p.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from solireward.config import parse_key_values
from solireward.errors import ConfigError
from solireward.hacking.overopt import compare_overopt, summary_at_kl
from solireward.hacking.probe import compare_probes
from solireward.reporting.stats import compare_to_reference
from solireward.study import AXES, NO_MITIGATION, REPLICATE
from solireward.table import Table

CELL_AXES = tuple(axis for axis in AXES if axis != "mitigation")
HEADER = ["Measure", "None", "Mitigated", "Δ", "95 % CI of Δ", "p"]


def _key(tags: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(tags.get(axis, "")) for axis in CELL_AXES)


def _first_replicates(results: Sequence[dict[str, Any]]) -> dict[tuple[tuple[str, ...], str], dict[str, Any]]:
    """Probe or over-optimisation results by (cell without its mitigation, mitigation), first replicate only."""
    out = {}
    for result in results:
        tags = result.get("tags") or {}
        if str(tags.get(REPLICATE, "0")) == "0":
            out[(_key(tags), str(tags.get("mitigation", NO_MITIGATION)))] = result
    return out


def _row(name: str, none: float | None, treated: float | None, test: dict[str, Any] | None, scale: float = 1.0,
         digits: int = 2) -> list[str]:
    def number(value: float | None, sign: str = "") -> str:
        return "" if value is None or not np.isfinite(value) else f"{scale * value:{sign}.{digits}f}"

    if test is None or test.get("difference") is None:
        return [name, number(none), number(treated), "", "", ""]
    p = test.get("p", test.get("p_value"))
    interval = "" if test.get("low") is None else f"[{number(test['low'], '+')}, {number(test['high'], '+')}]"
    return [name, number(none), number(treated), number(test["difference"], "+"), interval,
            "" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")]


def _finding(mitigation: str, rows: list[list[str]], alpha: float) -> str:
    """What the table shows, in a sentence: which differences are significant, and which are not."""
    significant = [f"{r[0]} {r[3]}" for r in rows if r[5] and (r[5] == "<0.001" or float(r[5]) < alpha)]
    tested = [r for r in rows if r[5]]
    if not tested:
        return f"{mitigation}: no paired comparison was possible."
    if not significant:
        return (f"{mitigation}: no difference from none is significant at the {100 * alpha:g} % level "
                f"({len(tested)} measures compared).")
    return (f"{mitigation}: significant at the {100 * alpha:g} % level: {'; '.join(significant)} "
            f"({len(significant)} of {len(tested)} measures).")


def _mitigated_cells(cells: pd.DataFrame) -> Iterator[tuple[pd.Series, dict[str, str], pd.Series | None]]:
    """Each mitigated cell's row, its tags but the mitigation, and the row of its twin without one (or None)."""
    tag_columns = [f"tag:{axis}" for axis in CELL_AXES if f"tag:{axis}" in cells]
    twins = {tuple(str(row[c]) for c in tag_columns): row for _, row in cells.iterrows()
             if row["tag:mitigation"] == NO_MITIGATION}
    for _, row in cells[cells["tag:mitigation"].notna() & (cells["tag:mitigation"] != NO_MITIGATION)].iterrows():
        tags = {c[4:]: str(row[c]) for c in tag_columns}
        yield row, tags, twins.get(tuple(tags.values()))


def mitigation_tables(cells: pd.DataFrame, files: pd.DataFrame, probes: Sequence[dict[str, Any]],
                      overopts: Sequence[dict[str, Any]], confidence: float) -> list[Table]:
    """One table per cell with a mitigation whose unmitigated twin is in the study (none when no cell has one)."""
    if "tag:mitigation" not in cells:
        return []
    by_probe, by_overopt = _first_replicates(probes), _first_replicates(overopts)
    tables = []
    for row, tags, twin in _mitigated_cells(cells):
        if twin is None:
            continue
        mitigation = row["tag:mitigation"]
        test = compare_to_reference(files, row["members"], twin["members"], confidence)
        if test is not None:
            test = {**test, "p": test["p_value"]}
        rows = [_row("Test pair accuracy (%)", twin["pairs.accuracy"], row["pairs.accuracy"], test, scale=100)]
        key = _key(tags)
        treated, reference = by_probe.get((key, mitigation)), by_probe.get((key, NO_MITIGATION))
        if treated is not None and reference is not None:
            shifts = compare_probes(treated, reference)
            means = {side: {p["name"]: p.get("mean_change_std") for p in result["perturbations"]}
                     for side, result in (("none", reference), ("treated", treated))}
            rows += [_row(f"Probe {name} (clean std)", means["none"][name], means["treated"][name], shift)
                     for name, shift in shifts.items()]
        treated, reference = by_overopt.get((key, mitigation)), by_overopt.get((key, NO_MITIGATION))
        if treated is not None and reference is not None:
            for method in treated["summary"]:
                if method not in reference["summary"]:
                    continue
                compared = compare_overopt(treated, reference, method)
                kl = compared["kl"]
                sides = [summary_at_kl(result, method, kl) for result in (reference, treated)]
                for name, label in (("gold_gain", "gold gain"), ("hacking_gap", "hacking gap (base std)")):
                    rows.append(_row(f"{method}: {label} @ KL {kl:.2f}", sides[0][name], sides[1][name],
                                     compared[name]))
        cell = f"{tags.get('head', '')} / {tags.get('loss', '')} ({tags.get('label_source', '')}, " \
               f"{tags.get('pairing', '')})"
        alpha = 1 - confidence
        note = ("Δ = mitigated − none with its 95 % interval and two-sided p: pair accuracy paired over test pairs "
                "(the report's method), probe shifts paired over the videos tested in both (t interval), "
                "over-optimisation paired over prompts at the largest KL both curves reach (t interval). "
                "Finding: " + _finding(mitigation, rows, alpha))
        name = "mitigation_" + "_".join(v for v in (tags.get("task"), tags.get("label_source"), mitigation) if v)
        tables.append(Table(name, f"Mitigation {mitigation} vs none: {cell}", HEADER, rows,
                            [[False] * len(HEADER)] * len(rows), 1, note))
    return tables


GOAL_KINDS = {  # kind -> (what is measured, whether the measure must be at most (True) or at least the limit)
    "probe": ("|mean score shift| under the probe perturbation (clean std)", True),
    "spearman": ("Spearman ρ of scores with and without the probe perturbation", False),
    "gap": ("hacking gap of the method at the largest KL the cell and its twin reach (base std)", True),
    "below_reference": ("test pair accuracy below the reference cell without mitigation (points)", True),
    "cost": ("test pair accuracy below its own twin without mitigation (points)", True),
}
GOAL_HEADER = ["Cell", "Goal", "Measured", "95 % CI", "Verdict"]


def parse_goals(items: Sequence[str]) -> list[tuple[str, str, float]]:
    """``KIND[:NAME]=LIMIT`` strings (KIND in :data:`GOAL_KINDS`) as (kind, name, limit); bad ones raise."""
    goals = []
    for key, value in parse_key_values(items, "mitigation_goals").items():
        kind, _, name = key.partition(":")
        if kind not in GOAL_KINDS or bool(name) == (kind in ("below_reference", "cost")):
            raise ConfigError(f"expected probe:NAME, spearman:NAME, gap:METHOD, below_reference or cost, got "
                              f"{key!r}", field="mitigation_goals")
        try:
            goals.append((kind, name, float(value)))
        except ValueError:
            raise ConfigError(f"expected a number for {key!r}, got {value!r}", field="mitigation_goals") from None
    return goals


def _verdict(value: float | None, limit: float, at_most: bool) -> str:
    if value is None or not np.isfinite(value):
        return "not measured"
    miss = value - limit if at_most else limit - value
    return "met" if miss <= 0 else f"missed by {miss:.2f}"


def goal_table(cells: pd.DataFrame, probes: Sequence[dict[str, Any]], overopts: Sequence[dict[str, Any]],
               goals: Sequence[tuple[str, str, float]], reference: dict[str, str]) -> Table | None:
    """Each goal of each mitigated cell: the value measured in this run, met or missed by how much."""
    if not goals or "tag:mitigation" not in cells:
        return None
    by_probe, by_overopt = _first_replicates(probes), _first_replicates(overopts)
    untreated = cells[cells["tag:mitigation"] == NO_MITIGATION]
    rows = []
    for row, tags, twin in _mitigated_cells(cells):
        key, mitigation = _key(tags), row["tag:mitigation"]
        probe, overopt = by_probe.get((key, mitigation)), by_overopt.get((key, mitigation))
        cell = f"{tags.get('label_source', '')} / {mitigation}"
        wanted = {**reference, **({"task": tags["task"]} if "task" in tags else {})}
        matches = untreated[np.logical_and.reduce([untreated[f"tag:{k}"].astype(str) == str(v)
                                                   for k, v in wanted.items() if f"tag:{k}" in untreated])]
        reference_accuracy = float(matches["pairs.accuracy"].iloc[0]) if reference and len(matches) else None
        for kind, name, limit in goals:
            value, interval = None, None
            if kind in ("probe", "spearman") and probe is not None:
                found = next((p for p in probe["perturbations"] if p["name"] == name), None)
                if found is not None and found.get("tested", True):
                    value = abs(found["mean_change_std"]) if kind == "probe" else found.get("spearman")
                    interval = found.get("mean_change_std_ci") if kind == "probe" else None
            elif kind == "gap" and overopt is not None and name in overopt["summary"]:
                twin_overopt = by_overopt.get((key, NO_MITIGATION))
                kl = overopt["summary"][name]["max_kl"] if twin_overopt is None else \
                    compare_overopt(overopt, twin_overopt, name)["kl"]
                summary = summary_at_kl(overopt, name, kl)
                if summary is not None:
                    value, interval = summary["hacking_gap"], summary["hacking_gap_ci"]
                    name = f"{name} @ KL {kl:.2f}"
            elif kind in ("below_reference", "cost"):
                base = reference_accuracy if kind == "below_reference" else (
                    None if twin is None else float(twin["pairs.accuracy"]))
                if base is not None:
                    value = 100 * (base - float(row["pairs.accuracy"]))
            bound = "≤" if GOAL_KINDS[kind][1] else "≥"
            goal = f"{kind}{':' + name if name else ''} {bound} {limit:g}"
            shown = "" if value is None else f"{value:.2f}"
            ci = "" if not interval else f"[{interval[0]:+.2f}, {interval[1]:+.2f}]"
            rows.append([cell, goal, shown, ci, _verdict(value, limit, GOAL_KINDS[kind][1])])
    if not rows:
        return None
    bold = [[False] * 4 + [row[-1] != "met"] for row in rows]
    note = ("Goals of the study (`report.mitigation_goals`), each measured in this run: " + "; ".join(
        f"{kind}: {text}" for kind, (text, _) in GOAL_KINDS.items()) + ". A probe interval is that of the "
        "signed shift over videos; a gap interval is over prompts. 'missed by' is the distance to the limit.")
    return Table("mitigation_goals", "Mitigation goals: met or missed, and by how much", GOAL_HEADER, rows, bold, 2,
                 note)
