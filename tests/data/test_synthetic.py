"""`solireward demo-data`: files, columns, class balance, determinism and visible defects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from solireward.data.synthetic import COLOURS
from solireward.data.video import FrameSampling, read_video, video_info
from tests.conftest import run_cli

SIZE = 64  # the demo_dir fixture uses the default frame size


def test_files_and_columns(demo_dir: Path) -> None:
    videos = sorted((demo_dir / "videos").glob("*.mp4"))
    assert len(videos) == 12 * 4
    truth = pd.read_csv(demo_dir / "ground_truth.csv")
    annotations = pd.read_csv(demo_dir / "annotations.csv")
    pairwise = pd.read_csv(demo_dir / "pairwise_annotations.csv")
    assert list(annotations.columns) == ["video_path", "prompt", "dimension", "label", "annotator"]
    assert list(pairwise.columns) == ["prompt", "video_a", "video_b", "choice", "annotator"]
    assert list(truth.columns[:9]) == ["video_path", "prompt", "physics", "deformity", "text_alignment",
                                       "phy_deform", "physics_defect", "deformity_defect", "text_defect"]
    assert sorted(truth.video_path) == sorted(f"videos/{v.name}" for v in videos)
    assert truth.prompt.nunique() == 12 and (truth.groupby("prompt").size() == 4).all()

    assert len(annotations) == 48 * 3 * 5
    assert set(annotations.annotator) == {"a01", "a02", "a03", "a04", "a05"}
    assert set(annotations.dimension) == {"physics", "deformity", "text_alignment"}
    assert set(annotations.label) == {"pass", "fail"}
    assert (annotations.groupby(["video_path", "dimension"]).size() == 5).all()

    assert len(pairwise) == 12 * 6 * 3 and set(pairwise.choice) <= {"a", "b", "tie"}
    prompt_of = dict(zip(truth.video_path, truth.prompt))
    assert all(prompt_of[a] == prompt_of[b] == p for p, a, b in
               zip(pairwise.prompt, pairwise.video_a, pairwise.video_b))  # in-prompt pairs

    assert (truth.phy_deform == truth.physics * truth.deformity).all()
    for dim in ("physics", "deformity", "text_alignment", "phy_deform"):
        assert set(truth[dim]) == {0, 1}, dim
    assert ((truth.physics == 1) == (truth.physics_defect == "none")).all()
    assert ((truth.text_alignment == 1) == (truth.text_defect == "none")).all()
    assert "--seed 0" in (demo_dir / "README.md").read_text()


def test_labels_are_noisy_but_mostly_right(demo_dir: Path) -> None:
    truth = pd.read_csv(demo_dir / "ground_truth.csv").melt(
        id_vars="video_path", value_vars=["physics", "deformity", "text_alignment"], var_name="dimension",
        value_name="truth")
    annotations = pd.read_csv(demo_dir / "annotations.csv").merge(truth, on=["video_path", "dimension"])
    wrong = (annotations.label == "pass") != (annotations.truth == 1)
    assert 0.05 < wrong.mean() < 0.25
    majority = annotations.assign(vote=annotations.label == "pass").groupby(
        ["video_path", "dimension"]).agg(vote=("vote", "mean"), truth=("truth", "first"))
    assert ((majority.vote > 0.5) == (majority.truth == 1)).mean() > 0.9


def _generate(out: Path, seed: int) -> Path:
    assert run_cli("demo-data", "--output_dir", out, "--seed", seed, "--num_prompts", 2,
                   "--videos_per_prompt", 4, "--num_frames", 8, "--size", 32) == 0
    return out


def test_same_seed_same_files_other_seed_differs(tmp_path: Path, demo_dir: Path) -> None:
    a, b, c = (_generate(tmp_path / name, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    for name in ("annotations.csv", "pairwise_annotations.csv", "ground_truth.csv", "README.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "annotations.csv").read_bytes() != (c / "annotations.csv").read_bytes()
    for video in sorted((a / "videos").glob("*.mp4")):
        sampling = FrameSampling(num_frames=8)
        assert np.array_equal(read_video(video, sampling), read_video(b / "videos" / video.name, sampling))
    # fewer prompts (same seed and videos per prompt): the first prompts of the larger set
    small = pd.read_csv(a / "ground_truth.csv")
    big = pd.read_csv(demo_dir / "ground_truth.csv").head(len(small))
    pd.testing.assert_frame_equal(small, big)


def test_bad_flags_are_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("demo-data", "--output_dir", tmp_path, "--size", 33) == 2
    assert "size" in capsys.readouterr().err
    assert run_cli("demo-data", "--output_dir", tmp_path, "--num_prompts", 1000) == 2
    assert "num_prompts" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_demo_videos_read_back(demo_dir: Path, backend: str) -> None:
    path = demo_dir / "videos" / "p000_v0.mp4"
    assert video_info(path, backend) == (16, 8.0, SIZE, SIZE)
    assert read_video(path, FrameSampling(num_frames=8), backend=backend).shape == (8, SIZE, SIZE, 3)
    assert read_video(path, FrameSampling(mode="fps", fps=2.0), backend=backend).shape == (4, SIZE, SIZE, 3)
    assert read_video(path, FrameSampling(height=56, width=56), backend=backend).shape == (8, 56, 56, 3)
    assert read_video(path, FrameSampling(max_pixels=32 * 32), backend=backend).shape == (8, 32, 32, 3)


def _measure(frames: np.ndarray, colour: str) -> list[dict]:
    """Per frame: the object's parts, bounding box and centre (pixels close to its colour)."""
    masks = np.abs(frames.astype(int) - np.array(COLOURS[colour])).max(axis=-1) < 80
    out = []
    for mask in masks:
        labels, _ = ndimage.label(mask)
        parts = int((np.bincount(labels.ravel())[1:] >= 4).sum())
        ys, xs = np.nonzero(mask)
        out.append({"mask": mask, "parts": parts, "x": xs.mean(), "top": ys.min(), "bottom": ys.max(),
                    "width": np.ptp(xs) + 1, "height": np.ptp(ys) + 1})
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks moved to a common centre."""
    def centred(mask: np.ndarray) -> set:
        ys, xs = np.nonzero(mask)
        return set(zip(ys - round(ys.mean()), xs - round(xs.mean())))
    a, b = centred(a), centred(b)
    return len(a & b) / len(a | b)


def test_defects_are_visible_in_eight_sampled_frames(demo_dir: Path) -> None:
    truth = pd.read_csv(demo_dir / "ground_truth.csv")
    ground_top = SIZE - SIZE // 8
    seen = set()
    for row in truth.itertuples():
        f = _measure(read_video(demo_dir / row.video_path, FrameSampling(num_frames=8)), row.shown_colour)
        max_jump = max(abs(b["x"] - a["x"]) for a, b in zip(f, f[1:]))
        air = [ground_top - 1 - g["bottom"] for g in f[-2:]]  # free space under the object at the end
        name = f"{row.video_path}: {row.physics_defect}/{row.deformity_defect}"
        assert f[0]["parts"] == 1, name
        if row.physics_defect == "teleport":
            assert max_jump >= SIZE / 5, name
        elif row.physics_defect == "hover":
            assert min(air) >= SIZE / 6, name
        elif row.physics_defect == "anti_gravity":
            assert air[-1] >= SIZE / 3 and air[-1] >= air[0], name
        else:
            assert max_jump < SIZE / 6, name
            if row.shown_motion in ("fall", "slide_left", "slide_right"):
                assert max(air) <= 3, name
        if row.deformity_defect == "tear":
            assert f[-1]["parts"] >= 2, name
        elif row.deformity_defect == "melt":
            assert f[-1]["width"] >= 2.5 * f[-1]["height"], name
        elif row.deformity_defect == "morph":
            assert _overlap(f[0]["mask"], f[-1]["mask"]) < 0.8, name
        else:
            assert all(g["parts"] == 1 for g in f), name
            assert all(g["width"] <= 1.5 * g["height"] for g in f), name
            assert _overlap(f[0]["mask"], f[-1]["mask"]) > 0.65, name
        seen.update({row.physics_defect, row.deformity_defect})
    assert seen >= {"teleport", "hover", "anti_gravity", "tear", "melt", "morph", "none"}
