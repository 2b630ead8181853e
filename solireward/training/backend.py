"""How the trainer runs and updates the model: one process, DDP (torchrun) or DeepSpeed (ZeRO 0-3).

:func:`make_backend` wraps the model, optimizer and schedule; the training loop then only calls
the :class:`Backend` interface: ``forward`` (bf16 autocast where it applies; pixel values follow the
weights' dtype), ``accumulating`` (DDP skips the gradient all-reduce on all but the last micro-step),
``backward``, ``step`` (clip, optimizer and schedule step; returns the global gradient norm before
clipping), and for checkpoints ``model`` (the unwrapped model), ``gathered`` (whole parameters on
every rank under ZeRO-3), ``save_model`` and ``save_state`` / ``load_state`` (optimizer and
schedule, or DeepSpeed's own checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any, ContextManager, Iterator

import torch
from torch import nn

from solireward import distributed as D
from solireward.errors import ConfigError, InputError
from solireward.training.optimizer_state import load_optimizer, save_optimizer
from solireward.training.config import TrainConfig

logger = logging.getLogger(__name__)


def use_bf16(setting: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: `setting` is auto, true or false (true needs CUDA)."""
    if setting == "true":
        if device.type != "cuda":
            raise ConfigError("bf16 mixed precision needs a CUDA device here; use --bf16 false on CPU",
                              field="bf16")
        return True
    return setting == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def deepspeed_config(cfg: TrainConfig, world_size: int, bf16: bool) -> dict[str, Any]:
    """The DeepSpeed JSON of ``cfg.deepspeed`` with its "auto" values filled from the trainer's flags."""
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
    ds["train_batch_size"] = cfg.gradient_accumulation_steps * world_size
    for key, value in (("gradient_accumulation_steps", cfg.gradient_accumulation_steps),
                       ("gradient_clipping", cfg.max_grad_norm)):
        if ds.get(key, "auto") == "auto":
            ds[key] = value
        elif ds[key] != value:
            raise ConfigError(f"is {ds[key]} but the trainer flag says {value}; set it to \"auto\"",
                              file=str(path), field=key)
    for key, on in (("bf16", bf16), ("fp16", False)):
        section = ds.setdefault(key, {"enabled": False})
        if section.get("enabled", False) == "auto":
            section["enabled"] = on
    if ds.get("fp16", {}).get("enabled"):
        raise ConfigError("fp16 is not supported by this trainer; use bf16", file=str(path), field="fp16")
    ds.setdefault("steps_per_print", 10**9)
    ds.setdefault("wall_clock_breakdown", False)
    return ds


