"""torch.distributed set-up shared by training and inference, and the few collectives they use.

The launcher (``torchrun`` / ``deepspeed``) describes this process with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them the process is rank 0 of 1.
One process gets no process group, unless one is forced (DeepSpeed always needs one): it is then a
single-member group on a free local port, and the variables set for it are removed by `cleanup`.
By default the backend is NCCL on CUDA and gloo on CPU; inference passes gloo and a long timeout,
as its ranks only meet at the barrier before rank 0 merges their shards.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import socket
from typing import Any

import torch
import torch.distributed as dist


@dataclasses.dataclass
class DistEnv:
    """Where this process sits: rank, world size, local rank, device and backend."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    added_env: tuple[str, ...] = ()

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one that writes shared files)."""
        return self.rank == 0

    @property
    def initialized(self) -> bool:
        """True when `setup` joined a process group and it is still active."""
        return self.backend is not None and dist.is_available() and dist.is_initialized()


def launch_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the launcher's variables; (0, 1, 0) without a launcher."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def default_device(local_rank: int) -> torch.device:
    """cuda:LOCAL_RANK (made the current CUDA device) when CUDA is available, else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def setup(use_deepspeed: bool = False, *, device: torch.device | None = None, backend: str | None = None,
          timeout: datetime.timedelta | None = None) -> DistEnv:
    """Join the launcher's process group (a single-member one for DeepSpeed in one process).

    `device` defaults to `default_device`, `backend` to NCCL on CUDA and gloo otherwise, and
    `timeout` (how long collectives wait for the slowest rank) to torch's default.
    """
    rank, world, local_rank = launch_env()
    if device is None:
        device = default_device(local_rank)
    if backend is None:
        backend = "nccl" if device.type == "cuda" else "gloo"
    if world == 1 and not use_deepspeed:
        return DistEnv(0, 1, 0, device, None)
    added: list[str] = []
    if world == 1:
        for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                           ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(_free_port()))):
            if key not in os.environ:
                os.environ[key] = value
                added.append(key)
    if not dist.is_initialized():
        extra = {} if timeout is None else {"timeout": timeout}
        if use_deepspeed:
            import deepspeed

            deepspeed.init_distributed(dist_backend=backend, verbose=False, **extra)
        else:
            dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                    device_id=device if backend == "nccl" else None, **extra)
    return DistEnv(rank, world, local_rank, device, backend, tuple(added))


def cleanup(env: DistEnv) -> None:
    """Leave the process group and drop the environment variables `setup` added."""
    if env.initialized:
        dist.destroy_process_group()
    for key in env.added_env:
        os.environ.pop(key, None)


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op in one process)."""
    if env.initialized:
        dist.barrier()


def all_reduce_sum(env: DistEnv, tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place, on the backend's device); returns it on the CPU."""
    if not env.initialized:
        return tensor
    moved = tensor.to(env.device)
    dist.all_reduce(moved, op=dist.ReduceOp.SUM)
    return moved.cpu()


def all_gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order."""
    if not env.initialized:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out
