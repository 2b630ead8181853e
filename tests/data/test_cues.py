"""The plantable cues of `solireward demo-data`: each a nuisance rendered on its own share of videos (drawn
independently, ground truth unchanged) and a biased label file that differs from the clean labels exactly on
the cue's videos of the train split, with the cue's stated bias."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from solireward.data.pairing import split_prompts
from solireward.data.synthetic import DemoDataConfig, plan_videos, render_video
from solireward.data.synthetic.plan import CUES, TRUSTED_ANNOTATIONS
from tests.conftest import run_cli

FLAGS = ("--num_prompts", 20, "--videos_per_prompt", 8, "--num_frames", 8, "--size", 32, "--seed", 0)
SPLIT = [0.6, 0.2, 0.2]
# a different strength per cue: each file follows its own
BIAS = dict(zip(CUES, (0.9, 0.3, 0.6, 0.75, 0.45, 0.8, 0.65, 0.55, 0.7), strict=True))


@pytest.fixture(scope="module")
def plain_and_cued(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    plain, cued = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("cued")
    assert run_cli("demo-data", "--output_dir", plain, *FLAGS) == 0
    cue_flags = [x for cue in CUES for x in (f"--{cue.share}", 0.375, f"--{cue.bias}", BIAS[cue])]
    assert run_cli("demo-data", "--output_dir", cued, *FLAGS, *cue_flags, "--shortcut_split", *SPLIT,
                   "--trusted_share", 0.25) == 0
    return plain, cued


def test_nuisances_are_drawn_independently_and_leave_the_ground_truth(plain_and_cued) -> None:
    plain, cued = plain_and_cued
    truth = pd.read_csv(cued / "ground_truth.csv")
    columns = [cue.name for cue in CUES]
    pd.testing.assert_frame_equal(truth.drop(columns=columns), pd.read_csv(plain / "ground_truth.csv"))
    shown = pd.DataFrame({cue.name: truth[cue.name] != cue.neutral for cue in CUES})
    for cue in CUES:
        assert set(truth[cue.name]) == {cue.neutral, getattr(DemoDataConfig(output_dir="x"), cue.value)}
        assert (shown[cue.name].groupby(truth.prompt).sum() == 3).all()  # 3 of each prompt's 8 videos
    for a, b in zip(columns, columns[1:]):  # independent draws: not one set of videos for every cue
        both = (shown[a] & shown[b]).mean()
        assert 0.03 < both < 0.3 and not shown[a].equals(shown[b])


@pytest.mark.parametrize("cue", CUES, ids=[cue.label_source for cue in CUES])
def test_each_cue_biases_exactly_its_videos_of_the_train_split(plain_and_cued, cue) -> None:
    plain, cued = plain_and_cued
    truth = pd.read_csv(cued / "ground_truth.csv")
    clean = pd.read_csv(cued / "annotations.csv")
    pd.testing.assert_frame_equal(clean, pd.read_csv(plain / "annotations.csv"))  # cues leave the clean labels
    biased = pd.read_csv(cued / cue.annotations)
    assert biased.drop(columns="label").equals(clean.drop(columns="label"))
    cue_of = dict(zip(truth.video_path, truth[cue.name] != cue.neutral))
    train = biased.prompt.map(split_prompts(truth.prompt.tolist(), SPLIT, 0)) == "train"
    candidate = train & biased.video_path.map(cue_of) & biased.dimension.isin(["physics", "deformity"])
    changed = biased.label != clean.label
    assert not changed[~candidate].any()  # every other label is the clean one
    assert biased.label[changed].eq("pass").all()  # a biased annotator passes, never fails, a cue video
    was_fail = candidate & clean.label.eq("fail")
    rate, n = changed[was_fail].mean(), int(was_fail.sum())
    assert n > 50 and abs(rate - BIAS[cue]) < 4 * np.sqrt(BIAS[cue] * (1 - BIAS[cue]) / n)
    readme = (cued / "README.md").read_text()
    assert f"`{cue.annotations}` (`{cue.label_source}`)" in readme and f"--{cue.bias} {BIAS[cue]:g}" in readme


def test_each_nuisance_changes_the_pixels_not_the_plan() -> None:
    base = DemoDataConfig(output_dir="x", num_prompts=3, videos_per_prompt=4)
    for cue in CUES:
        cued = dataclasses.replace(base, **{cue.share: 0.5})
        for a, b in zip(sum(plan_videos(base), []), sum(plan_videos(cued), []), strict=True):
            assert (a.physics_defect, a.deformity_defect, a.text_defect, a.seed) == \
                   (b.physics_defect, b.deformity_defect, b.text_defect, b.seed)
            assert (render_video(a, 32, 8) == render_video(b, 32, 8)).all() == (getattr(b, cue.name) == cue.neutral)


@pytest.mark.parametrize("cue", CUES[1:], ids=[cue.label_source for cue in CUES[1:]])
def test_a_bias_without_its_nuisance_is_rejected(tmp_path: Path, capsys, cue) -> None:
    assert run_cli("demo-data", "--output_dir", tmp_path, f"--{cue.bias}", 0.5) == 2
    assert cue.bias in capsys.readouterr().err


def test_the_study_knows_every_cue_as_a_label_source() -> None:
    from solireward.study import BIASED_SOURCES, BINARY_SOURCES, LABEL_SOURCES

    assert BIASED_SOURCES == {cue.label_source: cue.bias for cue in CUES}
    assert set(BIASED_SOURCES) <= set(LABEL_SOURCES) & set(BINARY_SOURCES)


def test_the_trusted_labels_are_the_clean_rows_of_a_share_of_the_train_prompts(plain_and_cued) -> None:
    plain, cued = plain_and_cued
    clean, trusted = pd.read_csv(cued / "annotations.csv"), pd.read_csv(cued / TRUSTED_ANNOTATIONS)
    truth = pd.read_csv(cued / "ground_truth.csv")
    split = split_prompts(truth.prompt.tolist(), SPLIT, 0)
    prompts = set(trusted.prompt)
    assert len(prompts) == 3 and all(split[p] == "train" for p in prompts)   # a quarter of the 12 train prompts
    expected = clean[clean.prompt.isin(prompts)].reset_index(drop=True)
    pd.testing.assert_frame_equal(trusted, expected)   # no planted shortcut reaches them
    assert f"`{TRUSTED_ANNOTATIONS}` (label source `trusted`)" in (cued / "README.md").read_text()
    assert not (plain / TRUSTED_ANNOTATIONS).exists() and "trusted" not in (plain / "README.md").read_text()


def test_each_cue_names_a_perturbation_of_the_probe_and_an_axis_of_the_grid() -> None:
    """`cue_goals` writes probe:<cue.probe> and share:<cue.name> goals: both must exist where the goals are read."""
    from solireward.hacking.grid import NUISANCE_AXES, GridOptions
    from solireward.hacking.perturbations import NAMES

    assert {field.name for field in dataclasses.fields(GridOptions)} >= set(NUISANCE_AXES) == {c.name for c in CUES}
    assert all(cue.probe in NAMES for cue in CUES if cue.probe)
    assert [cue.name for cue in CUES if cue.probe is None] == ["background_shift"]   # no probe edit shifts a background
