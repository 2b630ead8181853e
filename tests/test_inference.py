"""`solireward infer`: scores for good videos, errors for bad ones, order, normalisation, warnings, sharding."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

SCORE_MEAN, SCORE_STD = 0.25, 2.0
GOOD = [("good_a.mp4", "p000_v0.mp4", "a red ball rolls to the right"),
        ("good_b.mp4", "p003_v1.mp4", None),
        ("good_c.mp4", "p005_v2.mp4", "an orange cross slides to the left and then stops near the edge"),
        ("good_d.mp4", "p010_v3.mp4", "a square")]
BAD = {"empty.mp4": "empty", "text.mp4": "text", "truncated.mp4": "truncated", "gone/missing.mp4": "does not exist"}


@pytest.fixture(scope="module")
def reward_dir(tiny_model_factory, tmp_path_factory) -> Path:
    """A saved reward model (random head) with a known score mean/std and 4-frame sampling."""
    import torch

    from solireward.data.video import FrameSampling
    from solireward.models import RewardModel, RewardModelConfig

    torch.manual_seed(0)
    config = RewardModelConfig(score_mean=SCORE_MEAN, score_std=SCORE_STD,
                               sampling=FrameSampling(num_frames=4).to_dict())
    out = tmp_path_factory.mktemp("reward") / "model"
    RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def video_dir(demo_dir: Path, tmp_path_factory) -> Path:
    """Four demo videos plus an empty file, a text file named .mp4 and a cut-off mp4."""
    folder = tmp_path_factory.mktemp("videos")
    for name, source, _ in GOOD:
        shutil.copy(demo_dir / "videos" / source, folder / name)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video\n")
    data = (demo_dir / "videos" / GOOD[0][1]).read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) * 2 // 5])
    return folder


def _mixed_records() -> list[dict]:
    """Good and bad videos interleaved, with relative paths and extra keys."""
    bad = list(BAD)
    records = []
    for i, (name, _, prompt) in enumerate(GOOD):
        records.append({"video_path": name, **({"prompt": prompt} if prompt else {}), "id": len(records),
                        "label": i % 2})
        records.append({"video_path": bad[i], "prompt": "anything", "id": len(records), "label": 0})
    return records


@pytest.fixture(scope="module")
def mixed_run(reward_dir: Path, video_dir: Path) -> dict:
    """One `infer` run (2 decoding workers, batches of 3) over good and bad videos together."""
    records = _mixed_records()
    input_file = video_dir / "mixed.json"
    input_file.write_text(json.dumps(records))
    output = video_dir / "out" / "mixed_scores.json"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        rc = run_cli("infer", "--model_name_or_path", reward_dir, "--input_file", input_file,
                     "--output_file", output, "--batch_size", 3, "--num_workers", 2)
    return {"rc": rc, "stderr": stderr.getvalue(), "records": records,
            "output": json.loads(output.read_text())}


def test_good_files_scored_bad_files_get_errors_in_order(mixed_run: dict) -> None:
    assert mixed_run["rc"] == 3
    assert "scored 4, failed 4" in mixed_run["stderr"]
    out = mixed_run["output"]
    assert [r["id"] for r in out] == [r["id"] for r in mixed_run["records"]]
    for given, got in zip(mixed_run["records"], out):
        assert {k: got[k] for k in given} == given  # every input key kept unchanged
        if given["video_path"] in BAD:
            assert "score" not in got and "score_norm" not in got
            assert BAD[given["video_path"]] in got["error"], got["error"]
        else:
            assert "error" not in got
            assert isinstance(got["score"], float)
    scores = [r["score"] for r in out if "score" in r]
    assert len(set(scores)) == len(scores)  # distinct videos get distinct scores: order is checkable


def test_score_norm_uses_the_stored_mean_and_std(mixed_run: dict) -> None:
    for got in mixed_run["output"]:
        if "score" in got:
            assert got["score_norm"] == pytest.approx((got["score"] - SCORE_MEAN) / SCORE_STD, abs=1e-9)


def test_cli_scores_equal_the_python_api(mixed_run: dict, reward_dir: Path, video_dir: Path) -> None:
    from solireward.models import RewardModel

    good = [r for r in mixed_run["output"] if "score" in r]
    model = RewardModel.from_pretrained(reward_dir)
    api = model.score([video_dir / r["video_path"] for r in good], [r.get("prompt") for r in good], batch_size=2)
    assert [r["score"] for r in good] == pytest.approx(api, abs=1e-5)


def test_batch_size_does_not_change_scores_and_jsonl_input(reward_dir: Path, video_dir: Path,
                                                           tmp_path: Path) -> None:
    records = [{"video_path": str(video_dir / name), "prompt": prompt} for name, _, prompt in GOOD]
    jsonl = tmp_path / "videos.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    results = {}
    for batch_size in (1, 4):
        output = tmp_path / f"bs{batch_size}.json"
        assert run_cli("infer", "--model_name_or_path", reward_dir, "--input_file", jsonl, "--output_file", output,
                       "--batch_size", batch_size, "--num_workers", 0) == 0
        results[batch_size] = json.loads(output.read_text())
    assert [r["video_path"] for r in results[1]] == [r["video_path"] for r in records]
    assert [r["score"] for r in results[1]] == pytest.approx([r["score"] for r in results[4]], abs=1e-5)


def test_frame_setting_override_warns(reward_dir: Path, video_dir: Path, tmp_path: Path, caplog) -> None:
    input_file = tmp_path / "one.json"
    input_file.write_text(json.dumps([{"video_path": str(video_dir / GOOD[0][0])}]))
    args = ["infer", "--model_name_or_path", reward_dir, "--input_file", input_file, "--num_workers", 0]

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "solireward.sampling"]

    with caplog.at_level(logging.WARNING):
        assert run_cli(*args, "--output_file", tmp_path / "stored.json") == 0
        assert warnings() == []
        assert run_cli(*args, "--output_file", tmp_path / "override.json", "--num_frames", 2, "--height", 28) == 0
    messages = warnings()
    assert any("num_frames=2" in m and "(4)" in m and "training" in m for m in messages), messages
    assert any("height=28" in m for m in messages), messages
    stored = json.loads((tmp_path / "stored.json").read_text())[0]["score"]
    assert json.loads((tmp_path / "override.json").read_text())[0]["score"] != pytest.approx(stored, abs=1e-7)


def test_a_model_whose_scores_collapsed_is_scored_with_a_warning(reward_dir: Path, video_dir: Path,
                                                                   tmp_path: Path, caplog) -> None:
    """Batch scoring still scores a model flagged collapsed (a study reports it), and says what it is."""
    collapsed = tmp_path / "collapsed"
    shutil.copytree(reward_dir, collapsed)
    config = json.loads((collapsed / "solireward_config.json").read_text())
    (collapsed / "solireward_config.json").write_text(json.dumps({**config, "collapsed": True}))
    input_file = tmp_path / "one.json"
    input_file.write_text(json.dumps([{"video_path": str(video_dir / GOOD[0][0])}]))
    with caplog.at_level(logging.WARNING, logger="solireward.inference"):
        assert run_cli("infer", "--model_name_or_path", collapsed, "--input_file", input_file, "--num_workers", 0,
                       "--output_file", tmp_path / "scores.json") == 0
    assert "score" in json.loads((tmp_path / "scores.json").read_text())[0]
    assert f"{collapsed}: its scores collapsed in training" in caplog.text


def test_folder_input_scores_every_mp4_sorted(reward_dir: Path, video_dir: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("b.mp4", "a.mp4", "c.MP4"):
        shutil.copy(video_dir / GOOD[0][0], folder / name)
    (folder / "0_empty.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("not listed")
    output = tmp_path / "scores.json"
    assert run_cli("infer", "--model_name_or_path", reward_dir, "--input_file", folder, "--output_file", output,
                   "--num_workers", 0) == 3
    out = json.loads(output.read_text())
    assert [Path(r["video_path"]).name for r in out] == ["0_empty.mp4", "a.mp4", "b.mp4", "c.MP4"]
    assert all(Path(r["video_path"]).is_absolute() for r in out)
    assert "empty" in out[0]["error"] and all("score" in r for r in out[1:])
    assert "scored 3, failed 1" in capsys.readouterr().err


def test_record_without_video_path_is_an_input_error(reward_dir: Path, tmp_path: Path, capsys) -> None:
    input_file = tmp_path / "bad.json"
    input_file.write_text(json.dumps([{"video_path": "x.mp4"}, {"prompt": "no path"}]))
    output = tmp_path / "never.json"
    assert run_cli("infer", "--model_name_or_path", reward_dir, "--input_file", input_file,
                   "--output_file", output) == 2
    err = capsys.readouterr().err
    assert "record 1" in err and "video_path" in err and str(input_file) in err
    assert not output.exists()


@pytest.mark.slow
def test_torchrun_two_processes_merge_in_original_order(reward_dir: Path, video_dir: Path, tmp_path: Path,
                                                        mixed_run: dict) -> None:
    names = [name for name, _, _ in GOOD] + [GOOD[1][0]]  # 5 records: ranks get 3 and 2
    records = [{"video_path": str(video_dir / n), "prompt": p, "id": i}
               for i, (n, p) in enumerate(zip(names, [g[2] for g in GOOD] + [GOOD[1][2]]))]
    input_file = tmp_path / "in.json"
    input_file.write_text(json.dumps(records))
    output = tmp_path / "merged" / "scores.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "solireward.cli", "infer", "--model_name_or_path", str(reward_dir), "--input_file", str(input_file),
         "--output_file", str(output), "--num_workers", "0", "--batch_size", "2"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "scored 5, failed 0" in proc.stderr
    out = json.loads(output.read_text())
    assert [r["id"] for r in out] == list(range(5))
    single = {r["video_path"]: r["score"] for r in mixed_run["output"] if "score" in r}
    assert [r["score"] for r in out] == pytest.approx([single[n] for n in names], abs=1e-5)
    assert sorted(p.name for p in output.parent.iterdir()) == ["scores.json"]  # shards removed


def test_then_runs_commands_in_one_process_past_skipped_videos_and_stops_at_a_failure(
        reward_dir: Path, video_dir: Path, tmp_path: Path, capsys) -> None:
    """`infer ... --then infer ...`: the second runs after the first skipped unreadable videos (exit 3), the chain
    ends with that status, and a command that fails stops it (the workflow scores each model this way)."""
    mixed = video_dir / "mixed.json"
    mixed.write_text(json.dumps(_mixed_records()))
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"video_path": str(video_dir / name)} for name, _, _ in GOOD]))
    first, second, third = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    infer = ("infer", "--model_name_or_path", reward_dir, "--num_workers", 0)
    rc = run_cli(*infer, "--input_file", mixed, "--output_file", first,
                 "--then", *infer, "--input_file", good, "--output_file", second)
    assert rc == 3  # the first non-zero status: some videos of the first could not be read
    assert sum("error" in r for r in json.loads(first.read_text())) == len(BAD)
    assert [r["score"] for r in json.loads(second.read_text())] == pytest.approx(
        [r["score"] for r in json.loads(first.read_text()) if "score" in r], abs=1e-5)

    rc = run_cli(*infer, "--input_file", tmp_path / "absent.json", "--output_file", first,
                 "--then", *infer, "--input_file", good, "--output_file", third)
    assert rc == 2 and not third.exists()  # bad input stops the chain
    assert "solireward infer: error:" in capsys.readouterr().err

    with pytest.raises(SystemExit) as usage:  # every part is parsed before any runs
        run_cli(*infer, "--input_file", good, "--output_file", third, "--then", "infer", "--no_such_flag")
    assert usage.value.code == 2 and not third.exists()
    with pytest.raises(SystemExit):
        run_cli(*infer, "--input_file", good, "--output_file", third, "--then", "not-a-command")
    assert "--then must be followed by a subcommand" in capsys.readouterr().err


def test_then_refuses_to_run_under_torchrun(reward_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    rc = run_cli("evaluate", "--help", "--then", "evaluate", "--help")
    assert rc == 2 and "start each command on its own" in capsys.readouterr().err
