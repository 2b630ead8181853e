"""Reading `solireward evaluate` outputs into one frame, averaging replicates, and the reference values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solireward.config import parse_key_values
from solireward.errors import ConfigError, InputError
from solireward.io import read_json
from solireward.study import REPLICATE

# study factor (solireward.study.FACTORS) -> (row header, table title)
FACTORS: dict[str, tuple[str, str]] = {
    "head": ("Head", "Accuracy per reward head (paper Table 5)"),
    "loss": ("Loss", "Accuracy per loss (paper Table 3)"),
    "pairing": ("Pairing", "Cross-prompt vs in-prompt pairing"),
    "label_source": ("Label source", "Label sources: binary, pairwise and biased labels"),
    "mitigation": ("Mitigation", "With and without each mitigation against reward hacking"),
}
# a factor whose table shows each value of these factors as a group of rows instead of holding it fixed: a
# mitigation is compared with its twin without on clean and on biased labels alike, and a label source with
# binary labels at its own pairing (pairwise labels exist only as in-prompt pairs, biased ones cross-prompt)
GROUPED_BY: dict[str, tuple[str, ...]] = {"mitigation": ("label_source",), "label_source": ("pairing",)}
# metric (section.key) -> column header; the table columns of every factor table
COLUMNS: dict[str, str] = {
    "pairs.accuracy": "Pair acc. (%)",
    "all_pairs.in_prompt.accuracy": "In-prompt acc. (%)",
    "pairs.accuracy_with_ties": "Acc. w/ ties (%)",
    "video.roc_auc": "ROC-AUC (%)",
}
EXTRA_COLUMNS: dict[str, str] = {
    "video.best_f1": "Best F1 (%)",
    "pairs.evaluated": "Pairs",
    "counts.scored": "Videos",
    "counts.errored": "Errored",
}
PERCENT = set(COLUMNS) | {"video.best_f1"}


def _get(result: dict, dotted: str) -> Any:
    """The value at a dotted path of a metrics file (None where a level is missing or null)."""
    for key in dotted.split("."):
        result = result.get(key) if isinstance(result, dict) else None
    return result


def load_metrics(paths: list[str]) -> pd.DataFrame:
    """One row per metrics file: its tags (as columns), the table metrics and its source paths."""
    rows = []
    for path in paths:
        result = read_json(path)
        if not isinstance(result, dict) or not isinstance(result.get("tags"), dict) \
                or not isinstance(result.get("video"), dict):
            raise InputError("expected the JSON object written by `solireward evaluate` (with 'tags' and "
                             "'video')", file=path)
        row: dict[str, Any] = {f"tag:{k}": str(v) for k, v in result["tags"].items()}
        for dotted in (*COLUMNS, *EXTRA_COLUMNS):
            value = _get(result, dotted)
            if value is not None and not isinstance(value, (int, float)):
                raise InputError(f"expected a number or null, got {value!r}", file=path, field=dotted)
            row[dotted] = np.nan if value is None else float(value)
        interval = _get(result, "pairs.accuracy_ci")
        if interval is not None and not (isinstance(interval, list) and len(interval) == 2):
            raise InputError(f"expected [low, high], got {interval!r}", file=path, field="pairs.accuracy_ci")
        row["ci_low"], row["ci_high"] = interval if interval else (np.nan, np.nan)
        row["source"] = str(path)
        sources = result.get("sources") or {}
        row["scores_path"], row["pairs_path"] = (_recorded_path(sources.get(key), path) for key in ("scores", "pairs"))
        row["score_field"] = result.get("score_field", "score")
        row["per_pair"] = _per_pair(result.get("per_pair"), path)
        rows.append(row)
    return pd.DataFrame(rows)


def _recorded_path(recorded: Any, metrics_file: str) -> str | None:
    """A source path of a metrics file, absolute: `evaluate` records it relative to the file's folder."""
    if not isinstance(recorded, str):
        return None
    return str((Path(metrics_file).resolve().parent / recorded).resolve())


