"""The study tables: one per factor (the others held at reference) and one of every metrics file."""

from __future__ import annotations

import numpy as np
import pandas as pd

from solireward.reporting.load import COLUMNS, EXTRA_COLUMNS, FACTORS, GROUPED_BY, PERCENT, _tags
from solireward.reporting.stats import Uncertainty, _interval_cells, _uncertainty_columns
from solireward.table import Table

def _cell(value: float, percent: bool) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{100 * value:.2f}" if percent else f"{value:.0f}"




def _render(name: str, caption: str, frame: pd.DataFrame, text_columns: list[tuple[str, str]],
            metric_columns: dict[str, str], group_by: list[str] | None) -> Table:
    """Format the rows; the best percentage per column within each `group_by` group is bold (None: no bold).

    A metric column whose key starts with ``_`` holds ready-made text (right-aligned, never bold); a metric
    that no row has (e.g. in-prompt accuracy of hand-made metrics files) gets no column.
    """
    metric_columns = {k: v for k, v in metric_columns.items() if k.startswith("_") or frame[k].notna().any()}
    header = [h for _, h in text_columns] + list(metric_columns.values())
    rows, bold = [], []
    best: dict[tuple, dict[str, float]] = {}
    keys = [tuple(r) for r in frame[group_by].itertuples(index=False)] if group_by else [()] * len(frame)
    for metric in metric_columns:
        if metric in PERCENT and group_by is not None:
            for key, value in zip(keys, frame[metric]):
                if not np.isnan(value):
                    best.setdefault(key, {})[metric] = max(best.get(key, {}).get(metric, -np.inf), value)
    for key, (_, record) in zip(keys, frame.iterrows()):
        cells = [str(record[c]) if pd.notna(record[c]) else "" for c, _ in text_columns]
        flags = [False] * len(text_columns)
        for metric in metric_columns:
            value = record[metric]
            if metric.startswith("_"):
                cells.append(value if isinstance(value, str) else "")
                flags.append(False)
                continue
            cells.append(_cell(value, metric in PERCENT))
            flags.append(bool(not np.isnan(value) and value == best.get(key, {}).get(metric)))
        rows.append(cells)
        bold.append(flags)
    return Table(name, caption, header, rows, bold, len(text_columns))


def _matching(frame: pd.DataFrame, column: str, held: dict[str, str]) -> pd.Series:
    mask = frame[column].notna()
    for other, value in held.items():
        mask &= frame[f"tag:{other}"] == value
    return mask


def _held_values(frame: pd.DataFrame, factor: str, held: dict[str, str]) -> dict[str, str]:
    """Values of the other factors for `factor`'s table: the references when `factor` varies there;
    otherwise the combination under which it takes the most values, nearest the references.

    (A study's ablation may exist only off the reference: pairwise labels come as in-prompt pairs,
    so binary vs pairwise is compared with pairing = in_prompt.)
    """
    column = f"tag:{factor}"
    if not held or frame[_matching(frame, column, held)][column].nunique() >= 2:
        return held
    others = list(held)
    best: tuple[tuple[int, int], dict[str, str]] | None = None
    rows = frame[frame[column].notna()]
    for combo, group in rows.groupby([f"tag:{o}" for o in others], dropna=True, sort=False):
        combo = combo if isinstance(combo, tuple) else (combo,)
        key = (group[column].nunique(), sum(v == held[o] for o, v in zip(others, combo)))
        if key[0] >= 2 and (best is None or key > best[0]):
            best = (key, dict(zip(others, combo)))
    return best[1] if best else held


def factor_table(frame: pd.DataFrame, factor: str, refs: dict[str, str],
                 uncertainty: Uncertainty | None = None) -> tuple[Table | None, str]:
    """The table of one factor (other factors at reference), or None and the reason it is skipped.

    `frame` holds one row per cell (``aggregate_replicates``); with `uncertainty`, intervals and paired
    tests against the reference row are added.
    """
    column = f"tag:{factor}"
    header, title = FACTORS[factor]
    if column not in frame:
        return None, f"no metrics file has the tag '{factor}'"
    values = frame[column].dropna().unique()
    if len(values) < 2:
        return None, f"the tag '{factor}' has only one value ({', '.join(map(str, values))})"
    free = [f for f in GROUPED_BY.get(factor, ()) if f"tag:{f}" in frame]
    held = _held_values(frame, factor, {f: v for f, v in refs.items() if f != factor and f not in free})
    sub = frame[_matching(frame, column, held)]
    if free:  # one group per value of a free factor, each with both values of `factor`
        sub = sub.groupby([f"tag:{f}" for f in free], sort=False).filter(lambda g: g[column].nunique() > 1)
    if sub[column].nunique() < 2:
        return None, (f"the tag '{factor}' has only one value when the other factors are held at "
                      f"{', '.join(f'{k}={v}' for k, v in held.items())}")
    leading = free + [t for t in _tags(frame) if t not in FACTORS and sub[f"tag:{t}"].nunique(dropna=False) > 1]
    text_columns = [(f"tag:{t}", FACTORS[t][0] if t in FACTORS else t.capitalize()) for t in leading] \
        + [(column, header)]
    order = {v: i for i, v in enumerate(dict.fromkeys(frame[column].dropna()))}
    sub = sub.assign(_order=sub[column].map(order)).sort_values([f"tag:{t}" for t in leading] + ["_order"],
                                                                 kind="stable")
    caption = title + ("; other factors: " + ", ".join(f"{k} = {v}" for k, v in held.items()) if held else "")
    columns, note = COLUMNS, ""
    if uncertainty is not None:
        sub, columns, note = _uncertainty_columns(sub, column, refs.get(factor), leading, uncertainty)
    table = _render(f"table_{factor}", caption, sub, text_columns, columns, [f"tag:{t}" for t in leading])
    table.note = note
    return table, ""


def all_results_table(frame: pd.DataFrame) -> Table:
    """Every metrics file: all tags and all metrics, in input order."""
    text_columns = [(f"tag:{t}", FACTORS[t][0] if t in FACTORS else t.capitalize()) for t in _tags(frame)]
    columns = {**COLUMNS, **EXTRA_COLUMNS}
    note = ""
    if "ci_low" in frame and frame["ci_low"].notna().any():
        frame = frame.assign(_ci=_interval_cells(frame))
        columns = {"pairs.accuracy": COLUMNS["pairs.accuracy"], "_ci": "95 % CI",
                   **{k: v for k, v in columns.items() if k != "pairs.accuracy"}}
        note = "95 % CI: the interval of each model's pair accuracy that `evaluate` stored (pairs.accuracy_ci)."
    table = _render("all_results", "All evaluated models (test split)", frame, text_columns, columns, None)
    table.note = note
    return table
