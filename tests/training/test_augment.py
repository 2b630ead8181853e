"""Training mitigations: random sampling and appearance per video and step, applied through `solireward train`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from solireward.data import frame_edits
from solireward.data.synthetic import COLOURS, grid_specs, render_video
from solireward.data.video import FrameSampling
from solireward.models.reward_model import RewardCollator
from solireward.training.augment import Augmentation, AugmentingEncoder
from tests.conftest import run_cli
from tests.training.conftest import fast_args
from tests.training.test_trainer import _subset


def test_sampling_jitter_scales_the_count_or_rate_and_the_size() -> None:
    rng = np.random.default_rng(0)
    twice = Augmentation(jitter_frames=(2.0, 2.0), jitter_size=(0.5, 0.5))
    segments = twice.sampling(FrameSampling(num_frames=4, height=56, width=56), 64, 64, rng)
    assert (segments.num_frames, segments.height, segments.width) == (8, 28, 28)
    fps = twice.sampling(FrameSampling(mode="fps", fps=2.0, max_pixels=32 * 32), 64, 48, rng)
    assert fps.fps == 4.0 and (fps.height, fps.width) == (18, 14)  # half of the 36x27 that max_pixels allows
    ranged = Augmentation(jitter_frames=(0.5, 2.0))
    counts = {ranged.sampling(FrameSampling(num_frames=8), 64, 64, rng).num_frames for _ in range(200)}
    assert min(counts) == 4 and max(counts) == 16 and len(counts) > 8


def test_colour_jitter_changes_appearance_only_as_configured() -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(40, 200, (4, 8, 8, 3), dtype=np.uint8)
    assert Augmentation(color_jitter=0.0, brightness=0.4).colour(frames, rng) is frames  # probability 0: untouched
    brighter = Augmentation(color_jitter=1.0, brightness=0.5).colour(frames, np.random.default_rng(3))
    ratio = brighter.astype(float).mean() / frames.mean()
    assert ratio != pytest.approx(1.0, abs=0.02) and 0.5 <= ratio <= 1.5
    np.testing.assert_allclose(brighter / ratio, frames, atol=1.5)  # brightness alone: every pixel times one factor
    grey = np.repeat(frames[..., :1], 3, axis=-1)
    recoloured = Augmentation(color_jitter=1.0, saturation=0.5, hue=0.5).colour(grey, rng)
    assert np.abs(recoloured.astype(int) - grey).max() <= 1  # grey has no saturation or hue to change
    hued = Augmentation(color_jitter=1.0, hue=0.5).colour(frames, np.random.default_rng(5))
    assert np.abs(hued.astype(int) - frames).mean() > 5


def test_nuisance_twins_differ_from_the_original_in_the_named_way() -> None:
    """Each nuisance edit is the probe's own at a drawn amount: zoom enlarges the object (below 1 it shrinks the
    picture on a black frame), pan moves it, contrast scales the spread of luma about its mean, shade moves the
    mean, overlay draws the caption box and logo."""
    frames = render_video(grid_specs("a red ball falls to the ground", ("none",), {})[0], 64, 8)
    red = np.array(COLOURS["red"])

    def ball(f: np.ndarray) -> np.ndarray:
        return np.abs(f.astype(int) - red).sum(-1) < 60

    def luma(f: np.ndarray) -> np.ndarray:
        return f.astype(np.float32) @ frame_edits.LUMA

    assert Augmentation().nuisances(frames, np.random.default_rng(0)) is frames   # all off: untouched
    zoomed = Augmentation(nuisance_zoom=(1.3, 1.3)).nuisances(frames, np.random.default_rng(0))
    assert np.array_equal(zoomed, frame_edits.zoom(frames, 1.3)) and ball(zoomed).sum() > 1.4 * ball(frames).sum()
    shrunk = Augmentation(nuisance_zoom=(0.75, 0.75)).nuisances(frames, np.random.default_rng(0))   # zoom out:
    assert np.array_equal(shrunk, frame_edits.letterbox(frames, 0.75)) and (shrunk[:, :7] == 0).all()   # a letterbox
    assert ball(shrunk).sum() < 0.7 * ball(frames).sum()
    down, right = np.random.default_rng(1).uniform(-0.2, 0.2, 2)
    panned = Augmentation(nuisance_pan=0.2).nuisances(frames, np.random.default_rng(1))
    assert np.array_equal(panned, frame_edits.pan(frames, down, right)) and abs(right) > 0.1
    for axis, share in ((0, down), (1, right)):   # the ball moved down (up) and right (left) with the picture
        at = [np.nonzero(ball(f[0]))[axis].mean() for f in (frames, panned)]
        assert at[1] - at[0] == pytest.approx(share * 64, abs=1.5)
    factor = np.random.default_rng(2).uniform(0.5, 1.5)
    spread = Augmentation(nuisance_contrast=0.5).nuisances(frames, np.random.default_rng(2))
    assert luma(spread).std() / luma(frames).std() == pytest.approx(factor, rel=0.05)
    assert luma(spread).mean() == pytest.approx(luma(frames).mean(), abs=2)
    offset = np.random.default_rng(3).uniform(-40, 40)
    shaded = Augmentation(nuisance_shade=40).nuisances(frames, np.random.default_rng(3))
    assert luma(shaded).mean() - luma(frames).mean() == pytest.approx(offset, abs=2)
    captioned = Augmentation(nuisance_overlay=1.0).nuisances(frames, np.random.default_rng(4))
    assert np.array_equal(captioned, frame_edits.overlay(frames))
    changed = (captioned != frames).any(axis=(0, 3))
    assert changed[-12:].any() and changed[:6, -14:].any() and not changed[20:44].any()   # box, logo, not the middle


@pytest.fixture()
def encodes(monkeypatch) -> list[tuple]:
    """Every (augmented draw or None, frame count, frame size, told fps, frames digest) the collator encodes."""
    log: list[tuple] = []
    current: list = [None]
    encode, augment = RewardCollator.encode, AugmentingEncoder.__call__

    def spy_encode(self, frames, prompt, fps=None):
        log.append((current[0], len(frames), frames.shape[1:3], fps, hashlib.sha1(frames.tobytes()).hexdigest()))
        current[0] = None
        return encode(self, frames, prompt, fps)

    def spy_augment(self, path, prompt, video, micro_step):
        current[0] = (video, micro_step)
        return augment(self, path, prompt, video, micro_step)

    monkeypatch.setattr(RewardCollator, "encode", spy_encode)
    monkeypatch.setattr(AugmentingEncoder, "__call__", spy_augment)
    return log


@pytest.mark.parametrize("mitigated", [True, False])
def test_train_applies_the_mitigations_and_checkpoints(demo_pairs: Path, tiny_qwen: Path, tmp_path: Path,
                                                       encodes: list[tuple], mitigated: bool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    n_videos = _subset(demo_pairs / "train.json", data / "train.json", 8)
    flags = ["--jitter_frames", 0.5, 2, "--jitter_size", 0.5, 1, "--color_jitter", 1.0] if mitigated else []
    out = tmp_path / "run"
    assert run_cli(*fast_args(tiny_qwen, data, out, max_steps=3, save_steps=3, per_device_train_batch_size=n_videos),
                   *flags) == 0
    assert (out / "checkpoints" / "step-3").is_dir() and json.loads((out / "train_summary.json").read_text()
                                                                    )["global_step"] == 3
    drawn = [e for e in encodes if e[0] is not None]
    if not mitigated:
        assert not drawn  # the hook is off by default
        train = encodes[:3 * n_videos]  # the 3 steps' videos, before the final scoring
        assert len({e[4] for e in train}) == n_videos  # each video gives the same input at every step
        return
    assert sorted({step for (_, step), *_ in drawn}) == [0, 1, 2] and len(drawn) == 3 * n_videos
    assert len({e[4] for e in drawn}) == len(drawn)  # a new input for every video and step
    assert len({e[1] for e in drawn}) > 2 and len({e[2] for e in drawn}) > 2  # frame counts and sizes vary
    for _, count, _, fps, _ in drawn:  # demo videos: 16 frames at 8 fps; told the rate they were sampled at
        assert fps == pytest.approx(count * 8.0 / 16)
    assert all(28 <= size[0] <= 56 for _, _, size, _, _ in drawn)


def test_consistency_loss_trains_on_the_videos_as_they_are_beside_their_jittered_twins(
        demo_pairs: Path, tiny_qwen: Path, tmp_path: Path, encodes: list[tuple]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    n_videos = _subset(demo_pairs / "train.json", data / "train.json", 8)
    out = tmp_path / "run"
    assert run_cli(*fast_args(tiny_qwen, data, out, max_steps=3, per_device_train_batch_size=n_videos),
                   "--jitter_frames", 0.5, 2, "--color_jitter", 1.0, "--consistency_loss_coeff", 2.0,
                   "--consistency_warmup_ratio", 1.0) == 0
    train = encodes[:6 * n_videos]  # 3 steps of a video and its twin each, before the final scoring
    plain, drawn = [e for e in train if e[0] is None], [e for e in train if e[0] is not None]
    assert len(plain) == len(drawn) == 3 * n_videos
    assert len({e[4] for e in plain}) == n_videos  # the reward loss sees each video as it is, every step
    assert {e[1] for e in plain} == {4} and len({e[1] for e in drawn}) > 1  # twins are drawn anew
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    parts = [r for r in rows if r["kind"] == "train"]
    assert len(parts) == 3 and all(r["loss_consistency"] > 0 for r in parts)
    for r in parts:  # the optimised loss adds the consistency term, its weight rising to 2 over the 3 steps
        reward = (r["loss_bt"] * (r["n_pairs"] - r["n_ties"]) + r["loss_tie"] * r["n_ties"]) / r["n_pairs"]
        assert r["loss"] == pytest.approx(reward + 2.0 * r["step"] / 3 * r["loss_consistency"], rel=1e-4)


def test_train_with_nuisance_twins(demo_pairs: Path, tiny_qwen: Path, tmp_path: Path, encodes: list[tuple]) -> None:
    """`solireward train` with every nuisance flag and the consistency loss: each video beside a twin of the same
    frame count and size whose pixels differ, and a consistency term in the loss."""
    data = tmp_path / "data"
    data.mkdir()
    n_videos = _subset(demo_pairs / "train.json", data / "train.json", 8)
    out = tmp_path / "run"
    assert run_cli(*fast_args(tiny_qwen, data, out, max_steps=2, per_device_train_batch_size=n_videos),
                   "--nuisance_zoom", 1, 1.3, "--nuisance_pan", 0.1, "--nuisance_contrast", 0.3, "--nuisance_shade", 40,
                   "--nuisance_overlay", 0.5, "--consistency_loss_coeff", 1.0) == 0
    train = encodes[:4 * n_videos]
    plain, drawn = [e for e in train if e[0] is None], [e for e in train if e[0] is not None]
    assert len(plain) == len(drawn) == 2 * n_videos
    assert {(e[1], e[2]) for e in drawn} == {(e[1], e[2]) for e in plain}   # no sampling jitter: same frames, sizes
    assert not {e[4] for e in drawn} & {e[4] for e in plain} and len({e[4] for e in drawn}) == len(drawn)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss_consistency"] > 0 for r in rows if r["kind"] == "train"] == [True, True]


def test_bad_ranges_are_named(demo_pairs: Path, tiny_qwen: Path, tmp_path: Path, capsys) -> None:
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, tmp_path / "x"), "--jitter_frames", 2, 1) == 2
    assert "jitter_frames" in capsys.readouterr().err
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, tmp_path / "x"), "--color_jitter", 1.5) == 2
    assert "color_jitter" in capsys.readouterr().err
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, tmp_path / "x"), "--consistency_loss_coeff", 1.0) == 2
    assert "consistency_loss_coeff" in capsys.readouterr().err  # no jitter: no twin to compare with
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, tmp_path / "x"), "--nuisance_zoom", 0, 1.2) == 2
    assert "nuisance_zoom" in capsys.readouterr().err  # a factor of 0 leaves no picture
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, tmp_path / "x"), "--nuisance_pan", 0.5) == 2
    assert "nuisance_pan" in capsys.readouterr().err


def test_a_resumed_mitigated_run_replays_the_same_draws(demo_pairs: Path, tiny_qwen: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    from tests.training.test_trainer import _weights

    flags = ("--jitter_frames", 0.5, 2, "--jitter_size", 0.5, 1, "--color_jitter", 0.5)
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = dict(max_steps=4, save_steps=2)
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, full, **args), *flags) == 0
    (cut / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step-2", cut / "checkpoints" / "step-2")
    shutil.copy(full / "metrics.jsonl", cut / "metrics.jsonl")
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, cut, **args), *flags, "--resume") == 0
    a, b = _weights(full), _weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)  # steps 3 and 4 saw the same augmented inputs
