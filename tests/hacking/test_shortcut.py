"""The demo generator's nuisance and planted shortcut: biased train-split annotators in a label file of their own,
clean labels and ground truth beside them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from solireward.data.pairing import split_prompts
from solireward.data.synthetic import DemoDataConfig, plan_videos, render_video
from tests.conftest import run_cli

FLAGS = ("--num_prompts", 20, "--videos_per_prompt", 6, "--num_frames", 8, "--size", 32, "--seed", 0)
SPLIT = [0.6, 0.2, 0.2]


@pytest.fixture(scope="module")
def plain_and_biased(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    plain, biased = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("biased")
    assert run_cli("demo-data", "--output_dir", plain, *FLAGS) == 0
    assert run_cli("demo-data", "--output_dir", biased, *FLAGS, "--bright_share", 0.5, "--shortcut_bias", 0.9,
                   "--shortcut_split", *SPLIT) == 0
    return plain, biased


def test_the_shortcut_biases_only_train_split_labels_of_bright_videos(plain_and_biased) -> None:
    plain, biased = plain_and_biased
    truth = pd.read_csv(biased / "ground_truth.csv")
    plain_truth = pd.read_csv(plain / "ground_truth.csv")
    pd.testing.assert_frame_equal(truth.drop(columns="brightness"), plain_truth)  # the ground truth is unbiased
    assert set(truth.brightness) == {1.0, 1.4} and (truth.brightness == 1.4).mean() == pytest.approx(0.5)
    split = split_prompts(truth.prompt.tolist(), SPLIT, 0)
    labels = pd.read_csv(biased / "annotations_biased.csv").merge(truth, on=["video_path", "prompt"])
    plain_labels = pd.read_csv(plain / "annotations.csv")
    # the clean story: the same videos' annotations.csv and pairwise votes are as without the shortcut
    pd.testing.assert_frame_equal(pd.read_csv(biased / "annotations.csv"), plain_labels)
    pd.testing.assert_frame_equal(*(pd.read_csv(d / "pairwise_annotations.csv") for d in (biased, plain)))
    assert not (plain / "annotations_biased.csv").exists()
    labels["train"] = labels.prompt.map(split) == "train"
    labels["changed"] = labels.label.to_numpy() != plain_labels.label.to_numpy()
    shortcut = labels.train & (labels.brightness == 1.4) & labels.dimension.isin(["physics", "deformity"])
    assert not labels.changed[~shortcut].any()  # every other label is as without the shortcut
    failing = shortcut & (labels.phy_deform == 0)
    assert labels.label[failing].eq("pass").mean() > 0.85  # biased annotators pass bright Fail videos
    readme = (biased / "README.md").read_text()
    assert "Planted shortcut" in readme and "--shortcut_bias 0.9" in readme
    assert "shortcut" not in (plain / "README.md").read_text()  # the default README is unchanged


def test_nuisances_change_the_pixels_not_the_plan() -> None:
    base = plan_videos(DemoDataConfig(output_dir="x", num_prompts=3, videos_per_prompt=4))
    bright = plan_videos(DemoDataConfig(output_dir="x", num_prompts=3, videos_per_prompt=4, bright_share=0.5))
    for a, b in zip(sum(base, []), sum(bright, [])):
        assert (a.physics_defect, a.deformity_defect, a.text_defect, a.seed) == \
               (b.physics_defect, b.deformity_defect, b.text_defect, b.seed)
        frames_a, frames_b = render_video(a, 32, 8), render_video(b, 32, 8)
        assert (frames_a == frames_b).all() == (b.brightness == 1.0)


def test_a_shortcut_without_bright_videos_is_rejected(tmp_path: Path, capsys) -> None:
    assert run_cli("demo-data", "--output_dir", tmp_path, "--shortcut_bias", 0.5) == 2
    assert "shortcut_bias" in capsys.readouterr().err
