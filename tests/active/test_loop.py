"""The labelling loop through the CLI: `simulate-labels` is demo-data's noise model (it gives back demo-data's
own labels), refuses a second vote of an annotator, and select -> simulate-labels -> labels (merge) -> pairs ->
train runs on tiny data with the batch the strategy names carried into the merged labels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.training.conftest import fast_args


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _votes(path: Path) -> set[tuple[str, str, str, str, str]]:
    """(resolved video, prompt, dimension, label, annotator) of every row of an annotation file."""
    return {(str((path.parent / r["video_path"]).resolve()), r["prompt"], r["dimension"], r["label"], r["annotator"])
            for r in _rows(path)}


def test_simulated_annotators_are_demo_datas(demo_dir: Path, tmp_path: Path) -> None:
    """A sheet of every demo video and dimension, answered with demo-data's seed, is its annotations.csv."""
    truth = _rows(demo_dir / "ground_truth.csv")
    sheet = tmp_path / "sheet.csv"
    with sheet.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["video_path", "prompt", "dimension", "label", "annotator"])
        writer.writerows([str(demo_dir / r["video_path"]), r["prompt"], d, "", ""] for r in truth
                         for d in ("physics", "deformity", "text_alignment"))
    out = tmp_path / "answers" / "answers.csv"
    assert run_cli("simulate-labels", "--batch", sheet, "--ground_truth", demo_dir / "ground_truth.csv",
                   "--output", out, "--seed", 0, "--demo_seed", 0) == 0
    assert _votes(out) == _votes(demo_dir / "annotations.csv")
    assert run_cli("simulate-labels", "--batch", sheet, "--ground_truth", demo_dir / "ground_truth.csv",
                   "--output", tmp_path / "other.csv", "--seed", 5) == 0
    assert _votes(tmp_path / "other.csv") != _votes(out)                # other draws, same annotators
    assert {v[4] for v in _votes(tmp_path / "other.csv")} == {v[4] for v in _votes(out)}


