"""An on-disk memo of decoded clips, shared by the processes of a study.

A study reads the same few thousand small clips in dozens of processes: every model scores the test videos,
the probe's and the over-optimisation grid's, and every training decodes its training videos. Decoding and
resizing a 64x64 demo clip takes about 3 ms, some 90 CPU-seconds of a demo run. With ``SOLIREWARD_FRAME_CACHE``
set to a folder (the workflow sets ``results/<study>/frame_cache``), :func:`solireward.data.video.read_video_and_fps`
and :func:`~solireward.data.video.read_all_frames` keep each result there under a key of the file (resolved
path, size and modification time), the backend and the sampling, and later reads with the same key load it.
A changed file has another key, so it is read afresh.

Only files of at most :data:`MAX_FILE_BYTES` are kept (clips, not films), compressed; each entry is written to
a temporary file and renamed, so processes can share the folder, and an entry that cannot be loaded is read
afresh and written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from solireward.io import atomic_path

ENV = "SOLIREWARD_FRAME_CACHE"
MAX_FILE_BYTES = 1 << 20


def entry(path: str | os.PathLike, backend: str, sampling: dict[str, Any] | None) -> Path | None:
    """Where the result of reading `path` with `backend` and `sampling` (None: every frame) is kept; None when
    no cache is set, or the file is too large or cannot be stat-ed."""
    folder = os.environ.get(ENV)
    if not folder:
        return None
    try:
        real = os.path.realpath(path)
        stat = os.stat(real)
    except OSError:
        return None
    if stat.st_size > MAX_FILE_BYTES:
        return None
    key = json.dumps([real, stat.st_size, stat.st_mtime_ns, backend, sampling], sort_keys=True)
    return Path(folder) / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"


def memo(path: str | os.PathLike, backend: str, sampling: dict[str, Any] | None,
         read: Callable[[], tuple[np.ndarray, float | None]]) -> tuple[np.ndarray, float | None]:
    """The frames and rate of reading `path` with `backend` and `sampling`: kept ones when the cache has them,
    else `read()`'s, which are then kept."""
    where = entry(path, backend, sampling)
    kept = _load(where)
    if kept is not None:
        return kept
    frames, rate = read()
    _store(where, frames, rate)
    return frames, rate


def _load(where: Path | None) -> tuple[np.ndarray, float | None] | None:
    """The frames and rate kept at `where`, or None when there are none (or they cannot be read)."""
    if where is None:
        return None
    try:
        with np.load(where) as kept:
            rate = float(kept["rate"])
            return kept["frames"], (None if np.isnan(rate) else rate)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _store(where: Path | None, frames: np.ndarray, rate: float | None) -> None:
    """Keep `frames` and `rate` at `where` (atomically; a folder that cannot be written is left alone)."""
    if where is None:
        return
    try:
        with atomic_path(where) as tmp:  # keeps the .npz suffix, which numpy would otherwise add
            np.savez_compressed(tmp, frames=frames, rate=np.float64(np.nan if rate is None else rate))
    except OSError:
        return
