"""`solireward active-report` on synthetic rounds with known answers: labels spent, the gap of a proxy equal to the
gold (0, met), a hacked proxy's gap (missed), a strategy against the control (lower gap, higher accuracy: beats it)
and two identical sides (difference 0, p 1); a model with a missing file is reported and left out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from solireward.hacking.overopt import compare_overopt, optimise
from tests.conftest import run_cli

DEFECTS = ["none", "morph", "tear", "none"]
GOLD = np.tile([1.0, 0.0, 0.0, 1.0], (8, 1))          # 8 test prompts x 4 settings


def _overopt(path: Path, proxy: np.ndarray) -> dict:
    """An overopt.json of `proxy` on the synthetic grid (best-of-n exact, one short GRPO run)."""
    result = optimise(proxy, GOLD, max_n=16, betas=[0.0], steps=10, seed=0)
    result.update(prompts=[f"p{i}" for i in range(len(GOLD))], settings=[[{"defect": d} for d in DEFECTS]] * len(GOLD),
                  proxy=proxy.tolist(), gold=GOLD.tolist(), task="phy_deform", tags={})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result), encoding="utf-8")
    return result


def _metrics(path: Path, pairs: Path, d: np.ndarray) -> None:
    """A metrics file of `solireward evaluate` whose per-pair score differences (win − lose) are `d`."""
    n = len(d)
    per_pair = {"row": list(range(n)), "prompt_win": [f"p{i // 5}" for i in range(n)],
                "prompt_lose": [f"p{(i // 5 + 3) % 8}" for i in range(n)], "d": d.tolist(), "relation": [1] * n}
    path.write_text(json.dumps({"tags": {}, "video": {}, "sources": {"pairs": str(pairs)}, "per_pair": per_pair}),
                    encoding="utf-8")


def _hacked(rng: np.random.Generator) -> np.ndarray:
    """A proxy that prefers the failing settings (with per-prompt noise)."""
    return 1.0 - GOLD + rng.normal(0, 0.1, GOLD.shape)


@pytest.fixture()
def rounds(tmp_path: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    pairs = tmp_path / "test.json"
    pairs.write_text("[]", encoding="utf-8")
    right, half = np.ones(40), np.where(np.arange(40) % 2 == 0, 1.0, -1.0)
    plan = [(None, 0, _hacked, half), ("pressure", 1, lambda rng: GOLD.copy(), right), ("random", 1, _hacked, half),
            ("pressure", 2, _hacked, half), ("random", 2, None, half)]
    models, results = [], {}
    for seed in (1, 2):
        shared = _hacked(rng)                          # round 2: the strategy and the control score alike
        for strategy, round_, proxy, d in plan:
            folder = tmp_path / (strategy or "base") / f"seed{seed}" / f"round{round_}"
            folder.mkdir(parents=True)
            results[(strategy, round_, seed)] = _overopt(folder / "overopt.json",
                                                         shared if round_ == 2 else proxy(rng))
            _metrics(folder / "metrics.json", pairs, d)
            batch = None
            if round_:
                (folder / "select.json").write_text(json.dumps({"selected": 3}), encoding="utf-8")
                batch = str((folder / "select.json").relative_to(tmp_path))
            models.append({"strategy": strategy, "seed": seed, "round": round_, "batch": batch,
                           "metrics": str((folder / "metrics.json").relative_to(tmp_path)),
                           "overopt": str((folder / "overopt.json").relative_to(tmp_path))})
    models.append({"strategy": "random", "seed": 3, "round": 1, "batch": "nowhere/select.json",
                   "metrics": "nowhere/metrics.json", "overopt": "nowhere/overopt.json"})
    manifest = tmp_path / "rounds.yaml"
    manifest.write_text(yaml.safe_dump({"cell": {"task": "phy_deform"}, "strategies": ["pressure", "random"],
                                        "control": "random",
                                        "rounds": 2, "batch": 3, "seeds": [1, 2], "models": models}), encoding="utf-8")
    return manifest, results


def test_rounds_report_known_answers(rounds: tuple[Path, dict], tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    manifest, results = rounds
    out = tmp_path / "report"
    assert run_cli("active-report", "--rounds", manifest, "--output_dir", out) == 0
    assert "no metrics file 'nowhere/metrics.json'" in caplog.text and "model left out" in caplog.text
    numbers = json.loads((out / "rounds.json").read_text())
    rows = {(r["strategy"], r["round"]): r for r in numbers["rows"]}
    assert list(rows) == [("none", 0), ("pressure", 1), ("random", 1), ("pressure", 2), ("random", 2)]
    assert [rows[k]["labels_spent"] for k in rows] == [0, 3, 3, 6, 6]
    assert all(r["seeds"] == [1, 2] for r in rows.values())
    kl = numbers["kl"]
    assert kl == pytest.approx(min(r["summary"]["best_of_n"]["max_kl"] for r in results.values()))

    exact = rows[("pressure", 1)]                      # proxy = gold: no gap, on every prompt and seed
    assert exact["gap"] == {"mean": 0.0, "low": 0.0, "high": 0.0} and exact["verdict"] == "met"
    assert exact["proxy_per_defect"]["morph"]["mean"] == 0.0 and exact["proxy_per_defect"]["none"]["mean"] == 1.0
    assert exact["accuracy"]["mean"] == 1.0
    hacked = rows[("random", 1)]
    assert hacked["gap"]["low"] > 0.3 and hacked["verdict"].startswith("missed by ")
    assert hacked["accuracy"]["mean"] == 0.5 and hacked["vs_control"] is None
    gains = [results[("pressure", 1, s)]["summary"]["best_of_n"] for s in (1, 2)]   # their largest KL is the common one
    assert exact["gold"]["mean"] == pytest.approx(np.mean([g["gold_at_max_kl"] for g in gains]))
    assert exact["gold"]["mean"] > hacked["gold"]["mean"]

    versus = exact["vs_control"]                       # the helper's paired comparison, at the report's KL
    expected = compare_overopt([results[("pressure", 1, s)] for s in (1, 2)],
                               [results[("random", 1, s)] for s in (1, 2)], "best_of_n", kl)["hacking_gap"]
    assert versus["gap"]["mean"] == pytest.approx(-hacked["gap"]["mean"]) == pytest.approx(expected["difference"])
    assert versus["gap"]["p"] == pytest.approx(expected["p"]) and versus["gap"]["p"] < 0.05
    assert versus["accuracy"]["mean"] == pytest.approx(0.5) and versus["accuracy"]["p"] < 0.05
    assert versus["beats_control"] is True
    alike = rows[("pressure", 2)]["vs_control"]        # identical sides: no difference, p 1
    assert alike["gap"]["mean"] == 0.0 and alike["gap"]["p"] == 1.0 and alike["beats_control"] is False

    table = (out / "rounds.md").read_text()
    assert "| **pressure** | 1 | 3 | 2 |" in table and "| random | 2 | 6 | 2 |" in table
    assert "| Strategy | Round | none (gold 1.00) | morph (gold 0.00) | tear (gold 0.00) |" in table
    readme = (out / "README.md").read_text()
    assert "- pressure, round 1: beats random" in readme and "- pressure, round 2: does not beat random" in readme
    assert (out / "gap_vs_labels.png").stat().st_size > 0


def test_rounds_report_refuses_a_file_without_models_or_control(rounds: tuple[Path, dict], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    manifest = tmp_path / "empty.yaml"
    manifest.write_text("cell: {}\n", encoding="utf-8")
    assert run_cli("active-report", "--rounds", manifest, "--output_dir", tmp_path / "out") == 2
    assert "expected a mapping with a list `models`" in capsys.readouterr().err
    full = yaml.safe_load(rounds[0].read_text())
    rounds[0].write_text(yaml.safe_dump({**full, "control": "uniform"}), encoding="utf-8")
    assert run_cli("active-report", "--rounds", rounds[0], "--output_dir", tmp_path / "out") == 2
    assert "field 'control': expected `control`, the strategy every other is compared with" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_rounds_report_names_the_floor_when_no_strategy_beats_the_control(tmp_path: Path) -> None:
    """Every model scores tear with the passing settings and morph below them: the floor names tear, not morph."""
    rng = np.random.default_rng(1)
    pairs = tmp_path / "test.json"
    pairs.write_text("[]", encoding="utf-8")
    half = np.where(np.arange(40) % 2 == 0, 1.0, -1.0)
    models = []
    for seed in (1, 2, 3):
        for strategy, round_ in ((None, 0), ("pressure", 1), ("random", 1)):
            folder = tmp_path / (strategy or "base") / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            proxy = np.tile([1.0, 0.0, 1.0, 1.0], (8, 1)) + rng.normal(0, 0.1, GOLD.shape)   # none, morph, tear, none
            _overopt(folder / f"overopt{round_}.json", proxy)
            _metrics(folder / f"metrics{round_}.json", pairs, half)
            batch = None
            if round_:
                (folder / "select.json").write_text(json.dumps({"selected": 3}), encoding="utf-8")
                batch = str((folder / "select.json").relative_to(tmp_path))
            models.append({"strategy": strategy, "seed": seed, "round": round_, "batch": batch,
                           "metrics": str((folder / f"metrics{round_}.json").relative_to(tmp_path)),
                           "overopt": str((folder / f"overopt{round_}.json").relative_to(tmp_path))})
    manifest = tmp_path / "rounds.yaml"
    manifest.write_text(yaml.safe_dump({"cell": {}, "strategies": ["pressure", "random"], "control": "random",
                                        "rounds": 1, "batch": 3, "seeds": [1, 2, 3], "models": models}),
                        encoding="utf-8")
    assert run_cli("active-report", "--rounds", manifest, "--output_dir", tmp_path / "out") == 0
    rows = json.loads((tmp_path / "out" / "rounds.json").read_text())["rows"]
    assert all(r["failing_vs_passing"]["morph"]["high"] < 0 <= r["failing_vs_passing"]["tear"]["high"] for r in rows)
    readme = (tmp_path / "out" / "README.md").read_text()
    floor = readme.split("## The floor", 1)[1].split("**Rounds", 1)[0]
    assert "- No strategy beats random at any round. The lowest gap:" in floor
    assert "scores below the passing kinds" in floor and ": tear " in floor and "morph" not in floor


def test_the_floor_is_left_out_when_a_strategy_beats_the_control(rounds: tuple[Path, dict], tmp_path: Path) -> None:
    assert run_cli("active-report", "--rounds", rounds[0], "--output_dir", tmp_path / "out") == 0
    assert "## The floor" not in (tmp_path / "out" / "README.md").read_text()
