"""Checkpoint files and the metrics log on their own: completeness, pruning, replacement, restore, resume truncation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from solireward.distributed import DistEnv
from solireward.training.backend import make_backend
from solireward.training.checkpoint import (STATE_FILE, complete_checkpoints, latest_checkpoint, prune_checkpoints,
                                           rng_state, save_checkpoint, set_rng_state)
from solireward.training.metrics_log import MetricsLog

ONE_PROCESS = DistEnv(0, 1, 0, torch.device("cpu"), None)


class _TinyModel(nn.Module):
    """The little of a reward model that the backend and checkpoints use."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).squeeze(-1)

    def save_pretrained(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "weights.json").write_text(json.dumps(self.backbone.weight.tolist()))


def _backend():
    torch.manual_seed(0)
    model = _TinyModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    return make_backend(model, optimizer, scheduler, ONE_PROCESS, bf16=False, max_grad_norm=1.0, accumulation=1)


def _train_step(backend) -> None:
    backend.backward(backend.forward({"x": torch.ones(4, 3)}).pow(2).mean())
    backend.step()


def _make_checkpoint(root: Path, name: str, complete: bool = True) -> Path:
    folder = root / "checkpoints" / name
    (folder / "model").mkdir(parents=True)
    if complete:
        (folder / STATE_FILE).write_text("{}")
    return folder


def test_only_complete_step_folders_count_in_step_order_and_pruning_keeps_the_newest(tmp_path):
    assert complete_checkpoints(tmp_path) == [] and latest_checkpoint(tmp_path) is None
    step2, step10 = _make_checkpoint(tmp_path, "step-2"), _make_checkpoint(tmp_path, "step-10")
    half = _make_checkpoint(tmp_path, "step-3", complete=False)     # interrupted before trainer_state.json
    tmp = _make_checkpoint(tmp_path, ".tmp-step-4")                 # not renamed into place yet
    _make_checkpoint(tmp_path, "step-x")
    assert complete_checkpoints(tmp_path) == [step2, step10]        # numeric order, not by name
    assert latest_checkpoint(tmp_path) == step10

    assert prune_checkpoints(tmp_path, 0) == [] and step2.is_dir()  # 0 keeps all
    assert prune_checkpoints(tmp_path, 1) == [step2]
    assert not step2.exists() and step10.is_dir() and half.is_dir() and tmp.is_dir()


def test_save_checkpoint_writes_atomically_replaces_prunes_and_restores_the_optimizer(tmp_path):
    backend = _backend()
    for step in (1, 2, 3):
        _train_step(backend)
        final = save_checkpoint(tmp_path, step, backend, epoch=step / 2, total_steps=3, lora=False, keep=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-2", "step-3"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-2", "step-3"]   # no temporaries
    assert {p.name for p in final.iterdir()} == {"model", "optimizer.safetensors", "optimizer.json",
                                                 "scheduler.json", "rng-rank0.json", STATE_FILE}
    state = json.loads((final / STATE_FILE).read_text())
    assert state == {"global_step": 3, "epoch": 1.5, "world_size": 1, "total_steps": 3, "backend": "single"}
    # writing a step again replaces it whole
    save_checkpoint(tmp_path, 3, backend, epoch=1.5, total_steps=3, lora=False, keep=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-2", "step-3"]

    restored = _backend()
    restored.load_state(final)
    saved, loaded = backend.optimizer.state_dict(), restored.optimizer.state_dict()
    assert json.loads(json.dumps(saved["param_groups"])) == loaded["param_groups"]   # JSON: betas as a list
    for pid, entry in saved["state"].items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(loaded["state"][pid][k])) for k, v in entry.items())
    assert restored.scheduler.state_dict() == backend.scheduler.state_dict()
    assert restored.learning_rate() == backend.learning_rate()


def test_rng_state_round_trips_through_json(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    saved = json.loads(json.dumps(rng_state()))
    before = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(saved)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == before


def test_metrics_log_keeps_rows_up_to_the_resumed_step_and_appends(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"kind": "train", "step": 1}, {"kind": "train", "step": 2}, {"kind": "eval", "step": 2},
            {"kind": "train", "step": 3}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "train", "st')  # cut short
    log = MetricsLog(tmp_path, start=2, enabled=True)
    assert log.last_train_row == {"kind": "train", "step": 2}
    log.log({"kind": "train", "step": 3, "loss": 0.5})
    log.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows[:3] + [
        {"kind": "train", "step": 3, "loss": 0.5}]
    assert log.last_train_row == {"kind": "train", "step": 3, "loss": 0.5}

    MetricsLog(tmp_path, start=0, enabled=False).log({"kind": "train", "step": 1})   # not rank 0: no file change
    assert len(path.read_text().splitlines()) == 4
    fresh = MetricsLog(tmp_path, start=0, enabled=True)                            # a new run starts empty
    fresh.close()
    assert path.read_text() == ""
