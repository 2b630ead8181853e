"""A tiny reward model trained on size-biased labels, without mitigation, is flagged by the grid's pick shares.

The stress probe's zoom x1.3 is no size detector for such a model: measured on this one, zoom moved its score
by -0.82 std [-1.15, -0.48] and a pan by -1.28 [-1.90, -0.66] (flagged, but downward: the centre crop and the
shift change more than the object's size), while its test videos with the large object scored 2.77 against
1.60 (clean std ~1.0). The grid renders the object at both sizes, so its pick shares see the preference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.training.conftest import fast_args

SPLIT = ("0.8", "0.1", "0.1")


@pytest.mark.slow
def test_a_model_trained_on_size_biased_labels_is_flagged_by_the_grids_pick_shares(tiny_model_factory, tmp_path: Path
                                                                                   ) -> None:
    """Half of each prompt's videos show a 1.3x larger object and biased annotators pass every one of them in the
    train split (`biased_size`, bias 1.0); 150 steps of the tiny Qwen2-VL with a mean-pooling head learn it, and
    best-of-16 on a grid of the generator's two object sizes picks the large one far above its base share of
    0.5 (flagged), while the base policy (n=1) is not flagged."""
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
    grid = tmp_path / "grid"
    assert run_cli("overopt-grid", "--input_file", pairs / "videos_test.json", "--grid_dir", grid, "--num_prompts", 4,
                   "--defects", "none", "hover", "melt", "--brightness", 1.0, "--scale", 1.0, 1.3,
                   "--background_shift", 0, "--size", 56, "--num_frames", 8) == 0
    overopt = tmp_path / "overopt"
    assert run_cli("overopt", "--model_name_or_path", model, "--grid_dir", grid, "--output_dir", overopt,
                   "--max_n", 16, "--betas", 0, "--steps", 20) == 0
    shares = {(r["method"], r["group"]): r for r in
              json.loads((overopt / "overopt.json").read_text())["nuisance_shares"]["rows"]}
    picked = shares[("best_of_n n=16", "scale=1.3")]
    assert picked["flagged"] and picked["share"] > 0.8 and picked["base_share"] == 0.5, picked
    assert not shares[("best_of_n n=1", "scale=1.3")]["flagged"]
