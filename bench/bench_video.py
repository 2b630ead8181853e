"""Video reading speed: solireward's reader against a plain PyAV read, side by side on the same files.

Generates demo videos (default 50 videos of 120 frames, 128x128, 24 fps) in a temporary folder,
then reads every file with

* ours, decord, segment sampling (8 frames)            -- the InternVL path
* ours, decord, fps sampling (2 fps)                    -- the Qwen path
* ours, pyav backend, segment sampling (8 frames)
* baseline: PyAV opens the file, decodes every frame to RGB, then picks the same 8 frames

and prints videos per second (best of --repeats passes, files in the page cache) and the speed-up
of each over the baseline. Goal: the decord readers >= ``VIDEO_MIN_SPEEDUP`` x the baseline
(bench/goals.py). Run: ``OMP_NUM_THREADS=1 python bench/bench_video.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from goals import VIDEO_MIN_SPEEDUP
from solireward.data.synthetic import DemoDataConfig, generate_demo_data
from solireward.data.video import FrameSampling, read_video, segment_indices


def plain_pyav(path: str, num_frames: int = 8) -> np.ndarray:
    """The naive reader: decode every frame to RGB, then take the segment-sampled ones."""
    import av

    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack([frames[i] for i in segment_indices(len(frames), num_frames)])


def videos_per_second(read: Callable[[str], np.ndarray], paths: list[str], repeats: int) -> float:
    """Best throughput over `repeats` passes over all files."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            read(path)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=50, help="number of videos (default: 50)")
    parser.add_argument("--frames", type=int, default=120, help="frames per video (default: 120)")
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels (default: 128)")
    parser.add_argument("--fps", type=float, default=24.0, help="frame rate of the videos (default: 24)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per reader; the best counts (default: 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        generate_demo_data(DemoDataConfig(output_dir=tmp, num_prompts=max(1, args.videos // 5),
                                          videos_per_prompt=5, num_frames=args.frames, size=args.size,
                                          fps=args.fps))
        paths = sorted(str(p) for p in Path(tmp, "videos").glob("*.mp4"))
        segments, fps2 = FrameSampling(mode="segments", num_frames=8), FrameSampling(mode="fps", fps=2.0)
        reference = plain_pyav(paths[0])
        assert np.array_equal(read_video(paths[0], segments, backend="pyav"), reference)
        assert np.abs(read_video(paths[0], segments).astype(int) - reference).mean() < 3

        readers = {
            "baseline: plain PyAV, decode all, pick 8": plain_pyav,
            "ours: decord, segments (8 frames)": lambda p: read_video(p, segments, backend="decord"),
            f"ours: decord, fps 2 ({len(read_video(paths[0], fps2))} frames)":
                lambda p: read_video(p, fps2, backend="decord"),
            "ours: pyav, segments (8 frames)": lambda p: read_video(p, segments, backend="pyav"),
        }
        print(f"{len(paths)} videos, {args.frames} frames, {args.size}x{args.size}, {args.fps:g} fps")
        baseline = None
        for name, read in readers.items():
            rate = videos_per_second(read, paths, args.repeats)
            baseline = baseline or rate
            verdict = ""
            if name.startswith("ours: decord"):
                met = rate / baseline >= VIDEO_MIN_SPEEDUP
                verdict = f"   (goal >= {VIDEO_MIN_SPEEDUP:g}x: {'met' if met else 'NOT met'})"
            print(f"{name:<48} {rate:8.1f} videos/s   {rate / baseline:5.2f}x baseline{verdict}")


if __name__ == "__main__":
    main()
