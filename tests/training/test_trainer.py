"""`solireward train` end to end on the demo pairs with a tiny Qwen2-VL (CPU, fixed seeds)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import run_cli
from tests.training.conftest import fast_args

REPO = Path(__file__).resolve().parents[2]


def _rows(output: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {**load_file(str(folder / "model.safetensors")),
            **{f"head.{k}": v for k, v in load_file(str(folder / "head.safetensors")).items()}}


def _untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "step_time")} for r in rows]


def _subset(pairs_file: Path, out_file: Path, max_videos: int) -> int:
    """Write the pairs of `pairs_file` among its first `max_videos` distinct videos; returns the video count."""
    videos: set[str] = set()
    kept = []
    for pair in json.loads(pairs_file.read_text()):
        ends = {pair["win"]["video_path"], pair["lose"]["video_path"]}
        if len(videos | ends) <= max_videos:
            videos |= ends
            kept.append(pair)
    out_file.write_text(json.dumps(kept))
    return len(videos)


def test_training_updates_weights_lowers_loss_and_writes_outputs(demo_pairs, tiny_qwen, tmp_path):
    # one fixed batch (all videos of a small pair file in every step): the optimizer must fit it
    data = tmp_path / "data"
    data.mkdir()
    n_videos = _subset(demo_pairs / "train.json", data / "train.json", 8)
    out = tmp_path / "run"
    assert run_cli(*fast_args(tiny_qwen, data, out, eval_data=demo_pairs / "val.json", max_steps=16,
                              per_device_train_batch_size=n_videos, eval_steps=8, save_steps=8)) == 0
    train, evals = _rows(out, "train"), _rows(out, "eval")
    assert [r["step"] for r in train] == list(range(1, 17)) and [e["step"] for e in evals] == [8, 16]
    assert all(r["n_pairs"] > 0 and r["n_videos"] == n_videos and r["learning_rate"] > 0 for r in train)
    assert {"loss", "loss_bt", "loss_tie", "loss_bce", "accuracy", "grad_norm"} <= set(train[0])
    assert {"eval_accuracy", "eval_roc_auc", "eval_loss"} <= set(evals[0])
    # step 1's loss is that of the initial weights
    assert train[-1]["loss"] < train[0]["loss"] - 0.5, [round(r["loss"], 3) for r in train]
    assert train[-1]["accuracy"] == 1.0

    before = load_file(str(tiny_qwen / "model.safetensors"))
    after = _weights(out)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    first_head = _weights(out / "checkpoints" / "step-8" / "model")
    assert any(not torch.equal(first_head[k], after[k]) for k in after if k.startswith("head."))

    from solireward.models import RewardModel

    summary = json.loads((out / "train_summary.json").read_text())
    model = RewardModel.from_pretrained(out)
    assert summary["global_step"] == 16 and summary["backend"] == "single"
    assert model.config.score_mean == pytest.approx(summary["score_mean"])
    assert model.config.score_std == pytest.approx(summary["score_std"]) and model.config.score_std > 0
    assert model.config.sampling["num_frames"] == 4 and model.config.sampling["height"] == 56
    # safetensors writes 0600 files; the model, its head and the checkpoints must follow the umask
    umask = os.umask(0)
    os.umask(umask)
    readable = 0o444 & ~umask
    private = [str(f.relative_to(out)) for f in [out, *out.rglob("*")]
               if stat.S_IMODE(f.stat().st_mode) & readable != readable]
    assert private == []
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-16", "step-8"]
    assert "max_steps: 16" in (out / "train_config.yaml").read_text()


@pytest.mark.slow
def test_a_trained_reward_model_is_fine_tuned_on_other_labels(demo_pairs, tiny_qwen, tmp_path):
    # GUIDE's trusted-label recipe: --model_name_or_path a trained reward model continues it on another pair file
    first, trusted = tmp_path / "first", tmp_path / "trusted"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, first, max_steps=2)) == 0
    trusted.mkdir()
    _subset(demo_pairs / "train.json", trusted / "train.json", 8)
    kept, tuned = tmp_path / "kept", tmp_path / "tuned"
    assert run_cli(*fast_args(first, trusted, kept, max_steps=2, learning_rate=0)) == 0
    start, same = _weights(first), _weights(kept)
    assert start.keys() == same.keys() and all(torch.equal(start[k], same[k]) for k in start)  # its head too
    assert run_cli(*fast_args(first, trusted, tuned, max_steps=2)) == 0
    after = _weights(tuned)
    assert any(not torch.equal(start[k], after[k]) for k in start if k.startswith("head."))


def test_keep_best_returns_the_best_evaluated_weights(demo_pairs, tiny_qwen, tmp_path, capsys, caplog):
    # A trained model continued on its training labels reversed, evaluated on those labels: every step makes
    # it worse, so --keep_best must hand back the starting weights (step 0), and say which step it kept.
    caplog.set_level("INFO", logger="solireward.training.trainer")
    first = tmp_path / "first"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, first, max_steps=4)) == 0
    data = tmp_path / "data"
    data.mkdir()
    n_videos = _subset(demo_pairs / "train.json", data / "labels.json", 8)
    reversed_pairs = [{"win": p["lose"], "lose": p["win"], "meta": p["meta"]}   # each Pass video now Fails
                      for p in json.loads((data / "labels.json").read_text())
                      if p["meta"]["win"]["quality"] != p["meta"]["lose"]["quality"]]
    (data / "train.json").write_text(json.dumps(reversed_pairs))
    out = tmp_path / "kept"
    args = dict(eval_data=data / "labels.json", max_steps=6, eval_steps=2, save_steps=2, save_total_limit=0,
                per_device_train_batch_size=n_videos, keep_best="true")
    assert run_cli(*fast_args(first, data, out, **args)) == 0
    evals = _rows(out, "eval")
    assert [e["step"] for e in evals] == [0, 2, 4, 6]
    accuracies = [e["eval_accuracy"] for e in evals]
    best = evals[accuracies.index(max(accuracies))]["step"]
    assert best == 0 and accuracies[-1] < accuracies[0], accuracies
    start, final = _weights(first), _weights(out)
    assert start.keys() == final.keys() and all(torch.equal(start[k], final[k]) for k in start)
    (kept,) = _rows(out, "eval_kept")
    assert kept["kept_step"] == 0 and kept["step"] == 6 and kept["eval_accuracy"] == accuracies[0]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["final_eval"]["kept_step"] == 0
    assert json.loads((out / "checkpoints" / "best" / "best.json").read_text())["step"] == 0
    assert "keeping step 0's weights" in caplog.text

    # without eval pairs there is nothing to choose by: a clear error naming the flag
    assert run_cli(*fast_args(first, data, tmp_path / "no_eval", keep_best="true")) == 2
    err = capsys.readouterr().err
    assert "keep_best" in err and "--eval_data" in err


def test_a_model_whose_scores_collapsed_is_flagged(demo_pairs, tiny_qwen, tmp_path, caplog):
    """One evaluation at learning rate 0 of a trained tiny model, its scorer's last layer zeroed (every video
    scores alike) or scaled up 10,000 times (scores far apart): the first is flagged in the log and in
    train_summary.json, the second is not."""
    first = tmp_path / "first"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, first, max_steps=2)) == 0
    summaries = {}
    for name, scale in (("flat", 0.0), ("spread", 1e4)):
        model = tmp_path / name
        shutil.copytree(first, model, ignore=shutil.ignore_patterns("checkpoints", "metrics.jsonl"))
        head = load_file(str(model / "head.safetensors"))
        head["scorer.2.weight"] *= scale
        save_file(head, str(model / "head.safetensors"))
        caplog.clear()
        with caplog.at_level("WARNING", logger="solireward.training.trainer"):
            assert run_cli(*fast_args(model, demo_pairs, tmp_path / f"{name}_out", max_steps=1, learning_rate=0.0,
                                      eval_data=demo_pairs / "val.json")) == 0
        summaries[name] = json.loads((tmp_path / f"{name}_out" / "train_summary.json").read_text())
        assert ("the model's scores collapsed: standard deviation" in caplog.text) == (scale == 0), caplog.text
    assert summaries["flat"]["collapsed"] is True and summaries["flat"]["score_std"] == 1.0   # a usable divisor
    assert json.loads((tmp_path / "flat_out" / "solireward_config.json").read_text())["collapsed"] is True
    assert summaries["spread"]["collapsed"] is False and summaries["spread"]["score_std"] > 0.05


def test_resumed_run_matches_uninterrupted_run(demo_pairs, tiny_qwen, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = dict(eval_data=demo_pairs / "val.json", max_steps=4, save_steps=2, eval_steps=2, lora_r=0)
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, full, **args)) == 0
    # an interrupted run: only the step-2 checkpoint survived, plus a half-written one and extra log rows
    (cut / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step-2", cut / "checkpoints" / "step-2")
    shutil.copytree(full / "checkpoints" / "step-4" / "model", cut / "checkpoints" / "step-3" / "model")
    shutil.copy(full / "metrics.jsonl", cut / "metrics.jsonl")
    # without --resume an existing checkpoint is an error, not silently overwritten
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, cut, **args)) == 2
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, cut, **args), "--resume") == 0

    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _untimed(_rows(full, "train")) == _untimed(_rows(cut, "train"))
    assert _untimed(_rows(full, "eval")) == _untimed(_rows(cut, "eval"))
    summary = json.loads((cut / "train_summary.json").read_text())
    assert summary["resumed_from_step"] == 2 and summary["global_step"] == 4


@pytest.mark.slow
def test_pairs_file_batching_and_in_prompt_pairing(demo_pairs, tiny_qwen, tmp_path):
    from_file = tmp_path / "pairs_file"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, from_file, batching="pairs_file", max_steps=2,
                              per_device_train_batch_size=4)) == 0
    rows = _rows(from_file, "train")
    # 4 pairs of the file per step, each distinct video scored once (at most 8)
    assert all(r["n_pairs"] == 4 and r["n_videos"] <= 8 for r in rows)

    # The demo's training videos regrouped under new prompts of exactly one Pass and one Fail video:
    # pairs within a prompt are then win-lose pairs only, one per prompt, while any pair across two
    # prompts that the grouping let through would show as a tie (Pass x Pass) or as a surplus
    # win-lose pair (more than one per two videos).
    videos: dict[str, list[dict]] = {"pass": [], "fail": []}
    seen: set[str] = set()
    for pair in json.loads((demo_pairs / "train.json").read_text()):
        for side in ("win", "lose"):
            if pair[side]["video_path"] not in seen:
                seen.add(pair[side]["video_path"])
                videos["pass" if pair["meta"][side]["quality"] > 0.5 else "fail"].append(dict(pair[side]))
    regrouped = []
    for k, (win, lose) in enumerate(zip(videos["pass"], videos["fail"])):
        win["prompt"] = lose["prompt"] = f"prompt group {k}"
        regrouped.append({"win": win, "lose": lose, "meta": {"win": {"quality": 1.0}, "lose": {"quality": 0.0}}})
    assert len(regrouped) >= 6
    data = tmp_path / "regrouped"
    data.mkdir()
    (data / "train.json").write_text(json.dumps(regrouped))

    cross, in_prompt = tmp_path / "cross", tmp_path / "in_prompt"
    assert run_cli(*fast_args(tiny_qwen, data, cross, max_steps=3)) == 0
    assert run_cli(*fast_args(tiny_qwen, data, in_prompt, max_steps=3, pairing="in_prompt")) == 0
    in_rows = _rows(in_prompt, "train")
    for r in in_rows:  # every pair shares its prompt: no tie, at most one win-lose pair per two videos
        assert r["n_ties"] == 0 and r["n_pairs"] <= r["n_videos"] // 2, r
    n_cross = sum(r["n_pairs"] for r in _rows(cross, "train"))
    n_in = sum(r["n_pairs"] for r in in_rows)
    assert 0 < n_in < n_cross and sum(r["n_ties"] for r in _rows(cross, "train")) > 0


def test_non_finite_loss_stops_with_the_step(demo_pairs, tiny_qwen, tmp_path, capsys):
    out = tmp_path / "nan"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, out, learning_rate=1e30, max_steps=6)) == 2
    err = capsys.readouterr().err
    assert "loss became nan" in err.lower() or "loss became inf" in err.lower()
    assert "at step" in err
    assert not (out / "solireward_config.json").exists()


def test_yaml_config_with_cli_override_and_unknown_key(demo_pairs, tiny_qwen, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text("max_steps: 1\nlearning_rate: 0.002\nreward_margin: 1.5\nsave_steps: 0\n")
    out = tmp_path / "yaml"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, out, max_steps=2, learning_rate=None),
                   "--config", config) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_step"] == 2                       # the CLI flag wins over the file
    resolved = (out / "train_config.yaml").read_text()
    assert "learning_rate: 0.002" in resolved and "reward_margin: 1.5" in resolved

    bad = tmp_path / "bad.yaml"
    bad.write_text("max_steps: 1\nlearning_rat: 0.1\n")
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, tmp_path / "bad"), "--config", bad) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "learning_rat" in err


def test_unreadable_training_video_fails_fast_naming_it(demo_pairs, tiny_qwen, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    pairs = json.loads((demo_pairs / "train.json").read_text())
    victim = pairs[0]["lose"]["video_path"]
    for pair in pairs:
        for side in ("win", "lose"):
            if pair[side]["video_path"] == victim:
                pair[side]["video_path"] = str(broken)
    (tmp_path / "train.json").write_text(json.dumps(pairs))
    code = run_cli(*fast_args(tiny_qwen, tmp_path, tmp_path / "out", dataloader_num_workers=1,
                              per_device_train_batch_size=24, max_steps=1))
    assert code == 2
    assert str(broken) in capsys.readouterr().err


def test_conflicting_labels_are_an_error_for_in_batch_pairing(demo_pairs, tiny_qwen, tmp_path, capsys):
    pairs = json.loads((demo_pairs / "train.json").read_text())
    win_lose = next(p for p in pairs if p["meta"]["win"]["quality"] != p["meta"]["lose"]["quality"])
    pairs.append({"win": win_lose["lose"], "lose": win_lose["win"],
                  "meta": {"win": {"quality": 1.0}, "lose": {"quality": 0.0}}})
    (tmp_path / "train.json").write_text(json.dumps(pairs))
    assert run_cli(*fast_args(tiny_qwen, tmp_path, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert win_lose["lose"]["video_path"] in err and "--batching pairs_file" in err


@pytest.mark.slow
def test_deepspeed_zero2_single_process(demo_pairs, tiny_qwen, tmp_path):
    pytest.importorskip("deepspeed")
    out = tmp_path / "ds"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, out, max_steps=2, save_steps=1,
                              deepspeed=REPO / "config" / "deepspeed" / "zero2.json")) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["backend"] == "deepspeed" and summary["zero_stage"] == 2
    assert (out / "checkpoints" / "step-2" / "deepspeed").is_dir()
    assert _weights(out).keys() == _weights(out / "checkpoints" / "step-1" / "model").keys()
    assert "RANK" not in os.environ     # the single-member process group is cleaned up


@pytest.mark.slow
def test_two_process_ddp_run_with_torchrun(demo_pairs, tiny_qwen, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "solireward.cli", *map(str, fast_args(tiny_qwen, demo_pairs, out, max_steps=2,
                                                        per_device_train_batch_size=4, save_steps=1))]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "ddp"
    step = out / "checkpoints" / "step-2"
    assert {"rng-rank0.json", "rng-rank1.json", "trainer_state.json", "optimizer.safetensors"} <= \
        {p.name for p in step.iterdir()}
    rows = _rows(out, "train")
    assert [r["n_videos"] for r in rows] == [8, 8]       # 4 videos on each of 2 ranks
