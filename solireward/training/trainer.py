"""The training loop of `solireward train`: one process, torchrun (DDP) or DeepSpeed (ZeRO 0-3).

Optimisation: AdamW (decay on Linear/Embedding/Conv/attention-projection weights only), a linear
warm-up over ``ceil(warmup_ratio * total_steps)`` steps (factor ``(s + 1) / warmup`` at step s),
then linear decay to 0 (``1 - p``) or half-period cosine (``(1 + cos(pi p)) / 2``) with
``p = (s - warmup) / (total - warmup)``, or a constant rate. The global gradient norm is clipped
to ``--max_grad_norm``; ``--gradient_accumulation_steps`` micro-steps make one optimizer step.

Loss per micro-batch: ``losses.reward_loss`` over the micro-batch's pairs (in-batch: every Pass x
Fail and Pass x Pass pair of its videos, see ``losses.in_batch_pairs``; explicit: the file's pairs);
the optimizer-step loss is the mean over micro-batches (and ranks, as DDP averages gradients).
Pairs are formed inside each rank's micro-batch, not across ranks.

Metrics (``output_dir/metrics.jsonl``, one JSON object per line, written by rank 0):

- ``"kind": "train"`` every optimizer step: ``step``, ``epoch`` (fractional), ``loss`` (the
  optimised total, mean over micro-batches and ranks), ``loss_bt`` / ``loss_tie`` / ``loss_bce``
  (unweighted means of each part over the step's win-lose pairs / win-tie pairs / videos; BCE is
  reported even when its coefficient is 0), ``accuracy`` = in-batch pair accuracy: share of the
  step's win-lose pairs with ``score_win > score_lose`` (equal scores ½, as ``losses.pair_correct``),
  ``n_pairs`` (pairs in the loss), ``n_ties``, ``n_videos`` (videos scored), ``learning_rate`` (of
  the step), ``grad_norm`` (global, before clipping), ``time`` (seconds since this process started)
  and ``step_time``.
- ``"kind": "eval"`` every ``--eval_steps`` and at the end: ``eval_accuracy`` = pair accuracy
  without ties over the eval file's win-lose pairs, each distinct video scored once
  (``evaluation.pair_accuracy``: d > 0 right, d = 0 ½), ``eval_roc_auc`` (``evaluation.roc_auc`` of the
  scores against Pass = quality > 0.5), ``eval_loss`` (the training loss over all eval pairs),
  ``eval_n_pairs``, ``eval_n_win_lose``, ``eval_n_videos``.

A non-finite loss stops training with :class:`~solireward.errors.TrainingDivergedError` naming the
step, before the optimizer applies it.

Checkpoints (``output_dir/checkpoints/step-N/``), written into a temporary folder and renamed:
``model/`` (``RewardModel.save_pretrained``), ``optimizer.safetensors`` + ``optimizer.json`` and
``scheduler.json`` (or ``deepspeed/``, DeepSpeed's own partitioned checkpoint), ``rng-rank<r>.json``
and ``trainer_state.json`` (step, epoch, world size). The batch plan is a pure function of the seed,
so the step number is the whole data-loader position. ``--resume`` restores the newest complete
checkpoint; on CPU with a fixed seed the resumed run matches an uninterrupted one bit for bit.
With LoRA, ``lora_trainable.safetensors`` holds the adapters and head (``model/`` has them merged).

At the end: the mean and population standard deviation of the final model's scores on the distinct
eval videos (training videos without ``--eval_data``) are stored in the model's config
(``score_mean``/``score_std``, used by ``normalise`` and ``score_norm``); the model is saved into
``output_dir`` (``save_pretrained``; files renamed into place beside the logs, its config last), with
``train_config.yaml`` (the resolved options, usable as ``--config``) and ``train_summary.json``
(steps, epochs, backend, the last train and eval rows, score statistics, wall time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from torch import nn
from tqdm import tqdm

from solireward.errors import ConfigError, InputError, TrainingDivergedError
from solireward.evaluation import pair_accuracy, roc_auc
from solireward.io import atomic_write, make_tree_readable, write_json, write_text
from solireward.training import distributed as D
from solireward.training.config import ARCHITECTURE_OPTIONS, ModelOptions, TrainConfig
from solireward.training.data import (BatchPlan, PairSet, VideoBatches, eval_shards, make_plan, prompt_groups,
                                      raise_if_error, read_pair_file)

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
LORA_FILE = "lora_trainable.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


# ----------------------------------------------------------------------------------------------
# Small helpers


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Learning-rate multiplier applied at optimizer step `step` (0-based); see module docstring."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return max(0.0, 1.0 - progress)


class _Schedule:
    """Picklable LR lambda (so the scheduler state carries no closures)."""

    def __init__(self, total: int, warmup: int, kind: str) -> None:
        self.total, self.warmup, self.kind = total, warmup, kind

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.warmup, self.kind)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weights of Linear/Embedding/Conv layers and attention projections decay; the rest not."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            weighty = (name == "weight" and isinstance(module, (nn.Linear, nn.Embedding, nn.modules.conv._ConvNd))) \
                or (isinstance(module, nn.MultiheadAttention) and name.endswith("proj_weight"))
            (decay if weighty else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _move(inputs: dict[str, Any], device: torch.device, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Tensors to `device`; floating ones (pixel values) also to `dtype` when given."""
    return {k: v.to(device, dtype=dtype if v.is_floating_point() else None, non_blocking=True)
            if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def _float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------------------------
# Checkpoint files (safe formats only: safetensors + JSON)


def _optimizer_to_files(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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


def _optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {k: (tensors[f"{pid}.{k}"] if v == "tensor" else v) for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


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


# ----------------------------------------------------------------------------------------------
# The trainer


@dataclasses.dataclass
class _StepStats:
    """Sums over the micro-steps of one optimizer step (reduced over ranks)."""

    loss: float = 0.0
    parts: dict[str, float] = dataclasses.field(default_factory=dict)
    correct: float = 0.0      # win-lose pairs ordered right (equal scores 1/2, as losses.pair_correct)
    non_ties: float = 0.0     # win-lose pairs
    pairs: float = 0.0        # pairs that contributed to the loss
    ties: float = 0.0
    videos: float = 0.0
    micro: float = 0.0


class Trainer:
    """Trains a reward model as configured; `run()` does everything and returns the summary."""

    def __init__(self, config: TrainConfig, model_options: ModelOptions, loss_config: Any,
                 sampling: Any | None = None, explicit: frozenset[str] = frozenset(),
                 resolved: dict[str, Any] | None = None) -> None:
        self.cfg, self.mopts, self.loss_cfg = config, model_options, loss_config
        self.sampling_override, self.explicit = sampling, explicit
        self.resolved = resolved or {}
        self.out = Path(config.output_dir)
        self._check_config()

    # -- set-up -----------------------------------------------------------------------------

    def _check_config(self) -> None:
        cfg = self.cfg
        positive = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
        for name in positive:
            if getattr(cfg, name) < 1:
                raise ConfigError(f"must be at least 1, got {getattr(cfg, name)}", field=name)
        for name in ("eval_steps", "save_steps", "save_total_limit", "max_steps", "dataloader_num_workers",
                     "logging_steps"):
            if getattr(cfg, name) < 0:
                raise ConfigError(f"must not be negative, got {getattr(cfg, name)}", field=name)
        if cfg.learning_rate < 0 or not math.isfinite(cfg.learning_rate):
            raise ConfigError(f"must be a finite non-negative number, got {cfg.learning_rate}", field="learning_rate")
        if not 0 <= cfg.warmup_ratio < 1:
            raise ConfigError(f"expected a share in [0, 1), got {cfg.warmup_ratio}", field="warmup_ratio")
        if cfg.max_steps == 0 and not cfg.num_train_epochs > 0:
            raise ConfigError("give --num_train_epochs > 0 or --max_steps > 0", field="num_train_epochs")
        if self.mopts.lora_r < 0:
            raise ConfigError(f"must not be negative, got {self.mopts.lora_r}", field="lora_r")
        if cfg.pairing == "explicit" and cfg.pair_groups != "cross_prompt" and "pair_groups" in self.explicit:
            raise ConfigError("--pair_groups applies to --pairing in_batch only (explicit pairs are used as "
                              "written)", field="pair_groups")

    def _load_data(self) -> None:
        cfg = self.cfg
        self.train_pairs = read_pair_file(cfg.train_data)
        # in-batch pairs and the per-video BCE need one label per video; explicit BT/tie losses do not
        strict = cfg.pairing == "in_batch" or self.loss_cfg.bce_loss_coeff > 0
        self.train_quality = self.train_pairs.video_qualities(strict=strict)
        self.train_groups = prompt_groups(self.train_pairs.prompts)
        self.eval_pairs = read_pair_file(cfg.eval_data) if cfg.eval_data else None

    def _build_model(self) -> nn.Module:
        from solireward.models import RewardModel, RewardModelConfig

        m = self.mopts
        path = Path(self.cfg.model_name_or_path)
        kwargs = {"torch_dtype": m.torch_dtype, "attn_implementation": m.attn_implementation}
        if (path / "solireward_config.json").is_file():
            model = RewardModel.from_pretrained(path, **kwargs)
            ignored = [k for k in ARCHITECTURE_OPTIONS if k in self.explicit
                       and getattr(m, k) != getattr(model.config, k, getattr(m, k))]
            if ignored:
                logger.warning("continuing from the reward model in %s: its stored %s kept; the given "
                               "value(s) are ignored", path, ", ".join(ignored))
            if self.sampling_override is not None:
                model.config.sampling = self.sampling_override.to_dict()
        else:
            values = m.architecture()
            if self.sampling_override is not None:
                values["sampling"] = self.sampling_override.to_dict()
            model = RewardModel.from_backbone(path, RewardModelConfig(**values), **kwargs)
        self._prepare_for_training(model)
        return model

    def _prepare_for_training(self, model: nn.Module) -> None:
        m = self.mopts
        lm_head = getattr(model.backbone, "lm_head", None)
        embeddings = model.backbone.get_input_embeddings()
        if lm_head is not None and model.config.reduce_sequence != "good_token" \
                and lm_head.weight is not embeddings.weight:
            # only the good_token head reads the LM head; untied and unused, it would get no gradient
            # anyway, and DDP needs every trainable parameter to take part in the forward pass
            lm_head.requires_grad_(False)
        if m.freeze_vision_tower:
            model.freeze_vision_tower()
        if m.lora_r > 0:
            model.apply_lora(r=m.lora_r, alpha=m.lora_alpha, dropout=m.lora_dropout)
        if m.gradient_checkpointing:
            model.gradient_checkpointing_enable()

    def _use_bf16(self) -> bool:
        if self.cfg.bf16 == "true":
            if self.env.device.type != "cuda":
                raise ConfigError("bf16 mixed precision needs a CUDA device here; use --bf16 false on CPU",
                                  field="bf16")
            return True
        return self.cfg.bf16 == "auto" and self.env.device.type == "cuda" and torch.cuda.is_bf16_supported()

    def _deepspeed_config(self) -> dict[str, Any]:
        cfg = self.cfg
        path = Path(cfg.deepspeed)
        try:
            ds = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("DeepSpeed config file does not exist", file=str(path), field="deepspeed") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON ({exc.msg}, line {exc.lineno})", file=str(path)) from None
        if not isinstance(ds, dict):
            raise ConfigError("expected a JSON object", file=str(path))
        for key in ("optimizer", "scheduler"):
            if key in ds:
                raise ConfigError(f"remove the '{key}' section: the optimizer and schedule come from the "
                                  "trainer's flags (--learning_rate, --lr_scheduler_type, ...)", file=str(path), field=key)
        # Batches are built by the trainer: DeepSpeed only needs consistent bookkeeping values.
        ds["train_micro_batch_size_per_gpu"] = 1
        ds["train_batch_size"] = cfg.gradient_accumulation_steps * self.env.world_size
        for key, value in (("gradient_accumulation_steps", cfg.gradient_accumulation_steps),
                           ("gradient_clipping", cfg.max_grad_norm)):
            if ds.get(key, "auto") == "auto":
                ds[key] = value
            elif ds[key] != value:
                raise ConfigError(f"is {ds[key]} but the trainer flag says {value}; set it to \"auto\"",
                                  file=str(path), field=key)
        bf16 = self._use_bf16()
        for key, on in (("bf16", bf16), ("fp16", False)):
            section = ds.setdefault(key, {"enabled": False})
            if section.get("enabled", False) == "auto":
                section["enabled"] = on
        if ds.get("fp16", {}).get("enabled"):
            raise ConfigError("fp16 is not supported by this trainer; use bf16", file=str(path), field="fp16")
        ds.setdefault("steps_per_print", 10**9)
        ds.setdefault("wall_clock_breakdown", False)
        return ds

    # -- checkpoints ------------------------------------------------------------------------

    def _unwrapped(self) -> nn.Module:
        return self.engine.module if self.ds or self.ddp else self.model

    @contextlib.contextmanager
    def _gathered(self) -> Iterator[None]:
        """Whole parameters on every rank (ZeRO-3 partitions them)."""
        if self.ds and self.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self._unwrapped().parameters()), modifier_rank=None):
                yield
        else:
            yield

    def _save_model(self, folder: Path) -> None:
        with self._gathered():
            if self.env.is_main:
                self._unwrapped().save_pretrained(folder)
        D.barrier(self.env)

    def _save_final_model(self) -> None:
        """save_pretrained into output_dir beside metrics and checkpoints: each file renamed into place,
        solireward_config.json (what makes the folder a reward model) last."""
        staging = self.out / ".final-model.tmp"
        self._save_model(staging)
        if self.env.is_main:
            names = sorted(p.name for p in staging.iterdir())
            for name in sorted(names, key=lambda n: n == "solireward_config.json"):
                target = self.out / name
                if target.is_dir() and not (staging / name).is_dir():
                    shutil.rmtree(target)
                os.replace(staging / name, target)
            shutil.rmtree(staging)
        D.barrier(self.env)

    def _save_checkpoint(self, step: int) -> None:
        from safetensors.torch import save_file

        root = self.out / CHECKPOINT_DIR
        final = root / f"step-{step}"
        tmp = root / f".tmp-step-{step}"
        if self.env.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        D.barrier(self.env)
        self._save_model(tmp / "model")
        if self.ds:
            self.engine.save_checkpoint(str(tmp / "deepspeed"), tag="state")
        elif self.env.is_main:
            tensors, meta = _optimizer_to_files(self.optimizer.state_dict())
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            write_json(tmp / "optimizer.json", meta)
            write_json(tmp / "scheduler.json", self.scheduler.state_dict())
        if self.mopts.lora_r > 0:
            with self._gathered():
                if self.env.is_main:
                    save_file({n: p.detach().cpu().contiguous() for n, p in self._unwrapped().named_parameters()
                               if p.requires_grad}, str(tmp / LORA_FILE))
        write_json(tmp / f"rng-rank{self.env.rank}.json", _rng_state(), indent=None)
        D.barrier(self.env)
        if self.env.is_main:
            make_tree_readable(tmp)
            write_json(tmp / STATE_FILE, {"global_step": step, "epoch": step / self.steps_per_epoch,
                                          "world_size": self.env.world_size, "total_steps": self.total_steps,
                                          "backend": "deepspeed" if self.ds else ("ddp" if self.ddp else "single")})
            old = root / f".old-step-{step}"
            if final.exists():
                os.replace(final, old)
            os.replace(tmp, final)
            if old.exists():
                shutil.rmtree(old)
            if self.cfg.save_total_limit:
                for stale in complete_checkpoints(self.out)[:-self.cfg.save_total_limit]:
                    shutil.rmtree(stale)
            logger.info("checkpoint written: %s", final)
        D.barrier(self.env)

    def _load_checkpoint(self, folder: Path) -> int:
        from safetensors.torch import load_file

        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        if state["world_size"] != self.env.world_size:
            if self.ds:
                raise ConfigError(f"the checkpoint was written by {state['world_size']} process(es); DeepSpeed "
                                  f"resumes need the same number (now {self.env.world_size})", file=str(folder))
            logger.warning("resuming with %d process(es) from a checkpoint of %d: the data order differs "
                           "from an uninterrupted run", self.env.world_size, state["world_size"])
        if self.ds:
            path, _ = self.engine.load_checkpoint(str(folder / "deepspeed"), tag="state",
                                                  load_optimizer_states=True, load_lr_scheduler_states=True)
            if path is None:
                raise InputError("DeepSpeed could not load this checkpoint", file=str(folder / "deepspeed"))
        else:
            self._load_model_weights(folder / "model")
            tensors = load_file(str(folder / "optimizer.safetensors"))
            meta = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
            self.optimizer.load_state_dict(_optimizer_from_files(tensors, meta))
            self.scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text(encoding="utf-8")))
        rng_file = folder / f"rng-rank{self.env.rank}.json"
        if rng_file.is_file():
            _set_rng_state(json.loads(rng_file.read_text(encoding="utf-8")))
        return int(state["global_step"])

    def _load_model_weights(self, folder: Path) -> None:
        """Weights of a checkpoint into the training model, exactly.

        Full fine-tuning: the checkpoint's ``model/`` folder. LoRA: ``model/`` holds merged weights,
        so the adapters and head come from ``lora_trainable.safetensors`` onto the freshly rebuilt
        (identical) base model.
        """
        from safetensors.torch import load_file

        from solireward.models import RewardModel

        target = self._unwrapped()
        if self.mopts.lora_r > 0:
            state = load_file(str(folder.parent / LORA_FILE))
            expected = {n for n, p in target.named_parameters() if p.requires_grad}
            if set(state) != expected:
                raise InputError("the checkpoint's trainable LoRA/head weights do not match this model",
                                 file=str(folder.parent / LORA_FILE))
            target.load_state_dict(state, strict=False)
        else:
            saved = RewardModel.from_pretrained(folder, torch_dtype=self.mopts.torch_dtype,
                                                attn_implementation=self.mopts.attn_implementation)
            try:
                target.load_state_dict(saved.state_dict())
            except RuntimeError as exc:
                raise InputError(f"the checkpoint's model does not match the training model: {exc}",
                                 file=str(folder)) from None
            target.config.score_mean, target.config.score_std = saved.config.score_mean, saved.config.score_std

    # -- evaluation -------------------------------------------------------------------------

    def _loader(self, dataset: torch.utils.data.Dataset) -> torch.utils.data.DataLoader:
        workers = self.cfg.dataloader_num_workers
        # own generator: creating a loader must not draw from the global RNG (resume equality)
        return torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                           generator=torch.Generator().manual_seed(self.cfg.seed),
                                           pin_memory=self.env.device.type == "cuda",
                                           prefetch_factor=2 if workers else None,
                                           persistent_workers=False)

    def _reader(self):
        from functools import partial

        from solireward.data.video import FrameSampling, read_video

        sampling = FrameSampling.from_dict(dict(self._unwrapped().config.sampling))
        return partial(read_video, sampling=sampling, backend=self.cfg.video_backend,
                       timeout_s=self.cfg.decode_timeout)

    def score_videos(self, pairs: PairSet) -> np.ndarray:
        """Scores of every distinct video of `pairs`, computed on all ranks and gathered."""
        env = self.env
        n = len(pairs.video_paths)
        shards = eval_shards(n, self.cfg.per_device_eval_batch_size, env.world_size)[env.rank]
        quality = pairs.video_qualities(strict=False)
        dataset = VideoBatches([np.maximum(b, 0) for b in shards], pairs.video_paths, pairs.prompts,
                               quality, prompt_groups(pairs.prompts), self._reader(),
                               self._unwrapped().collator(), mode="videos")
        found: dict[int, float] = {}
        module = self.engine if (self.ds or self.ddp) else self.model
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad(), self._autocast():
                for batch, ids in zip(self._loader(dataset), shards):
                    raise_if_error(batch)
                    values = module(**_move(batch["inputs"], env.device, self.input_dtype)).float().cpu().numpy()
                    for vid, value in zip(ids.tolist(), values.tolist()):
                        if vid >= 0:
                            found[vid] = value
        finally:
            module.train(was_training)
        merged: dict[int, float] = {}
        for part in D.all_gather_objects(env, found):
            merged.update(part)
        return np.asarray([merged[i] for i in range(n)], dtype=np.float64)

    def evaluate(self, step: int) -> dict[str, Any]:
        """Pair accuracy (no ties), ROC-AUC and loss on the eval pairs; the scores are kept for score_norm."""
        assert self.eval_pairs is not None
        from solireward.losses import PASS_THRESHOLD, reward_loss

        pairs = self.eval_pairs
        scores = self.score_videos(pairs)
        self.last_eval_scores = scores
        non_tie = ~pairs.is_tie
        d = scores[pairs.win[non_tie]] - scores[pairs.lose[non_tie]]
        quality = pairs.video_qualities(strict=False)
        with torch.no_grad():
            loss, _ = reward_loss(torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(pairs.win),
                                  torch.as_tensor(pairs.lose), torch.as_tensor(pairs.is_tie),
                                  torch.as_tensor(quality, dtype=torch.float32), self.loss_cfg)
        return {"kind": "eval", "step": step, "epoch": step / self.steps_per_epoch,
                "eval_accuracy": pair_accuracy(d), "eval_roc_auc": roc_auc(scores, quality > PASS_THRESHOLD),
                "eval_loss": _float(loss), "eval_n_pairs": int(pairs.num_pairs), "eval_n_win_lose": int(d.size),
                "eval_n_videos": len(scores), "time": round(time.time() - self.t0, 3)}

    # -- training ---------------------------------------------------------------------------

    def _autocast(self):
        if self.bf16 and not self.ds:
            return torch.autocast(self.env.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _micro_step(self, batch: dict[str, Any], last: bool, stats: _StepStats) -> torch.Tensor:
        from solireward.losses import in_batch_pairs, reward_loss

        module = self.engine if (self.ds or self.ddp) else self.model
        qualities, groups = batch["qualities"], batch["groups"]
        if "win_idx" in batch:
            win, lose, tie = batch["win_idx"], batch["lose_idx"], batch["is_tie"]
        else:
            win, lose, tie = in_batch_pairs(qualities, groups if self.cfg.pair_groups == "in_prompt" else None)
        sync = contextlib.nullcontext() if (last or not self.ddp) else self.engine.no_sync()
        with sync:
            with self._autocast():
                scores = module(**_move(batch["inputs"], self.env.device, self.input_dtype)).float()
            device_q = qualities.to(scores.device)
            win_d, lose_d, tie_d = win.to(scores.device), lose.to(scores.device), tie.to(scores.device)
            loss, parts = reward_loss(scores, win_d, lose_d, tie_d, device_q, self.loss_cfg)
            if self.ds:
                self.engine.backward(loss)
            else:
                (loss / self.cfg.gradient_accumulation_steps).backward()
        stats.loss += float(loss.detach())
        for name, count in (("bt", parts["n_win_lose"]), ("tie", parts["n_tie"]), ("bce", len(scores))):
            stats.parts[name] = stats.parts.get(name, 0.0) + float(parts[name]) * float(count)
        stats.correct += float(parts["correct"])
        stats.non_ties += float(parts["n_win_lose"])
        stats.pairs += float(parts["n_pairs"])
        stats.ties += float(parts["n_tie"])
        stats.videos += float(len(scores))
        stats.micro += 1.0
        return loss

    def _reduce(self, stats: _StepStats) -> _StepStats:
        names = sorted(stats.parts)
        vec = torch.tensor([stats.loss, stats.correct, stats.non_ties, stats.pairs, stats.ties, stats.videos,
                            stats.micro] + [stats.parts[n] for n in names], dtype=torch.float64)
        vec = D.all_reduce_sum(self.env, vec).tolist()
        return _StepStats(vec[0], dict(zip(names, vec[7:])), *vec[1:7])

    def _optimizer_step(self) -> float:
        if self.ds:
            self.engine.step()
            norm = self.engine.get_global_grad_norm()
            return float(norm) if norm is not None else float("nan")
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        clip = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def run(self) -> dict[str, Any]:
        """Train, evaluate, checkpoint and write the final model; returns the summary."""
        cfg = self.cfg
        self.t0 = time.time()
        self.env = env = D.setup(use_deepspeed=cfg.deepspeed is not None)
        try:
            return self._run()
        finally:
            D.cleanup(env)

    def _run(self) -> dict[str, Any]:
        cfg, env = self.cfg, self.env
        self.ds = cfg.deepspeed is not None
        self.ddp = not self.ds and env.world_size > 1
        done = complete_checkpoints(self.out)
        if done and not cfg.resume:
            raise ConfigError(f"{self.out} already holds checkpoints ({done[-1].name}); pass --resume to continue "
                              "or choose another --output_dir", field="output_dir")
        self._load_data()
        self.bf16 = self._use_bf16()
        ds_config = self._deepspeed_config() if self.ds else None
        _seed_all(cfg.seed)
        model = self._build_model().to(env.device)
        self.model = model
        # record what was actually used: family, head, layers, prompts and frame sampling
        for key in ARCHITECTURE_OPTIONS:
            self.resolved[key] = getattr(model.config, key)
        self.resolved.update(model.config.sampling)

        in_batch = cfg.pairing == "in_batch"
        n_items = len(self.train_pairs.video_paths) if in_batch else self.train_pairs.num_pairs
        groups = self.train_groups if in_batch and cfg.pair_groups == "in_prompt" else None
        probe = make_plan(n_items, cfg.per_device_train_batch_size, env.world_size,
                          cfg.gradient_accumulation_steps, cfg.seed, 1, groups)
        self.steps_per_epoch = probe.micro_steps_per_epoch // cfg.gradient_accumulation_steps
        self.total_steps = cfg.max_steps if cfg.max_steps > 0 else \
            max(1, math.ceil(cfg.num_train_epochs * self.steps_per_epoch))
        epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        plan: BatchPlan = make_plan(n_items, cfg.per_device_train_batch_size, env.world_size,
                                    cfg.gradient_accumulation_steps, cfg.seed, epochs, groups)
        warmup = math.ceil(cfg.warmup_ratio * self.total_steps)

        self.optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.learning_rate,
                                           betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _Schedule(self.total_steps, warmup,
                                                                                      cfg.lr_scheduler_type))
        self.zero_stage = 0
        if self.ds:
            import deepspeed

            self.zero_stage = int(ds_config.get("zero_optimization", {}).get("stage", 0))
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=model, optimizer=self.optimizer, lr_scheduler=self.scheduler, config=ds_config)
        elif self.ddp:
            self.engine = nn.parallel.DistributedDataParallel(
                model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        else:
            self.engine = model

        # pixel values follow the weights' dtype, except under autocast (float32 weights)
        weight_dtype = next(self._unwrapped().backbone.parameters()).dtype
        self.input_dtype = None if weight_dtype == torch.float32 else weight_dtype
        start = 0
        if cfg.resume:
            done = complete_checkpoints(self.out)
            if done:
                start = self._load_checkpoint(done[-1])
                logger.info("resumed from %s (step %d of %d)", done[-1], start, self.total_steps)
            else:
                logger.info("--resume: no complete checkpoint in %s; starting from scratch", self.out)
        self._open_metrics(start)
        if env.is_main:
            self._write_config()

        accum = cfg.gradient_accumulation_steps
        pairs_mode = "videos" if in_batch else "pairs"
        dataset = VideoBatches(plan.for_rank(env.rank)[start * accum:self.total_steps * accum],
                               self.train_pairs.video_paths, self.train_pairs.prompts, self.train_quality,
                               self.train_groups, self._reader(), self._unwrapped().collator(),
                               mode=pairs_mode, pairs=None if in_batch else self.train_pairs,
                               cache_frames=cfg.cache_frames)
        show = env.is_main and (cfg.progress or sys.stderr.isatty())
        bar = tqdm(total=self.total_steps, initial=start, desc="train", unit="step", disable=not show,
                   dynamic_ncols=True)
        self.last_eval_scores = None
        last_eval: dict[str, Any] | None = None
        step, stats, t_step = start, _StepStats(), time.time()
        module = self.engine if (self.ds or self.ddp) else self.model
        module.train()
        try:
            for i, batch in enumerate(self._loader(dataset)):
                raise_if_error(batch)
                last = (i + 1) % accum == 0
                self._micro_step(batch, last, stats)
                if not last:
                    continue
                total = self._reduce(stats)
                loss = total.loss / max(total.micro, 1.0)
                if not math.isfinite(loss):
                    raise TrainingDivergedError(f"the training loss became {loss} at step {step + 1} "
                                                f"(learning rate {self._current_lr():.3g}); lower --learning_rate "
                                                "or check the data")
                lr = self._current_lr()
                grad_norm = self._optimizer_step()
                step += 1
                now = time.time()
                row = {"kind": "train", "step": step, "epoch": round(step / self.steps_per_epoch, 6), "loss": loss}
                for name, count in (("bt", total.non_ties), ("tie", total.ties), ("bce", total.videos)):
                    row[f"loss_{name}"] = total.parts[name] / count if count else None
                row.update({"accuracy": total.correct / total.non_ties if total.non_ties else None,
                            "n_pairs": int(total.pairs), "n_ties": int(total.ties), "n_videos": int(total.videos),
                            "learning_rate": lr, "grad_norm": _float(grad_norm),
                            "time": round(now - self.t0, 3), "step_time": round(now - t_step, 4)})
                self._log(row)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", acc="-" if row["accuracy"] is None else f"{row['accuracy']:.3f}",
                                refresh=False)
                if cfg.logging_steps and step % cfg.logging_steps == 0 and env.is_main and not show:
                    logger.info("step %d/%d loss %.4f acc %s lr %.3g", step, self.total_steps, loss,
                                row["accuracy"], lr)
                if self.eval_pairs is not None and cfg.eval_steps and step % cfg.eval_steps == 0 \
                        and step < self.total_steps:
                    last_eval = self.evaluate(step)
                    self._log(last_eval)
                if cfg.save_steps and step % cfg.save_steps == 0 and step < self.total_steps:
                    self._save_checkpoint(step)
                stats, t_step = _StepStats(), time.time()
        finally:
            bar.close()
        return self._finish(step, start, last_eval)

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _finish(self, step: int, start: int, last_eval: dict[str, Any] | None) -> dict[str, Any]:
        cfg, env = self.cfg, self.env
        model = self._unwrapped()
        if self.eval_pairs is not None:
            last_eval = self.evaluate(step)
            self._log(last_eval)
            scores = self.last_eval_scores
            stats_source = f"{len(scores)} eval videos"
        else:
            scores = self.score_videos(self.train_pairs)
            stats_source = f"{len(scores)} training videos (no --eval_data)"
            logger.warning("no --eval_data: score mean/std for score_norm come from the training videos")
        mean, std = float(np.mean(scores)), float(np.std(scores))
        model.config.score_mean, model.config.score_std = mean, std if std > 0 else 1.0
        if step > start:
            self._save_checkpoint(step)
        self._save_final_model()
        summary = {"global_step": step, "total_steps": self.total_steps, "resumed_from_step": start or None,
                   "epochs": step / self.steps_per_epoch, "steps_per_epoch": self.steps_per_epoch,
                   "train_videos": len(self.train_pairs.video_paths), "train_pairs": self.train_pairs.num_pairs,
                   "pairing": cfg.pairing, "pair_groups": cfg.pair_groups, "world_size": env.world_size,
                   "backend": "deepspeed" if self.ds else ("ddp" if self.ddp else "single"),
                   "zero_stage": self.zero_stage if self.ds else None, "device": str(env.device),
                   "bf16": self.bf16, "score_mean": mean, "score_std": model.config.score_std,
                   "score_stats_from": stats_source, "final_train": self.last_train_row,
                   "final_eval": last_eval, "train_time_s": round(time.time() - self.t0, 3)}
        if env.is_main:
            write_json(self.out / "train_summary.json", summary)
            if self.metrics is not None:
                self.metrics.close()
        D.barrier(env)
        return summary

    # -- outputs ----------------------------------------------------------------------------

    def _open_metrics(self, start: int) -> None:
        """Keep the rows of steps <= `start` (a resumed run replays the rest), then append."""
        self.metrics = None
        self.last_train_row = None
        if not self.env.is_main:
            return
        path = self.out / "metrics.jsonl"
        kept: list[str] = []
        if start and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue    # a line cut short by the interruption
                if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= start:
                    kept.append(line)
                    if row.get("kind") == "train":
                        self.last_train_row = row
        with atomic_write(path, encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in kept))
        self.metrics = path.open("a", encoding="utf-8")

    def _log(self, row: dict[str, Any]) -> None:
        if row.get("kind") == "train":
            self.last_train_row = row
        if self.metrics is not None:
            self.metrics.write(json.dumps(row) + "\n")
            self.metrics.flush()

    def _write_config(self) -> None:
        header = "# resolved options of this run; rerun with: solireward train --config train_config.yaml\n"
        write_text(self.out / "train_config.yaml", header + yaml.safe_dump(self.resolved, sort_keys=False))
