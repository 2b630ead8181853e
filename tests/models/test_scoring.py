"""The one scoring path: files and in-memory frames score alike; the on_error policy; bad frames named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from solireward.data.video import FrameSampling, read_video, sample_frames, video_info
from solireward.errors import InputError, VideoReadError
from solireward.models import RewardModel, RewardModelConfig
from solireward.scoring import score_videos

PROMPTS = ["a red ball falls", "a blue cube slides"]


@pytest.fixture(scope="module")
def model(tiny_model_factory) -> RewardModel:
    torch.manual_seed(0)
    sampling = FrameSampling(num_frames=4, height=48, width=40)  # resizing is part of what must match
    return RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), RewardModelConfig(
        reduce_sequence="progressive_hierarchical_attention", reward_task="text_alignment",
        sampling=sampling.to_dict()))


def _all_frames(path: Path) -> tuple[np.ndarray, float]:
    """Every decoded frame of an mp4, at its native size, and its frame rate."""
    info = video_info(path)
    every = FrameSampling(mode="fps", fps=info.fps, min_frames=1, max_frames=10_000)
    frames = read_video(path, every)
    assert len(frames) == info.num_frames
    return frames, info.fps


def test_frames_in_memory_score_as_the_mp4_file(model: RewardModel, mp4_videos: list[Path]) -> None:
    from_files = model.score(mp4_videos, PROMPTS)
    decoded = [_all_frames(p) for p in mp4_videos]
    in_memory = model.score_frames([f for f, _ in decoded], PROMPTS, fps=[fps for _, fps in decoded])
    np.testing.assert_allclose(in_memory, from_files, atol=1e-5, rtol=0)
    # float (T, C, H, W) in [0, 1], as generators hold them, is the same video
    as_float = [torch.from_numpy(f).permute(0, 3, 1, 2).float() / 255 for f, _ in decoded]
    np.testing.assert_allclose(model.score_frames(as_float, PROMPTS), from_files, atol=1e-5, rtol=0)


def test_sample_frames_takes_what_read_video_takes(mp4_videos: list[Path]) -> None:
    frames, fps = _all_frames(mp4_videos[0])
    for sampling in (FrameSampling(num_frames=5), FrameSampling(mode="fps", fps=3.0, min_frames=2, height=32)):
        np.testing.assert_array_equal(sample_frames(frames, sampling, fps=fps), read_video(mp4_videos[0], sampling))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 8, 8), np.uint8), "4-d video"),
    (np.zeros((4, 8, 8, 4), np.uint8), "(T, H, W, 3)"),
    (np.full((4, 3, 8, 8), 1.5, np.float32), "within [0, 1]"),
    (np.zeros((4, 8, 8, 3), np.int32), "uint8 or float"),
])
def test_bad_frames_are_named(model: RewardModel, bad: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=r"frames\[1\]") as info:
        model.score_frames([np.zeros((4, 8, 8, 3), np.uint8), bad])
    assert message in str(info.value)


def test_fps_mode_needs_the_frame_rate() -> None:
    with pytest.raises(InputError, match="fps"):
        sample_frames(np.zeros((4, 8, 8, 3), np.uint8), FrameSampling(mode="fps"))


def test_on_error_records_or_raises(model: RewardModel, mp4_videos: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    sources = [str(mp4_videos[0]), str(broken), str(mp4_videos[1])]
    scores, errors = score_videos(model, sources, PROMPTS[:1] + [None] + PROMPTS[1:], batch_size=2)
    assert sorted(scores) == [0, 2] and list(errors) == [1]
    assert "corrupt" in errors[1]
    np.testing.assert_allclose([scores[0], scores[2]], model.score(mp4_videos, PROMPTS), atol=1e-5)
    with pytest.raises(VideoReadError, match="broken.mp4"):
        model.score([broken])
