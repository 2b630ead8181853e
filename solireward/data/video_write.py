"""Writing frames as mp4 files: deterministic H.264 (or MPEG-4) in yuv420p, the demo data's and the probe's."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame as planar yuv420p, shape (H * 3 // 2, W): BT.601, limited range.

    Done here rather than by FFmpeg's scaler, whose output was seen to vary from run to run
    under heavy CPU load, which broke the demo data's reproducibility.
    """
    rgb = frame.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    height, width = y.shape

    def subsample(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)).reshape(height // 4, width)

    planes = np.concatenate([y, subsample(cb), subsample(cr)])
    return np.clip(np.round(planes), 0, 255).astype(np.uint8)


def video_codec() -> str:
    """The encoder `write_video` uses: libx264 when PyAV's FFmpeg has it, else mpeg4."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: float = 8.0,
                quality: int = 18, codec: str | None = None) -> None:
    """Encode (T, H, W, 3) uint8 frames (even H and W) as an mp4 (yuv420p), atomically.

    `codec` defaults to :func:`video_codec`. `quality` is libx264's CRF (lower is better; 18 is
    visually lossless), mapped to mpeg4's fixed quantiser 2..31 (quality // 6). The same frames give the
    same bytes on any load and any CPU: one encoder thread (libx264's lookahead and slice threads too),
    libx264's portable C code instead of its CPU-specific assembly (whose AVX-512 routines gave one clip
    three different files in 25 encodes; x264's assembly is meant to match the C code bit for bit, so
    the files are those a correct assembly path writes, at about twice the encoding time), and bit-exact
    container and codec metadata (no encoder version string, no creation time).
    """
    import av
    from fractions import Fraction

    from solireward.io import atomic_path

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected non-empty (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {height}x{width}")
    codec = codec or video_codec()
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1
            if codec == "libx264":
                stream.options = {"crf": str(quality), "preset": "medium", "threads": "1", "flags": "+bitexact",
                                  "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0:asm=0"}
            else:
                q = str(max(2, min(31, quality // 6)))
                stream.options = {"qmin": q, "qmax": q, "threads": "1", "flags": "+bitexact"}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")))
            container.mux(stream.encode())
