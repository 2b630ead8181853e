"""Shared by the serving tests: two small reward models, a video root with good, bad and hostile entries,
and what `solireward infer` scores for the good videos (the reference every protocol must match)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run_cli

GOOD = {"good_a.mp4": ("p000_v0.mp4", "a red ball rolls to the right"),
        "sub/good_b.mp4": ("p003_v1.mp4", None),
        "good_c.mp4": ("p005_v2.mp4", "an orange cross slides to the left"),
        "good_d.mp4": ("p010_v3.mp4", "a square")}
BAD = ("empty.mp4", "text.mp4", "truncated.mp4", "missing.mp4")
MODELS = {"phys": (0, 0.25, 2.0), "text": (1, -0.5, 0.5)}  # name: (seed, score_mean, score_std)
WEIGHTS = {"phys": 1.0, "text": 0.5}


@pytest.fixture(scope="package")
def reward_dirs(tiny_model_factory, tmp_path_factory) -> dict[str, Path]:
    """Two saved reward models (different random heads, means and stds) with 4-frame sampling."""
    import torch

    from solireward.data.video import FrameSampling
    from solireward.models import RewardModel, RewardModelConfig

    out = {}
    for name, (seed, mean, std) in MODELS.items():
        torch.manual_seed(seed)
        config = RewardModelConfig(score_mean=mean, score_std=std, sampling=FrameSampling(num_frames=4).to_dict())
        folder = tmp_path_factory.mktemp(f"serve-{name}") / "model"
        RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), config).save_pretrained(folder)
        out[name] = folder
    return out


@pytest.fixture(scope="package")
def fps_model_dir(tiny_model_factory, tmp_path_factory) -> Path:
    """A saved reward model that samples frames by time (2 frames/s), as Qwen checkpoints do."""
    import torch

    from solireward.data.video import FrameSampling
    from solireward.models import RewardModel, RewardModelConfig

    torch.manual_seed(2)
    config = RewardModelConfig(sampling=FrameSampling(mode="fps", fps=2.0, min_frames=2, max_frames=8).to_dict())
    folder = tmp_path_factory.mktemp("serve-fps") / "model"
    RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="package")
def video_root(demo_dir: Path, tmp_path_factory) -> Path:
    """Good videos (one in a subfolder), unreadable files, symlinks inside, escaping and looping; a secret outside."""
    base = tmp_path_factory.mktemp("serve-files")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    for name, (source, _) in GOOD.items():
        shutil.copy(demo_dir / "videos" / source, root / name)
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n")
    data = (root / "good_a.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) * 2 // 5])
    shutil.copy(demo_dir / "videos" / "p001_v0.mp4", base / "secret.mp4")
    os.symlink(base / "secret.mp4", root / "escape.mp4")
    os.symlink(base, root / "sub" / "up")
    os.symlink(root / "good_a.mp4", root / "alias.mp4")  # stays inside: allowed
    os.symlink("loop.mp4", root / "loop.mp4")
    return root


@pytest.fixture(scope="package")
def expected(reward_dirs: dict[str, Path], video_root: Path, tmp_path_factory) -> dict[str, dict]:
    """Per good video: each model's score and score_norm from `solireward infer`, and the weighted reward."""
    folder = tmp_path_factory.mktemp("serve-infer")
    records = [{"video_path": name, **({"prompt": p} if p else {})} for name, (_, p) in GOOD.items()]
    (folder / "in.json").write_text(json.dumps(records))
    out: dict[str, dict] = {name: {"scores": {}} for name in GOOD}
    for model, path in reward_dirs.items():
        with contextlib.redirect_stderr(io.StringIO()):
            assert run_cli("infer", "--model_name_or_path", path, "--input_file", folder / "in.json",
                           "--video_root", video_root, "--output_file", folder / f"{model}.json",
                           "--batch_size", 3, "--num_workers", 0) == 0
        for record in json.loads((folder / f"{model}.json").read_text()):
            out[record["video_path"]]["scores"][model] = {"score": record["score"], "score_norm": record["score_norm"]}
    for entry in out.values():
        entry["reward"] = sum(WEIGHTS[m] * s["score_norm"] for m, s in entry["scores"].items())
    return out


def all_frames(path: Path) -> tuple[np.ndarray, float]:
    """Every decoded frame of an mp4 at its native size, and its frame rate."""
    from solireward.data.video import FrameSampling, read_video, video_info

    info = video_info(path)
    frames = read_video(path, FrameSampling(mode="fps", fps=info.fps, min_frames=1, max_frames=10_000))
    assert len(frames) == info.num_frames
    return frames, info.fps


def png_frames(frames: np.ndarray) -> list[str]:
    """Base64 PNG of each frame (lossless: the frames score as the file)."""
    from PIL import Image

    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        out.append(base64.b64encode(buffer.getvalue()).decode())
    return out


KEY = "test-key-0123456789"
TOL = 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `solireward serve` subprocess on a free loopback port, and a small HTTP client for it."""

    def __init__(self, reward_dirs: dict[str, Path], video_root: Path, log: Path, *extra: Any,
                 weights: bool = True) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "solireward.cli", "serve", "--port", self.port, "--video_root", video_root,
                "--model", *(f"{n}={p}" for n, p in reward_dirs.items()),
                *(["--weights", f"text={WEIGHTS['text']}"] if weights and "text" in reward_dirs else []),
                "--devices", "cpu", *extra]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SOLIREWARD_API_KEY": KEY}
        self.log = log
        self.proc = subprocess.Popen([str(a) for a in args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, f"server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"server not ready:\n{log.read_text()}"
            try:
                status, body = self.call("GET", "/health", key=None)
                if status == 200:
                    self.health = body
                    break
                assert status == 503 and body["status"] == "loading"
            except OSError:
                pass
            time.sleep(0.2)

    def call(self, method: str, path: str, body: Any = None, key: str | None = KEY, raw: bytes | None = None,
             timeout: float = 60) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
        try:
            return response.status, json.loads(text)
        except json.JSONDecodeError:
            return response.status, text

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
