"""The decoding pool (solireward.serving.pool) with scripted workers: a death is seen at once, the video it
held goes to a fresh worker, a video that ends worker after worker fails on its own, and no worker outlives
its server in any path (shutdown, the server killed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solireward.serving.batcher import Item, ItemError
from solireward.serving.pool import ITEM_TRIES, WorkerPool
from tests.serving.crashers import Scripted
from tests.serving.test_chaos import running


def outcome(result: object) -> object:
    if isinstance(result, ItemError):
        return result.kind
    return int(result["m"]["n"][0])


async def encode_all(pool: WorkerPool, prompts: list[str]) -> list[object]:
    results = await asyncio.gather(*(pool.encode(Item("x", p)) for p in prompts), return_exceptions=True)
    return [outcome(r) for r in results]


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_video_that_kills_its_worker_each_time_fails_alone_and_the_others_are_scored() -> None:
    pool = WorkerPool(Scripted(), 2)
    try:
        assert pool.status()["serving"] and pool.status()["workers_ready"] == 2
        got = asyncio.run(encode_all(pool, ["ab", "crash", "abcd", "bad", "a"]))
        assert got == [2, "crash", 4, "frames", 1]
        status = pool.status()
        assert status["rebuilds"] == ITEM_TRIES and status["items_crashed"] == 1
        assert status["items_retried"] == ITEM_TRIES - 1  # the crashing video, before it was blamed
        wait_for(lambda: pool.status()["workers_ready"] == 2)  # back to full strength
        assert asyncio.run(encode_all(pool, ["abc"])) == [3]
    finally:
        pool.shutdown()


def test_a_worker_killed_holding_a_video_is_seen_at_once_and_the_video_rerun(caplog) -> None:
    pool = WorkerPool(Scripted(), 1)
    try:
        [victim] = pool.pids()

        async def scenario() -> tuple[list[object], float]:
            task = asyncio.ensure_future(encode_all(pool, ["sleep 1.5", "xy"]))
            await asyncio.sleep(0.5)  # the first video is on the worker
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            while pool.status()["rebuilds"] == 0:
                await asyncio.sleep(0.01)
            noticed = time.monotonic() - killed
            return await task, noticed

        got, noticed = asyncio.run(scenario())
        assert got == [len("sleep 1.5"), 2]
        assert noticed < 1.0  # the sentinel, not a timeout
        status = pool.status()
        assert status["rebuilds"] == 1 and status["items_retried"] == 1 and victim not in pool.pids()
        assert "died (killed by SIGKILL) holding a video, which goes to a fresh worker" in caplog.text
    finally:
        pool.shutdown()
    assert not pool.pids()


def test_workers_end_with_their_server_when_it_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the server: no shutdown runs; the kernel's parent-death signal ends the workers."""
    script = ("import sys, time\n"
              "from solireward.serving.pool import WorkerPool\n"
              "from tests.serving.crashers import Scripted\n"
              "pool = WorkerPool(Scripted(), 2)\n"
              "print(*pool.pids(), flush=True)\n"
              "time.sleep(600)\n")
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        workers = [int(pid) for pid in server.stdout.readline().split()]
        assert len(workers) == 2 and all(map(running, workers))
    finally:
        server.kill()
        server.wait()
    wait_for(lambda: not any(map(running, workers)), timeout=10)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_video_s_own_error_is_returned_as_is(num_workers: int) -> None:
    pool = WorkerPool(Scripted(), num_workers)
    try:
        assert asyncio.run(encode_all(pool, ["bad", "abc"])) == ["frames", 3]
        assert pool.status()["rebuilds"] == 0
    finally:
        pool.shutdown()
