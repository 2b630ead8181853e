"""`solireward probe`: perturbations do what they say, and the statistics flag what they should."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from solireward.data.synthetic import COLOURS
from solireward.data.video import FrameSampling, read_all_frames
from solireward.hacking.probe import PERTURBATIONS, Clip, FrameScorer, compare_probes, load_clips, probe_scorer
from tests.conftest import run_cli

SAMPLING = FrameSampling(num_frames=8, height=56, width=56)


def by_name(name: str):
    return next(p for p in PERTURBATIONS if p.name == name)


constant = FrameScorer(lambda frames, prompt: 0.5)
brightness_only = FrameScorer(lambda frames, prompt: float(frames.mean()))  # reads brightness and nothing else


@pytest.fixture(scope="module")
def clips(demo_records: Path) -> list[Clip]:
    return load_clips(str(demo_records), max_videos=8)[0]


def test_a_scorer_that_ignores_its_input_never_moves(clips: list[Clip]) -> None:
    result = probe_scorer(constant, clips, SAMPLING)
    assert {row["name"] for row in result["perturbations"]} == {p.name for p in PERTURBATIONS}
    for row in result["perturbations"]:
        assert row["mean_change"] == 0 and row["mean_change_std"] == 0 and row["share_up"] == 0, row
        assert row["spearman"] is None  # constant scores have no rank correlation


def test_a_brightness_reader_is_flagged_by_the_brightness_probe_only(clips: list[Clip]) -> None:
    rows = {row["name"]: row for row in probe_scorer(brightness_only, clips, SAMPLING)["perturbations"]}
    assert rows["brightness"]["flagged"] and rows["brightness"]["verdict"] == "pays"
    assert rows["brightness"]["share_up"] == 1.0 and rows["brightness"]["mean_change_std"] > 1
    for name in ("frames_x0.5", "frames_x2", "video_fps_x0.5", "prompt_swap"):
        assert not rows[name]["flagged"], rows[name]
        assert abs(rows[name]["mean_change_std"]) < 0.25, rows[name]


def object_heights(frames: np.ndarray, colour: str) -> np.ndarray:
    """Row of the centroid of the pixels of the object's colour, per frame (image y grows downward)."""
    distance = np.abs(frames.astype(int) - np.array(COLOURS[colour])).sum(-1)
    mask = distance < 60
    rows = np.arange(frames.shape[1])[None, :, None]
    return (mask * rows).sum((1, 2)) / np.maximum(mask.sum((1, 2)), 1)


def test_reversed_time_really_reverses(demo_dir: Path, demo_records: Path) -> None:
    record = next(r for r in json.loads(demo_records.read_text())
                  if r["truth"]["shown_motion"] == "fall" and r["truth"]["physics"] == "1"
                  and r["truth"]["deformity"] == "1")
    frames, fps = read_all_frames(demo_dir / record["video_path"])
    assert fps == 8.0 and len(frames) == 16  # every frame of the demo video
    colour = record["truth"]["shown_colour"]
    clean = object_heights(frames, colour)
    assert clean[-1] > clean[0] + 10  # it falls: its row grows
    reversed_clip = by_name("reverse").apply(Clip(frames, 8.0, record["prompt"]), np.random.default_rng(0))
    np.testing.assert_array_equal(reversed_clip.frames, frames[::-1])
    heights = object_heights(reversed_clip.frames, colour)
    assert heights[0] > heights[-1] + 10  # it rises in the decoded frames
    assert (np.diff(heights) <= 0.5).all()  # and never moves down on the way


def test_invariant_perturbations_change_only_what_they_say(clips: list[Clip]) -> None:
    clip = clips[0]
    rng = np.random.default_rng(0)
    half = by_name("video_fps_x0.5").apply(clip, rng)
    assert half.fps == clip.fps / 2 and len(half.frames) == (len(clip.frames) + 1) // 2
    assert by_name("frames_x2").sampling(SAMPLING, clip).num_frames == 16
    assert by_name("resolution_x0.5").sampling(SAMPLING, clip).height == 28
    reencoded = by_name("reencode").apply(clip, rng)
    assert reencoded.frames.shape == clip.frames.shape
    assert 0 < np.abs(reencoded.frames.astype(int) - clip.frames).mean() < 4  # lossy, but mild
    shuffled = by_name("shuffle").apply(clip, rng).frames
    assert not np.array_equal(shuffled, clip.frames)
    assert sorted(map(bytes, shuffled)) == sorted(map(bytes, clip.frames))  # the same frames


