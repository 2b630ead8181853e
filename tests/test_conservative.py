"""A conservative reward from several models: the combination, and `infer` / `overopt` with two tiny models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from solireward.conservative import conservative_reward
from tests.conftest import run_cli


def test_the_three_combinations() -> None:
    scores = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, -2.0]])  # 2 models x 3 videos
    np.testing.assert_allclose(conservative_reward(scores, "mean"), [2.0, 0.0, 0.0])
    np.testing.assert_allclose(conservative_reward(scores, "mean_minus_std", 1.0), [1.0, 0.0, -2.0])
    np.testing.assert_allclose(conservative_reward(scores, "mean_minus_std", 0.5), [1.5, 0.0, -1.0])
    np.testing.assert_allclose(conservative_reward(scores, "min"), [1.0, 0.0, -2.0])
    for method in ("mean", "mean_minus_std", "min"):  # one model: its own scores
        np.testing.assert_allclose(conservative_reward(scores[:1], method), scores[0])


@pytest.fixture(scope="module")
def two_models(tiny_model_factory, tmp_path_factory) -> list[Path]:
    """Two tiny Qwen2-VL reward models with different heads and stored score scales."""
    import torch

    from solireward.models import RewardModel, RewardModelConfig

    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        config = RewardModelConfig(reduce_sequence="last_token", score_mean=0.1 * seed, score_std=1.0 + seed,
                                   sampling={"mode": "segments", "num_frames": 4, "height": 56, "width": 56})
        model = RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), config, torch_dtype="float32")
        folder = tmp_path_factory.mktemp(f"replicate-{seed}") / "model"
        model.save_pretrained(folder)
        out.append(folder)
    return out


@pytest.fixture(scope="module")
def records(demo_dir: Path, tmp_path_factory) -> Path:
    with (demo_dir / "ground_truth.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:6]
    path = tmp_path_factory.mktemp("records") / "videos.json"
    path.write_text(json.dumps([{"video_path": str(demo_dir / r["video_path"]), "prompt": r["prompt"]} for r in rows]))
    return path


def _infer(models: list[Path], records: Path, output: Path, *flags: object) -> list[dict]:
    assert run_cli("infer", "--model_name_or_path", *models, "--input_file", records, "--output_file", output,
                   "--num_workers", 0, *flags) == 0
    return json.loads(output.read_text())


def test_infer_combines_several_models(two_models: list[Path], records: Path, tmp_path: Path) -> None:
    alone = [[r["score_norm"] for r in _infer([m], records, tmp_path / f"alone{k}.json")]
             for k, m in enumerate(two_models)]
    assert not np.allclose(alone[0], alone[1])
    both = _infer(two_models, records, tmp_path / "both.json", "--ensemble_lambda", 0.5)
    norms = np.array(alone)
    np.testing.assert_allclose([r["ensemble_scores"] for r in both], norms.T, atol=1e-6)
    expected = norms.mean(0) - 0.5 * norms.std(0)
    np.testing.assert_allclose([r["score"] for r in both], expected, atol=1e-6)
    np.testing.assert_allclose([r["score_norm"] for r in both], expected, atol=1e-6)
    worst = _infer(two_models, records, tmp_path / "min.json", "--ensemble", "min")
    np.testing.assert_allclose([r["score"] for r in worst], norms.min(0), atol=1e-6)


def test_overopt_optimises_the_conservative_reward(two_models: list[Path], records: Path, tmp_path: Path) -> None:
    flags = ("--input_file", records, "--num_prompts", 2, "--defects", "none", "hover", "melt", "--scale", 1.0,
             "--background_shift", 0, "--size", 32, "--num_frames", 8, "--max_n", 4, "--betas", 0, "--steps", 3)
    proxies = []
    for k, model in enumerate(two_models):
        assert run_cli("overopt", "--model_name_or_path", model, "--output_dir", tmp_path / f"alone{k}", *flags) == 0
        proxies.append(json.loads((tmp_path / f"alone{k}" / "overopt.json").read_text())["proxy"])
    assert run_cli("overopt", "--model_name_or_path", *two_models, "--output_dir", tmp_path / "both",
                   "--ensemble", "min", *flags) == 0
    result = json.loads((tmp_path / "both" / "overopt.json").read_text())
    np.testing.assert_allclose(result["proxy"], np.minimum(*np.array(proxies)), atol=1e-6)
    assert result["ensemble"] == {"method": "min", "lambda": None, "n_models": 2}
    assert result["model"] == [str(m) for m in two_models]
