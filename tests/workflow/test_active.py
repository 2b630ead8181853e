"""`snakemake active_rounds` (config key `active`): its job plan, its config errors, and a real tiny run whose
report has a row per strategy and round, labels spent growing by the batch, and the picked videos in the merged
labels, with the study's test and validation files untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.workflow.test_workflow import REPO, TINY, dry_run_jobs, job_counts, snakemake

ACTIVE = "results/tiny/active/phy_deform"
STUDY_PAIRS = "results/tiny/pairs/phy_deform/binary__cross_prompt"


def _overlay(tmp_path: Path, active: dict) -> Path:
    path = tmp_path / "active.yaml"
    path.write_text(yaml.safe_dump({"active": active}), encoding="utf-8")
    return path


def test_rounds_plan_reuses_the_studys_trainings(tmp_path: Path) -> None:
    """3 seeds, 2 rounds: seeds 0 and 1 start from the study's two trainings of the reference cell, seed 2 from a
    round 0 of its own; every strategy and the control get a batch, labels, pairs and a model per seed and round;
    only pressure scores the pool."""
    overlay = _overlay(tmp_path, {"strategies": ["pressure"], "rounds": 2, "batch": 0.25, "seeds": 3})
    result = snakemake(tmp_path, "-n", "active_rounds", configfiles=(TINY, overlay))
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout + result.stderr)
    assert counts["train"] == 2 and counts["active_train"] == 2 * 3 * 2 + 1
    assert counts["select"] == counts["simulate_labels"] == counts["active_labels"] == counts["active_pairs"] == 12
    assert counts["active_infer_pool"] == 3 * 2 and counts["active_infer"] == counts["active_evaluate"] == 13
    assert counts["grid_pool"] == counts["active_pool_grid"] == counts["active_report"] == 1
    trained = {out for rule, out in dry_run_jobs(result.stdout + result.stderr) if rule == "active_train"}
    assert f"{ACTIVE}/round0/seed2/model" in trained and f"{ACTIVE}/round0/seed1/model" not in trained
    assert f"{ACTIVE}/random/seed1/round2/model" in trained


def test_warm_start_trains_each_round_from_the_round_before(tmp_path: Path) -> None:
    """active.warm_start: round r's training continues round r-1's model (round 1: the study's training of that
    seed); without it every round starts again from the backbone."""
    for warm in (True, False):
        overlay = _overlay(tmp_path, {"strategies": ["pressure"], "rounds": 2, "batch": 0.25, "seeds": 1,
                                      "warm_start": warm})
        result = snakemake(tmp_path, "-n", "-p", "active_rounds", configfiles=(TINY, overlay))
        assert result.returncode == 0, result.stdout + result.stderr
        starts = {line.split("train.sh ")[1].split()[0]: line.split("--model_name_or_path ")[1].split()[0]
                  for line in result.stdout.splitlines() if "train.sh" in line and "/round" in line}
        for strategy in ("pressure", "random"):
            second = starts[f"{ACTIVE}/{strategy}/seed0/round2/model"]
            first = starts[f"{ACTIVE}/{strategy}/seed0/round1/model"]
            if warm:
                assert second == f"{ACTIVE}/{strategy}/seed0/round1/model", second
                assert first.startswith("results/tiny/models/phy_deform/") and first.endswith("/model"), first
            else:
                assert second == first == "results/tiny/backbone", (first, second)


@pytest.mark.parametrize("active, message", [
    ({"strategies": ["disagreement"]}, "config key active.strategies: 'disagreement' needs several models' scores"),
    ({"batch": 1.5}, "config key active.batch: expected a share of the training videos in (0, 1) or a whole number"),
    ({"cell": {"head": "hpqa"}}, "config key active.cell.head: 'hpqa' is not one of the study's: last_token"),
    ({"select": {"batch_size": 5}}, "config key active.select: 'batch_size' is set by the rounds"),
])
def test_bad_rounds_config_is_a_clear_error(tmp_path: Path, active: dict, message: str) -> None:
    result = snakemake(tmp_path, "-n", "active_rounds", configfiles=(TINY, _overlay(tmp_path, active)))
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_active_rounds_run_and_report(tmp_path: Path) -> None:
    """tiny_study.yaml's rounds: pressure and random, 1 round of 2 videos, 2 seeds (~4 min on 2 free cores)."""
    result = snakemake(tmp_path, "--cores", "2", "active_rounds", timeout=1500)
    assert result.returncode == 0, result.stderr[-5000:]
    report = tmp_path / "results" / "tiny" / "active" / "report"
    numbers = json.loads((report / "rounds.json").read_text())
    rows = [(r["strategy"], r["round"], r["labels_spent"], r["seeds"]) for r in numbers["rows"]]
    assert rows == [("none", 0, 0, [0, 1]), ("pressure", 1, 2, [0, 1]), ("random", 1, 2, [0, 1])]
    assert numbers["kl"] > 0 and all(r["gap"]["mean"] is not None and r["accuracy"]["mean"] is not None
                                     for r in numbers["rows"])
    assert numbers["rows"][1]["vs_control"]["gap"]["p"] is not None
    table = (report / "rounds.md").read_text()
    assert "| none | 0 | 0 | 2 |" in table and "| random | 1 | 2 | 2 |" in table
    assert "pressure | 1 | 2 | 2 |" in table                      # bold when it beats the control
    assert (report / "gap_vs_labels.png").stat().st_size > 0
    manifest = yaml.safe_load((tmp_path / "results" / "tiny" / "active" / "rounds.yaml").read_text())
    assert manifest["models"][0]["metrics"] == "../models/phy_deform/binary__cross_prompt/last_token__bt/metrics_test.json"
    assert not (tmp_path / ACTIVE / "round0").exists()             # round 0 is the study's own training

    study_videos = {r["video_path"] for r in map(json.loads, (tmp_path / "results/tiny/labels/labels.jsonl")
                                                 .read_text().splitlines())}
    pool = tmp_path / ACTIVE / "pool"
    for strategy in ("pressure", "random"):
        for seed in (0, 1):
            folder = tmp_path / ACTIVE / strategy / f"seed{seed}" / "round1"
            picked = [json.loads(line) for line in (folder / "batch" / "manifest.jsonl").read_text().splitlines()]
            assert len(picked) == 2 and all(p["strategy"] == strategy for p in picked)
            videos = {str((pool / p["pool_video_path"]).resolve()) for p in picked}
            merged = [json.loads(line) for line in (folder / "labels" / "labels.jsonl").read_text().splitlines()]
            carried = [r for r in merged if r["video_path"] in videos]
            assert {r["video_path"] for r in carried} == videos and all(r["n_annotators"] == 5 for r in carried)
            assert {r["video_path"] for r in merged} == study_videos | videos   # the study's labels and the batch
            label_report = json.loads((folder / "labels" / "label_report.json").read_text())
            assert label_report["summary"]["duplicates_removed"] == 0
            for name in ("test.json", "val.json", "videos_test.json", "videos_val.json"):
                assert (folder / "pairs" / name).read_bytes() == (tmp_path / STUDY_PAIRS / name).read_bytes()
            assert (folder / "overopt" / "overopt.json").is_file() and (folder / "metrics_test.json").is_file()


def test_the_demo_rounds_config_plans_warm_rounds_on_the_plain_pool(tmp_path: Path) -> None:
    """config/demo_rounds.yaml (README's command): 3 rounds x 3 seeds x 2 strategies warm-started from the demo's
    trainings, on a pool at the nuisance values the training videos show."""
    result = snakemake(tmp_path, "-n", "-p", "active_rounds",
                       configfiles=(REPO / "config" / "config.yaml", REPO / "config" / "demo_rounds.yaml"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert job_counts(output)["active_train"] == 18
    assert "--model_name_or_path results/demo/active/phy_deform/random/seed44/round2/model" in output
    pool = next(line for line in output.splitlines() if "overopt-grid" in line and "/active/" in line)
    assert "--scale 1.0 " in pool and "--background_shift 0 " in pool and "--brightness 1.0 1.4 " in pool