def move_inputs(inputs: dict[str, Any], device: torch.device, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Tensors to `device`; floating ones (pixel values) also to `dtype` when given."""
    return {k: v.to(device, dtype=dtype if v.is_floating_point() else None, non_blocking=True)
            if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


class Backend:
    """One process: the model itself runs, under bf16 autocast when asked."""

    name = "single"
    zero_stage: int | None = None
    state_holds_weights = False   # True when load_state also restores the weights

    def __init__(self, model: nn.Module, module: nn.Module, optimizer: Any, scheduler: Any, env: D.DistEnv,
                 *, bf16: bool, max_grad_norm: float, accumulation: int) -> None:
        self.model, self.module = model, module
        self.optimizer, self.scheduler, self.env = optimizer, scheduler, env
        self.bf16, self.max_grad_norm, self.accumulation = bf16, max_grad_norm, accumulation
        # pixel values follow the weights' dtype, except under autocast (float32 weights)
        weight_dtype = next(model.backbone.parameters()).dtype
        self.input_dtype = None if weight_dtype == torch.float32 else weight_dtype

    def autocast(self) -> ContextManager[Any]:
        """bf16 autocast when enabled, else nothing."""
        if self.bf16:
            return torch.autocast(self.env.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        """Float32 scores of a batch of model inputs (moved to the device here)."""
        with self.autocast():
            return self.module(**move_inputs(inputs, self.env.device, self.input_dtype)).float()

    def accumulating(self, last: bool) -> ContextManager[Any]:
        """Context of one micro-step's forward and backward; `last` is the optimizer step's last one."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of one micro-batch's loss."""
        (loss / self.accumulation).backward()

    def step(self) -> float:
        """Clip, update and advance the schedule; returns the global gradient norm before clipping."""
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        clip = self.max_grad_norm if self.max_grad_norm > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def learning_rate(self) -> float:
        """The rate the next optimizer step uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    @contextlib.contextmanager
    def gathered(self) -> Iterator[None]:
        """Whole parameters on every rank (only ZeRO-3 partitions them)."""
        yield

    def save_model(self, folder: Path) -> None:
        """`save_pretrained` of the unwrapped model into `folder` (rank 0 writes; every rank calls)."""
        with self.gathered():
            if self.env.is_main:
                self.model.save_pretrained(folder)
        D.barrier(self.env)

    def save_state(self, folder: Path) -> None:
        """Optimizer and schedule into a checkpoint folder (every rank calls)."""
        if self.env.is_main:
            save_optimizer(folder, self.optimizer, self.scheduler)

    def load_state(self, folder: Path) -> None:
        """Optimizer and schedule from a checkpoint folder."""
        load_optimizer(folder, self.optimizer, self.scheduler)

    def check_resume_world_size(self, saved: int, folder: Path) -> None:
        """Called when the checkpoint in `folder` was written by `saved` processes, not this many."""
        logger.warning("resuming with %d process(es) from a checkpoint of %d: the data order differs "
                       "from an uninterrupted run", self.env.world_size, saved)


class DDPBackend(Backend):
    """torchrun with several processes: DistributedDataParallel averages the gradients."""

    name = "ddp"

    def __init__(self, model: nn.Module, optimizer: Any, scheduler: Any, env: D.DistEnv, **options: Any) -> None:
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        module = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        super().__init__(module.module, module, optimizer, scheduler, env, **options)

    def accumulating(self, last: bool) -> ContextManager[Any]:
        """No gradient all-reduce before the optimizer step's last micro-step."""
        return contextlib.nullcontext() if last else self.module.no_sync()


class DeepSpeedBackend(Backend):
    """DeepSpeed: its engine runs the model, the precision, the step and its own checkpoints."""

    name = "deepspeed"
    state_holds_weights = True

    def __init__(self, model: nn.Module, optimizer: Any, scheduler: Any, env: D.DistEnv, *,
                 ds_config: dict[str, Any], **options: Any) -> None:
        import deepspeed

        self.zero_stage = int(ds_config.get("zero_optimization", {}).get("stage", 0))
        engine, optimizer, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer,
                                                               lr_scheduler=scheduler, config=ds_config)
        super().__init__(engine.module, engine, optimizer, scheduler, env, **options)

    def autocast(self) -> ContextManager[Any]:
        """Nothing: the engine applies the configured precision itself."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """The engine scales for accumulation itself."""
        self.module.backward(loss)

    def step(self) -> float:
        """The engine clips, steps and advances the schedule at accumulation boundaries."""
        self.module.step()
        norm = self.module.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @contextlib.contextmanager
    def gathered(self) -> Iterator[None]:
        """Whole parameters on every rank under ZeRO-3."""
        if self.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.model.parameters()), modifier_rank=None):
                yield
        else:
            yield

    def save_state(self, folder: Path) -> None:
        """DeepSpeed's partitioned checkpoint (weights, optimizer, schedule) in ``folder/deepspeed``."""
        self.module.save_checkpoint(str(folder / "deepspeed"), tag="state")

    def load_state(self, folder: Path) -> None:
        """Weights, optimizer and schedule from ``folder/deepspeed``."""
        path, _ = self.module.load_checkpoint(str(folder / "deepspeed"), tag="state",
                                              load_optimizer_states=True, load_lr_scheduler_states=True)
        if path is None:
            raise InputError("DeepSpeed could not load this checkpoint", file=str(folder / "deepspeed"))

    def check_resume_world_size(self, saved: int, folder: Path) -> None:
        """DeepSpeed's partitioned state needs the world size it was written with."""
        raise ConfigError(f"the checkpoint was written by {saved} process(es); DeepSpeed resumes need the same "
                          f"number (now {self.env.world_size})", file=str(folder))


def make_backend(model: nn.Module, optimizer: Any, scheduler: Any, env: D.DistEnv, *, bf16: bool,
                 max_grad_norm: float, accumulation: int, ds_config: dict[str, Any] | None = None) -> Backend:
    """DeepSpeed when given its config, DDP with several processes, else the model itself."""
    options = {"bf16": bf16, "max_grad_norm": max_grad_norm, "accumulation": accumulation}
    if ds_config is not None:
        return DeepSpeedBackend(model, optimizer, scheduler, env, ds_config=ds_config, **options)
    if env.world_size > 1:
        return DDPBackend(model, optimizer, scheduler, env, **options)
    return Backend(model, model, optimizer, scheduler, env, **options)
