"""Fixtures of the training tests: demo pair files (labels + pairs run once) and the shared fast flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="session")
def demo_pairs(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """phy_deform pair files of the small demo set, split 6/3/3 prompts so val and test have pairs."""
    out = tmp_path_factory.mktemp("pairs")
    assert run_cli("labels", "--input", demo_dir / "annotations.csv", "--output", out / "labels.jsonl",
                   "--report_dir", out / "report") == 0
    assert run_cli("pairs", "--labels", out / "labels.jsonl", "--task", "phy_deform", "--output_dir", out,
                   "--split", "0.5", "0.25", "0.25", "--seed", 0) == 0
    return out


@pytest.fixture(scope="session")
def tiny_qwen(tiny_model_factory) -> Path:
    """The tiny Qwen2-VL backbone folder."""
    return tiny_model_factory("Qwen2-VL")


def fast_args(model: Path, pairs: Path, output: Path, **overrides: object) -> list[object]:
    """`solireward train` flags of a fast tiny run (demo settings given explicitly, not release defaults)."""
    options: dict[str, object] = {
        "model_name_or_path": model, "train_data": pairs / "train.json", "output_dir": output,
        "per_device_train_batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.0, "max_steps": 4,
        "num_frames": 4, "height": 56, "width": 56, "dataloader_num_workers": 0,
        "gradient_checkpointing": "false", "seed": 0, "save_steps": 0, "eval_steps": 0,
        "hierarchical_query_attn_layers": "1 2 3 4",
    }
    options.update(overrides)
    args: list[object] = ["train"]
    for key, value in options.items():
        if value is None:
            continue
        args += [f"--{key}", value]
    return args
