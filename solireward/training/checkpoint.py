"""Training checkpoints: written atomically, listed, pruned and restored (safe formats only).

``output_dir/checkpoints/step-N/`` holds ``model/`` (``RewardModel.save_pretrained``), the
optimizer and schedule (``optimizer.safetensors`` + ``optimizer.json`` and ``scheduler.json``, or
``deepspeed/``, DeepSpeed's own partitioned checkpoint), ``rng-rank<r>.json`` per rank,
``lora_trainable.safetensors`` with LoRA (the adapters and head; ``model/`` has them merged) and
``trainer_state.json`` (step, epoch, world size, total steps, backend). Every rank writes into
``.tmp-step-N``; rank 0 writes ``trainer_state.json`` last and renames the folder into place, so a
checkpoint is complete exactly when it holds ``trainer_state.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from solireward import distributed as D
from solireward.errors import InputError
from solireward.io import replace_dir, write_json
from solireward.models.reward_model import CONFIG_NAME

if TYPE_CHECKING:
    from solireward.training.backend import Backend
    from solireward.training.config import ModelOptions

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
LORA_FILE = "lora_trainable.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


# ----------------------------------------------------------------------------------------------
# Listing


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (those holding trainer_state.json), oldest first."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir() and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (the one `--resume` continues from), or None."""
    done = complete_checkpoints(output_dir)
    return done[-1] if done else None


def prune_checkpoints(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints (0 keeps all); returns the deleted ones."""
    stale = complete_checkpoints(output_dir)[:-keep] if keep else []
    for folder in stale:
        shutil.rmtree(folder)
    return stale


# ----------------------------------------------------------------------------------------------
# RNG state as JSON (the optimizer's: training.optimizer_state)


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, JSON-able."""
    np_state = np.random.get_state()
    state = {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ----------------------------------------------------------------------------------------------
# Writing and reading a checkpoint (called on every rank)


def save_checkpoint(output_dir: Path, step: int, backend: Backend, *, epoch: float, total_steps: int,
                    lora: bool, keep: int) -> Path:
    """Write checkpoint `step-<step>` (replacing one of that step), then prune to the newest `keep`."""
    env = backend.env
    root = output_dir / CHECKPOINT_DIR
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if env.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    D.barrier(env)
    save_weights(tmp, backend, lora)
    backend.save_state(tmp)
    write_json(tmp / f"rng-rank{env.rank}.json", rng_state(), indent=None)
    D.barrier(env)
    if env.is_main:
        write_json(tmp / STATE_FILE, {"global_step": step, "epoch": epoch, "world_size": env.world_size,
                                      "total_steps": total_steps, "backend": backend.name})
        replace_dir(tmp, final)
        prune_checkpoints(output_dir, keep)
        logger.info("checkpoint written: %s", final)
    D.barrier(env)
    return final


def save_weights(folder: Path, backend: Backend, lora: bool) -> None:
    """The model into ``folder/model`` and, with LoRA, the trainable weights into ``folder/lora_trainable.safetensors``
    (every rank calls; `folder` exists)."""
    backend.save_model(folder / "model")
    if lora:
        from safetensors.torch import save_file

        with backend.gathered():
            if backend.env.is_main:
                save_file({n: p.detach().cpu().contiguous() for n, p in backend.model.named_parameters()
                           if p.requires_grad}, str(folder / LORA_FILE))


def load_checkpoint(folder: Path, backend: Backend, model_options: ModelOptions) -> int:
    """Restore weights, optimizer, schedule and this rank's RNG from `folder`; returns its step."""
    env = backend.env
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    if state["world_size"] != env.world_size:
        backend.check_resume_world_size(state["world_size"], folder)
    if not backend.state_holds_weights:
        load_model_weights(folder / "model", backend.model, model_options)
    backend.load_state(folder)
    rng_file = folder / f"rng-rank{env.rank}.json"
    if rng_file.is_file():
        set_rng_state(json.loads(rng_file.read_text(encoding="utf-8")))
    return int(state["global_step"])


def load_model_weights(folder: Path, target: torch.nn.Module, model_options: ModelOptions) -> None:
    """Weights of a checkpoint into the training model, exactly.

    Full fine-tuning: the checkpoint's ``model/`` folder. LoRA: ``model/`` holds merged weights,
    so the adapters and head come from ``lora_trainable.safetensors`` onto the freshly rebuilt
    (identical) base model.
    """
    from safetensors.torch import load_file

    from solireward.models import RewardModel

    if model_options.lora_r > 0:
        state = load_file(str(folder.parent / LORA_FILE))
        expected = {n for n, p in target.named_parameters() if p.requires_grad}
        if set(state) != expected:
            raise InputError("the checkpoint's trainable LoRA/head weights do not match this model",
                             file=str(folder.parent / LORA_FILE))
        target.load_state_dict(state, strict=False)
    else:
        saved = RewardModel.from_pretrained(folder, torch_dtype=model_options.torch_dtype,
                                            attn_implementation=model_options.attn_implementation)
        try:
            target.load_state_dict(saved.state_dict())
        except RuntimeError as exc:
            raise InputError(f"the checkpoint's model does not match the training model: {exc}",
                             file=str(folder)) from None
        target.config.score_mean, target.config.score_std = saved.config.score_mean, saved.config.score_std


def save_final_model(output_dir: Path, backend: Backend) -> None:
    """save_pretrained into `output_dir` beside metrics and checkpoints: each file renamed into place,
    solireward_config.json (what makes the folder a reward model) last."""
    staging = output_dir / ".final-model.tmp"
    backend.save_model(staging)
    if backend.env.is_main:
        names = sorted(p.name for p in staging.iterdir())
        for name in sorted(names, key=lambda n: n == CONFIG_NAME):  # what makes a folder a reward model: last
            target = output_dir / name
            if target.is_dir() and not (staging / name).is_dir():
                shutil.rmtree(target)
            os.replace(staging / name, target)
        shutil.rmtree(staging)
    D.barrier(backend.env)
