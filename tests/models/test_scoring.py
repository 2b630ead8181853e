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


@pytest.fixture(scope="module")
def qwen25_fps_dir(tiny_model_factory, tmp_path_factory) -> Path:
    """A Qwen2.5-VL reward model whose checkpoint samples at 2 frames per second (at least 2 frames)."""
    torch.manual_seed(0)
    sampling = FrameSampling(mode="fps", fps=2.0, min_frames=2, height=56, width=56)
    model = RewardModel.from_backbone(tiny_model_factory("Qwen2.5-VL"),
                                      RewardModelConfig(reduce_sequence="last_token", sampling=sampling.to_dict()))
    out = tmp_path_factory.mktemp("qwen25-fps") / "model"
    model.save_pretrained(out)
    return out


@pytest.fixture()
def told_seconds(monkeypatch) -> list[float]:
    """Every `second_per_grid_ts` value that reaches a reward model's forward pass (seconds per temporal patch)."""
    seen: list[float] = []
    forward = RewardModel.forward

    def spy(self, input_ids, attention_mask, **inputs):
        seen.extend(torch.as_tensor(inputs["second_per_grid_ts"]).flatten().tolist())
        return forward(self, input_ids, attention_mask, **inputs)

    monkeypatch.setattr(RewardModel, "forward", spy)
    return seen


@pytest.mark.parametrize("flags, seconds", [
    ((), 1.0),                         # the checkpoint's 2 fps: temporal patches of 2 frames span 1 s
    (("--fps", 4), 0.5),               # sampled at 4 fps, told 4 fps (a checkpoint-fps bug tells 2: 1.0)
    (("--fps", 0.5), 2.0),             # 0.5 fps gives 1 frame, raised to min_frames 2: told 1 fps, as sampled
    (("--mode", "segments", "--num_frames", 8), 0.5),  # 8 frames of a 2 s video stand for 4 fps
])
def test_qwen25_is_told_the_rate_it_was_sampled_at(qwen25_fps_dir: Path, mp4_videos: list[Path], tmp_path: Path,
                                                   told_seconds: list[float], flags, seconds: float) -> None:
    from tests.conftest import run_cli

    assert video_info(mp4_videos[0])[:2] == (16, 8.0)  # the demo videos: 16 frames at 8 fps, 2 s
    records = tmp_path / "videos.json"
    records.write_text(f'[{{"video_path": "{mp4_videos[0]}", "prompt": "a red ball falls"}}]')
    assert run_cli("infer", "--model_name_or_path", qwen25_fps_dir, "--input_file", records, "--output_file",
                   tmp_path / "scores.json", "--num_workers", 0, *flags) == 0
    assert told_seconds == pytest.approx([seconds])


def test_the_probe_tells_qwen25_the_rate_of_each_perturbation(qwen25_fps_dir: Path, mp4_videos: list[Path],
                                                              tmp_path: Path, told_seconds: list[float]) -> None:
    """Clean: 2 fps (1 s per patch); frames_x2: 4 fps (0.5 s); video_fps_x0.5 (every other frame at 4 fps): 2 fps."""
    import json

    from tests.conftest import run_cli

    records = tmp_path / "videos.json"
    records.write_text(json.dumps([{"video_path": str(p), "prompt": q} for p, q in zip(mp4_videos, PROMPTS)]))
    assert run_cli("probe", "--model_name_or_path", qwen25_fps_dir, "--input_file", records,
                   "--output_dir", tmp_path / "probe", "--perturbations", "frames_x2", "video_fps_x0.5",
                   "--batch_size", 1) == 0
    assert sorted({round(s, 6) for s in told_seconds}) == [0.5, 1.0]
    assert told_seconds.count(0.5) == 2  # the two videos under frames_x2, and nothing else
