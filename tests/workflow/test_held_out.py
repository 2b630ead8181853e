"""Leave-one-cue-out in the workflow: the choice is a checkpoint, the held-out cue trains with the chosen recipe,
and the report says which cues chose it and which were held out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.workflow.test_workflow import REPO, TINY, job_counts, snakemake

HELD_OUT = Path(__file__).with_name("tiny_held_out.yaml")
CELL = "results/{study}/models/phy_deform/{source}__cross_prompt/{cell}"


def test_the_shortcut_study_plans_the_choice_before_the_held_out_cue(tmp_path: Path) -> None:
    """config/shortcut_study.yaml: 27 trainings choose among 2 candidates with 3 label sources; the held-out size
    cue's cells wait for the checkpoint (the report is planned, its held-out inputs are not yet known)."""
    result = snakemake(tmp_path, "-n", configfiles=(REPO / "config" / "config.yaml",
                                                    REPO / "config" / "shortcut_study.yaml"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    counts = job_counts(output)
    assert counts["train"] == 27 and counts["choose_mitigation"] == 1 and counts["report"] == 1
    assert counts["infer_val"] == 27 and "probe_val" not in counts  # the lab runs in the scoring job
    assert "biased_size__cross_prompt/hpqa__btt" not in output   # trained after the choice, with its recipe
    assert "results/shortcut/data/annotations_biased_size.csv" in output   # its labels are written with the data


def test_a_held_out_cue_that_also_chooses_is_an_error_naming_the_key(tmp_path: Path) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"selection": {"candidates": ["exposure"], "label_sources": ["biased"],
                                                     "held_out": ["biased"]}}))
    result = snakemake(tmp_path, "-n", configfiles=(TINY, overlay))
    assert result.returncode != 0
    assert "config key selection.held_out: biased also chooses the recipe" in result.stdout + result.stderr


@pytest.mark.slow
def test_the_held_out_cue_trains_with_the_chosen_recipe_and_the_report_says_so(tmp_path: Path) -> None:
    """A real run (7 trainings of 2 steps, ~3 CPU-minutes): the recipe chosen with `biased` is the one trained on
    `biased_size`, beside its twin, and the report names the choosing and the held-out cues; the reference cell
    alone is trained twice (reference_replicates)."""
    result = snakemake(tmp_path, "--cores", "2", configfiles=(TINY, HELD_OUT), timeout=1500)
    assert result.returncode == 0, result.stderr[-5000:]
    root = tmp_path / "results" / "tiny_held_out"
    chosen = json.loads((root / "selection" / "chosen.json").read_text())
    assert chosen["split"] == "validation" and chosen["chosen"] in ("exposure", "family")
    assert chosen["label_sources"] == ["biased"] and chosen["held_out"] == ["biased_size"]
    assert sorted(c["mitigation"] for c in chosen["candidates"]) == ["exposure", "family"]
    assert all(c["goals"] == 1 for c in chosen["candidates"])   # cost alone ranks them, not held_out_goals
    assert "| below_reference" not in (root / "selection" / "tables" / "mitigation_goals.md").read_text()
    other = next(m for m in ("exposure", "family") if m != chosen["chosen"])
    cell = tmp_path / CELL.format(study="tiny_held_out", source="biased_size",
                                  cell=f"last_token__bt__{chosen['chosen']}")
    trained = yaml.safe_load((cell / "train_config.yaml").read_text())
    recipe = {**yaml.safe_load(TINY.read_text())["mitigations"],
              **yaml.safe_load(HELD_OUT.read_text())["mitigations"]}[chosen["chosen"]]
    assert all(trained[key] == value for key, value in recipe.items()), trained
    assert (cell / "metrics_test.json").is_file() and not (cell / "val").exists()   # scored once, on the test split
    assert (tmp_path / CELL.format(study="tiny_held_out", source="biased_size", cell="last_token__bt")
            / "metrics_test.json").is_file()   # its twin without the recipe
    assert not (tmp_path / CELL.format(study="tiny_held_out", source="biased_size",
                                       cell=f"last_token__bt__{other}")).exists()   # the other candidate: not there
    trained_twice = {p.parent.relative_to(root / "models").as_posix()
                     for p in (root / "models").glob("*/*/*__rep1/metrics_test.json")}
    assert trained_twice == {"phy_deform/binary__cross_prompt/last_token__bt__rep1"}

    report = root / "report"
    readme = (report / "README.md").read_text()
    assert f"chosen on the validation split: {chosen['chosen']}, among" in readme
    assert "by the label sources biased; held out of the choice: biased_size" in readme
    held = (report / "tables" / "mitigation_goals_held_out.md").read_text()
    assert f"cues held out of the choice of {chosen['chosen']}: biased_size" in held
    assert f"| biased_size / {chosen['chosen']} | below_reference ≤ 3 |" in held and "| biased / " not in held
    row = next(line for line in held.splitlines() if "| below_reference ≤ 3 |" in line)
    # one training against the reference's two: its own side takes the seed variance pooled from the reference
    columns = [c.strip(" *") for c in row.strip("|").split("|")]
    assert columns[4].startswith("["), row
    assert columns[8] == columns[3], row   # its one training below the mean of the reference's two
    choosing = (report / "tables" / "mitigation_goals.md").read_text()
    assert f"{chosen['chosen']} chosen by biased" in choosing
    assert f"| biased / {chosen['chosen']} | cost ≤ 2 |" in choosing
    assert "| biased_size / " not in choosing   # the held-out cue's verdicts are reported separately
    table = (report / "tables" / f"mitigation_phy_deform_biased_size_{chosen['chosen']}.md").read_text()
    assert "held out: its labels took no part in choosing" in table
    table = (report / "tables" / f"mitigation_phy_deform_biased_{chosen['chosen']}.md").read_text()
    assert f"its labels chose {chosen['chosen']} on the validation split" in table

    again = snakemake(tmp_path, "-n", configfiles=(TINY, HELD_OUT))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
