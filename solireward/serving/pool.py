"""The decoding pool: ``--num_workers`` worker processes that decode and encode items, watched by one thread.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: its manager thread sits in a blocking read of the
shared result pipe, so a worker killed while it held that pipe (``kill -9``, the OOM killer) left the pool
never marked broken, its items queued for good, and ``/health`` saying "ok" (issue 28, N1). Here each
worker has its own pipe and holds one item at a time, and one manager thread waits on every worker's pipe
*and* process sentinel at once (:func:`multiprocessing.connection.wait`): a death wakes it the moment it
happens, whatever the worker was doing. It then

* starts a fresh worker at once (after a worker that died before it was ready, with a growing pause),
* sends the item the dead worker held to the next ready worker, at the front of the queue; an item that
  was on board when :data:`ITEM_TRIES` workers died fails on its own (kind ``crash``: a decoder that
  crashes on this input), never the others;
* fails the items waiting for a worker (kind ``worker``, the server's fault: the request is a 5xx) once no
  worker has been ready for :attr:`WorkerPool.wait_s` seconds, so that every request is answered.

A worker that holds one item for longer than :attr:`WorkerPool.hang_s` is killed and handled the same way
(a decoder stuck in C code, which the decoder's own timeout abandons but cannot stop).

Workers are forked by multiprocessing's fork server: a single-threaded process that the manager thread
starts once and that imports what the encoder needs once (the server itself runs threads, which a plain fork
must not copy; a spawned worker would import torch and the processors again, ~10 s on a busy 2-core machine).

Workers end with their server in every path: the server stops them on shutdown (None on their pipe, then
SIGKILL after a grace period); the fork server exits when the server's end of its pipe closes (the server
ended, however); each worker asks the kernel for SIGKILL when its parent, the fork server, dies
(``PR_SET_PDEATHSIG`` on Linux), and a watchdog thread in each worker exits when its parent changes (any
POSIX system); SIGTERM keeps its default action (the worker ends). SIGINT is ignored so that a Ctrl-C to the
process group leaves the draining to the server.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import ctypes
import dataclasses
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from solireward.serving.batcher import Item, ItemError, from_wire, to_wire

logger = logging.getLogger("solireward.serve")

ITEM_TRIES = 3  # workers that may die holding one item before the item itself is blamed
_PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 5.0  # how long stopped workers get to exit before SIGKILL
_TICK_S = 0.5  # the manager looks at hangs and waits at least this often
_MAX_START_PAUSE_S = 30.0


@dataclasses.dataclass
class _Task:
    id: int
    item: Item
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    tries: int = 0  # workers that died while holding it


class _Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, context: Any, encoder: Callable[[Item], Any], threads: int) -> None:
        ours, theirs = context.Pipe()
        self.process = context.Process(target=serve_items, args=(theirs, encoder, threads), name="solireward-decode",
                                       daemon=True)
        self.process.start()
        theirs.close()  # the worker's end lives in the worker alone: its death is EOF here
        self.conn = ours
        self.ready = False
        self.task: _Task | None = None
        self.since = time.monotonic()  # started, or took its task

    def describe_exit(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "alive but unreachable (killed)"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


class WorkerPool:
    """Runs `encoder` (``Item -> the models' inputs``) in `num_workers` spawned processes (0: one thread).

    `timeout_s` is ``--decode_timeout``: an item held longer than twice that kills its worker
    (:attr:`hang_s`), and items fail when no worker has been ready for as long (:attr:`wait_s`).
    """

    def __init__(self, encoder: Callable[[Item], Any], num_workers: int, timeout_s: float = 60.0,
                 threads: int = 1) -> None:
        self.encoder, self.num_workers, self.threads = encoder, num_workers, threads
        self.hang_s = self.wait_s = 2 * timeout_s
        self.rebuilds = self.items_retried = self.items_crashed = 0
        self._lock = threading.Lock()
        self._incoming: list[_Task] = []
        self._pending: collections.deque[_Task] = collections.deque()
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
        self._closing = False
        self._woken = False
        self._start_failures = 0  # workers in a row that died before they were ready
        self._next_start = 0.0
        self._unready_since: float | None = time.monotonic()  # when the last ready worker was lost
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        if num_workers == 0:
            self._threads = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="solireward-decode")
            return
        # the server runs threads, which a plain fork must not copy: workers are forked by multiprocessing's
        # fork server, a single-threaded process that has imported what the encoder needs once, so that a
        # replacement starts in a fraction of a second instead of re-importing torch and the processors
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(sorted(pickled_modules(encoder)))
        self._wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._all_ready = threading.Event()
        self._manager = threading.Thread(target=self._run, name="solireward-pool", daemon=True)
        self._manager.start()
        self._all_ready.wait()  # every worker started now, not on the first request
        if self._start_failures:
            self.shutdown()
            raise RuntimeError("the decoding workers could not start (see the log)")

    # --- the event loop's side ----------------------------------------------------------------------

    async def encode(self, item: Item) -> dict[str, Any]:
        """The models' inputs of `item`; raises its ItemError (``worker``/``shutdown``: the server's fault)."""
        loop = asyncio.get_running_loop()
        if self._threads is not None:
            return await loop.run_in_executor(self._threads, self.encoder, item)
        future = loop.create_future()
        with self._lock:
            if self._closing:
                raise ItemError("shutdown", "the server is shutting down")
            if self._unready_for() > self.wait_s:
                raise ItemError("worker", self._unready_message())
            self._incoming.append(_Task(next(self._ids), item, future, loop))
            self._wake()
        return from_wire(await future)

    def status(self) -> dict[str, Any]:
        """What /health and /metrics report: workers alive and ready, rebuilds, items retried and crashed."""
        with self._lock:
            # the manager alone touches the processes (two threads reaping one child would race): a worker
            # stays listed from its start until the manager has seen it die
            ready = sum(w.ready for w in self._workers)
            return {"workers": self.num_workers, "workers_alive": len(self._workers),
                    "workers_ready": ready, "rebuilds": self.rebuilds, "items_retried": self.items_retried,
                    "items_crashed": self.items_crashed, "items_waiting": len(self._pending) + len(self._incoming),
                    "pids": [w.process.pid for w in self._workers],
                    "serving": self.num_workers == 0 or (ready > 0 and not self._closing)}

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and operators)."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def shutdown(self) -> None:
        """Stop the workers (their items fail with kind ``shutdown``) and the manager thread."""
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            return
        with self._lock:
            self._closing = True
            self._wake()
        self._manager.join()

    # --- the manager thread ----------------------------------------------------------------------------

    def _wake(self) -> None:
        """Wake the manager (with the lock held); one byte until it has looked."""
        if not self._woken:
            self._woken = True
            self._wake_w.send_bytes(b"")

    def _unready_for(self) -> float:
        return 0.0 if self._unready_since is None else time.monotonic() - self._unready_since

    def _unready_message(self) -> str:
        return (f"no decoding worker has been ready for {self._unready_for():.0f} s (they keep dying: see the "
                f"server's log); the server cannot score now")

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    self._pending.extend(self._incoming)
                    self._incoming.clear()
                    if self._closing:
                        break
                self._start_workers()
                self._dispatch()
                waitables: list[Any] = [self._wake_r]
                for worker in self._workers:
                    waitables += (worker.conn, worker.process.sentinel)
                for ready in multiprocessing.connection.wait(waitables, timeout=_TICK_S):
                    if ready is self._wake_r:
                        with self._lock:
                            self._woken = False
                            while self._wake_r.poll():
                                self._wake_r.recv_bytes()
                for worker in list(self._workers):
                    self._look_at(worker)
                self._fail_waiting_if_unready()
        except Exception:  # noqa: BLE001 - the pool's own bug: say so, and fail what waits rather than hang
            logger.exception("the decoding pool's manager failed; the server cannot decode")
        finally:
            self._stop_all()

    def _start_workers(self) -> None:
        while len(self._workers) < self.num_workers and time.monotonic() >= self._next_start:
            try:
                worker = _Worker(self._context, self.encoder, self.threads)
            except OSError as exc:  # no memory or processes left: try again later
                logger.error("could not start a decoding worker (%s)", exc)
                self._note_start_failure()
                return
            with self._lock:
                self._workers.append(worker)

    def _note_start_failure(self) -> None:
        self._start_failures += 1
        pause = min(_MAX_START_PAUSE_S, 2.0 ** (self._start_failures - 1) - 1)
        self._next_start = time.monotonic() + pause
        if not self._all_ready.is_set() and self._start_failures >= ITEM_TRIES:
            self._all_ready.set()  # the constructor raises

    def _dispatch(self) -> None:
        for worker in self._workers:
            while worker.ready and worker.task is None and self._pending:
                task = self._pending.popleft()
                if task.future.done():  # its request was cancelled
                    continue
                try:
                    worker.conn.send((task.id, task.item))
                except (OSError, ValueError):  # it died: the sentinel tells; the task goes back
                    self._pending.appendleft(task)
                    break
                worker.task, worker.since = task, time.monotonic()

    def _look_at(self, worker: _Worker) -> None:
        """Read what `worker` sent; handle its death, or kill it when it has held one item too long."""
        try:
            while worker.conn.poll():
                self._received(worker, worker.conn.recv())
        except (EOFError, OSError):  # its end of the pipe closed: it is exiting; its status follows
            worker.process.join(_STOP_GRACE_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        except Exception as exc:  # noqa: BLE001 - a result that cannot be rebuilt: the worker is not trusted
            logger.error("decoding worker %s sent something unreadable (%s: %s); killing it",
                         worker.process.pid, type(exc).__name__, exc)
            worker.process.kill()
            worker.process.join()
        if worker.task is not None and time.monotonic() - worker.since > self.hang_s and worker.process.is_alive():
            logger.error("decoding worker %s has held one video for more than %.0f s (2 x --decode_timeout); "
                         "killing it", worker.process.pid, self.hang_s)
            worker.process.kill()
            worker.process.join()
        if not worker.process.is_alive():
            self._lost(worker)

    def _received(self, worker: _Worker, message: tuple) -> None:
        if message[0] == "ready":
            logger.info("decoding worker %s ready after %.1f s", worker.process.pid, time.monotonic() - worker.since)
            worker.ready = True
            self._start_failures = 0
            with self._lock:
                self._unready_since = None
            if all(w.ready for w in self._workers) and len(self._workers) == self.num_workers:
                self._all_ready.set()
            return
        task_id, payload = message
        task, worker.task = worker.task, None
        if task is not None and task.id == task_id:
            self._settle(task, payload)  # the inputs, or the item's ItemError

    def _lost(self, worker: _Worker) -> None:
        worker.process.join()
        worker.conn.close()
        task = worker.task
        with self._lock:
            self._workers.remove(worker)
            self.rebuilds += 1
            if not any(w.ready for w in self._workers) and self._unready_since is None:
                self._unready_since = time.monotonic()
        if not worker.ready:
            self._note_start_failure()
        held = "idle"
        if task is not None:
            task.tries += 1
            if task.tries >= ITEM_TRIES:
                held = f"holding a video that has now ended {task.tries} workers: it fails"
                self.items_crashed += 1
                self._settle(task, ItemError("crash", f"decoding this video ended {task.tries} worker processes "
                                                      f"in a row (a decoder crashing on it?); not retried again"))
            else:
                held = "holding a video, which goes to a fresh worker"
                self.items_retried += 1
                self._pending.appendleft(task)
        elif not worker.ready:
            held = "while starting"
        logger.error("decoding worker %s died (%s) %s; starting another (%d rebuilds so far)",
                     worker.process.pid, worker.describe_exit(), held, self.rebuilds)

    def _fail_waiting_if_unready(self) -> None:
        with self._lock:
            if self._unready_for() <= self.wait_s:
                return
            tasks = list(self._pending) + self._incoming
            self._pending.clear()
            self._incoming.clear()
        if tasks:
            logger.error("%d videos waited more than %.0f s with no decoding worker ready; they fail",
                         len(tasks), self.wait_s)
        for task in tasks:
            self._settle(task, ItemError("worker", self._unready_message()))

    def _settle(self, task: _Task, result: Any) -> None:
        try:
            task.loop.call_soon_threadsafe(_set, task.future, result)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            pass

    def _stop_all(self) -> None:
        """Stop every worker (None first, SIGKILL after a grace period) and fail what was not done."""
        self._all_ready.set()
        with self._lock:
            self._closing = True
            workers = list(self._workers)
            tasks = list(self._pending) + self._incoming + [w.task for w in workers if w.task is not None]
            self._pending.clear()
            self._incoming.clear()
        for worker in workers:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + _STOP_GRACE_S
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        with self._lock:
            self._workers.clear()
        for task in tasks:
            self._settle(task, ItemError("shutdown", "the server is shutting down"))


def _set(future: asyncio.Future, result: Any) -> None:
    if future.done():  # the request was cancelled (its client left); the result is dropped
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


# --- the worker process --------------------------------------------------------------------------------

def serve_items(conn: Any, encoder: Callable[[Item], Any], threads: int) -> None:
    """A worker's life: say ready, then answer ``(id, item)`` with ``(id, inputs or ItemError)`` until
    None or the pipe closes."""
    _die_with(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server drains
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import torch

    torch.set_num_threads(threads)
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, item = message
        try:
            reply = (task_id, to_wire(encoder(item)))
        except ItemError as exc:
            reply = (task_id, exc)
        except Exception as exc:  # noqa: BLE001 - e.g. MemoryError: this item's, reported as such
            reply = (task_id, ItemError("encoding", f"preparing the video failed ({type(exc).__name__}: {exc})"))
        conn.send(reply)


def pickled_modules(obj: Any) -> set[str]:
    """The modules that unpickling `obj` imports (its classes' and functions'), found by unpickling a copy."""
    import io
    import pickle

    modules = {"torch", __name__}

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            modules.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(pickle.dumps(obj))).load()
    return modules - {"__main__", "__mp_main__"}


def _die_with(parent_pid: int) -> None:
    """End this process when its parent (the fork server, which ends with the server) does: PR_SET_PDEATHSIG
    on Linux, and a watchdog thread everywhere."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the request above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="solireward-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)
