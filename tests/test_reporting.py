"""`solireward report` end to end from hand-made metrics files with tags."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from solireward.errors import InputError
from solireward.reporting import load_metrics, match_scores
from tests.conftest import run_cli

# (head, loss, pairing, labels) -> (pair acc, acc with ties, ROC-AUC)
CELLS = {
    ("hpqa", "bt", "cross_prompt", "binary"): (0.7500, 0.6100, 0.8100),
    ("hpqa", "btt", "cross_prompt", "binary"): (0.7848, 0.6400, 0.8500),
    ("last_token", "bt", "cross_prompt", "binary"): (0.6900, 0.5900, 0.7700),
    ("last_token", "btt", "cross_prompt", "binary"): (0.7012, 0.6500, 0.7900),
    ("hpqa", "btt", "in_prompt", "binary"): (0.6543, 0.5500, 0.7000),
    ("hpqa", "btt", "cross_prompt", "pairwise"): (0.6001, 0.5000, 0.6600),
}


def _metrics(tags: dict, acc: float, acc_ties: float, auc: float, scores_path: str | None) -> dict:
    """The parts of an `evaluate` output that the report reads."""
    out = {"tags": tags, "score_field": "score",
           "counts": {"records": 8, "scored": 8, "errored": 0},
           "pairs": {"evaluated": 40, "accuracy": acc, "accuracy_with_ties": acc_ties},
           "video": {"roc_auc": auc, "best_f1": 0.7}}
    if scores_path:
        out["sources"] = {"scores": scores_path, "pairs": None}
    return out


def _scores(path: Path, shift: float) -> None:
    records = [{"video_path": f"/v/{i}.mp4", "prompt": f"p{i % 3}", "label": i % 2, "score": i % 2 + shift + 0.1 * i}
               for i in range(12)]
    records.append({"video_path": "/v/bad.mp4", "prompt": "p0", "label": 1, "error": "unreadable"})
    path.write_text(json.dumps(records))


def _write_grid(tmp_path: Path, with_sources: bool = True, task: str = "phy_deform",
                cells: dict = CELLS) -> tuple[list[Path], list[Path]]:
    metrics, scores = [], []
    for n, ((head, loss, pairing, labels), values) in enumerate(cells.items()):
        s = tmp_path / f"scores_{task}_{n}.json"
        _scores(s, shift=n)
        tags = {"study": "demo", "task": task, "label_source": labels, "pairing": pairing, "head": head, "loss": loss}
        m = tmp_path / f"metrics_{task}_{n}.json"
        m.write_text(json.dumps(_metrics(tags, *values, str(s.resolve()) if with_sources else None)))
        metrics.append(m)
        scores.append(s)
    return metrics, scores


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def test_report_tables_figures_and_readme(tmp_path):
    metrics, scores = _write_grid(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("study: demo\ngrid:\n  heads: [hpqa, last_token]\n")
    out = tmp_path / "report"
    # 3 of the 6 score files, in another order: only the path each metrics file records can match them
    assert run_cli("report", "--metrics", *metrics, "--scores", scores[4], scores[1], scores[3], "--output_dir", out,
                   "--study_config", config, "--title", "Demo study") == 0

    head_md = (out / "tables" / "table_head.md").read_text()
    assert "loss = btt, pairing = cross_prompt, label_source = binary" in head_md
    assert "| hpqa | **78.48** | 64.00 | **85.00** |" in head_md
    assert "| last_token | 70.12 | **65.00** | 79.00 |" in head_md
    assert "in_prompt" not in head_md.split("\n", 2)[2] and "69.00" not in head_md  # other cells held out
    head_tex = (out / "tables" / "table_head.tex").read_text()
    assert "\\toprule" in head_tex and "\\bottomrule" in head_tex and "\\begin{tabular}{lrrr}" in head_tex
    assert "last\\_token & 70.12 & \\textbf{65.00} & 79.00 \\\\" in head_tex
    assert "Pair acc. (\\%)" in head_tex

    loss_md = (out / "tables" / "table_loss.md").read_text()
    assert "| bt | 75.00 | 61.00 | 81.00 |" in loss_md and "| btt | **78.48** |" in loss_md
    assert "| cross_prompt | **78.48** |" in (out / "tables" / "table_pairing.md").read_text()
    assert "| in_prompt | 65.43 | 55.00 | 70.00 |" in (out / "tables" / "table_pairing.md").read_text()
    assert "| pairwise | 60.01 | 50.00 | 66.00 |" in (out / "tables" / "table_label_source.md").read_text()
    assert (out / "tables" / "table_label_source.tex").is_file() and (out / "tables" / "table_loss.tex").is_file()

    all_md = (out / "tables" / "all_results.md").read_text()
    assert all_md.count("\n| ") == 8 and "**" not in all_md.split("\n", 1)[1]  # header, rule, 6 rows; no bold
    csv = (out / "tables" / "all_results.csv").read_text().splitlines()
    assert csv[0].startswith("study,task,label_source,pairing,head,loss") or "head" in csv[0]
    assert len(csv) == 7

    assert _is_png(out / "figures" / "heatmap_head_loss.png") and _is_png(out / "figures" / "score_histograms.png")

    readme = (out / "README.md").read_text()
    assert readme.startswith("# Demo study")
    assert hashlib.sha256(config.read_bytes()).hexdigest() in readme and "heads: [hpqa, last_token]" in readme
    for name in ("tables/table_head.md", "tables/table_head.tex", "tables/table_loss.md", "tables/table_pairing.tex",
                 "tables/table_label_source.md", "tables/all_results.csv", "tables/table_head.html",
                 "figures/heatmap_head_loss.png", "figures/score_histograms.png"):
        assert f"[`{name}`]({name})" in readme
    for m in metrics:  # relative to the report folder
        assert f"| `../{m.name}` |" in readme
    assert f"Produced by the study configuration `../{config.name}`" in readme
    assert "head = `hpqa`" in readme and "loss = `btt`" in readme
    assert "| hpqa | **78.48** | 64.00 | **85.00** |" in readme


def test_report_tasks_as_leading_column_and_skipped_table(tmp_path):
    grid = {k: v for k, v in CELLS.items() if k[2] == "cross_prompt" and k[3] == "binary"}
    metrics_a, scores_a = _write_grid(tmp_path, with_sources=False, task="phy_deform", cells=grid)
    shifted = {k: (v[0] - 0.1, v[1], v[2]) for k, v in grid.items()}
    metrics_b, scores_b = _write_grid(tmp_path, with_sources=False, task="text_alignment", cells=shifted)
    out = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics_a, *metrics_b, "--output_dir", out, "--reference", "loss=bt") == 0
    head_md = (out / "tables" / "table_head.md").read_text()
    assert "| Task | Head |" in head_md and "other factors: loss = bt, pairing = cross_prompt, label_source = binary" in head_md
    # the best is bold within each task: 75.00 for phy_deform, 65.00 for text_alignment
    assert "| phy_deform | hpqa | **75.00** |" in head_md and "| text_alignment | hpqa | **65.00** |" in head_md
    assert "| text_alignment | last_token | 59.00 |" in head_md
    assert not (out / "tables" / "table_pairing.md").exists() and not (out / "tables" / "table_label_source.md").exists()
    readme = (out / "README.md").read_text()
    assert "No table per pairing: the tag 'pairing' has only one value (cross_prompt)." in readme
    assert "No study configuration was given" in readme
    assert _is_png(out / "figures" / "heatmap_head_loss.png")
    # metrics files that record no score path: score files are matched by position
    frame = load_metrics([str(m) for m in metrics_a])
    assert match_scores(frame, [str(s) for s in scores_a]) == list(enumerate(map(str, scores_a)))
    with pytest.raises(InputError, match="match no recorded score path"):
        match_scores(frame, [str(scores_a[0])])


def test_report_without_scores_and_bad_inputs(tmp_path, capsys):
    metrics, _ = _write_grid(tmp_path, cells={k: v for k, v in CELLS.items() if k[1:] == ("btt", "cross_prompt", "binary")})
    out = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics, "--output_dir", out) == 0
    assert (out / "tables" / "table_head.tex").is_file() and not (out / "figures" / "score_histograms.png").exists()
    readme = (out / "README.md").read_text()
    assert "no score files were given" in readme and "No head × loss heatmap: needs at least two" in readme
    assert "No table per loss: the tag 'loss' has only one value (btt)." in readme

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pairs": {}}))
    assert run_cli("report", "--metrics", bad, "--output_dir", tmp_path / "r2") == 2
    assert "bad.json" in capsys.readouterr().err
    assert run_cli("report", "--metrics", *metrics, "--output_dir", tmp_path / "r3", "--reference", "head=nope") == 2
    assert "head=nope is in no metrics file" in capsys.readouterr().err
    assert run_cli("report", "--metrics", *metrics, "--scores", metrics[0], "--output_dir", tmp_path / "r4") == 2
    assert "match no recorded score path" in capsys.readouterr().err


def test_report_evaluate_pipeline(tmp_path):
    """evaluate -> report on real evaluate outputs (two heads)."""
    metrics = []
    for n, head in enumerate(("hpqa", "last_token")):
        s = tmp_path / f"s{n}.json"
        _scores(s, shift=0.0 if n == 0 else -0.5)
        m = tmp_path / f"m{n}.json"
        assert run_cli("evaluate", "--scores", s, "--output", m, "--tag", f"head={head}", "loss=btt") == 0
        metrics.append(m)
    out = tmp_path / "r"
    assert run_cli("report", "--metrics", *metrics, "--scores", tmp_path / "s0.json", tmp_path / "s1.json",
                   "--output_dir", out) == 0
    auc = json.loads(metrics[0].read_text())["video"]["roc_auc"]
    assert f"{100 * auc:.2f}" in (out / "tables" / "table_head.md").read_text()
    assert "No table per loss" in (out / "README.md").read_text()
    assert _is_png(out / "figures" / "score_histograms.png")
    assert not (out / "figures" / "heatmap_head_loss.png").exists()


def test_label_source_table_falls_back_to_the_values_where_it_varies(tmp_path):
    # As in the demo study: pairwise labels exist only with in-prompt pairs, so binary vs pairwise
    # is compared at pairing = in_prompt (a group of rows per pairing), not at the reference cross_prompt.
    cells = {k: v for k, v in CELLS.items() if k[3] == "binary"}
    cells[("hpqa", "btt", "in_prompt", "pairwise")] = (0.6001, 0.5000, 0.6600)
    metrics, _ = _write_grid(tmp_path, cells=cells)
    out = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics, "--output_dir", out) == 0
    table = (out / "tables" / "table_label_source.md").read_text()
    assert "| Pairing | Label source |" in table
    assert "| in_prompt | binary |" in table and "| in_prompt | pairwise |" in table
    assert "| cross_prompt |" not in table  # binary labels alone there: nothing to compare
    assert "65.43" in table and "60.01" in table          # the two in-prompt hpqa/btt cells
    assert "pairing = cross_prompt" in (out / "tables" / "table_head.md").read_text()


def _referenced_paths(readme: str) -> list[str]:
    """Every file path the report README names: study config, metrics files, score files."""
    config = re.findall(r"Produced by the study configuration `([^`]+)`", readme)
    metrics = re.findall(r"^\| \d+ \| `([^`]+)` \|", readme, re.M)
    scores = [p for line in readme.splitlines() if line.startswith("Score files: ")
              for p in re.findall(r"`([^`]+)`", line)]
    return config + metrics + scores


def test_report_paths_are_relative_so_a_moved_results_folder_stays_right(tmp_path):
    study = tmp_path / "results" / "demo"
    study.mkdir(parents=True)
    metrics, scores = _write_grid(study)
    config = study / "study_config.yaml"
    config.write_text("study: demo\n")
    assert run_cli("report", "--metrics", *metrics, "--scores", *scores, "--study_config", config,
                   "--output_dir", study / "report") == 0
    readme = (study / "report" / "README.md").read_text()
    assert str(tmp_path) not in readme
    assert str(tmp_path) not in (study / "report" / "tables" / "all_results.csv").read_text()
    referenced = _referenced_paths(readme)
    assert len(referenced) == 1 + len(metrics) + len(scores)
    assert all(not Path(p).is_absolute() for p in referenced), referenced

    moved = tmp_path / "elsewhere" / "demo_copy"
    moved.parent.mkdir()
    shutil.move(str(study), str(moved))
    report = moved / "report"
    moved_readme = (report / "README.md").read_text()
    assert _referenced_paths(moved_readme) == referenced
    assert {(report / p).resolve() for p in referenced} == {p.resolve() for p in [moved / config.name,
                                                                                   *(moved / m.name for m in metrics),
                                                                                   *(moved / s.name for s in scores)]}
    with open(report / "tables" / "all_results.csv", newline="") as f:
        for row in csv.DictReader(f):
            assert (report / "tables" / row["source"]).is_file(), row
            assert (report / "tables" / row["scores_path"]).is_file(), row


def _pair_file(tmp_path: Path, n: int) -> Path:
    """`n` win–lose pairs of 6 per prompt, each with its own two videos."""
    pairs = [{"win": {"video_path": f"/v/w{i}.mp4", "prompt": f"p{i // 6}"},
              "lose": {"video_path": f"/v/l{i}.mp4", "prompt": f"p{i // 6}"}} for i in range(n)]
    pair_file = tmp_path / "pairs.json"
    pair_file.write_text(json.dumps(pairs))
    return pair_file


def _evaluated(tmp_path: Path, pair_file: Path, right: np.ndarray, name: str, tags: list[str]) -> Path:
    """The metrics `solireward evaluate` writes for a model that ranks pair i of `pair_file` right where
    `right[i]` (the win video scored 1 or -1, the lose video 0), tagged with `tags` (KEY=VALUE)."""
    records = [{"video_path": f"/v/w{i}.mp4", "prompt": f"p{i // 6}", "label": 1, "score": 1.0 if r else -1.0}
               for i, r in enumerate(right)]
    records += [{"video_path": f"/v/l{i}.mp4", "prompt": f"p{i // 6}", "label": 0, "score": 0.0}
                for i in range(len(right))]
    scores = tmp_path / f"scores_{name}.json"
    scores.write_text(json.dumps(records))
    out = tmp_path / f"metrics_{name}.json"
    assert run_cli("evaluate", "--scores", scores, "--pairs", pair_file, "--output", out, "--tag", *tags) == 0
    return out


def _replicated_study(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """Three heads x three replicates evaluated by `solireward evaluate` on one pair file of 20 prompts.

    Each pair has its own two videos; a model ranks a pair right with probability q: 0.6 for hpqa and
    attention, 0.95 for last_token.
    """
    pair_file = _pair_file(tmp_path, 120)
    metrics, logs = [], []
    rng = np.random.default_rng(3)
    for head, q in (("hpqa", 0.6), ("last_token", 0.95), ("attention", 0.6)):
        for replicate in range(3):
            name = f"{head}_{replicate}"
            metrics.append(_evaluated(tmp_path, pair_file, rng.random(120) < q, name,
                                      [f"head={head}", "loss=btt", f"replicate={replicate}"]))
            log = tmp_path / f"train_{name}.jsonl"
            log.write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 1.0 / s + 0.01 * replicate}) + "\n"
                                   for s in range(1, 21))
                           + "".join(json.dumps({"kind": "eval", "step": s, "eval_accuracy": q - 0.2 / s}) + "\n"
                                     for s in (10, 20)))
            logs.append(log)
    return metrics, logs


def test_replicates_intervals_and_significance_marks(tmp_path):
    metrics, logs = _replicated_study(tmp_path)
    out = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics, "--training_logs", *logs, "--output_dir", out,
                   "--reference", "head=hpqa") == 0
    table = (out / "tables" / "table_head.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Head"))
    assert header == ("| Head | Pair acc. (%) | 95 % CI | Δ vs ref. (pp) | p | In-prompt acc. (%) | Acc. w/ ties (%) "
                      "| ROC-AUC (%) | Models |")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines() if line.startswith(("| hpqa", "| last_token", "| attention"))}
    assert rows["hpqa"][3] == "ref." and rows["hpqa"][8] == "3"
    assert rows["last_token"][3].endswith("*") and float(rows["last_token"][3].rstrip("*")) > 25
    assert not rows["attention"][3].endswith("*") and float(rows["attention"][4]) > 0.05
    # the interval of the mean over 3 replicates contains the mean
    for cells in rows.values():
        mean = float(cells[1].strip("*"))
        low, high = (float(v) for v in cells[2].strip("[]").split(","))
        assert low <= mean <= high
    assert "(with several models: test set and seed-to-seed spread" in table and "p: two-sided paired test" in table
    assert "Method: intervals and paired tests treat test pairs that share a prompt as dependent" in table
    assert "* = significant at the 5 % level" in table
    tex = (out / "tables" / "table_head.tex").read_text()
    assert "\\footnotesize" in tex and "ref." in tex and "\\begin{tabular}{lrrrrrrrr}" in tex
    assert "<td class=\"r\">ref.</td>" in (out / "tables" / "table_head.html").read_text()
    everything = (out / "tables" / "all_results.md").read_text()
    assert everything.count("\n| hpqa") == 3 and "95 % CI |" in everything and "| Replicate |" in everything
    readme = (out / "README.md").read_text()
    assert "up to 3 replicate(s) each" in readme and "![learning_curves.png](figures/learning_curves.png)" in readme
    assert _is_png(out / "figures" / "learning_curves.png")


def test_single_models_get_stored_intervals_and_learning_curve_errors(tmp_path, capsys):
    metrics, logs = _replicated_study(tmp_path)
    firsts = [m for m in metrics if m.stem.endswith("_0")]
    for m in firsts:   # drop the replicate tag: one model per head
        result = json.loads(m.read_text())
        del result["tags"]["replicate"]
        m.write_text(json.dumps(result))
    out = tmp_path / "single"
    assert run_cli("report", "--metrics", *firsts, "--output_dir", out, "--reference", "head=hpqa") == 0
    table = (out / "tables" / "table_head.md").read_text()
    assert "Method: intervals and paired tests" in table and "Models" not in table
    stored = json.loads(firsts[1].read_text())["pairs"]["accuracy_ci"]
    assert f"[{100 * stored[0]:.1f}, {100 * stored[1]:.1f}]" in table
    # one training per row and no replicated cell to pool seed variance from: p is shown, no significance mark
    last_token = next(line for line in table.splitlines() if line.startswith("| last_token"))
    assert [c.strip() for c in last_token.split("|")[4:6]] == ["+35.83", "<0.001"], last_token
    assert "No * where a side is one training" in table
    assert run_cli("report", "--metrics", *firsts, "--training_logs", logs[0], "--output_dir", tmp_path / "x") == 2
    assert "give one training log per metrics file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"no_kind": 1}\n')
    assert run_cli("report", "--metrics", firsts[0], "--training_logs", bad, "--output_dir", tmp_path / "y") == 2
    assert "bad.jsonl" in capsys.readouterr().err


def test_a_single_training_is_compared_with_the_seed_variance_pooled_from_replicated_cells(tmp_path):
    """The reference head trained 3 times, the others once: their Δ and p add the pooled seed variance."""
    metrics, _ = _replicated_study(tmp_path)
    kept = [m for m in metrics if "hpqa" in m.stem or m.stem.endswith("_0")]
    out = tmp_path / "mixed"
    assert run_cli("report", "--metrics", *kept, "--output_dir", out, "--reference", "head=hpqa") == 0
    table = (out / "tables" / "table_head.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines() if line.startswith(("| hpqa", "| last_token", "| attention"))}
    assert (rows["hpqa"][-1], rows["last_token"][-1], rows["attention"][-1]) == ("3", "1", "1")
    assert rows["last_token"][3].endswith("*") and not rows["attention"][3].endswith("*")
    assert "seed variance pooled from the cells trained several times" in table and "2 df" in table
    assert "a row of one model (Models = 1) is one training" in table


def _hacking_results(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """probe.json and overopt.json of two cells, in the shape `solireward probe` and `overopt` write."""
    probes, overopts = [], []
    for n, head in enumerate(("hpqa", "last_token")):
        tags = {"task": "phy_deform", "label_source": "binary", "pairing": "cross_prompt", "head": head, "loss": "btt"}
        probe = {"tags": tags, "threshold": 0.5, "n_videos": 12, "perturbations": [
            {"name": "brightness_x1.3", "expected": "invariant", "mean_change_std": 1.9 - n, "flagged": n == 0,
             "shortcut": n == 0},
            {"name": "frames_x0.5", "expected": "invariant", "mean_change_std": 0.1, "flagged": False}]}
        curve = [{"sqrt_kl": k, "gold": 0.4 + 0.01 * k, "proxy": 0.2 * k} for k in (0.0, 1.0, 2.0)]
        overopt = {"tags": tags, "task": "phy_deform", "prompts": ["a", "b", "c"], "settings": [list(range(80))] * 3,
                   "base": {"gold": 0.41, "best_gold": 0.9}, "curves": {"best_of_n": curve},
                   "summary": {"best_of_n": {"gold_at_max_kl": 0.43 + n, "peak_gold": 0.5, "kl_at_peak": 2.0,
                                             "hacking_gap": 1.25 - n}}}
        for kind, result, out in (("probe", probe, probes), ("overopt", overopt, overopts)):
            path = tmp_path / f"{kind}_{head}.json"
            path.write_text(json.dumps(result))
            out.append(path)
    return probes, overopts


def test_one_report_holds_the_probe_and_overoptimisation_tables(tmp_path):
    """README.md, summary.html and tables/ hold the reward-hacking tables beside the paper's, and a browser shows
    them on the summary page."""
    from tests.conftest import rendered_text

    metrics, scores = _write_grid(tmp_path)
    probes, overopts = _hacking_results(tmp_path)
    out = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics, "--output_dir", out, "--probe", *reversed(probes),
                   "--overopt", *overopts) == 0
    readme = (out / "README.md").read_text()
    for title in ("Reward hacking: stress probe", "Reward hacking: over-optimisation", "Accuracy per loss"):
        assert f"### {title}" in readme
    # flagged value in bold, a shortcut marked and named
    assert "| hpqa / btt (binary, cross_prompt) | **+1.90!** | +0.10 | 1 | brightness_x1.3 |" in readme
    assert "| last_token / btt (binary, cross_prompt) | 0.41 | 1.43 (0.50 @ 2.0) / +0.25 |" in readme
    for name in ("stress_probe", "overoptimisation"):
        assert {p.suffix for p in (out / "tables").glob(f"{name}.*")} == {".md", ".tex", ".html"}
    assert (out / "figures" / "overopt_curves.png").stat().st_size > 0
    assert (out / "figures" / "probe_heatmap.png").stat().st_size > 10_000
    shown = rendered_text(out / "summary.html")
    # the wide probe table stays in README.md and tables/; summary.html shows it as a heatmap
    assert "Stress probe: mean score change under each perturbation" not in shown and "probe heatmap" in shown
    assert "Over-optimisation: best-of-n and GRPO-style optimisation" in shown and "1.43 (0.50 @ 2.0) / +0.25" in shown
    assert "overopt curves" in shown


def test_overopt_defect_table_marks_the_failing_kinds_a_model_scores_with_the_good_ones() -> None:
    from solireward.reporting.hacking import overopt_defect_table

    settings = [{"defect": kind, "brightness": b} for kind in ("none", "melt", "morph") for b in (1.0, 1.4)]
    gold = [[1, 1, 0, 0, 0, 0]] * 3
    blind = {"model": "blind", "task": "phy_deform", "settings": [settings] * 3, "gold": gold, "proxy": [[1, 1, -1, -1, 1.2, 0.8]] * 3}
    sharp = {"model": "sharp", "task": "phy_deform", "settings": [settings] * 3, "gold": gold, "proxy": [[1, 1, -1, -1, -0.5, -0.7]] * 3}
    table = overopt_defect_table([blind, sharp])
    assert table.name == "overopt_defects_phy_deform"
    assert table.header == ["Cell", "none (gold 1.00)", "melt (gold 0.00)", "morph (gold 0.00)"]
    assert table.rows == [["blind", "+1.00", "-1.00", "+1.00"], ["sharp", "+1.00", "-1.00", "-0.60"]]
    assert table.bold == [[False, False, False, True], [False, False, False, False]]  # morph is exploitable in one
    assert overopt_defect_table([{**blind, "settings": [[{"brightness": 1.0}] * 6] * 3}]) is None  # no kinds


def test_conclusions_are_written_and_two_reports_are_compared_for_contradictions(tmp_path, capsys):
    """conclusions.json holds each table's three-valued conclusion; compare-reports exits 1 on a contradiction."""
    metrics, _ = _replicated_study(tmp_path)
    out = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics, "--output_dir", out, "--reference", "head=hpqa") == 0
    found = {(c["where"], c["what"]): c["outcome"] for c in json.loads((out / "conclusions.json").read_text())}
    assert found[("per head", "last_token vs hpqa")] == "higher" and found[("per head", "attention vs hpqa")] == \
        "unresolved"
    again = tmp_path / "again"
    again.mkdir()
    flipped = [{**c, "outcome": "lower"} if c["what"] == "last_token vs hpqa" else c
               for c in json.loads((out / "conclusions.json").read_text())]
    (again / "conclusions.json").write_text(json.dumps(flipped))
    assert run_cli("compare-reports", "--first", out, "--second", out) == 0
    assert "contradicting (0):" in capsys.readouterr().out
    assert run_cli("compare-reports", "--first", out, "--second", again) == 1
    printed = capsys.readouterr().out
    assert "contradicting (1):" in printed and "last_token vs hpqa: higher vs lower" in printed
    assert run_cli("compare-reports", "--first", out, "--second", tmp_path / "nowhere") == 2
    assert "conclusions.json" in capsys.readouterr().err


