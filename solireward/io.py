"""Atomic file output and the small readers every stage uses (JSON, tables, a pair's quality)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from solireward.errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _make_readable(file: str | os.PathLike) -> None:
    """mkstemp and safetensors create files 0600; widen them to the umask's mode (execute bits kept)."""
    os.chmod(file, (os.stat(file).st_mode & 0o777) | (0o666 & ~_UMASK))


def make_tree_readable(folder: str | os.PathLike) -> None:
    """Give `folder` and everything under it the umask's modes, so others can read shared results."""
    os.chmod(folder, 0o777 & ~_UMASK)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~_UMASK)
        for name in files:
            _make_readable(os.path.join(root, name))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` for writers that take a file name (pandas, savefig);
    it replaces `path` only if the block succeeds, and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix: writers such as savefig and PyAV choose the format from it
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` (even a non-empty one) if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(tmp: Path, target: Path) -> None:
    """Make folder `tmp` readable and rename it to `target`, replacing a folder there (moved aside first, removed
    after), so `target` is always either the old folder or the new one."""
    make_tree_readable(tmp)  # mkdtemp and safetensors make private files; results should not be
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it over `path` only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write JSON atomically."""
    with atomic_write(path, encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_write(path, encoding="utf-8") as f:
        f.write(text)


def relative_path(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """`path` relative to `folder` (both resolved), with '/' separators: what an output records of its inputs,
    so that a results folder moved or copied whole stays valid."""
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()


def markdown_cell(value: Any, digits: int = 4, missing: str = "–", signed: bool = False) -> str:
    """A Markdown table cell: a float to `digits` decimals (with its sign if `signed`), None or NaN as
    `missing`, anything else as ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    if isinstance(value, float):
        return f"{value:{'+' if signed else ''}.{digits}f}"
    return str(value)


def resolve_video_path(path: str, base: str | os.PathLike) -> str:
    """A video path as a file writes it, made absolute and normalised: `~` expanded, and a relative path
    joined to `base` (``--video_root``, or the folder of the file that names the video)."""
    return os.path.normpath(os.path.join(os.path.abspath(base), os.path.expanduser(path)))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file does not exist", file=str(path))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                         file=str(path)) from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON Lines; each bad line is reported with its 1-based line number."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file does not exist", file=str(path))
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", file=str(path), row=lineno) from None
            if not isinstance(obj, dict):
                raise InputError("expected a JSON object", file=str(path), row=lineno)
            rows.append(obj)
    return rows


def pair_quality(meta: Any, side: str, file: str, row: int, default: float | None = None) -> float:
    """``meta[side]["quality"]`` of one pair of a pair file: a finite number (not a bool).

    With `default`, a pair without ``meta``, or a ``meta`` without that side or quality, gets `default`
    (evaluation reads a pair without qualities as win-lose); without it they are errors (training needs
    the labels). Anything else malformed is an InputError naming the file, row and field.
    """
    if meta is None and default is not None:
        return default
    if not isinstance(meta, dict) or not isinstance(meta.get(side, {}), dict):
        raise InputError("expected meta = {'win': {'quality': q}, 'lose': {'quality': q}}", file=file, row=row,
                         field="meta")
    entry = meta.get(side, {})
    if "quality" not in entry and default is not None:
        return default
    value = entry.get("quality")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"expected a finite number, got {value!r}", file=file, row=row,
                         field=f"meta.{side}.quality")
    return float(value)


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read a list of records from .json (a list), .jsonl, .csv, .tsv or .parquet: the one reader of record files.

    CSV/TSV cells are strings (a UTF-8 byte-order mark is dropped, empty cells are ""); parquet keeps its
    types, with nested structs as dicts. An unreadable file is an InputError naming it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError("expected a JSON list of objects", file=str(path))
        return data
    if suffix not in (".csv", ".tsv", ".parquet"):
        raise InputError(f"unsupported extension '{suffix}'; expected .json, .jsonl, .csv, .tsv or .parquet",
                         file=str(path))
    import pandas as pd

    if not path.is_file():
        raise InputError("file does not exist", file=str(path))
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"not a readable {suffix.lstrip('.')} file ({exc})", file=str(path)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.to_dict(orient="records")
