"""`solireward infer` over a folder of good and broken videos: nothing lost, every failure named, atomic output."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
GOOD_SOURCES = ("p000_v0.mp4", "p004_v1.mp4", "p007_v3.mp4")
# name -> (what the file is, a phrase its error must contain)
BAD = {
    "corrupt.mp4": ("random bytes behind an MP4 'ftyp' header", "corrupt"),
    "truncated.mp4": ("a real video cut in half", "truncated"),
    "zero_bytes.mp4": ("an empty file", "empty"),
    "audio_only.mp4": ("a valid MP4 holding an AAC stream and no video frames", "no video stream"),
    "notes.mp4": ("a text file named .mp4", "holds text"),
    "gone/missing.mp4": ("a path that does not exist", "does not exist"),
}
# name -> (frames, height, width): valid videos of unusual shape that must be scored
UNUSUAL = {"long.mp4": (2000, 32, 32), "wide_16x4000.mp4": (4, 16, 4000), "tall_4000x16.mp4": (4, 4000, 16),
           "tiny_1x1.mp4": (4, 1, 1)}


def _write_any_size(path: Path, frames: int, height: int, width: int) -> None:
    """Encode gradient frames at any size: yuv420p (write_video) for even sizes, yuv444p H.264 for odd ones.

    libx264 refuses yuv420p below 2x2 (chroma is subsampled 2x2), so a 1x1 video is only writable in 4:4:4.
    """
    from solireward.data.video_write import write_video

    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    clip = np.stack([(t * 7) % 256, (y * 255) // max(1, height - 1), (x * 255) // max(1, width - 1)],
                    axis=-1).astype(np.uint8)
    if height % 2 == 0 and width % 2 == 0:
        write_video(path, clip, fps=24.0)
        return
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for frame in clip:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _write_audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def video_dir(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good demo videos, every kind of broken file, and valid videos of unusual length and shape."""
    folder = tmp_path_factory.mktemp("mixed")
    for i, source in enumerate(GOOD_SOURCES):
        shutil.copy(demo_dir / "videos" / source, folder / f"good_{i}.mp4")
    real = (demo_dir / "videos" / GOOD_SOURCES[0]).read_bytes()
    rng = np.random.default_rng(0)
    (folder / "corrupt.mp4").write_bytes((24).to_bytes(4, "big") + b"ftypisom" + bytes(12)
                                         + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (folder / "truncated.mp4").write_bytes(real[: len(real) // 2])
    (folder / "zero_bytes.mp4").write_bytes(b"")
    _write_audio_only(folder / "audio_only.mp4")
    (folder / "notes.mp4").write_text("shopping list: eggs, milk\n")
    for name, shape in UNUSUAL.items():
        _write_any_size(folder / name, *shape)
    return folder


def _reward_model(tiny_model_factory, out: Path, **sampling: int) -> Path:
    import torch

    from solireward.data.video import FrameSampling
    from solireward.models import RewardModel, RewardModelConfig

    torch.manual_seed(0)
    config = RewardModelConfig(sampling=FrameSampling(num_frames=4, **sampling).to_dict())
    RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def reward_dir(tiny_model_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved reward model that reads 4 frames resized to 56x56 (as trained with --height/--width)."""
    return _reward_model(tiny_model_factory, tmp_path_factory.mktemp("reward") / "model", height=56, width=56)


def _records(names: list[str]) -> list[dict]:
    return [{"video_path": name, "prompt": f"clip {i}", "id": i} for i, name in enumerate(names)]


def _infer(model: Path, records: list[dict], folder: Path, output: Path, *flags: object) -> tuple[int, list[dict]]:
    input_file = folder / f"{output.stem}_input.json"
    input_file.write_text(json.dumps(records))
    rc = run_cli("infer", "--model_name_or_path", model, "--input_file", input_file, "--output_file", output, *flags)
    return rc, json.loads(output.read_text())


def test_mixed_folder_scores_good_names_bad_loses_nothing(video_dir: Path, reward_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    good = [f"good_{i}.mp4" for i in range(len(GOOD_SOURCES))]
    names = [good[0], *list(BAD)[:3], good[1], *UNUSUAL, *list(BAD)[3:], good[2]]
    records = _records(names)
    # auto (the default): decord, falling back to PyAV where decord fails (test_default_backend_reads_narrow_videos)
    rc, out = _infer(reward_dir, records, video_dir, tmp_path / "scores.json",
                     "--batch_size", 3, "--num_workers", 2, "--video_backend", "auto")
    assert rc == 3
    assert f"scored {len(good) + len(UNUSUAL)}, failed {len(BAD)}" in capsys.readouterr().err
    assert [r["id"] for r in out] == [r["id"] for r in records]  # nothing lost, nothing reordered
    for given, got in zip(records, out):
        assert {k: got[k] for k in given} == given
        name = given["video_path"]
        if name in BAD:
            what, phrase = BAD[name]
            assert "score" not in got and phrase in got["error"], f"{name} ({what}): {got}"
        else:
            assert "error" not in got, f"{name}: {got['error']}"
            assert math.isfinite(got["score"]) and math.isfinite(got["score_norm"]), name
    # the scores of the good videos do not depend on their broken neighbours
    rc, alone = _infer(reward_dir, _records(good), video_dir, tmp_path / "alone.json", "--num_workers", 0)
    assert rc == 0
    by_name = {r["video_path"]: r["score"] for r in out if "score" in r}
    assert [r["score"] for r in alone] == pytest.approx([by_name[n] for n in good], abs=1e-5)


def test_default_backend_reads_narrow_videos(video_dir: Path, reward_dir: Path, tmp_path: Path) -> None:
    # decord itself fails on valid videos narrower than 32 px (a DECORDArrayCopyFromTo size
    # mismatch); the default backend, auto, falls back to PyAV for them.
    names = ["tall_4000x16.mp4", "tiny_1x1.mp4"]
    rc, out = _infer(reward_dir, _records(names), video_dir, tmp_path / "narrow.json", "--num_workers", 0)
    assert rc == 0, [r.get("error") for r in out]


def test_extreme_aspect_ratio_fails_one_video_not_the_run(video_dir: Path, tiny_model_factory,
                                                          tmp_path: Path) -> None:
    model = _reward_model(tiny_model_factory, tmp_path / "model")  # frames keep their own size
    rc, out = _infer(model, _records(["good_0.mp4", "wide_16x4000.mp4", "good_1.mp4"]), video_dir,
                     tmp_path / "aspect.json", "--batch_size", 3, "--num_workers", 0)
    assert rc == 3
    assert "score" in out[0] and "score" in out[2] and "error" in out[1]
    assert "processor" in out[1]["error"], out[1]["error"]  # Qwen2-VL rejects aspect ratios above 200


def test_failed_write_keeps_the_previous_output(video_dir: Path, reward_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "scores.json"
    output.write_text("previous results\n")
    import solireward.io

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(solireward.io.os, "fsync", disk_full)
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps(_records([str(video_dir / "good_0.mp4")])))
    with pytest.raises(OSError, match="No space left"):
        run_cli("infer", "--model_name_or_path", reward_dir, "--input_file", input_file, "--output_file", output,
                "--num_workers", 0)
    assert output.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.json", "scores.json"]  # no temporary file left


def test_killed_run_keeps_the_previous_output(video_dir: Path, reward_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "scores.json"
    output.write_text("previous results\n")
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps(_records([str(video_dir / "long.mp4")] * 200)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "solireward.cli", "infer", "--model_name_or_path", str(reward_dir),
                             "--input_file", str(input_file), "--output_file", str(output), "--batch_size", "1",
                             "--num_workers", "0", "--progress"], cwd=REPO, env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    seen = bytearray()
    reader = threading.Thread(target=lambda: [seen.extend(chunk) for chunk in iter(lambda: proc.stderr.read1(256), b"")],
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while max(map(int, re.findall(rb"(\d+)/200", bytes(seen))), default=0) < 1:  # wait until some are scored
            assert proc.poll() is None and time.monotonic() < deadline, seen.decode(errors="replace")[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    assert b"scored" not in seen  # killed mid-run, before the summary
    assert output.read_text() == "previous results\n"