def _per_pair(records: Any, path: str) -> dict[str, np.ndarray] | None:
    """The per-pair records of a metrics file as arrays (None when absent)."""
    if records is None:
        return None
    keys = ("row", "prompt_win", "prompt_lose", "d", "relation")
    if not isinstance(records, dict) or any(not isinstance(records.get(k), list) for k in keys) \
            or len({len(records[k]) for k in keys}) != 1:
        raise InputError(f"expected lists {', '.join(keys)} of equal length", file=path, field="per_pair")
    return {"row": np.asarray(records["row"], dtype=np.int64), "d": np.asarray(records["d"], dtype=float),
            "relation": np.asarray(records["relation"], dtype=np.int64),
            "prompt_win": np.asarray(records["prompt_win"], dtype=object),
            "prompt_lose": np.asarray(records["prompt_lose"], dtype=object)}


def aggregate_replicates(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: files differing only in the `replicate` tag are averaged.

    Adds ``replicates`` (K) and ``members`` (row numbers in `frame`); ``ci_low``/``ci_high`` stay the file's
    interval when K = 1 and are left empty when K > 1 (``stats.replicate_intervals`` fills them).
    """
    if f"tag:{REPLICATE}" not in frame:
        return frame.assign(replicates=1, members=[[i] for i in range(len(frame))])
    keys = [c for c in frame.columns if c.startswith("tag:") and c != f"tag:{REPLICATE}"]
    rows = []
    for _, group in frame.groupby([frame[k].fillna("\0") for k in keys], sort=False) if keys else [((), frame)]:
        first = group.iloc[0]
        row = {k: first[k] for k in keys}
        for metric in (*COLUMNS, *EXTRA_COLUMNS):
            row[metric] = group[metric].mean()  # NaN when no file has it
        k = len(group)
        row.update(replicates=k, members=list(group.index), ci_low=first["ci_low"], ci_high=first["ci_high"],
                   source=first["source"], scores_path=first["scores_path"], pairs_path=first["pairs_path"],
                   score_field=first["score_field"], per_pair=first["per_pair"])
        if k > 1:
            row["ci_low"] = row["ci_high"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _tags(frame: pd.DataFrame) -> list[str]:
    names = [c[4:] for c in frame.columns if c.startswith("tag:")]
    return [f for f in FACTORS if f in names] + [n for n in names if n not in FACTORS and n != REPLICATE] \
        + [n for n in names if n == REPLICATE]


def reference_values(frame: pd.DataFrame, overrides: list[str] | None,
                     study: dict[str, str] | None = None) -> dict[str, str]:
    """Reference value of each factor: --reference, else the study's reference cell (when its value is among
    the metrics files), else the most frequent value (first seen on ties)."""
    given = parse_key_values(overrides or [], "reference")
    unknown = [key for key in given if key not in FACTORS]
    if unknown:
        raise ConfigError(f"expected FACTOR=VALUE with FACTOR one of {list(FACTORS)}, got {unknown[0]!r}",
                          field="reference")
    refs = {}
    for factor in FACTORS:
        column = f"tag:{factor}"
        if column not in frame:
            if factor in given:
                raise ConfigError(f"no metrics file has the tag '{factor}'", field="reference")
            continue
        values = frame[column].dropna().tolist()
        if factor in given:
            if given[factor] not in values:
                raise ConfigError(f"{factor}={given[factor]} is in no metrics file; values: "
                                  f"{sorted(set(values))}", field="reference")
            refs[factor] = given[factor]
        elif study and study.get(factor) in values:
            refs[factor] = study[factor]
        elif values:
            counts = pd.Series(values).value_counts(sort=False)
            refs[factor] = max(dict.fromkeys(values), key=lambda v: counts[v])  # first seen wins ties
    return refs
