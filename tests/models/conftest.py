"""Fixtures of the model tests: two real mp4 files of the demo data set and their decoded frames."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def mp4_videos(demo_dir: Path) -> list[Path]:
    """Two demo videos of different prompts (written by `solireward demo-data`)."""
    with (demo_dir / "annotations.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    first = rows[0]
    second = next(r for r in rows if r["prompt"] != first["prompt"])
    return [demo_dir / first["video_path"], demo_dir / second["video_path"]]


@pytest.fixture(scope="session")
def video_frames(mp4_videos: list[Path]) -> list[np.ndarray]:
    """The two videos decoded with the default frame sampling (8 segments)."""
    from solireward.data.video import FrameSampling, read_video

    return [read_video(p, FrameSampling()) for p in mp4_videos]
