"""The workflow takes every plantable cue's label source: its labels, its cell, and the label audit target."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.workflow.test_workflow import REPO, dry_run_jobs, snakemake


def test_a_size_biased_cell_and_the_label_audit_are_planned(tmp_path: Path) -> None:
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]["demo"]
    overlay = tmp_path / "size.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"demo": {**demo, "size_share": 0.375, "size_bias": 0.9}},
                                       "ablations": {"pairing": [], "label_source": ["biased_size"],
                                                     "mitigation": []}}))
    result = snakemake(tmp_path, "-n", "all", "label_audit",
                       configfiles=(REPO / "config" / "config.yaml", overlay))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = dry_run_jobs(result.stdout + result.stderr)
    assert ("labels", "results/demo/labels_biased_size/labels.jsonl") in jobs
    assert ("train", "results/demo/models/phy_deform/biased_size__cross_prompt/hpqa__btt/model") in jobs
    assert {out for rule, out in jobs if rule == "audit_labels"} == {
        "results/demo/labels/label_audit.json", "results/demo/labels_biased_size/label_audit.json"}
    assert "annotations_biased_size.csv" in result.stdout + result.stderr


def test_the_label_audit_covers_the_shortcut_studys_choosing_and_held_out_cues(tmp_path: Path) -> None:
    """config/shortcut_study.yaml plants its cues for the choice and the held-out cue, not as ablations."""
    result = snakemake(tmp_path, "-n", "label_audit",
                       configfiles=(REPO / "config" / "config.yaml", REPO / "config" / "shortcut_study.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {out for rule, out in dry_run_jobs(result.stdout + result.stderr) if rule == "audit_labels"} == {
        f"results/shortcut/labels{suffix}/label_audit.json" for suffix in ("", "_biased", "_biased_size",
                                                                          "_biased_background")}
