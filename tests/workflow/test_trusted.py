"""Fine-tuning on trusted labels in the workflow: a recipe with `fine_tune_on: trusted` continues its twin's
trained model on the training pairs of an expert's labels of a few training prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.workflow.test_workflow import TINY, job_counts, snakemake

TRUSTED = Path(__file__).with_name("tiny_trusted.yaml")
ROOT = "results/tiny_trusted"


def test_the_fine_tune_starts_from_the_twins_model_and_reads_the_trusted_pairs(tmp_path: Path) -> None:
    result = snakemake(tmp_path, "-n", "-p", configfiles=(TINY, TRUSTED))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert job_counts(output)["train"] == 4   # clean and biased twins, each with its fine-tune
    for source in ("binary", "biased"):
        start = f"--model_name_or_path {ROOT}/models/phy_deform/{source}__cross_prompt/last_token__bt/model"
        assert f"{start} --train_data {ROOT}/pairs/phy_deform/trusted__cross_prompt/train.json" in output
    assert f"{ROOT}/data/annotations_trusted.csv" in output and "--split 1.0 0.0 0.0" in output


def test_a_fine_tune_without_trusted_labels_is_an_error_naming_the_key(tmp_path: Path) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"demo": {"trusted_share": 0}}}))
    result = snakemake(tmp_path, "-n", configfiles=(TINY, TRUSTED, overlay))
    assert result.returncode != 0
    assert "config key mitigations.trusted.fine_tune_on: fine-tuning on trusted labels needs them" in (
        result.stdout + result.stderr)


@pytest.mark.slow
def test_a_real_run_fine_tunes_each_twin_on_the_experts_labels(tmp_path: Path) -> None:
    """A real run (4 trainings of 2 steps): the trusted pairs are training pairs of the expert's prompts only, each
    fine-tune continues its twin (its log says so), and the report sets each beside its twin."""
    result = snakemake(tmp_path, "--cores", "2", configfiles=(TINY, TRUSTED), timeout=1500)
    assert result.returncode == 0, result.stderr[-5000:]
    root = tmp_path / ROOT
    expert = set(pd.read_csv(root / "data" / "annotations_trusted.csv")["prompt"])
    training = {v["prompt"] for v in json.loads(
        (root / "pairs" / "phy_deform" / "binary__cross_prompt" / "videos_train.json").read_text())}
    assert len(expert) == 3 and expert <= training   # half of the 6 training prompts, never a test prompt
    pairs = root / "pairs" / "phy_deform" / "trusted__cross_prompt"
    ends = {end["prompt"] for pair in json.loads((pairs / "train.json").read_text()) for end in (pair["win"], pair["lose"])}
    assert ends and ends <= expert
    assert json.loads((pairs / "val.json").read_text()) == [] and json.loads((pairs / "test.json").read_text()) == []
    for source in ("binary", "biased"):
        cell = root / "models" / "phy_deform" / f"{source}__cross_prompt"
        ran = yaml.safe_load((cell / "last_token__bt__trusted" / "model" / "train_config.yaml").read_text())
        assert (tmp_path / ran["model_name_or_path"]).resolve() == (cell / "last_token__bt" / "model").resolve()
        assert (tmp_path / ran["train_data"]).resolve() == (pairs / "train.json").resolve() and ran["max_steps"] == 2
        assert "fine_tune_on" not in yaml.safe_load((cell / "last_token__bt__trusted" / "train_config.yaml").read_text())
        table = (root / "report" / "tables" / f"mitigation_phy_deform_{source}_trusted.md").read_text()
        assert f"**Mitigation trusted vs none: last_token / bt ({source}, cross_prompt)**" in table
