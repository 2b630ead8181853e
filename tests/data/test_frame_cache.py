"""The frame cache: a read with SOLIREWARD_FRAME_CACHE set equals one without, is kept for the next process, and
a changed, damaged or large file never serves stale or broken frames."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from solireward.data import frame_cache
from solireward.data.video import FrameSampling, read_all_frames, read_video_and_fps
from solireward.data.video_write import write_video

SAMPLING = FrameSampling(num_frames=6, height=24, width=32, exposure=90)


def _clip(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    write_video(path, rng.integers(0, 256, (12, 32, 48, 3), dtype=np.uint8), fps=6)
    return path


def _uncached(path: Path, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as m:
        m.delenv(frame_cache.ENV, raising=False)
        return read_video_and_fps(path, SAMPLING), read_all_frames(path)


def test_a_cached_read_equals_a_decode_and_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = _clip(tmp_path / "a.mp4", 0)
    (frames, rate), (every, fps) = _uncached(clip, monkeypatch)
    monkeypatch.setenv(frame_cache.ENV, str(tmp_path / "cache"))
    for _ in range(2):  # the first read decodes and keeps, the second loads
        got, got_rate = read_video_and_fps(clip, SAMPLING)
        assert got.dtype == np.uint8 and np.array_equal(got, frames) and got_rate == rate
        got_every, got_fps = read_all_frames(clip)
        assert np.array_equal(got_every, every) and got_fps == fps
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # one per sampling, none left half-written
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_a_changed_file_is_read_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = _clip(tmp_path / "a.mp4", 0)
    monkeypatch.setenv(frame_cache.ENV, str(tmp_path / "cache"))
    before = read_video_and_fps(clip, SAMPLING)[0]
    _clip(clip, 1)
    os.utime(clip, ns=(1, 10**18))  # another modification time, whatever the clock's resolution
    after = read_video_and_fps(clip, SAMPLING)[0]
    assert np.array_equal(after, _uncached(clip, monkeypatch)[0][0]) and not np.array_equal(after, before)


def test_a_damaged_entry_is_decoded_again_and_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = _clip(tmp_path / "a.mp4", 0)
    monkeypatch.setenv(frame_cache.ENV, str(tmp_path / "cache"))
    frames = read_video_and_fps(clip, SAMPLING)[0]
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(b"not an npz")
    assert np.array_equal(read_video_and_fps(clip, SAMPLING)[0], frames)
    with np.load(entry) as rewritten:  # the damaged entry was written again
        assert np.array_equal(rewritten["frames"], frames)


def test_large_files_and_an_unset_cache_keep_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = _clip(tmp_path / "a.mp4", 0)
    monkeypatch.delenv(frame_cache.ENV, raising=False)
    assert frame_cache.entry(clip, "auto", None) is None
    monkeypatch.setenv(frame_cache.ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(frame_cache, "MAX_FILE_BYTES", clip.stat().st_size - 1)
    read_video_and_fps(clip, SAMPLING)
    assert not (tmp_path / "cache").exists()
