"""Chaos: a real server on loopback under concurrent clients, its decoding workers killed with SIGKILL at random
moments. Every request is answered within a bound, every 200 carries each video's own reward (what `infer`
scores), /health recovers, and after SIGTERM no process of the server is left.

``SOLIREWARD_CHAOS_RUNS=20`` runs each worker count 20 times in a row (a fresh server each run); with
``SOLIREWARD_CHAOS_REPORT=FILE`` each run appends its figures (kills, recovery times) to FILE as a JSON line.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.serving.conftest import GOOD, TOL, Server, all_frames, png_frames
from tests.serving.peers import openrlhf_query

RUNS = int(os.environ.get("SOLIREWARD_CHAOS_RUNS", "1"))
KILLS = 3
CLIENTS = 2
ANSWER_BOUND_S = 60.0  # every request is answered within this (a worker restarts in a few seconds)


def children(pid: int) -> dict[int, list[int]]:
    """ppid -> child pids, from /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            out.setdefault(ppid, []).append(int(entry))
    return out


def descendants(pid: int) -> list[int]:
    tree, found, todo = children(pid), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def ff_videos(video_root: Path) -> dict[str, list[str]]:
    return {name: png_frames(all_frames(video_root / name)[0]) for name in GOOD}


def requests_for(names: list[str], ff_videos: dict[str, list[str]]) -> list[tuple[str, dict]]:
    """One request of each protocol over `names`."""
    return [("/get_reward", {"query": [openrlhf_query("make a video", f"saved to {n}.") for n in names],
                             "prompts": [GOOD[n][1] for n in names]}),
            ("/compute", {"prompt": [GOOD[n][1] or "" for n in names[:1]], "video": [ff_videos[names[0]]]}),
            ("/v1/score", {"items": [{"video_path": n, **({"prompt": GOOD[n][1]} if GOOD[n][1] else {})}
                                     for n in names]})]


def rewards_of(path: str, body: dict) -> list[float]:
    if path == "/v1/score":
        return [r["reward"] for r in body["results"]]
    return body["rewards"]


@pytest.mark.slow
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("workers", [1, 2])
def test_workers_killed_at_random_moments(workers, run, reward_dirs, video_root, expected, ff_videos,
                                          tmp_path) -> None:
    rng = random.Random(f"{workers}-{run}-{time.time()}")
    srv = Server(reward_dirs, video_root, tmp_path / "server.log", "--num_workers", workers, "--max_batch_size", 4,
                 "--max_wait_ms", 20, "--decode_timeout", 15)
    answers: list[tuple[str, list[str], float, int, dict | str]] = []
    failures: list[str] = []
    stop = threading.Event()
    # /compute's frames score as the file with the file's prompt; the reference has no prompt for good_b
    names = [n for n in GOOD if GOOD[n][1] is not None]

    def client(seed: int) -> None:
        local = random.Random(seed)
        while not stop.is_set():
            chosen = local.sample(names, 2)
            for path, body in requests_for(chosen, ff_videos):
                started = time.monotonic()
                try:
                    status, answer = srv.call("POST", path, body, timeout=ANSWER_BOUND_S)
                except OSError as exc:
                    failures.append(f"{path}: {type(exc).__name__}: {exc}")
                    continue
                answers.append((path, chosen, time.monotonic() - started, status, answer))

    def health() -> tuple[int, dict]:
        return srv.call("GET", "/health", key=None, timeout=10)

    def recovered(since: float, rebuilds: int) -> float:
        """Seconds from `since` until /health says ok with every worker ready and `rebuilds` rebuilds seen."""
        while True:
            assert time.monotonic() - since < ANSWER_BOUND_S, f"no recovery:\n{srv.log.read_text()[-3000:]}"
            status, body = health()
            if status == 200 and body["pool"]["rebuilds"] == rebuilds and body["pool"]["workers_ready"] == workers:
                return time.monotonic() - since
            time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(rng.random(),)) for _ in range(CLIENTS)]
    noticed, serving = [], []  # per kill: seconds until the pool saw the death; until /health said ok again
    try:
        for thread in threads:
            thread.start()
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))  # a random moment of the load
            victim = rng.choice(health()[1]["pool"]["pids"])
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            while True:  # until the pool has seen the death and serves again (another worker, or a fresh one)
                assert time.monotonic() - killed < ANSWER_BOUND_S, f"no recovery:\n{srv.log.read_text()[-3000:]}"
                status, body = health()
                if not noticed[kill:] and body.get("pool", {}).get("rebuilds", 0) > kill:
                    noticed.append(time.monotonic() - killed)
                if noticed[kill:] and status == 200:
                    serving.append(time.monotonic() - killed)
                    break
                time.sleep(0.02)
        stop.set()
        for thread in threads:
            thread.join(ANSWER_BOUND_S + 10)
        full = recovered(killed, KILLS)  # every worker ready again, the load gone
    finally:
        stop.set()
        for thread in threads:
            thread.join(ANSWER_BOUND_S + 10)
    try:
        assert not failures, failures
        assert len(answers) >= KILLS
        for path, chosen, seconds, status, body in answers:
            assert seconds < ANSWER_BOUND_S
            assert status == 200, (path, status, body)
            want = [expected[n]["reward"] for n in (chosen[:1] if path == "/compute" else chosen)]
            assert rewards_of(path, body) == pytest.approx(want, abs=TOL), (path, chosen)
        status, body = health()
        assert status == 200 and body["pool"]["workers_alive"] == body["pool"]["workers_ready"] == workers
        assert body["pool"]["rebuilds"] == KILLS
        assert srv.log.read_text().count("died (killed by SIGKILL)") == KILLS
    finally:
        family = descendants(srv.proc.pid)
        assert len(family) >= workers
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(60)
        deadline = time.monotonic() + 10
        while any(map(running, family)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in family if running(pid)], "processes of the server outlived it"
    report = os.environ.get("SOLIREWARD_CHAOS_REPORT")
    if report:
        with open(report, "a") as out:
            out.write(json.dumps({"workers": workers, "run": run, "requests": len(answers),
                                  "retried": body["pool"]["items_retried"], "noticed_s": noticed,
                                  "serving_s": serving, "full_strength_s": full,
                                  "slowest_answer_s": max(a[2] for a in answers)}) + "\n")