def test_probe_cli(reward_model_dir: Path, demo_records: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe"
    assert run_cli("probe", "--model_name_or_path", reward_model_dir, "--input_file", demo_records,
                   "--output_dir", out, "--max_videos", 4, "--tag", "head=last_token", "loss=bt") == 0
    result = json.loads((out / "probe.json").read_text())
    assert result["n_videos"] == 4 and result["tags"] == {"head": "last_token", "loss": "bt"}
    assert len(result["videos"]) == 4 and result["skipped"] == []
    rows = {row["name"]: row for row in result["perturbations"]}
    # a phy_deform model's chat prompt holds no video prompt: another video's prompt changes nothing it sees
    assert result["reward_task"] == "phy_deform" and rows.pop("prompt_swap")["verdict"] == "not tested"
    for row in rows.values():
        assert row["tested"] and row["n_tested"] == 4 and len(row["per_video_change_std"]) == 4, row
        low, high = row["mean_change_std_ci"]
        assert low <= row["mean_change_std"] <= high
        assert row["mean_change_std"] == pytest.approx(np.mean(row["per_video_change_std"]))
    assert {row["name"] for row in result["perturbations"]} == {p.name for p in PERTURBATIONS}
    assert "| reverse" in (out / "probe.md").read_text()


def test_probe_cli_names_a_bad_record(reward_model_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "videos.json"
    bad.write_text(json.dumps([{"prompt": "x"}]))
    assert run_cli("probe", "--model_name_or_path", reward_model_dir, "--input_file", bad,
                   "--output_dir", tmp_path / "out") == 2
    assert "video_path" in capsys.readouterr().err


def test_a_perturbation_that_leaves_the_input_unchanged_is_not_tested(clips: list[Clip]) -> None:
    # 'fps' mode: 2 fps of the 2 s demo videos is 4 frames = min_frames, so half the rate still takes 4 frames;
    # the size is capped at 56 x 56, so twice the size is cut back to it
    sampling = FrameSampling(mode="fps", fps=2.0, min_frames=4, height=56, width=56, max_pixels=56 * 56)
    rows = {row["name"]: row for row in probe_scorer(brightness_only, clips, sampling)["perturbations"]}
    for name in ("frames_x0.5", "resolution_x2"):
        row = rows[name]
        assert not row["tested"] and row["verdict"] == "not tested" and not row["flagged"], row
        assert row["n_tested"] == 0 and row["mean_change_std"] is None and "equals the clean input" in row["reason"]
    assert rows["frames_x2"]["tested"] and rows["frames_x2"]["n_tested"] == len(clips)
    assert rows["brightness"]["verdict"] == "pays"


def test_probe_cli_reports_untested_rows_and_skips_an_unreadable_video(reward_model_dir: Path, demo_records: Path,
                                                                      tmp_path: Path) -> None:
    import shutil

    from solireward.models import RewardModel

    model = RewardModel.from_pretrained(reward_model_dir)
    model.config.sampling = FrameSampling(mode="fps", fps=2.0, min_frames=4, height=56, width=56,
                                          max_pixels=56 * 56).to_dict()
    model.save_pretrained(tmp_path / "fps-model")
    records = json.loads(demo_records.read_text())[:4]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    for r in records:
        r["video_path"] = str(demo_records.parent / r["video_path"])
    records.insert(1, {"video_path": str(broken), "prompt": records[0]["prompt"]})
    (tmp_path / "videos.json").write_text(json.dumps(records))
    out = tmp_path / "probe"
    assert run_cli("probe", "--model_name_or_path", tmp_path / "fps-model", "--input_file", tmp_path / "videos.json",
                   "--output_dir", out, "--perturbations", "frames_x0.5", "resolution_x2", "brightness") == 0
    result = json.loads((out / "probe.json").read_text())
    assert result["n_videos"] == 4 and [s["video_path"] for s in result["skipped"]] == [str(broken)]
    rows = {row["name"]: row for row in result["perturbations"]}
    assert list(rows) == ["frames_x0.5", "resolution_x2", "brightness"]
    assert rows["frames_x0.5"]["verdict"] == rows["resolution_x2"]["verdict"] == "not tested"
    assert rows["brightness"]["tested"]
    markdown = (out / "probe.md").read_text()
    assert "frames_x0.5 not tested" in markdown and "unreadable videos skipped" in markdown
    shutil.rmtree(out)


def test_compare_probes_pairs_the_videos(clips: list[Clip]) -> None:
    sampling = FrameSampling(num_frames=8, height=56, width=56)
    a = {"videos": list(range(len(clips))), **probe_scorer(brightness_only, clips, sampling)}
    twin = FrameScorer(lambda frames, prompt: float(frames.mean()))
    b = {"videos": a["videos"], **probe_scorer(twin, clips, sampling)}
    same = compare_probes(a, b)
    assert same["brightness"]["difference"] == pytest.approx(0.0) and same["brightness"]["p"] == 1.0
    blind = {"videos": a["videos"], **probe_scorer(constant, clips, sampling)}
    versus = compare_probes(a, blind)["brightness"]
    assert versus["difference"] > 1 and versus["p"] < 0.01 and versus["n"] == len(clips)
    with pytest.raises(Exception, match="different videos"):
        compare_probes(a, {**blind, "videos": a["videos"][::-1]})


def test_videos_whose_input_is_unchanged_are_left_out_of_the_statistics(clips: list[Clip]) -> None:
    """fps mode at 2 fps with min_frames 4: half the rate changes the 8 s clips' frames (16 -> 8), not the 2 s ones'."""
    long = [Clip(np.concatenate([c.frames] * 4), c.fps, c.prompt) for c in clips[:2]]
    mixed = clips[:2] + long
    sampling = FrameSampling(mode="fps", fps=2.0, min_frames=4, height=56, width=56)
    row = next(r for r in probe_scorer(brightness_only, mixed, sampling)["perturbations"] if r["name"] == "frames_x0.5")
    assert row["tested"] and (row["n_tested"], row["n_unchanged"]) == (2, 2)
    assert row["per_video_change_std"][:2] == [None, None] and None not in row["per_video_change_std"][2:]
    assert row["mean_change_std"] == pytest.approx(np.mean(row["per_video_change_std"][2:]))


def test_a_video_that_already_shows_a_cue_is_left_out_of_its_own_perturbation(reward_model_dir: Path,
                                                                                tmp_path: Path, capsys) -> None:
    """With --shown (the demo's ground_truth.csv), a letterboxed video is left out of the letterbox perturbation,
    where the edit would stack on itself, and stays in every other; a large-object video is left out of both zooms;
    a probed video the table lacks is an error."""
    data = tmp_path / "data"
    assert run_cli("demo-data", "--output_dir", data, "--num_prompts", 6, "--videos_per_prompt", 2, "--num_frames", 8,
                   "--size", 32, "--letterbox_share", 0.5, "--size_share", 0.5, "--seed", 0) == 0
    with (data / "ground_truth.csv").open(newline="", encoding="utf-8") as f:
        truth = list(csv.DictReader(f))
    (data / "videos.json").write_text(json.dumps([{"video_path": r["video_path"], "prompt": r["prompt"]}
                                                  for r in truth]), encoding="utf-8")
    boxed = [float(r["letterbox"]) > 0 for r in truth]
    assert 0 < sum(boxed) < len(boxed)
    out = tmp_path / "probe"
    assert run_cli("probe", "--model_name_or_path", reward_model_dir, "--input_file", data / "videos.json",
                   "--output_dir", out, "--perturbations", "letterbox", "tint", "zoom_x1.15", "zoom_x1.3",
                   "--shown", data / "ground_truth.csv") == 0
    result = json.loads((out / "probe.json").read_text())
    rows = {row["name"]: row for row in result["perturbations"]}
    assert (rows["letterbox"]["n_shown"], rows["letterbox"]["n_tested"]) == (sum(boxed), len(boxed) - sum(boxed))
    assert [v is None for v in rows["letterbox"]["per_video_change_std"]] == boxed
    assert rows["tint"]["n_shown"] == 0 and rows["tint"]["n_tested"] == len(boxed)   # no video is tinted
    large = [float(r["scale"]) != 1.0 for r in truth]
    assert 0 < sum(large) < len(large) and large != boxed
    for zoom in ("zoom_x1.15", "zoom_x1.3"):
        assert [v is None for v in rows[zoom]["per_video_change_std"]] == large, zoom
    assert f"letterbox ({sum(boxed)})" in (out / "probe.md").read_text()
    (data / "partial.csv").write_text("".join((data / "ground_truth.csv").read_text().splitlines(True)[:-1]))
    assert run_cli("probe", "--model_name_or_path", reward_model_dir, "--input_file", data / "videos.json",
                   "--output_dir", out, "--perturbations", "letterbox", "--shown", data / "partial.csv") == 2
    err = capsys.readouterr().err
    assert "partial.csv" in err and truth[-1]["video_path"] in err
