"""`solireward labels`: import single-item binary annotations into one label table.

Input rows (CSV or JSONL) hold one judgement each: ``video_path``, ``prompt``, ``dimension``,
``label``, ``annotator``. Accepted labels (any case, surrounding spaces ignored):
Pass = ``pass``, ``p``, ``1``, ``1.0``, ``true``, ``t``, ``yes``, ``y``;
Fail = ``fail``, ``f``, ``0``, ``0.0``, ``false``, ``no``, ``n``.

Rows are validated (vectorised with pandas/numpy); a rejected row is reported with its file, its
line number and the offending field. Line numbers are the ones an editor shows: for CSV the header
is line 1, so the first data row is line 2 (files with quoted multi-line fields or blank lines
shift this); for JSONL every physical line counts. Checks, in order, first failure wins:

1. empty ``video_path``/``prompt``/``dimension``/``annotator``; unknown ``label``; invalid JSON line;
2. the resolved video file does not exist (``--check_videos``);
3. inconsistent prompt: a video given several prompts keeps its most frequent prompt (ties: the
   first seen) and the other rows are rejected;
4. conflicting duplicates: the same video, dimension and annotator with different labels (every
   such row is rejected); exact duplicates are silently reduced to one row.

Annotators are then aggregated per (video, dimension) by majority. ``agreement`` is the share of
votes for the majority label. A tie vote gets ``label`` null and ``status`` ``split``; a majority
with ``agreement < --min_agreement`` gets ``label`` null and ``status`` ``low_agreement``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from json.encoder import encode_basestring
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
from tqdm import tqdm

from solireward.config import arg
from solireward.data.annotation_files import ANNOTATION_COLUMNS, read_annotation_files
from solireward.data.label_report import label_report, report_markdown
from solireward.errors import ConfigError, InputError
from solireward.io import atomic_path, atomic_write, read_jsonl, resolve_video_path, write_json, write_text

logger = logging.getLogger(__name__)

LABEL_TABLE_COLUMNS = ("video_path", "prompt", "dimension", "label", "n_pass", "n_fail",
                       "n_annotators", "agreement", "status")
PASS_WORDS = ("pass", "p", "1", "1.0", "true", "t", "yes", "y")
FAIL_WORDS = ("fail", "f", "0", "0.0", "false", "no", "n")
_LABEL_VALUES = {**{w: 1 for w in PASS_WORDS}, **{w: 0 for w in FAIL_WORDS}}
_EXPECTED_LABELS = "pass/fail, p/f, 1/0, true/false, t/f, yes/no or y/n (any case)"


@dataclasses.dataclass
class LabelImportConfig:
    """Options of `solireward labels` (single-item binary annotation import)."""

    input: list[str] = arg("annotation files (.csv or .jsonl), one row per video x dimension x "
                           "annotator with columns video_path, prompt, dimension, label, annotator")
    output: str = arg("label table to write, one row per video x dimension (.jsonl or .parquet)")
    report_dir: str | None = arg("folder for label_report.json and label_report.md "
                                 "(default: the folder of --output)", None)
    video_root: str | None = arg("folder that relative video_path values are resolved against "
                                 "(default: each annotation file's own folder)", None)
    check_videos: bool = arg("reject rows whose video file does not exist", True)
    min_agreement: float = arg("minimum share of annotators agreeing with the majority for a label; "
                               "0.5 means a plain majority", 0.5)
    on_error: str = arg("'fail': stop at the first bad row and write nothing; 'skip': drop bad rows "
                        "(listed in --rejects) and continue", "fail", choices=("fail", "skip"))
    rejects: str | None = arg("with --on_error skip: file (.csv or .jsonl) listing every rejected "
                              "row with source_file, row (line number) and reason", None)
    progress: bool = arg("show progress bars even when stderr is not a terminal", False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"expected a share between 0 and 1, got {self.min_agreement}", field="min_agreement")
        if self.rejects and self.on_error != "skip":
            raise ConfigError("needs on_error 'skip' (with 'fail' nothing is written)", field="rejects")
        _output_format(self.output)


@dataclasses.dataclass
class LabelImport:
    """What one import produced: the label table, the report and the rejected rows."""

    table: pd.DataFrame
    report: dict[str, Any]
    rejects: pd.DataFrame


def _show_progress(config: LabelImportConfig) -> bool:
    return bool(config.progress or sys.stderr.isatty())


def _where(kind: str, line: int) -> str:
    return f"line {line} (CSV header = line 1)" if kind == "csv" else f"line {line}"


# ----------------------------------------------------------------------------------------------
# Validation


class _Rejections:
    """First-failure-wins bookkeeping of rejected rows (reason, kind and field per row)."""

    def __init__(self, n: int) -> None:
        self.rejected = np.zeros(n, dtype=bool)
        self.reason = np.empty(n, dtype=object)
        self.kind = np.empty(n, dtype=object)
        self.field = np.empty(n, dtype=object)

    def add(self, mask: np.ndarray, kind: str, field: str | None, reason: Any) -> None:
        """Reject rows in `mask` not rejected yet; `reason` is a string or a per-row array."""
        new = np.asarray(mask, dtype=bool) & ~self.rejected
        if not new.any():
            return
        self.rejected |= new
        self.kind[new] = kind
        self.field[new] = field
        self.reason[new] = reason if isinstance(reason, str) else np.asarray(reason, dtype=object)[new]


# Paths that need no normalising: absolute, no '//', no '.' or '..' segment, no trailing '/'.
_NEEDS_NORMALISING = r"//|/\.\.?(?:/|$)|/$"


def _resolve_paths(frame: pd.DataFrame, raw: pd.Series, files: list[str],
                   video_root: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Absolute, normalised video paths as (per-row code, distinct paths).

    Relative paths are resolved against --video_root or the annotation file's own folder.
    """
    file_codes = frame["_file"].to_numpy()
    codes = np.empty(len(frame), dtype=np.int64)
    parts, offset = [], 0
    for index, name in enumerate(files):
        rows = np.flatnonzero(file_codes == index)
        base = video_root if video_root else os.path.dirname(os.path.abspath(name))
        sub_codes, uniques = pd.factorize(raw.iloc[rows])
        values = np.asarray(uniques, dtype=object)
        plain = np.asarray(uniques.str.startswith("/") & ~uniques.str.contains(_NEEDS_NORMALISING, regex=True),
                           dtype=bool)
        values[~plain] = [resolve_video_path(p, base) if p else "" for p in values[~plain]]
        codes[rows] = sub_codes + offset
        offset += len(values)
        parts.append(values)
    remap, names = pd.factorize(np.concatenate(parts) if parts else np.zeros(0, dtype=object))
    return remap[codes], np.asarray(names, dtype=object)


