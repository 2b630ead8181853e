"""Uncertainty in the report's tables: each row's interval and its paired test against the reference row."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from solireward.evaluation import paired_bootstrap, pair_correct
from solireward.reporting.load import COLUMNS

@dataclasses.dataclass
class Uncertainty:
    """How the tables show uncertainty: the metrics files (for the per-pair records) and the test settings."""

    files: pd.DataFrame        # load_metrics of every file (the rows that `members` point at)
    confidence: float = 0.95
    samples: int = 2000
    seed: int = 0


def _percent(fraction: float) -> str:
    """0.95 -> '95 %' (the house style of the tables)."""
    return f"{100 * fraction:.3g} %"


def compare_to_reference(files: pd.DataFrame, members: list[int], reference: list[int], samples: int,
                         confidence: float, seed: int) -> dict[str, Any] | None:
    """Paired bootstrap of a cell's replicates against the reference cell's on their common win–lose pairs.

    None when a side lacks per-pair records, the two were evaluated on different pair files, or they
    share no win–lose pair.
    """
    records = [files["per_pair"].iloc[i] for i in [*members, *reference]]
    sources = {files["pairs_path"].iloc[i] for i in [*members, *reference]}
    if any(r is None for r in records) or len(sources) != 1:
        return None
    correct = []
    for r in records:
        keep = r["relation"] != 0
        correct.append(dict(zip(r["row"][keep].tolist(), pair_correct(r["d"][keep], r["relation"][keep]))))
    common = sorted(set.intersection(*(set(c) for c in correct)))
    if not common:
        return None
    first = records[0]
    position = {row: i for i, row in enumerate(first["row"].tolist())}
    index = np.array([position[row] for row in common])
    matrix = np.array([[c[row] for row in common] for c in correct])
    result = paired_bootstrap(matrix[:len(members)], matrix[len(members):], first["prompt_win"][index],
                              first["prompt_lose"][index], samples, confidence, seed)
    return {**result, "pairs": len(common)}


def _interval_cells(frame: pd.DataFrame) -> list[str]:
    """Each row's pair-accuracy interval in percent, '[lo, hi]', or '' without one."""
    return [f"[{100 * lo:.1f}, {100 * hi:.1f}]" if pd.notna(lo) else ""
            for lo, hi in zip(frame["ci_low"], frame["ci_high"])]


def _uncertainty_columns(sub: pd.DataFrame, column: str, reference: str | None, leading: list[str],
                         unc: Uncertainty) -> tuple[pd.DataFrame, dict[str, str], str]:
    """Interval, Δ-vs-reference, p and replicate-count text columns of a factor table, and their note."""
    alpha = 1 - unc.confidence
    sub = sub.copy()
    sub["_ci"] = _interval_cells(sub)
    sub["_delta"], sub["_p"] = "", ""
    tested = 0
    groups = sub.groupby([f"tag:{t}" for t in leading], sort=False) if leading else [((), sub)]
    for _, group in groups:
        ref_rows = group.index[group[column] == reference]
        if reference is None or len(ref_rows) != 1:
            continue
        ref_members = group.loc[ref_rows[0], "members"]
        for i in group.index:
            if i == ref_rows[0]:
                continue
            test = compare_to_reference(unc.files, group.loc[i, "members"], ref_members, unc.samples,
                                        unc.confidence, unc.seed)
            if test is None or test["p_value"] is None:
                continue
            tested += 1
            mark = "*" if test["p_value"] < alpha else ""
            sub.loc[i, "_delta"] = f"{100 * test['difference']:+.2f}{mark}"
            sub.loc[i, "_p"] = "<0.001" if test["p_value"] < 0.001 else f"{test['p_value']:.3f}"
        if tested:
            sub.loc[ref_rows[0], "_delta"] = "ref."
    columns: dict[str, str] = {"pairs.accuracy": COLUMNS["pairs.accuracy"]}
    notes = []
    replicated = bool((sub["replicates"] > 1).any())
    if (sub["_ci"] != "").any():
        how = []
        if replicated:
            how.append("mean ± t·s/√K over the K replicates (column Models; seed-to-seed spread on this test set, "
                       "the test-set sampling is in p)")
        if ((sub["replicates"] == 1) & (sub["_ci"] != "")).any():
            how.append("a bootstrap over test prompts for a single model")
        columns["_ci"] = f"{_percent(unc.confidence)} CI"
        notes.append(f"{_percent(unc.confidence)} CI of pair accuracy: " + "; ".join(how) + ".")
    if tested:
        columns.update({"_delta": "Δ vs ref. (pp)", "_p": "p"})
        notes.append(f"Δ: pair accuracy minus the reference row's ({column[4:]} = {reference}) on the same test "
                     f"pairs, in points; p: two-sided paired bootstrap over test prompts"
                     f"{' and replicates' if replicated else ''} ({unc.samples} draws); "
                     f"* = significant at the {_percent(alpha)} level.")
    columns.update({k: v for k, v in COLUMNS.items() if k != "pairs.accuracy"})
    if replicated:
        sub["_n"] = sub["replicates"].astype(str)
        columns["_n"] = "Models"
        notes.append("Metrics are means over the replicates (same cell, different seeds).")
    return sub, columns, " ".join(notes)
