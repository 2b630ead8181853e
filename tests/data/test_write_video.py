"""`write_video`: the same frames give the same bytes, in one process and in processes encoding at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from solireward.data.video_write import video_codec, write_video

ENCODE = """
import hashlib, sys, tempfile, numpy as np
from solireward.data.video_write import write_video
t = np.linspace(0, 1, 16)[:, None, None, None]
yy, xx = np.mgrid[0:64, 0:96]
clip = (128 + 100 * np.sin(xx[None, :, :, None] / 7 + 6 * t + yy[None, :, :, None] / 11 + np.arange(3)))
clip = clip.clip(0, 255).astype(np.uint8)
codec, times = sys.argv[1], int(sys.argv[2])
with tempfile.TemporaryDirectory() as folder:
    for i in range(times):
        write_video(f"{folder}/{i}.mp4", clip, fps=8, codec=codec)
        print(hashlib.sha256(open(f"{folder}/{i}.mp4", "rb").read()).hexdigest())
"""


@pytest.mark.parametrize("codec", sorted({video_codec(), "mpeg4"}))
def test_same_frames_same_bytes_under_load(codec: str) -> None:
    """Three processes encode one lossy clip 6 times each at the same time: one distinct file."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
    runs = [subprocess.Popen([sys.executable, "-c", ENCODE, codec, "6"], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(3)]
    hashes = [line for run in runs for line in run.communicate(timeout=120)[0].split()]
    assert all(run.returncode == 0 for run in runs) and len(hashes) == 18
    assert len(set(hashes)) == 1


DEMO_CLIPS = """
import hashlib, sys, tempfile
from solireward.data.synthetic.plan import DemoDataConfig, plan_videos
from solireward.data.synthetic.render import render_video
from solireward.data.video_write import write_video
specs = plan_videos(DemoDataConfig(output_dir="", num_prompts=1, seed=0))[0][:4]
with tempfile.TemporaryDirectory() as folder:
    for spec in specs:
        frames = render_video(spec, 64, 16)
        for i in range(int(sys.argv[1])):
            write_video(f"{folder}/clip.mp4", frames, fps=8, quality=28)
            print(spec.video_path, hashlib.sha256(open(f"{folder}/clip.mp4", "rb").read()).hexdigest())
"""


@pytest.mark.skipif(video_codec() != "libx264", reason="libx264 is not in this PyAV build")
def test_demo_clips_at_probe_quality_one_file_each() -> None:
    """Four demo clips (a shape moving over a gradient, 64x64, 16 frames) at the probe's quality 28, encoded
    25 times each in one process and 5 times each in two more at once: one file per clip. Before libx264 ran
    its C code, two of these four clips gave two or three different files in 25 encodes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
    runs = [subprocess.Popen([sys.executable, "-c", DEMO_CLIPS, str(times)], stdout=subprocess.PIPE, text=True,
                             env=env) for times in (25, 5, 5)]
    lines = [line.split() for run in runs for line in run.communicate(timeout=300)[0].splitlines()]
    assert all(run.returncode == 0 for run in runs) and len(lines) == 4 * 35
    files: dict[str, set[str]] = {}
    for clip, digest in lines:
        files.setdefault(clip, set()).add(digest)
    assert len(files) == 4 and all(len(digests) == 1 for digests in files.values()), files


def test_mpeg4_quality_sets_its_quantiser(tmp_path: Path) -> None:
    clip = np.random.default_rng(0).integers(0, 256, (6, 32, 48, 3), dtype=np.uint8)
    sizes = []
    for quality in (0, 30, 180):      # quantiser 2, 5, 30
        write_video(tmp_path / f"{quality}.mp4", clip, codec="mpeg4", quality=quality)
        sizes.append((tmp_path / f"{quality}.mp4").stat().st_size)
    assert sizes[0] > sizes[1] > sizes[2]
    assert b"Lavf" not in (tmp_path / "0.mp4").read_bytes()          # bit-exact: no muxer version string
