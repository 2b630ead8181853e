"""Reading annotation files (CSV or JSON Lines) of `solireward labels` into one frame, every cell a string."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
from tqdm import tqdm

from solireward.errors import ConfigError, InputError

ANNOTATION_COLUMNS = ("video_path", "prompt", "dimension", "label", "annotator")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise InputError("the file is empty; expected a header line with columns "
                         f"{', '.join(ANNOTATION_COLUMNS)}", file=str(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV file ({exc})", file=str(path)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in ANNOTATION_COLUMNS:
        if column not in frame.columns:
            raise InputError(f"missing column; expected columns {', '.join(ANNOTATION_COLUMNS)}, "
                             f"found {', '.join(frame.columns)}", file=str(path), field=column)
    frame = frame[list(ANNOTATION_COLUMNS)].copy()
    frame["_line"] = np.arange(2, len(frame) + 2, dtype=np.int64)
    frame["_pre"] = ""
    return frame


def _nonblank_line_numbers(path: Path) -> np.ndarray:
    """1-based numbers of the lines of `path` that hold anything but whitespace."""
    data = np.fromfile(path, dtype=np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(data == ord("\n")) + 1])
    starts = starts[starts < len(data)]
    visible = np.ones(256, dtype=bool)
    visible[list(b" \t\r\n")] = False
    if visible[data[starts]].all():                 # every line starts with a visible character
        return np.arange(1, len(starts) + 1)
    return np.flatnonzero(np.logical_or.reduceat(visible[data], starts)) + 1


def _read_jsonl_fast(path: Path) -> pd.DataFrame | None:
    """Columnar JSONL read with pyarrow; None when the file needs the line-by-line reader.

    That is the case for a malformed line, a field whose type changes between lines, or a
    nested value: the slow reader then names the offending line.
    """
    try:
        table = pa_json.read_json(path)
        columns = {c: table.column(c).cast(pa.string()).fill_null("").to_pandas()
                   for c in ANNOTATION_COLUMNS if c in table.column_names}
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    lines = _nonblank_line_numbers(path)
    if len(lines) != table.num_rows or not table.num_rows:
        return None
    for column in ANNOTATION_COLUMNS:
        if column not in columns:
            raise InputError(f"missing field in every row; expected fields {', '.join(ANNOTATION_COLUMNS)}",
                             file=str(path), field=column)
    frame = pd.DataFrame(columns)
    frame["_line"] = lines
    frame["_pre"] = ""
    return frame


def _read_jsonl(path: Path, show_progress: bool) -> pd.DataFrame:
    fast = _read_jsonl_fast(path)
    if fast is not None:
        return fast
    columns: dict[str, list] = {c: [] for c in ANNOTATION_COLUMNS}
    lines, pre, seen = [], [], set()
    with path.open(encoding="utf-8-sig") as handle:
        for lineno, text in enumerate(tqdm(handle, desc=f"reading {path.name}", unit=" lines",
                                           disable=not show_progress), start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
                problem = "" if isinstance(obj, dict) else "expected a JSON object"
            except json.JSONDecodeError as exc:
                obj, problem = None, f"not valid JSON ({exc.msg})"
            if problem:
                obj = {}
            else:
                seen.update(obj)
            for column in ANNOTATION_COLUMNS:
                value = obj.get(column)
                columns[column].append("" if value is None else str(value))
            lines.append(lineno)
            pre.append(problem)
    if not lines:
        raise InputError("the file holds no annotation rows", file=str(path))
    for column in ANNOTATION_COLUMNS:
        if column not in seen and any(not p for p in pre):
            raise InputError(f"missing field in every row; expected fields {', '.join(ANNOTATION_COLUMNS)}",
                             file=str(path), field=column)
    frame = pd.DataFrame({c: pd.array(v, dtype="str") for c, v in columns.items()})
    frame["_line"] = np.asarray(lines, dtype=np.int64)
    frame["_pre"] = pd.array(pre, dtype="str")
    return frame


def read_annotation_files(paths: list[str], show_progress: bool = False) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Read annotation files into one frame (raw string fields + ``_file``, ``_line``, ``_pre``).

    Returns ``(frame, files, kinds)`` where ``_file`` indexes ``files`` and ``kinds`` is
    ``csv``/``jsonl`` per file.
    """
    frames, files, kinds = [], [], []
    for index, name in enumerate(paths):
        path = Path(name)
        if not path.is_file():
            raise InputError("annotation file does not exist", file=str(path))
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame, kind = _read_csv(path), "csv"
        elif suffix in (".jsonl", ".ndjson"):
            frame, kind = _read_jsonl(path, show_progress), "jsonl"
        else:
            raise InputError(f"unsupported extension '{suffix}'; expected .csv or .jsonl", file=str(path))
        frame["_file"] = np.int32(index)
        frames.append(frame)
        files.append(str(path))
        kinds.append(kind)
    if not frames:
        raise ConfigError("no annotation file given", field="input")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame, files, kinds