def test_an_unresolved_goal_names_the_largest_part_of_its_variance(tmp_path):
    """The reference trained 6 times with accuracies spread far apart (0.45-0.95), the mitigated cell 3 times
    alike: `below_reference` comes back unresolved and says the reference's seeds hold most of its variance. The
    mitigated cell's probe shifts differ by training, not by video: its probe goal names the cell's seeds."""
    pair_file = _pair_file(tmp_path, 240)
    rng = np.random.default_rng(5)
    metrics, probes = [], []
    for mitigation, accuracies in (("none", (0.45, 0.95, 0.55, 0.9, 0.5, 0.85)), ("robust", (0.7, 0.72, 0.68))):
        for replicate, q in enumerate(accuracies):
            out = _evaluated(tmp_path, pair_file, rng.permutation(240) < round(q * 240), f"{mitigation}_{replicate}",
                             ["task=phy_deform", "label_source=binary", "pairing=cross_prompt", "head=hpqa",
                              "loss=btt", f"mitigation={mitigation}", f"replicate={replicate}"])
            metrics.append(out)
            shift = 0.1 + 0.5 * (replicate % 2) if mitigation == "robust" else 0.0
            probe = {"tags": json.loads(out.read_text())["tags"], "threshold": 0.5, "n_videos": 30,
                     "videos": [f"/v/w{i}.mp4" for i in range(30)],
                     "perturbations": [{"name": "brightness_x1.3", "expected": "invariant", "mean_change_std": shift,
                                        "flagged": shift > 0.5,
                                        "per_video_change_std": list(shift + 0.01 * rng.standard_normal(30))}]}
            probes.append(tmp_path / f"probe_{mitigation}_{replicate}.json")
            probes[-1].write_text(json.dumps(probe))
    out = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics, "--output_dir", out, "--probe", *probes, "--mitigation_goals",
                   "below_reference=5", "probe:brightness_x1.3=0.3", "--reference", "mitigation=none") == 0
    goals = (out / "tables" / "mitigation_goals.md").read_text()
    row = next(line for line in goals.splitlines() if "| below_reference ≤ 5 |" in line)
    verdict = [c.strip(" *") for c in row.strip("|").split("|")][5]
    assert verdict.startswith("unresolved (at ≈") and "most of its variance: the reference's seeds" in verdict, row
    share = float(re.search(r"the reference's seeds, (\d+) %", verdict).group(1))
    assert 50 < share <= 100, verdict
    # at 21.9x the data the interval would end at the limit, keeping 1/21.9 of the variance: more than all but the
    # reference's seeds hold
    assert verdict.endswith(", and no one kind of data alone would get it there)"), verdict
    row = next(line for line in goals.splitlines() if "| probe:brightness_x1.3 ≤ 0.3 |" in line)
    verdict = [c.strip(" *") for c in row.strip("|").split("|")][5]
    assert verdict.startswith("unresolved (") and "most of its variance: the cell's seeds" in verdict, row
