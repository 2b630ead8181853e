"""The Snakemake workflow: lint, config validation, the study's job graph, and a real tiny run."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from solireward.hacking.perturbations import PERTURBATIONS
from tests.conftest import rendered_text

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
TINY = Path(__file__).with_name("tiny_study.yaml")
CELL = "results/tiny/models/phy_deform/{label_source}__{pairing}/{head}__{loss}"


def snakemake(workdir: Path, *args: str, configfiles: tuple[Path, ...] = (TINY,), timeout: int = 600
              ) -> subprocess.CompletedProcess:
    """Run the workflow's snakemake in `workdir` with this interpreter's environment."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir)]
    if configfiles:
        command += ["--configfile", *map(str, configfiles)]
    return subprocess.run(command + list(args), capture_output=True, text=True, env=env, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table that snakemake prints before running (rule -> number of jobs)."""
    match = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\n\s*total\s+(\d+)", output, re.S)
    assert match, f"no job stats in snakemake output:\n{output[-3000:]}"
    counts = {}
    for line in match.group(1).splitlines():
        name, count = line.split()
        counts[name] = int(count)
    return counts


def dry_run_jobs(output: str) -> list[tuple[str, str]]:
    """(rule, first output) of each job listed by `snakemake -n`."""
    return re.findall(r"^(?:local)?rule (\w+):\n(?:    input: .*\n)?    output: ([^,\n]+)", output, re.M)


def test_lint_is_clean(tmp_path: Path) -> None:
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


def test_demo_study_has_the_grid_the_ablations_and_the_mitigations(tmp_path: Path) -> None:
    """config/config.yaml: each of 3 heads at BTT and each of 3 losses at HPQA (grid.crossed: false) on clean
    binary cross-prompt pairs; in-prompt, pairwise and biased cells; the mitigation on the clean and on the
    biased reference cell."""
    result = snakemake(tmp_path, "-n", configfiles=(REPO / "config" / "config.yaml",))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout + result.stderr)
    # claim_replicates: 3 seeds of the reference cell and of the two mitigated cells with their twins
    # one scoring job per model: its test videos, then the reward-hacking lab (`--then probe`, `--then overopt`)
    assert counts["train"] == 18 and counts["infer"] == 18 and counts["evaluate"] == 18
    assert "probe" not in counts and "overopt" not in counts
    assert counts["overopt_grid"] == 1  # rendered once, scored by every cell
    assert counts["report"] == 1 and counts["labels"] == 2 and counts["pairs"] == 4
    trained = {out for rule, out in dry_run_jobs(result.stdout + result.stderr) if rule == "train"}
    cells = {re.sub(r"^results/demo/models/phy_deform/|(__rep[12])?/model$", "", p) for p in trained}
    grid = {f"binary__cross_prompt/{h}__btt" for h in ("hpqa", "last_token", "attention")}
    grid |= {f"binary__cross_prompt/hpqa__{l}" for l in ("bt", "btt", "bt_bce")}
    assert cells == grid | {"binary__in_prompt/hpqa__btt", "pairwise__in_prompt/hpqa__btt", "biased__cross_prompt/hpqa__btt",
                            "binary__cross_prompt/hpqa__btt__robust", "biased__cross_prompt/hpqa__btt__robust"}


@pytest.mark.parametrize("overlay, key, fragment", [
    ({"headz": {"x": {"reduce_sequence": "mean"}}}, "headz", "Additional properties are not allowed"),
    ({"losses": {"bt": {"reward_margin": "big"}}}, "reward_margin", "is not of type 'number'"),
    ({"grid": {"heads": "last_token"}}, "heads", "is not of type 'array'"),
    ({"heads": {"last_token": {"reduce_sequence": "first_token"}}}, "reduce_sequence", "is not one of"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, overlay: dict, key: str, fragment: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(overlay))
    result = snakemake(tmp_path, "-n", configfiles=(TINY, bad))
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "Error validating config file" in message and key in message and fragment in message, message


@pytest.mark.parametrize("overlay, message", [
    ({"probe": {"perturbations": ["brightness", "hue"]}, "report": {"mitigation_goals": ["probe:tint=0.3"]}},
     "config key report.mitigation_goals: probe:tint would not be measured: probe.perturbations runs brightness, hue"),
    ({"selection": {"candidates": ["robust"], "held_out_goals": ["spearman:tints=0.9"]}},
     "config key selection.held_out_goals: spearman:tints: expected a perturbation of the probe (frames_x0.5, "),
    ({"probe": None}, "config key report.mitigation_goals: probe:brightness would not be measured: the study runs no "
                      "probe"),
    ({"report": {"mitigation_goals": ["share:overlay=0.1"]}},
     "config key report.mitigation_goals: share:overlay would not be measured: the grid holds overlay at [0.0] "
     "(give overopt_grid.overlay two values or more)"),
    ({"report": {"mitigation_goals": ["share:hue=0.1"]}}, "share:hue: expected a nuisance axis of the grid"),
    ({"cue_goals": {"probe": 0.3, "share": 0.1}, "data": {"demo": {"tint_share": 0.5, "tint_bias": 0.9}}},
     "config key report.mitigation_goals (with cue_goals): share:tint would not be measured: the grid holds tint "
     "at [0.0]"),
])
def test_a_goal_the_study_cannot_measure_is_refused_before_anything_runs(tmp_path: Path, overlay: dict,
                                                                          message: str) -> None:
    """A goal whose probe perturbation or grid axis the study leaves out would read "not measured" at the end of
    a long study: the workflow refuses the config at start instead, naming the goal and what to give."""
    bad = tmp_path / "unmeasured.yaml"
    bad.write_text(yaml.safe_dump(overlay))
    result = snakemake(tmp_path, "-n", configfiles=(TINY, bad))
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stdout + result.stderr


def test_cue_goals_give_each_planted_cue_its_own_goals_and_keep_the_held_out_ones_from_the_choice(
        tmp_path: Path) -> None:
    """config `cue_goals`: the choice ranks by the brightness cue's goals (it chooses), never by the held-out
    colour cast's; those are judged by the test report only, after the configured goals."""
    overlay = tmp_path / "cues.yaml"
    overlay.write_text(yaml.safe_dump({
        "cue_goals": {"probe": 0.3, "share": 0.1}, "report": {"mitigation_goals": ["cost=2"]},
        "data": {"demo": {"tint_share": 0.5, "tint_bias": 0.9}}, "overopt_grid": {"tint": [0.0, 0.25]},
        "selection": {"candidates": ["robust", "exposure"], "label_sources": ["biased"], "held_out": ["biased_tint"]}}))
    result = snakemake(tmp_path, "-n", "choose_mitigation", configfiles=(TINY, overlay))
    assert result.returncode == 0, result.stdout + result.stderr
    choose = re.search(r"solireward.cli report .*--choose.*", result.stdout + result.stderr)
    assert choose and "--mitigation_goals cost=2 probe:brightness=0.3 share:brightness=0.1 " in choose.group(0)
    assert "tint" not in choose.group(0).split("--mitigation_goals")[1].split(" --")[0]


def test_demo_replicates_train_each_cell_three_times(tmp_path: Path) -> None:
    """config/demo_replicates.yaml: K = 3, the first replicate at the demo's paths, the others at __rep1/2."""
    result = snakemake(tmp_path, "-n", configfiles=(REPO / "config" / "config.yaml",
                                                    REPO / "config" / "demo_replicates.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout + result.stderr)
    assert counts["train"] == 30 and counts["evaluate"] == 30 and counts["report"] == 1   # 10 cells x 3
    trained = {out for rule, out in dry_run_jobs(result.stdout + result.stderr) if rule == "train"}
    assert {"results/demo/models/phy_deform/binary__cross_prompt/hpqa__btt/model",
            "results/demo/models/phy_deform/binary__cross_prompt/hpqa__btt__rep1/model",
            "results/demo/models/phy_deform/binary__cross_prompt/hpqa__btt__rep2/model"} <= trained


def test_grid_name_missing_from_heads_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"grid": {"heads": ["last_token", "mean"]}}))
    result = snakemake(tmp_path, "-n", configfiles=(TINY, bad))
    assert result.returncode != 0
    assert "grid.heads: mean is not defined under 'heads'" in result.stdout + result.stderr


