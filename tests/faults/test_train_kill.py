"""`solireward train` killed with SIGKILL at a random step, then `--resume`: same weights and metrics as a run
that was never interrupted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_cli
from tests.training.conftest import fast_args

pytestmark = pytest.mark.slow  # whole trainings / clusters: left out of the quick loop (-m "not slow")

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 4
OPTIONS = dict(max_steps=MAX_STEPS, save_steps=1, save_total_limit=0, eval_steps=2, per_device_train_batch_size=4)


@pytest.fixture
def one_thread():
    """Both runs in one intra-op thread, as the killed subprocess, so their arithmetic is the same."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {**load_file(str(folder / "model.safetensors")),
            **{f"head.{k}": v for k, v in load_file(str(folder / "head.safetensors")).items()}}


def _metrics(folder: Path) -> list[dict]:
    """metrics.jsonl rows without their timings."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("time", "step_time")} for row in rows]


def test_sigkill_then_resume_equals_an_uninterrupted_run(demo_pairs: Path, tiny_qwen: Path, tmp_path: Path,
                                                         one_thread: None) -> None:
    seed = random.randrange(10**6)
    kill_after = random.Random(seed).randint(1, MAX_STEPS - 2)  # the checkpoint to wait for before the kill
    note = f"killed after checkpoint step-{kill_after} (random seed {seed})"
    args = fast_args(tiny_qwen, demo_pairs, tmp_path / "cut", eval_data=demo_pairs / "val.json", **OPTIONS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = tmp_path / "killed_run.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "solireward.cli", *map(str, args)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    marker = tmp_path / "cut" / "checkpoints" / f"step-{kill_after}" / "trainer_state.json"
    try:
        deadline = time.monotonic() + 240
        while not marker.is_file():
            if proc.poll() is not None:
                pytest.fail(f"training ended (status {proc.returncode}) before step-{kill_after}: "
                            f"{log.read_text(errors='replace')[-2000:]}")
            assert time.monotonic() < deadline, f"no checkpoint step-{kill_after} after 240 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    cut = tmp_path / "cut"
    assert proc.returncode == -signal.SIGKILL and not (cut / "model.safetensors").exists(), note

    assert run_cli(*args, "--resume") == 0, note
    full = tmp_path / "full"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, full, eval_data=demo_pairs / "val.json", **OPTIONS)) == 0
    assert_resumed_run_equals(cut, full, kill_after, note)


def assert_resumed_run_equals(cut: Path, full: Path, stopped_after: int, note: str, steps: int = MAX_STEPS,
                              others: frozenset[str] = frozenset()) -> None:
    """The interrupted-and-resumed run in `cut` has the uninterrupted run's weights and metrics after `steps`
    steps, resumed from step `stopped_after` or later, and left nothing half-written (files named in `others`,
    written by someone else, aside)."""
    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys(), note
    assert [k for k in a if not torch.equal(a[k], b[k])] == [], note
    assert _metrics(cut) == _metrics(full), note
    summary = json.loads((cut / "train_summary.json").read_text())
    assert summary["global_step"] == steps and summary["resumed_from_step"] >= stopped_after, note
    # nothing half-written is left behind: every checkpoint folder is complete, no temporary folders
    leftovers = [p.name for p in cut.rglob("*") if (p.name.startswith(".") or p.name.endswith(".tmp"))
                 and p.name not in others]
    assert leftovers == [], note
    assert all((c / "trainer_state.json").is_file() for c in (cut / "checkpoints").iterdir()), note


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_signal_checkpoints_exits_75_and_resumes_exactly(demo_pairs: Path, tiny_qwen: Path, tmp_path: Path,
                                                             one_thread: None, stop_signal: signal.Signals) -> None:
    """SIGTERM/SIGUSR1 (SLURM's time-limit and warning signals): the step in progress ends, a checkpoint of it is
    written, the status is 75; --resume then ends where an uninterrupted run ends."""
    options = {**OPTIONS, "save_steps": 0}  # the only checkpoint is the one the signal asks for
    args = fast_args(tiny_qwen, demo_pairs, tmp_path / "cut", eval_data=demo_pairs / "val.json", **options)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    metrics = tmp_path / "cut" / "metrics.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "solireward.cli", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (metrics.is_file() and '"kind": "train"' in metrics.read_text()):
            assert proc.poll() is None, f"training ended (status {proc.returncode}) before its first step"
            assert time.monotonic() < deadline, "no training step after 240 s"
            time.sleep(0.02)
        proc.send_signal(stop_signal)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    cut = tmp_path / "cut"
    assert proc.returncode == 75, stderr[-2000:]
    stopped = [json.loads(line)["step"] for line in metrics.read_text().splitlines()][-1]
    assert 1 <= stopped < MAX_STEPS and f"stopped by {stop_signal.name} after step {stopped}" in stderr
    assert [c.name for c in (cut / "checkpoints").iterdir()] == [f"step-{stopped}"]
    assert not (cut / "model.safetensors").exists()

    assert run_cli(*args, "--resume") == 0
    full = tmp_path / "full"
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, full, eval_data=demo_pairs / "val.json", **options)) == 0
    assert_resumed_run_equals(cut, full, stopped, f"stopped by {stop_signal.name} after step {stopped}")