def _label_rows(frame: pd.DataFrame, files: list[str]) -> np.ndarray:
    """'FILE line N' for each row of `frame` (used in messages that point at another row)."""
    names = np.array(files, dtype=object)[frame["_file"].to_numpy()]
    return np.array([f"{n} line {l}" for n, l in zip(names, frame["_line"].to_numpy())], dtype=object)


@dataclasses.dataclass
class CleanRows:
    """Valid, de-duplicated ratings as integer codes into `names` (absolute video paths, prompts, ...).

    ``rows`` has columns ``video``, ``prompt``, ``dimension``, ``annotator`` (codes), ``label``
    (1/0), ``_file`` and ``_line``; ``names[column][code]`` is the string.
    """

    rows: pd.DataFrame
    names: dict[str, np.ndarray]


def validate(frame: pd.DataFrame, files: list[str], config: LabelImportConfig,
             show_progress: bool = False) -> tuple[CleanRows, _Rejections, int]:
    """Check every row; returns (clean rows, rejections, number of exact duplicates removed)."""
    n = len(frame)
    rej = _Rejections(n)
    rej.add(frame["_pre"].to_numpy() != "", "invalid_row", None, frame["_pre"].to_numpy(dtype=object))
    clean = {c: frame[c].str.strip() for c in ("video_path", "prompt", "dimension", "annotator")}
    for column in ("video_path", "prompt", "dimension", "annotator"):
        rej.add((clean[column] == "").to_numpy(), "empty_field", column,
                f"empty or missing {column}; expected a non-empty value")
    label = frame["label"].str.strip().str.lower().map(_LABEL_VALUES)
    bad_label = label.isna().to_numpy()
    if bad_label.any():
        messages = np.empty(n, dtype=object)
        messages[bad_label] = [f"unknown label '{v}'; expected {_EXPECTED_LABELS}"
                               for v in frame["label"].to_numpy(dtype=object)[bad_label]]
        rej.add(bad_label, "unknown_label", "label", messages)
    label = label.fillna(-1).to_numpy(dtype=np.int8)

    video_code, video_names = _resolve_paths(frame, clean["video_path"], files, config.video_root)
    if config.check_videos:
        candidates = np.unique(video_code[~rej.rejected])
        exists = np.array([os.path.isfile(video_names[c]) for c in tqdm(
            candidates, desc="checking video files", unit=" files", disable=not show_progress)], dtype=bool)
        missing = np.isin(video_code, candidates[~exists])
        if missing.any():
            messages = np.empty(n, dtype=object)
            messages[missing] = [f"video file does not exist: {video_names[c]}" for c in video_code[missing]]
            rej.add(missing, "missing_video", "video_path", messages)

    codes, names = {"video": video_code}, {"video": video_names}
    for column in ("prompt", "dimension", "annotator"):
        column_codes, uniques = pd.factorize(clean[column])
        codes[column], names[column] = column_codes, np.asarray(uniques, dtype=object)
    _check_prompts(frame, files, rej, codes["video"], codes["prompt"], names["prompt"])

    ok = ~rej.rejected
    ok_rows = np.flatnonzero(ok)
    keys = pd.DataFrame({c: codes[c][ok] for c in ("video", "dimension", "annotator")})
    group = keys.groupby(["video", "dimension", "annotator"], sort=False).ngroup().to_numpy()
    passes = np.bincount(group, weights=label[ok])
    conflict_group = (passes > 0) & (passes < np.bincount(group))
    in_conflict = conflict_group[group]
    conflict_rows = ok_rows[in_conflict]
    if len(conflict_rows):
        sub = frame.iloc[conflict_rows]
        described = pd.Series([f"{w} ({t})" for w, t in zip(_label_rows(sub, files),
                                                              sub["label"].to_numpy(dtype=object))])
        listing = described.groupby(group[in_conflict]).transform(lambda s: ", ".join(s)).to_numpy()
        messages = np.empty(n, dtype=object)
        messages[conflict_rows] = [f"conflicting duplicate: the same video, dimension and annotator "
                                   f"have different labels at {lst}" for lst in listing]
        mask = np.zeros(n, dtype=bool)
        mask[conflict_rows] = True
        rej.add(mask, "conflicting_duplicate", "label", messages)

    remaining_group = group[~in_conflict]
    duplicated = pd.Series(remaining_group).duplicated().to_numpy()
    keep = ok_rows[~in_conflict][~duplicated]
    rows = pd.DataFrame({c: codes[c][keep] for c in ("video", "prompt", "dimension", "annotator")})
    rows["label"] = label[keep]
    rows["_file"] = frame["_file"].to_numpy()[keep]
    rows["_line"] = frame["_line"].to_numpy()[keep]
    return CleanRows(rows, names), rej, int(duplicated.sum())


