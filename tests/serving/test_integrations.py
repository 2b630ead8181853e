"""In-process adapters (VideoAlign-style callable, verl compute_score, GRPO advantages) give the rewards
`solireward infer` and the server give; hostile paths are refused; `infer` survives a symlink loop in a folder."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from solireward.integrations import VideoReward, compute_score, grpo_advantages
from solireward.serving.batcher import ItemError
from tests.conftest import run_cli
from tests.serving.conftest import GOOD, WEIGHTS, all_frames

TOL = 1e-4


def test_videoalign_style_callable_matches_infer(reward_dirs, video_root: Path, expected: dict) -> None:
    reward = VideoReward({name: str(path) for name, path in reward_dirs.items()}, WEIGHTS)
    names = list(GOOD)
    out = reward([video_root / n for n in names], [GOOD[n][1] for n in names])
    for row, name in zip(out, names):
        assert set(row) == {"phys", "text", "reward"}
        assert row["reward"] == pytest.approx(expected[name]["reward"], abs=TOL)
        for model in ("phys", "text"):
            assert row[model] == pytest.approx(expected[name]["scores"][model]["score_norm"], abs=TOL)


def test_verl_compute_score_takes_float_frames(reward_dirs, video_root: Path, expected: dict) -> None:
    frames, fps = all_frames(video_root / "good_a.mp4")
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (T, C, H, W) in [0, 1]
    result = compute_score("video_gen", video, None, {"fps": fps, "prompt": GOOD["good_a.mp4"][1]},
                           models=[f"{n}={p}" for n, p in reward_dirs.items()], weights=WEIGHTS)
    assert result["score"] == pytest.approx(expected["good_a.mp4"]["reward"], abs=TOL)
    assert result["text"] == pytest.approx(expected["good_a.mp4"]["scores"]["text"]["score_norm"], abs=TOL)


def test_grpo_advantages_are_the_evaluation_ones_with_zero_for_no_signal() -> None:
    from solireward.evaluation import group_advantages

    rewards = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 7.0])
    groups = np.array(["a", "a", "a", "b", "b", "c"])
    advantages = grpo_advantages(rewards, groups)
    reference, _, _ = group_advantages(rewards, groups)
    np.testing.assert_allclose(advantages[:3], reference[:3])
    np.testing.assert_allclose(advantages[:3], (rewards[:3] - 2.0) / np.std(rewards[:3]))
    assert advantages[3:].tolist() == [0.0, 0.0, 0.0]  # equal rewards; a group of one
    with pytest.raises(ValueError, match="one group per reward"):
        grpo_advantages(rewards, groups[:2])


@pytest.mark.parametrize("path", ["../secret.mp4", "escape.mp4", "sub/up/secret.mp4", "/etc/hostname",
                                  "sub/../../secret.mp4", "loop.mp4"])
def test_checked_path_refuses_what_leaves_the_root(video_root: Path, path: str) -> None:
    from solireward.serving.app import checked_path

    with pytest.raises(ItemError) as info:
        checked_path(path, video_root.resolve())
    assert info.value.kind == "path"


def test_checked_path_accepts_the_root_and_needs_one(video_root: Path) -> None:
    from solireward.serving.app import checked_path

    root = video_root.resolve()
    assert checked_path("sub/good_b.mp4", root) == str(root / "sub" / "good_b.mp4")
    assert checked_path("alias.mp4", root) == str(root / "good_a.mp4")
    with pytest.raises(ItemError, match="--video_root"):
        checked_path("good_a.mp4", None)


def test_infer_on_a_folder_with_a_symlink_loop_records_it_as_an_error(reward_dirs, video_root: Path,
                                                                      tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((video_root / "good_a.mp4").read_bytes())
    (folder / "loop.mp4").symlink_to("loop.mp4")
    with contextlib.redirect_stderr(io.StringIO()):
        rc = run_cli("infer", "--model_name_or_path", reward_dirs["phys"], "--input_file", folder,
                     "--output_file", tmp_path / "out.json", "--num_workers", 0)
    assert rc == 3
    records = {Path(r["video_path"]).name: r for r in json.loads((tmp_path / "out.json").read_text())}
    assert "score" in records["a.mp4"] and "error" in records["loop.mp4"]


def test_loopback_addresses_are_recognised() -> None:
    from solireward.serving.config import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "example.org"]))
