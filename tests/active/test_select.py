"""`solireward select` through the CLI on hand-made pools and score files: each strategy picks what its
definition names (the expected batch computed here from the scores), labelled videos and unscored ones are
left out, held-out prompts are refused, and the sheet goes through `solireward labels` once filled."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

PROMPTS = ["a red ball falls to the ground", "a blue square slides to the left", "a green cross bounces on the ground"]


def _pool(tmp_path: Path, n_per_prompt: int = 4) -> tuple[Path, list[dict]]:
    """pool.jsonl of 3 prompts x n videos (paths relative to the pool's folder; no files needed by select)."""
    rows = [{"video_path": f"videos/p{p}_v{v}.mp4", "prompt": prompt}
            for p, prompt in enumerate(PROMPTS) for v in range(n_per_prompt)]
    path = tmp_path / "pool" / "pool.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def _scores(path: Path, rows: list[dict], values: np.ndarray) -> Path:
    """An infer-like output file: the records plus score and score_norm (NaN -> an 'error' record)."""
    out = [{**r, "error": "could not decode"} if np.isnan(v) else {**r, "score": float(v), "score_norm": float(v)}
           for r, v in zip(rows, values)]
    path.write_text(json.dumps(out), encoding="utf-8")
    return path


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def _picked(folder: Path) -> list[str]:
    """The picked videos as the pool names them, in rank order."""
    return [row["pool_video_path"] for row in _manifest(folder)]


def test_pressure_picks_each_prompts_best_of_n_then_the_next(tmp_path: Path) -> None:
    pool, rows = _pool(tmp_path)
    values = np.random.default_rng(1).normal(size=len(rows))
    scores = _scores(tmp_path / "scores.json", rows, values)
    assert run_cli("select", "--pool", pool, "--scores", scores, "--strategy", "pressure", "--batch_size", 5,
                   "--output_dir", tmp_path / "batch") == 0
    best = {}                                            # each prompt's videos, best first
    for row, value in zip(rows, values):
        best.setdefault(row["prompt"], []).append((value, row["video_path"]))
    ranked = {p: sorted(v, reverse=True) for p, v in best.items()}
    firsts = sorted((v[0] for v in ranked.values()), reverse=True)
    seconds = sorted((v[1] for v in ranked.values()), reverse=True)
    expected = [path for _, path in firsts + seconds][:5]
    assert _picked(tmp_path / "batch") == expected
    manifest = _manifest(tmp_path / "batch")
    assert [m["rank"] for m in manifest] == [1, 2, 3, 4, 5]
    assert all(m["strategy"] == "pressure" and "best-of-n" in m["reason"] for m in manifest)


def test_pressure_at_a_finite_n_ranks_by_best_of_n_probability(tmp_path: Path) -> None:
    """P(best of n draws from m videos is the k-th lowest) = (k/m)^n - ((k-1)/m)^n; prompts of different sizes."""
    pool, rows = _pool(tmp_path)
    rows, values = rows[:10], np.random.default_rng(2).normal(size=10)     # 4, 4 and 2 videos per prompt
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = _scores(tmp_path / "scores.json", rows, values)
    assert run_cli("select", "--pool", pool, "--scores", scores, "--strategy", "pressure", "--best_of_n", 3,
                   "--batch_size", 4, "--output_dir", tmp_path / "batch") == 0
    mass, reward = {}, {r["video_path"]: v for r, v in zip(rows, values)}
    for prompt in PROMPTS:
        mine = [(v, r["video_path"]) for r, v in zip(rows, values) if r["prompt"] == prompt]
        m = len(mine)
        for k, (_, path) in enumerate(sorted(mine), start=1):
            mass[path] = (k / m) ** 3 - ((k - 1) / m) ** 3
    expected = sorted(mass, key=lambda path: (-mass[path], -reward[path]))[:4]     # equal mass: higher reward
    assert _picked(tmp_path / "batch") == expected
    assert [m["value"] for m in _manifest(tmp_path / "batch")] == pytest.approx([mass[p] for p in expected])


def test_random_is_the_seeded_permutation_of_the_candidates(tmp_path: Path) -> None:
    pool, rows = _pool(tmp_path)
    labelled = tmp_path / "old.csv"                       # the first two videos are labelled already
    labelled.write_text("video_path,prompt,dimension,label,annotator\n"
                        + "".join(f"pool/{r['video_path']},{r['prompt']},physics,pass,a01\n" for r in rows[:2]))
    assert run_cli("select", "--pool", pool, "--strategy", "random", "--batch_size", 4, "--seed", 7,
                   "--labelled", labelled, "--output_dir", tmp_path / "batch") == 0
    candidates = [r["video_path"] for r in rows[2:]]
    expected = [candidates[i] for i in np.random.default_rng(7).permutation(len(candidates))[:4]]
    assert _picked(tmp_path / "batch") == expected
    summary = json.loads((tmp_path / "batch" / "select.json").read_text())
    assert summary["already_labelled"] == 2 and summary["candidates"] == 10


def test_disagreement_uncertainty_and_unscored_videos(tmp_path: Path) -> None:
    pool, rows = _pool(tmp_path)
    a = np.linspace(-1, 1, len(rows))
    b = a + np.r_[np.zeros(6), 2.0, np.zeros(5)]          # the models disagree on video 6 only
    a[3] = np.nan                                          # video 3 unscored by one model: left out
    files = [_scores(tmp_path / "a.json", rows, a), _scores(tmp_path / "b.json", rows, b)]
    assert run_cli("select", "--pool", pool, "--scores", *files, "--strategy", "disagreement", "--batch_size", 1,
                   "--output_dir", tmp_path / "dis") == 0
    assert _picked(tmp_path / "dis") == [rows[6]["video_path"]]
    assert _manifest(tmp_path / "dis")[0]["score_std"] == pytest.approx(1.0)
    assert run_cli("select", "--pool", pool, "--scores", files[0], "--strategy", "uncertainty", "--threshold", 0.5,
                   "--batch_size", 2, "--output_dir", tmp_path / "unc") == 0
    distance = np.abs(a - 0.5)
    distance[3] = np.inf
    assert _picked(tmp_path / "unc") == [rows[i]["video_path"] for i in np.argsort(distance, kind="stable")[:2]]
    assert json.loads((tmp_path / "unc" / "select.json").read_text())["unscored"] == 1


def test_diversity_spreads_over_prompts_and_skips_near_duplicates(tmp_path: Path) -> None:
    pool, rows = _pool(tmp_path)
    values = np.array([0.0, 0.0, 0.5, 1.5,  3.0, 3.0, 3.0, 3.0,  -1.0, 1.0, -1.0, 1.0])
    scores = _scores(tmp_path / "scores.json", rows, values)
    assert run_cli("select", "--pool", pool, "--scores", scores, "--strategy", "diversity", "--batch_size", 6,
                   "--min_distance", 0.1, "--output_dir", tmp_path / "batch") == 0
    picked = _manifest(tmp_path / "batch")
    by_prompt = [sum(m["prompt"] == p for m in picked) for p in PROMPTS]
    # the second prompt's four videos are duplicates: it gives one; the first has 3 distinct videos, the third 2
    assert by_prompt == [3, 1, 2]
    assert {m["pool_video_path"] for m in picked[:3]} >= {rows[4]["video_path"]}
    first = [m["score"] for m in picked if m["prompt"] == PROMPTS[0]]
    assert min(abs(x - y) for i, x in enumerate(first) for y in first[i + 1:]) >= 0.1


def test_held_out_prompts_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pool, rows = _pool(tmp_path)
    test_pairs = tmp_path / "test.json"
    test_pairs.write_text(json.dumps([{"win": {"video_path": "x.mp4", "prompt": PROMPTS[1]},
                                       "lose": {"video_path": "y.mp4", "prompt": "another prompt"}}]))
    assert run_cli("select", "--pool", pool, "--strategy", "random", "--batch_size", 2, "--held_out", test_pairs,
                   "--output_dir", tmp_path / "batch") == 2
    err = capsys.readouterr().err
    assert f"1 pool prompt(s) are held-out prompts of {test_pairs}: '{PROMPTS[1]}'" in err
    assert not (tmp_path / "batch").exists()


def test_a_filled_sheet_imports_with_labels(tmp_path: Path) -> None:
    """The real-user path: copy the sheet per annotator, fill label and annotator, import the copies."""
    pool, rows = _pool(tmp_path)
    for row in rows:
        video = pool.parent / row["video_path"]
        video.parent.mkdir(parents=True, exist_ok=True)
        video.write_bytes(b"")                              # labels checks that the files exist
    assert run_cli("select", "--pool", pool, "--strategy", "random", "--batch_size", 3,
                   "--output_dir", tmp_path / "batch") == 0
    sheet = tmp_path / "batch" / "to_label.csv"
    with sheet.open(newline="", encoding="utf-8") as f:
        blank = list(csv.DictReader(f))
    assert len(blank) == 3 * 2 and {r["dimension"] for r in blank} == {"physics", "deformity"}
    assert run_cli("labels", "--input", sheet, "--output", tmp_path / "unfilled.jsonl") == 2  # empty votes refused
    for name, vote in (("ann1", "pass"), ("ann2", "fail"), ("ann3", "pass")):
        with (tmp_path / "batch" / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(blank[0]))
            writer.writeheader()
            writer.writerows({**r, "label": vote, "annotator": name} for r in blank)
    assert run_cli("labels", "--input", *(tmp_path / "batch" / f"ann{i}.csv" for i in (1, 2, 3)),
                   "--output", tmp_path / "labels.jsonl") == 0
    table = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    expected = {str((pool.parent / p).resolve()) for p in _picked(tmp_path / "batch")}
    assert {r["video_path"] for r in table} == expected
    assert all(r["label"] == 1 and r["n_annotators"] == 3 for r in table)


def test_a_bad_pool_row_is_reported_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pool, rows = _pool(tmp_path)
    lines = pool.read_text().splitlines()
    lines[1] = json.dumps({"video_path": "videos/no_prompt.mp4"})
    pool.write_text("\n".join(lines) + "\n")
    assert run_cli("select", "--pool", pool, "--strategy", "random", "--batch_size", 20,
                   "--output_dir", tmp_path / "batch") == 0
    assert f"{pool}, row 2, field 'prompt': expected a non-empty prompt; row skipped" in caplog.text
    assert len(_picked(tmp_path / "batch")) == len(rows) - 1
    assert "videos/no_prompt.mp4" not in _picked(tmp_path / "batch")