@pytest.mark.slow
def test_tiny_study_runs_reruns_nothing_and_rebuilds_one_cell(tmp_path: Path) -> None:
    """A real run of every rule; then: nothing to redo, a changed cell parameter, a forced cell."""
    result = snakemake(tmp_path, "--cores", "2", timeout=1500)   # ~6 min on 2 free cores, far more on a busy machine
    assert result.returncode == 0, result.stderr[-5000:]
    grid_cell, in_prompt_cell, pairwise_cell = (
        CELL.format(label_source=source, pairing=pairing, head="last_token", loss="bt")
        for source, pairing in (("binary", "cross_prompt"), ("binary", "in_prompt"), ("pairwise", "in_prompt")))
    for cell in (grid_cell, in_prompt_cell, pairwise_cell):
        folder = tmp_path / cell
        assert (folder / "reward_model.done").is_file() and (folder / "model" / "solireward_config.json").is_file()
        trained_with = yaml.safe_load((folder / "train_config.yaml").read_text())
        assert trained_with["max_steps"] == 2 and trained_with["reward_task"] == "phy_deform"
        assert trained_with["reduce_sequence"] == "last_token" and trained_with["enable_btt_loss"] is False
        scores = json.loads((folder / "scores_test.json").read_text())
        assert scores and all(isinstance(r.get("score"), float) for r in scores)
        metrics = json.loads((folder / "metrics_test.json").read_text())
        assert metrics["tags"]["pairing"] in cell and metrics["tags"]["label_source"] in cell
        probe = json.loads((folder / "probe" / "probe.json").read_text())
        assert probe["n_videos"] == 4 and len(probe["perturbations"]) == len(PERTURBATIONS) and probe["tags"] == metrics["tags"]
        assert all(p["tested"] == (p["verdict"] != "not tested") for p in probe["perturbations"])
        assert probe["shown_file"].endswith("data/ground_truth.csv")   # the demo's cues are left out of their own
        overopt = json.loads((folder / "overopt" / "overopt.json").read_text())
        assert set(overopt["curves"]) == {"best_of_n", "grpo_beta=0", "grpo_beta=1"} and len(overopt["settings"][0]) == 8
        assert (folder / "overopt" / "overopt_curves.png").is_file()
    assert yaml.safe_load((tmp_path / grid_cell / "train_config.yaml").read_text())["pairing"] == "cross_prompt"
    in_prompt = yaml.safe_load((tmp_path / in_prompt_cell / "train_config.yaml").read_text())
    assert in_prompt["pairing"] == "in_prompt" and "batching" not in in_prompt
    pairwise = yaml.safe_load((tmp_path / pairwise_cell / "train_config.yaml").read_text())
    assert pairwise["batching"] == "pairs_file" and "pairing" not in pairwise
    # every cell is scored on the same test videos (the grid's test split)
    tested = [sorted(r["video_path"] for r in json.loads((tmp_path / c / "scores_test.json").read_text()))
              for c in (grid_cell, in_prompt_cell, pairwise_cell)]
    assert tested[0] == tested[1] == tested[2]

    # the pairwise cell trained from the demo votes exported as a VideoAlign CSV and imported back
    imported = json.loads((tmp_path / "results" / "tiny" / "imports" / "preferences" / "summary.json").read_text())
    assert imported["format"] == "videoalign" and imported["pairs"] > 0 and imported["videos_missing"] == 0
    pairwise_pairs = json.loads((tmp_path / "results/tiny/pairs/phy_deform/pairwise__in_prompt/train.json").read_text())
    assert pairwise_pairs

    report = tmp_path / "results" / "tiny" / "report"
    assert (report / "README.md").is_file() and "study_config.yaml" in (report / "README.md").read_text()
    # the report names every reported model whose scores collapsed in training (2 steps leave tiny models flat)
    models = tmp_path / "results" / "tiny" / "models"
    reported = [s for s in sorted(models.glob("*/*/*/model/train_summary.json"))
                if (s.parent.parent / "metrics_test.json").is_file()]
    collapsed = {f"`../models/{s.parent.parent.relative_to(models)}/metrics_test.json`" for s in reported
                 if json.loads(s.read_text())["collapsed"]}
    note = next((line for line in (report / "README.md").read_text().splitlines()
                 if line.startswith("- Scores collapsed in training")), "")
    assert reported and set(re.findall(r"`[^`]+/metrics_test\.json`", note)) == collapsed, note
    assert list((report / "tables").glob("*.tex")) and (report / "figures" / "learning_curves.png").is_file()
    assert (report / "figures" / "overopt_curves.png").is_file()
    for table in ("stress_probe.md", "overoptimisation.md", "overopt_defects_phy_deform.md"):  # a row per cell
        text = (report / "tables" / table).read_text()
        # one row per model: the reference and the biased cell twice (claim_replicates), and each robust cell twice
        assert text.count("| last_token / bt (") == 6 and text.count("| last_token / bt + robust (") == 4, table
    # the mitigation on the clean and on the biased labels, each beside its twin: accuracy, probe, over-optimisation
    for source in ("binary", "biased"):
        table = (report / "tables" / f"mitigation_phy_deform_{source}_robust.md").read_text()
        # the caption names the cue's part in the choice where the validation split chose robust
        assert f"**Mitigation robust vs none: last_token / bt ({source}, cross_prompt)" in table
        assert "| Test pair accuracy (%) |" in table and "| Probe brightness (clean std) |" in table
        assert "| best_of_n: hacking gap (base std) @ KL" in table and "Finding: robust:" in table
    goals = (report / "tables" / "mitigation_goals.md").read_text()  # each goal of each mitigated cell, judged
    for source in ("binary", "biased"):
        for goal in ("probe:brightness ≤ 0.3", "spearman:frames_x2 ≥ 0.9", "gap:best_of_n @ KL", "below_reference ≤ 3",
                     "cost ≤ 2"):
            row = next(line for line in goals.splitlines() if line.startswith(f"| {source} / robust | {goal}"))
            columns = [c.strip(" *") for c in row.strip("|").split("|")]
            models, verdict, reference, twin, per_seed = columns[2], columns[5], columns[6], columns[7], columns[8]
            assert models == "2" and verdict.startswith(("met", "missed by ", "unresolved (")), row
            assert len(per_seed.split(", ")) == 2, row   # each training's own measure
            # the reference cell's and the twin's own measures beside a probe or gap goal, none beside an accuracy goal
            for beside in (reference, twin):
                assert re.fullmatch(r"-?\d+\.\d\d( \[-?\d+\.\d\d, -?\d+\.\d\d\])?", beside) if goal.startswith(
                    ("probe", "spearman", "gap")) else beside in ("", "–"), row
            assert source == "biased" or twin == reference, row   # the clean cell's twin is the reference
            if source == "binary" and goal.startswith("gap"):   # the clean cell's twin is the reference: its gap
                twin_gap = next(line for line in (report / "tables" / "mitigation_phy_deform_binary_robust.md")
                                .read_text().splitlines() if line.startswith("| best_of_n: hacking gap"))
                assert reference.split(" [")[0] == twin_gap.split("|")[2].strip(), (row, twin_gap)
    trained = yaml.safe_load((tmp_path / CELL.format(label_source="biased", pairing="cross_prompt", head="last_token",
                                                     loss="bt__robust") / "train_config.yaml").read_text())
    assert trained["exposure"] == 100 and trained["consistency_loss_coeff"] == 1.0
    # the recipe chosen on the validation split among the candidates, and the test report citing that choice
    chosen = json.loads((tmp_path / "results" / "tiny" / "selection" / "chosen.json").read_text())
    assert chosen["split"] == "validation" and chosen["chosen"] in ("robust", "exposure")
    assert chosen["rule"].startswith("most accuracy goals won minus lost")   # selection.rule unset: wins
    assert sorted(c["mitigation"] for c in chosen["candidates"]) == ["exposure", "robust"]
    choice = (tmp_path / "results" / "tiny" / "selection" / "tables" / "mitigation_choice.md").read_text()
    assert f"| **{chosen['chosen']}** |" in choice and "Choosing a mitigation on the validation split" in choice
    validation = json.loads((tmp_path / CELL.format(label_source="biased", pairing="cross_prompt", head="last_token",
                                                    loss="bt__exposure") / "val" / "metrics.json").read_text())
    assert validation["sources"]["pairs"].endswith("binary__cross_prompt/val.json")
    assert "## Choice of recipes" in (report / "README.md").read_text()
    assert f"chosen on the validation split: {chosen['chosen']}, among" in (report / "README.md").read_text()
    mitigation = (report / "tables" / "table_mitigation.md").read_text()
    assert mitigation.count("| robust |") == 2 and "| biased | none |" in mitigation
    pairing_table = (report / "tables" / "table_pairing.md").read_text()
    header = next(line for line in pairing_table.splitlines() if line.startswith("| Pairing"))
    assert header == ("| Pairing | Pair acc. (%) | 95 % CI | Δ vs ref. (pp) | p | In-prompt acc. (%) | Acc. w/ ties (%) "
                      "| ROC-AUC (%) | Models |")
    rows = [line for line in pairing_table.splitlines() if line.startswith(("| cross_prompt", "| in_prompt"))]
    assert len(rows) == 2
    for row in rows:  # pair accuracy, its interval, Δ and p against cross_prompt, in-prompt acc., acc. w/ ties, ROC-AUC
        acc, interval, delta, p_value, in_prompt, ties, auc, models = (v.strip(" *")
                                                                      for v in row.strip("|").split("|")[1:])
        low, high = (float(v) for v in interval.strip("[]").split(","))
        assert all(0.0 <= float(v) <= 100.0 for v in (acc, in_prompt, ties, auc, low, high)), row
        assert low <= float(acc) <= high, row
        if row.startswith("| cross_prompt"):
            assert (delta, p_value, models) == ("ref.", "–", "2"), row
        else:
            assert float(delta) == pytest.approx(float(acc) - float(rows[0].split("|")[2].strip(" *")), abs=0.011), row
            assert float(p_value) <= 1 and models == "1", row

    # the browsable Snakemake report: self-contained, every figure embedded
    html = snakemake(tmp_path, "--report", "results/tiny/report.html")
    assert html.returncode == 0, html.stderr[-3000:]
    page = (tmp_path / "results" / "tiny" / "report.html").read_text()
    figures = sorted(f for f in tmp_path.glob("results/tiny/**/figures/*.png") if "selection" not in f.parts)
    assert figures
    for figure in figures:
        assert base64.b64encode(figure.read_bytes()).decode()[:2000] in page, figure
    assert "table_pairing.html" in page and "study_config.yaml" in page
    for table in ("stress_probe", "overoptimisation"):  # one report: the reward-hacking tables are in it too
        assert f"{table}.html" in page
        assert table in rendered_text(tmp_path / "results" / "tiny" / "report.html")
    summary = (report / "summary.html").read_text()
    assert "probe heatmap" in summary and "Over-optimisation: best-of-n" in summary  # the wide probe table: tables/

    again = snakemake(tmp_path, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout

    # a changed parameter of one cell reruns that cell (and the report) only: params-change detection
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"label_sources": {"pairwise": {"seed": 1}}}))
    changed = snakemake(tmp_path, "-n", configfiles=(TINY, overlay))
    assert changed.returncode == 0, changed.stderr
    assert job_counts(changed.stdout + changed.stderr) == {"train_config": 1, "train": 1, "infer": 1, "evaluate": 1,
                                                           "study_config": 1, "report": 1,
                                                           "choose_mitigation": 1, "all": 1}   # it reads the config
    planned = [out for rule, out in dry_run_jobs(changed.stdout + changed.stderr) if rule in ("train", "infer")]
    assert len(planned) == 2 and all(pairwise_cell in out for out in planned)

    # one cell rebuilt alone: its training and everything downstream of it, nothing else
    before = {c: (tmp_path / c / "scores_test.json").stat().st_mtime_ns for c in (in_prompt_cell, pairwise_cell)}
    rebuilt = snakemake(tmp_path, "--cores", "2", "--forcerun", f"{grid_cell}/reward_model.done")
    assert rebuilt.returncode == 0, rebuilt.stderr[-5000:]
    # the reference cell is also scored on the validation split for the choice, which then reruns too
    assert job_counts(rebuilt.stdout + rebuilt.stderr) == {"train": 1, "infer": 1, "evaluate": 1, "infer_val": 1,
                                                           "evaluate_val": 1, "choose_mitigation": 1, "report": 1,
                                                           "all": 1}
    assert before == {c: (tmp_path / c / "scores_test.json").stat().st_mtime_ns for c in before}
    final = snakemake(tmp_path, "-n")
    assert "Nothing to be done" in final.stdout + final.stderr


def test_internvl3_study_config_is_valid(tmp_path: Path) -> None:
    """config/internvl3_1b.yaml validates and plans 2 tasks x (4 heads x 3 losses + 2 ablations) models."""
    annotations, pairwise, backbone = tmp_path / "binary.csv", tmp_path / "pairwise.csv", tmp_path / "InternVL3-1B"
    annotations.write_text("video_path,prompt,dimension,label,annotator\n")
    pairwise.write_text("prompt,video_a,video_b,choice,annotator\n")
    backbone.mkdir()
    overlay = tmp_path / "paths.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"annotations": [str(annotations)], "pairwise_annotations": str(pairwise),
                                                "video_root": str(tmp_path)},
                                       "backbone": {"path": str(backbone)}}))
    result = snakemake(tmp_path, "-n", "--replace-workflow-config",
                       configfiles=(REPO / "config" / "internvl3_1b.yaml", overlay))
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout + result.stderr)
    assert counts["train"] == 28 and counts["pairs"] == 6 and "tiny_model" not in counts
    assert "demo_data" not in counts