def _check_prompts(frame: pd.DataFrame, files: list[str], rej: _Rejections, video_code: np.ndarray,
                   prompt_code: np.ndarray, prompt_values: np.ndarray) -> None:
    """Reject rows whose prompt differs from the video's most frequent prompt (ties: first seen)."""
    ok = ~rej.rejected
    if not ok.any():
        return
    n_prompts = max(len(prompt_values), 1)
    combined = video_code[ok].astype(np.int64) * n_prompts + prompt_code[ok]
    unique_pairs = np.unique(combined)
    prompts_per_video = np.bincount(unique_pairs // n_prompts)
    bad_videos = np.flatnonzero(prompts_per_video > 1)
    if not len(bad_videos):
        return
    rows = np.flatnonzero(ok & np.isin(video_code, bad_videos))
    sub = pd.DataFrame({"v": video_code[rows], "p": prompt_code[rows], "order": rows})
    stats = sub.groupby(["v", "p"]).agg(count=("order", "size"), first=("order", "min")).reset_index()
    stats = stats.sort_values(["v", "count", "first"], ascending=[True, False, True])
    canonical = stats.drop_duplicates("v").set_index("v")
    canon_prompt = canonical["p"].reindex(sub["v"]).to_numpy()
    canon_first = canonical["first"].reindex(sub["v"]).to_numpy()
    differs = sub["p"].to_numpy() != canon_prompt
    where = _label_rows(frame.iloc[canon_first[differs]], files)
    messages = np.empty(len(frame), dtype=object)
    messages[rows[differs]] = [f"inconsistent prompt for the same video: '{prompt_values[p]}' here but "
                               f"'{prompt_values[c]}' at {w}"
                               for p, c, w in zip(sub["p"].to_numpy()[differs], canon_prompt[differs], where)]
    mask = np.zeros(len(frame), dtype=bool)
    mask[rows[differs]] = True
    rej.add(mask, "inconsistent_prompt", "prompt", messages)


# ----------------------------------------------------------------------------------------------
# Aggregation


def _rank(names: np.ndarray) -> np.ndarray:
    """Position of each name in sorted order."""
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return rank


def aggregate(clean: CleanRows, min_agreement: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Majority vote per (video, dimension); returns the label table and each clean row's unit index.

    The table is sorted by video_path, then dimension.
    """
    rows, names = clean.rows, clean.names
    n_dims = len(names["dimension"])
    unit_key = rows["video"].to_numpy(dtype=np.int64) * n_dims + rows["dimension"].to_numpy()
    unit_keys, first_row, unit_of_row = np.unique(unit_key, return_index=True, return_inverse=True)
    video, dimension = unit_keys // n_dims, unit_keys % n_dims
    n = np.bincount(unit_of_row).astype(np.int64)
    n_pass = np.bincount(unit_of_row, weights=rows["label"].to_numpy()).astype(np.int64)
    n_fail = n - n_pass
    agreement = np.maximum(n_pass, n_fail) / n
    split = n_pass == n_fail
    low = ~split & (agreement < min_agreement - 1e-12)
    order = np.lexsort((_rank(names["dimension"])[dimension], _rank(names["video"])[video]))
    label = pd.array(np.where(n_pass > n_fail, 1, 0), dtype="Int64")
    label[split | low] = pd.NA
    table = pd.DataFrame({
        "video_path": names["video"][video],
        "prompt": names["prompt"][rows["prompt"].to_numpy()[first_row]],
        "dimension": names["dimension"][dimension],
        "label": label,
        "n_pass": n_pass,
        "n_fail": n_fail,
        "n_annotators": n,
        "agreement": agreement,
        "status": np.where(split, "split", np.where(low, "low_agreement", "ok")).astype(object),
    }).iloc[order].reset_index(drop=True)
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return table, position[unit_of_row]


# ----------------------------------------------------------------------------------------------
# Orchestration


def _rejects_frame(frame: pd.DataFrame, rej: _Rejections, files: list[str]) -> pd.DataFrame:
    rows = np.flatnonzero(rej.rejected)
    out = frame.iloc[rows][list(ANNOTATION_COLUMNS)].astype(object).reset_index(drop=True)
    out["source_file"] = np.array(files, dtype=object)[frame["_file"].to_numpy()[rows]]
    out["row"] = frame["_line"].to_numpy()[rows]
    out["reason"] = rej.reason[rows]
    out["kind"] = rej.kind[rows]
    out["field"] = rej.field[rows]
    return out


def import_annotations(config: LabelImportConfig) -> LabelImport:
    """Read, validate and aggregate the annotation files of `config` (writes nothing).

    With ``on_error='fail'`` the first bad row raises InputError naming file, line and field.
    """
    show = _show_progress(config)
    frame, files, kinds = read_annotation_files(config.input, show)
    clean, rej, duplicates = validate(frame, files, config, show)
    n_rejected = int(rej.rejected.sum())
    rejects = _rejects_frame(frame, rej, files)
    by_kind = {str(k): int(v) for k, v in rejects["kind"].value_counts().sort_index().items()}
    if n_rejected and config.on_error == "fail":
        first = rejects.iloc[0]
        file_index = files.index(first["source_file"])
        more = (f"; {n_rejected} rows rejected in all ({', '.join(f'{k} {v}' for k, v in by_kind.items())})"
                if n_rejected > 1 else "")
        raise InputError(f"{_where(kinds[file_index], int(first['row']))}: {first['reason']}{more}. "
                         "Nothing was written; rerun with on_error 'skip' and a rejects file to drop and list bad rows",
                         file=first["source_file"], row=int(first["row"]), field=first["field"])
    if clean.rows.empty:
        raise InputError("no valid annotation rows remain", file=", ".join(files))
    table, unit_of_row = aggregate(clean, config.min_agreement)
    report = label_report(table, clean.rows, clean.names, unit_of_row)
    report["summary"] = {
        "files": files, "rows_read": int(len(frame)), "rows_rejected": n_rejected,
        "rejected_by_kind": by_kind, "duplicates_removed": duplicates,
        "rows_used": int(len(clean.rows)), "videos": int(table["video_path"].nunique()),
        "dimensions": sorted(table["dimension"].unique().tolist()), "labels": int(len(table)),
        "split": int((table["status"] == "split").sum()),
        "low_agreement": int((table["status"] == "low_agreement").sum()),
        "min_agreement": config.min_agreement, "output": str(config.output),
    }
    return LabelImport(table=table, report=report, rejects=rejects)


def _output_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ConfigError(f"unsupported extension '{suffix}'; expected .jsonl or .parquet", field="output")
    return suffix


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the label table atomically as JSONL (label null when undecided) or parquet."""
    if _output_format(str(path)) == ".parquet":
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)
        return
    text = [table[c].to_numpy(dtype=object) for c in ("video_path", "prompt", "dimension", "status")]
    video, prompt, dimension, status = ([encode_basestring(v) for v in column] for column in text)
    label = ["null" if v is None else str(v) for v in table["label"].to_numpy(dtype=object, na_value=None)]
    counts = [table[c].to_numpy().tolist() for c in ("n_pass", "n_fail", "n_annotators")]
    agreement = [repr(v) for v in table["agreement"].to_numpy(dtype=float).tolist()]
    lines = [f'{{"video_path": {v}, "prompt": {p}, "dimension": {d}, "label": {lab}, "n_pass": {a}, '
             f'"n_fail": {b}, "n_annotators": {c}, "agreement": {g}, "status": {s}}}\n'
             for v, p, d, lab, a, b, c, g, s in zip(video, prompt, dimension, label, *counts, agreement, status)]
    with atomic_write(path, encoding="utf-8") as handle:
        handle.writelines(lines)


def read_label_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a label table (.jsonl or .parquet); missing columns are an InputError naming them."""
    path = Path(path)
    if not path.is_file():
        raise InputError("label table does not exist", file=str(path))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = pd.read_parquet(path)
    elif suffix == ".jsonl":
        try:
            table = pa_json.read_json(path).to_pandas()
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = pd.DataFrame(read_jsonl(path))       # slower, but names the bad line
    else:
        raise InputError(f"unsupported extension '{suffix}'; expected .jsonl or .parquet", file=str(path))
    for column in ("video_path", "prompt", "dimension", "label"):
        if column not in table.columns:
            raise InputError(f"missing column; a label table (from `solireward labels`) has columns "
                             f"{', '.join(LABEL_TABLE_COLUMNS)}", file=str(path), field=column)
    return table


def write_outputs(result: LabelImport, config: LabelImportConfig) -> None:
    """Write the table, the report (JSON + Markdown) and the rejects file; log a summary line."""
    write_table(result.table, config.output)
    report_dir = Path(config.report_dir) if config.report_dir else Path(config.output).parent
    write_json(report_dir / "label_report.json", result.report)
    write_text(report_dir / "label_report.md", report_markdown(result.report))
    s = result.report["summary"]
    if config.rejects:                               # written even when empty, so it always exists
        rejects = result.rejects.drop(columns=["kind", "field"])
        if Path(config.rejects).suffix.lower() in (".jsonl", ".json"):
            with atomic_path(config.rejects) as tmp, open(tmp, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(r, ensure_ascii=False, default=int) + "\n"
                                  for r in rejects.to_dict(orient="records"))
        else:
            with atomic_path(config.rejects) as tmp:
                rejects.to_csv(tmp, index=False)
    if s["rows_rejected"]:
        logger.warning("skipped %d bad row(s)%s", s["rows_rejected"],
                       f"; listed in {config.rejects}" if config.rejects else " (give a rejects file to list them)")
    logger.info("labels: %d rows read, %d rejected, %d exact duplicates removed; %d videos, %d dimension(s) "
                "(%s); %d labels (%d split, %d low agreement) -> %s", s["rows_read"], s["rows_rejected"],
                s["duplicates_removed"], s["videos"], len(s["dimensions"]), ", ".join(s["dimensions"]),
                s["labels"], s["split"], s["low_agreement"], config.output)
