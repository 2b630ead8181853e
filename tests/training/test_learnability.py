"""The README's learnability recipe, end to end through the CLI: the reward model must actually learn.

Generated demo data (140 prompts, so 672 training videos) -> labels -> pairs -> tiny Qwen2-VL ->
`train --config config/demo_train.yaml` (HPQA, BT + BTT, 400 steps; the recipe the demo study trains
every cell with, run here unchanged) -> infer -> evaluate on the held-out test prompts. The
random-init model sits at chance for about 150-250 steps before the loss drops (README,
"Learnability"), so the test takes about 2 minutes on two cores. The bar is below the measured
0.71-0.76 and well above chance (0.5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # whole trainings / clusters: left out of the quick loop (-m "not slow")

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_recipe_learns_phy_deform_on_held_out_prompts(tmp_path):
    data, pairs, tiny, model = (tmp_path / name for name in ("data", "pairs", "tiny", "model"))
    assert run_cli("demo-data", "--output_dir", data, "--num_prompts", 140, "--videos_per_prompt", 8,
                   "--seed", 0) == 0
    assert run_cli("labels", "--input", data / "annotations.csv", "--output", tmp_path / "labels.jsonl") == 0
    assert run_cli("pairs", "--labels", tmp_path / "labels.jsonl", "--task", "phy_deform", "--output_dir", pairs,
                   "--split", 0.6, 0.2, 0.2) == 0
    assert run_cli("tiny-model", "--model_type", "Qwen2-VL", "--output_dir", tiny, "--seed", 0) == 0
    assert run_cli("train", "--config", REPO / "config" / "demo_train.yaml", "--model_name_or_path", tiny,
                   "--train_data", pairs / "train.json", "--eval_data", pairs / "val.json",
                   "--output_dir", model) == 0
    assert run_cli("infer", "--model_name_or_path", model, "--input_file", pairs / "videos_test.json",
                   "--output_file", tmp_path / "scores.json", "--num_workers", 0) == 0
    assert run_cli("evaluate", "--scores", tmp_path / "scores.json", "--pairs", pairs / "test.json",
                   "--output", tmp_path / "metrics.json") == 0

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["counts"]["scored"] == metrics["counts"]["records"] > 200
    assert metrics["pairs"]["win_lose"] > 400
    assert metrics["pairs"]["accuracy"] >= 0.65, metrics["pairs"]
    assert metrics["video"]["roc_auc"] >= 0.65, metrics["video"]