def test_a_second_vote_of_an_annotator_is_refused(demo_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    first = _rows(demo_dir / "ground_truth.csv")[0]
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("video_path,prompt,dimension,label,annotator\n"
                     f"{demo_dir / first['video_path']},{first['prompt']},physics,,\n", encoding="utf-8")
    assert run_cli("simulate-labels", "--batch", sheet, "--ground_truth", demo_dir / "ground_truth.csv",
                   "--output", tmp_path / "answers.csv", "--labelled", demo_dir / "annotations.csv") == 2
    err = capsys.readouterr().err
    assert "1 sheet video(s) already have votes of these simulated annotators" in err
    assert f"{demo_dir / 'annotations.csv'} line 2 (a01)" in err
    assert not (tmp_path / "answers.csv").exists()


@pytest.mark.slow
def test_select_label_merge_retrain(demo_dir: Path, tiny_model_factory, tmp_path: Path) -> None:
    """One round on tiny data: the pressure and random batches are the ones their definitions name, the merged
    label table carries the pressure batch with every simulated vote, and the model retrains on it."""
    data = tmp_path / "round0"
    assert run_cli("labels", "--input", demo_dir / "annotations.csv", "--output", data / "labels.jsonl") == 0
    assert run_cli("pairs", "--labels", data / "labels.jsonl", "--output_dir", data / "pairs",
                   "--split", 0.5, 0.25, 0.25, "--seed", 0) == 0
    tiny = tiny_model_factory("Qwen2-VL")
    assert run_cli(*fast_args(tiny, data / "pairs", data / "model", max_steps=2)) == 0
    assert run_cli("overopt-grid", "--input_file", data / "pairs" / "videos_train.json", "--grid_dir",
                   tmp_path / "grid", "--num_prompts", 2, "--defects", "none", "morph", "tear", "teleport",
                   "--brightness", 1.0, 1.4, "--scale", 1.0, "--background_shift", 0) == 0
    pool = tmp_path / "pool"
    assert run_cli("grid-pool", "--grid_dir", tmp_path / "grid", "--output_dir", pool) == 0
    assert run_cli("infer", "--model_name_or_path", data / "model", "--input_file", pool / "pool.jsonl",
                   "--output_file", tmp_path / "scores.json", "--num_workers", 0) == 0
    held_out = [data / "pairs" / "test.json", data / "pairs" / "videos_val.json"]
    common = ["--pool", pool / "pool.jsonl", "--scores", tmp_path / "scores.json", "--batch_size", 3,
              "--labelled", demo_dir / "annotations.csv", "--held_out", *held_out]
    assert run_cli("select", *common, "--strategy", "pressure", "--output_dir", tmp_path / "pressure") == 0
    assert run_cli("select", *common, "--strategy", "random", "--seed", 3, "--output_dir", tmp_path / "random") == 0

    scores = json.loads((tmp_path / "scores.json").read_text())
    assert len(scores) == 16
    best_first = {}
    for record in sorted(scores, key=lambda r: -r["score_norm"]):
        best_first.setdefault(record["prompt"], []).append(record)
    expected = [r["video_path"] for r in sorted((v[0] for v in best_first.values()), key=lambda r: -r["score_norm"])]
    expected += [max((v[1] for v in best_first.values()), key=lambda r: r["score_norm"])["video_path"]]
    picked = [json.loads(line)["pool_video_path"] for line in (tmp_path / "pressure" / "manifest.jsonl").open()]
    assert picked == expected
    drawn = [json.loads(line)["pool_video_path"] for line in (tmp_path / "random" / "manifest.jsonl").open()]
    assert drawn == [scores[i]["video_path"] for i in np.random.default_rng(3).permutation(16)[:3]]

    answers = tmp_path / "round1" / "answers.csv"
    assert run_cli("simulate-labels", "--batch", tmp_path / "pressure" / "to_label.csv", "--ground_truth",
                   pool / "ground_truth.csv", "--output", answers, "--labelled", demo_dir / "annotations.csv") == 0
    merged = tmp_path / "round1" / "labels.jsonl"
    assert run_cli("labels", "--input", demo_dir / "annotations.csv", answers, "--output", merged) == 0
    table = [json.loads(line) for line in merged.read_text().splitlines()]
    new = {str((pool / p).resolve()) for p in picked}
    carried = [r for r in table if r["video_path"] in new]
    assert {r["video_path"] for r in carried} == new
    assert {r["dimension"] for r in carried} == {"physics", "deformity"}
    assert all(r["n_annotators"] == 5 for r in carried)
    truth = {str((pool / r["video_path"]).resolve()): r for r in _rows(pool / "ground_truth.csv")}
    agree = np.mean([r["label"] == int(truth[r["video_path"]][r["dimension"]]) for r in carried])
    assert agree >= 0.5                                   # majority of 5 annotators who flip 8-22 % of labels
    report = json.loads((tmp_path / "round1" / "label_report.json").read_text())
    assert report["summary"]["duplicates_removed"] == 0 and report["summary"]["rows_rejected"] == 0
    twice = tmp_path / "twice" / "labels.jsonl"           # the answers imported twice: each vote counted once
    assert run_cli("labels", "--input", demo_dir / "annotations.csv", answers, answers, "--output", twice) == 0
    assert twice.read_bytes() == merged.read_bytes()
    assert json.loads((twice.parent / "label_report.json").read_text())["summary"]["duplicates_removed"] == 3 * 2 * 5

    assert run_cli("pairs", "--labels", merged, "--output_dir", tmp_path / "round1" / "pairs",
                   "--split", 0.5, 0.25, 0.25, "--seed", 0) == 0
    train_file = tmp_path / "round1" / "pairs" / "videos_train.json"
    train_videos = {r["video_path"] for r in json.loads(train_file.read_text())}
    assert new <= train_videos
    for name in ("videos_val.json", "videos_test.json", "val.json", "test.json"):   # held-out files unchanged
        assert (data / "pairs" / name).read_bytes() == (tmp_path / "round1" / "pairs" / name).read_bytes()
    assert run_cli(*fast_args(tiny, tmp_path / "round1" / "pairs", tmp_path / "round1" / "model", max_steps=2)) == 0
    assert (tmp_path / "round1" / "model" / "train_summary.json").is_file()
