"""A tiny reward model trained on size-biased labels, without mitigation, is flagged by the probe's zoom."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.training.conftest import fast_args

SPLIT = ("0.8", "0.1", "0.1")


@pytest.mark.slow
def test_a_model_trained_on_size_biased_labels_is_flagged_by_the_zoom_probe(tiny_model_factory, tmp_path: Path
                                                                            ) -> None:
    """Half of each prompt's videos show a 1.3x larger object and biased annotators pass every one of them in the
    train split (`biased_size`, bias 1.0); 150 steps of the tiny Qwen2-VL with a mean-pooling head learn it, and
    the probe's zoom x1.3 (what a size shortcut answers to on any video) flags it on the clean test videos."""
    data, pairs = tmp_path / "data", tmp_path / "pairs"
    assert run_cli("demo-data", "--output_dir", data, "--num_prompts", 40, "--videos_per_prompt", 8, "--num_frames", 8,
                   "--size", 56, "--seed", 0, "--size_share", 0.5, "--size_bias", 1.0,
                   "--shortcut_split", *SPLIT, "--shortcut_seed", 0) == 0
    assert run_cli("labels", "--input", data / "annotations_biased_size.csv", "--output", pairs / "labels.jsonl",
                   "--report_dir", pairs / "report") == 0
    assert run_cli("pairs", "--labels", pairs / "labels.jsonl", "--task", "phy_deform", "--output_dir", pairs,
                   "--split", *SPLIT, "--seed", 0) == 0
    model = tmp_path / "model"
    assert run_cli(*fast_args(tiny_model_factory("Qwen2-VL"), pairs, model, max_steps=150,
                              per_device_train_batch_size=16, reduce_sequence="mean",
                              hierarchical_query_attn_layers=None, cache_frames="true")) == 0
    probe = tmp_path / "probe"
    assert run_cli("probe", "--model_name_or_path", model, "--input_file", pairs / "videos_test.json",
                   "--output_dir", probe, "--max_videos", 24, "--perturbations", "zoom_x1.3", "pan") == 0
    rows = {row["name"]: row for row in json.loads((probe / "probe.json").read_text())["perturbations"]}
    assert rows["zoom_x1.3"]["shortcut"] and rows["zoom_x1.3"]["mean_change_std_ci"][0] > 0.25, rows["zoom_x1.3"]
