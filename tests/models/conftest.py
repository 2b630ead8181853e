"""Fixtures of the model tests: two real mp4 files and their decoded frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _write_mp4(path: Path, num_frames: int, size: int, seed: int) -> None:
    """A moving bright square on a noisy background, encoded with PyAV (yuv420p)."""
    import av

    rng = np.random.default_rng(seed)
    background = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(num_frames):
            frame = background.copy()
            x = (4 * t) % (size - 16)
            frame[20:36, x:x + 16] = (255, 200 - 8 * seed, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="session")
def mp4_videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two short real mp4 files of different lengths and sizes."""
    out = tmp_path_factory.mktemp("mp4")
    paths = [out / "a.mp4", out / "b.mp4"]
    _write_mp4(paths[0], num_frames=12, size=64, seed=1)
    _write_mp4(paths[1], num_frames=20, size=96, seed=2)
    return paths


@pytest.fixture(scope="session")
def video_frames(mp4_videos: list[Path]) -> list[np.ndarray]:
    """The two videos decoded with the default frame sampling (8 segments)."""
    from solireward.data.video import FrameSampling, read_video

    return [read_video(p, FrameSampling(), backend="pyav") for p in mp4_videos]
