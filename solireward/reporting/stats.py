"""Uncertainty in the report's tables: each row's interval and its paired test against the reference row."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from solireward.evaluation import (PromptDesign, method_footnote, pair_correct, paired_test, pooled_seed_variance,
                                   replicate_interval)
from solireward.evaluation.uncertainty import coverage_caveat
from solireward.reporting.conclusions import conclusion, direction
from solireward.reporting.load import COLUMNS
from solireward.table import p_cell


@dataclasses.dataclass
class Uncertainty:
    """How the tables show uncertainty: the metrics files (for the per-pair records) and the confidence level."""

    files: pd.DataFrame        # load_metrics of every file (the rows that `members` point at)
    confidence: float = 0.95
    pooled_seeds: tuple[float, float] | None = None   # seed variance of one training (``pooled_seeds``)
    conclusions: list[dict[str, Any]] = dataclasses.field(default_factory=list)   # filled by the tables


def _percent(fraction: float) -> str:
    """0.95 -> '95 %' (the house style of the tables)."""
    return f"{100 * fraction:.3g} %"


def correct_matrix(files: pd.DataFrame, rows: list[int]) -> tuple[np.ndarray, PromptDesign] | None:
    """Which common win–lose test pairs each metrics file ordered right ((files, pairs); ties ½), and the
    prompts of those pairs; None when a file lacks per-pair records, the files were evaluated on different
    pair files, or they share no win–lose pair."""
    records = [files["per_pair"].iloc[i] for i in rows]
    if any(r is None for r in records) or len({files["pairs_path"].iloc[i] for i in rows}) != 1:
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
    return matrix, PromptDesign.of(first["prompt_win"][index], first["prompt_lose"][index])


def compare_to_reference(files: pd.DataFrame, members: list[int], reference: list[int],
                         confidence: float, pooled: tuple[float, float] | None = None) -> dict[str, Any] | None:
    """Paired test of a cell's replicates against the reference cell's on their common win–lose pairs
    (``evaluation.paired_test``, with the `pooled` seed variance for a side trained once); None when they
    cannot be paired (``correct_matrix``)."""
    found = correct_matrix(files, [*members, *reference])
    if found is None:
        return None
    matrix, design = found
    return {**paired_test(matrix[:len(members)], matrix[len(members):], design, confidence, pooled),
            "pairs": matrix.shape[1]}


def pooled_seeds(cells: pd.DataFrame, files: pd.DataFrame) -> tuple[float, float] | None:
    """The seed-to-seed variance of one training's pair accuracy pooled over the cells trained K > 1 times, and
    its degrees of freedom (``evaluation.pooled_seed_variance``); None without such a cell."""
    found = [correct_matrix(files, members) for members in cells.loc[cells["replicates"] > 1, "members"]]
    return pooled_seed_variance([f[0] for f in found if f is not None])


def replicate_intervals(cells: pd.DataFrame, files: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """`cells` with the interval of each cell trained K > 1 times: test-set and seed-to-seed variance together
    (``evaluation.replicate_interval``); none where the replicates cannot be paired."""
    cells = cells.copy()
    for i in cells.index[cells["replicates"] > 1]:
        found = correct_matrix(files, cells.at[i, "members"])
        interval = replicate_interval(*found, confidence) if found is not None else None
        cells.at[i, "ci_low"], cells.at[i, "ci_high"] = (interval["low"], interval["high"]) if interval \
            else (np.nan, np.nan)
    return cells


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
    tested = unmarked = 0
    groups = sub.groupby([f"tag:{t}" for t in leading], sort=False) if leading else [((), sub)]
    for _, group in groups:
        ref_rows = group.index[group[column] == reference]
        if reference is None or len(ref_rows) != 1:
            continue
        ref_members = group.loc[ref_rows[0], "members"]
        for i in group.index:
            if i == ref_rows[0]:
                continue
            members = group.loc[i, "members"]
            test = compare_to_reference(unc.files, members, ref_members, unc.confidence, unc.pooled_seeds)
            if test is None or test["p_value"] is None:
                continue
            tested += 1
            # a side trained once has no seed variance of its own: mark only with one pooled from other cells
            markable = unc.pooled_seeds is not None or (len(members) > 1 and len(ref_members) > 1)
            unmarked += not markable
            mark = "*" if test["p_value"] < alpha and markable else ""
            leading_values = "".join(f"{t} = {group.loc[i, f'tag:{t}']}, " for t in leading)
            unc.conclusions.append(conclusion("difference", f"per {column[4:]}",
                                              f"{leading_values}{group.loc[i, column]} vs {reference}",
                                              direction(test["low"], test["high"], markable), test["difference"]))
            sub.loc[i, "_delta"] = f"{100 * test['difference']:+.2f}{mark}"
            sub.loc[i, "_p"] = p_cell(test["p_value"])
        if tested:
            sub.loc[ref_rows[0], "_delta"] = "ref."
    columns: dict[str, str] = {"pairs.accuracy": COLUMNS["pairs.accuracy"]}
    notes = []
    replicated = bool((sub["replicates"] > 1).any())
    if (sub["_ci"] != "").any():
        columns["_ci"] = f"{_percent(unc.confidence)} CI"
        notes.append(f"{_percent(unc.confidence)} CI of pair accuracy"
                     + (" (with several models: test set and seed-to-seed spread; a row of one model (Models = 1) "
                        "is one training, its interval covers the test set only)" if replicated else
                        " over the test set (one training per row)") + ".")
    if tested:
        columns.update({"_delta": "Δ vs ref. (pp)", "_p": "p"})
        notes.append(f"Δ: pair accuracy minus the reference row's ({column[4:]} = {reference}) on the same test "
                     f"pairs, in points; p: two-sided paired test; * = significant at the {_percent(alpha)} level.")
        if unc.pooled_seeds is not None and (sub["replicates"] == 1).any():
            notes.append(f"A row of one training is compared with the seed variance pooled from the cells trained "
                         f"several times (s = {100 * np.sqrt(unc.pooled_seeds[0]):.2f} points, "
                         f"{unc.pooled_seeds[1]:g} df).")
        if unmarked:
            notes.append("No * where a side is one training and no cell was trained several times to pool its seed "
                         "variance from: a single training's difference is an anecdote (`claim_replicates`).")
    designs = [correct_matrix(unc.files, members) for members in sub["members"]]
    caveats = list(dict.fromkeys(c for found in designs if found is not None if (c := coverage_caveat(found[1]))))
    if caveats:   # the test set is outside the range the simulation checked (docs/UNCERTAINTY.md)
        notes.append("Coverage caveat: " + "; ".join(caveats) + ".")
    if notes:
        notes.append(f"Method: {method_footnote()}")
    columns.update({k: v for k, v in COLUMNS.items() if k != "pairs.accuracy"})
    if replicated:
        sub["_n"] = sub["replicates"].astype(str)
        columns["_n"] = "Models"
        notes.append("Metrics are means over the replicates (same cell, different seeds).")
    return sub, columns, " ".join(notes)
