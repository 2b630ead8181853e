"""An optimizer and its schedule as files: tensors in safetensors, the rest in JSON (no pickle).

Low-level and backend-free, so that both the backends (which own the optimizer) and the checkpoint
layout (:mod:`solireward.training.checkpoint`, which drives the backends) can use it without a cycle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from solireward.io import write_json


def optimizer_to_files(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into its tensors (``"<param id>.<key>"``) and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, entry in state["state"].items():
        meta["state"][str(pid)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
                meta["state"][str(pid)][key] = "tensor"
            else:
                meta["state"][str(pid)][key] = value
    return tensors, meta


def optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The optimizer state dict `optimizer_to_files` split."""
    state: dict[int, dict[str, Any]] = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {k: (tensors[f"{pid}.{k}"] if v == "tensor" else v) for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_optimizer(folder: Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """optimizer.safetensors + optimizer.json and scheduler.json into `folder`."""
    from safetensors.torch import save_file

    tensors, meta = optimizer_to_files(optimizer.state_dict())
    save_file(tensors, str(folder / "optimizer.safetensors"))
    write_json(folder / "optimizer.json", meta)
    write_json(folder / "scheduler.json", scheduler.state_dict())


def load_optimizer(folder: Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """Restore what `save_optimizer` wrote."""
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "optimizer.safetensors"))
    meta = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
    optimizer.load_state_dict(optimizer_from_files(tensors, meta))
    scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text(encoding="utf-8")))
