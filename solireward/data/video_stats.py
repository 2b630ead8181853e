"""Cheap statistics of one video, the candidates of `solireward audit-labels` for a label shortcut.

Every statistic is computed on at most ``max_frames`` frames taken evenly across the video at its native
size (all frames of a short video, so the frame-to-frame ones are between neighbouring frames):

* ``mean_luma``: mean luma (Rec. 601, 0-255) over every pixel of every frame;
* ``contrast``: RMS contrast, the standard deviation of luma within a frame, averaged over frames;
* ``saturation``: mean HSV saturation, (max - min) / max of the RGB values (0 for black), over all pixels;
* ``sharpness``: mean absolute 4-neighbour Laplacian of luma, a focus and edge measure;
* ``motion_energy``: mean absolute luma change between consecutive taken frames;
* ``foreground_area``: the share of pixels that differ from the video's per-pixel median frame by more
  than ``FOREGROUND_THRESHOLD`` in some channel, averaged over frames: the area of what moves over a
  static background (0 where nothing moves, so not measurable there);
* ``duration`` (seconds, 0 when the frame rate is unknown), ``frame_rate`` and ``resolution``
  (height x width pixels), from the container.
"""

from __future__ import annotations

import os

import numpy as np

from solireward.data.video import FrameSampling, read_video, video_info

STATISTICS = ("mean_luma", "contrast", "saturation", "sharpness", "motion_energy", "foreground_area",
              "duration", "frame_rate", "resolution")
FOREGROUND_THRESHOLD = 30  # channel difference (0-255) from the median frame that counts as foreground
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def frame_statistics(frames: np.ndarray) -> dict[str, float]:
    """The pixel statistics of (T, H, W, 3) uint8 frames (every statistic but the container's)."""
    pixels = frames.astype(np.float32)
    luma = pixels @ _LUMA
    high, low = pixels.max(axis=-1), pixels.min(axis=-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1.0), 0.0)
    laplacian = (4 * luma[:, 1:-1, 1:-1] - luma[:, :-2, 1:-1] - luma[:, 2:, 1:-1]
                 - luma[:, 1:-1, :-2] - luma[:, 1:-1, 2:])
    median = np.median(frames, axis=0)
    moving = (np.abs(pixels - median).max(axis=-1) > FOREGROUND_THRESHOLD)
    return {
        "mean_luma": float(luma.mean()),
        "contrast": float(luma.reshape(len(luma), -1).std(axis=1).mean()),
        "saturation": float(saturation.mean()),
        "sharpness": float(np.abs(laplacian).mean()) if laplacian.size else 0.0,
        "motion_energy": float(np.abs(np.diff(luma, axis=0)).mean()) if len(luma) > 1 else 0.0,
        "foreground_area": float(moving.mean()),
    }


def video_statistics(path: str | os.PathLike, max_frames: int = 64, timeout_s: float | None = 60.0
                     ) -> dict[str, float]:
    """Every statistic of :data:`STATISTICS` for one video file; a VideoReadError when it cannot be read."""
    info = video_info(path, timeout_s=timeout_s)
    count = max(1, min(info.num_frames, max_frames))
    sampling = (FrameSampling(mode="fps", fps=info.fps * count / max(info.num_frames, 1), min_frames=1,
                              max_frames=count) if info.fps > 0 else FrameSampling(mode="segments", num_frames=count))
    stats = frame_statistics(read_video(path, sampling, timeout_s=timeout_s))
    stats.update(duration=info.num_frames / info.fps if info.fps > 0 else 0.0, frame_rate=float(info.fps),
                 resolution=float(info.height * info.width))
    return {name: stats[name] for name in STATISTICS}
