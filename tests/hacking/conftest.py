"""Fixtures of the reward-hacking lab tests: a record file of the demo videos and a saved reward model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_records(demo_dir: Path) -> Path:
    """videos.json beside the demo videos: {video_path, prompt, label} of every video (ground truth in `truth`)."""
    with (demo_dir / "ground_truth.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    path = demo_dir / "videos.json"
    path.write_text(json.dumps([{"video_path": r["video_path"], "prompt": r["prompt"], "label": int(r["phy_deform"]),
                                 "truth": r} for r in rows]), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def reward_model_dir(tiny_model_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained reward model on the tiny Qwen2-VL (8 frames of 56x56), saved as `solireward train` does."""
    import torch

    from solireward.models import RewardModel, RewardModelConfig

    torch.manual_seed(0)
    config = RewardModelConfig(reduce_sequence="last_token",
                               sampling={"mode": "segments", "num_frames": 8, "height": 56, "width": 56})
    model = RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), config, torch_dtype="float32")
    out = tmp_path_factory.mktemp("reward-model") / "model"
    model.save_pretrained(out)
    return out
