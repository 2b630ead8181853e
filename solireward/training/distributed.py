"""Process-group set-up and the few collectives the trainer uses.

One process (no launcher): rank 0 of 1, no process group, unless DeepSpeed is used, which always
needs one (a single-member group on a free local port). Under ``torchrun`` / ``deepspeed`` the
launcher's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are used;
the backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import dataclasses
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
        """True when a process group is active."""
        return dist.is_available() and dist.is_initialized()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def setup(use_deepspeed: bool = False) -> DistEnv:
    """Join the launcher's process group (or make a single-member one for DeepSpeed)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
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
        if use_deepspeed:
            import deepspeed

            deepspeed.init_distributed(dist_backend=backend, verbose=False)
        else:
            dist.init_process_group(backend=backend, device_id=device if backend == "nccl" else None)
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


def broadcast_object(env: DistEnv, obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not env.initialized:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
