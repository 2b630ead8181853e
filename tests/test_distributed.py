"""The shared torch.distributed set-up in one process (several processes: the torchrun tests of training and
inference)."""

from __future__ import annotations

import torch

from solireward import distributed as D


def test_launch_env_reads_the_launcher_variables(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert D.launch_env() == (0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert D.launch_env() == (3, 4, 1)


def test_one_process_gets_no_group_and_the_collectives_are_identities(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    env = D.setup(device=torch.device("cpu"), backend="gloo")
    assert (env.rank, env.world_size, env.is_main, env.backend, env.initialized) == (0, 1, True, None, False)
    D.barrier(env)
    values = torch.tensor([1.0, 2.0])
    assert torch.equal(D.all_reduce_sum(env, values), values)
    assert D.all_gather_objects(env, {"a": 1}) == [{"a": 1}]
    D.cleanup(env)
    assert not torch.distributed.is_initialized()
