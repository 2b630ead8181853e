"""Decoding in worker processes, a dynamic batching queue, and one model replica per device.

A request's videos go through three stages:

1. :class:`~solireward.serving.pool.WorkerPool`: each :class:`Item` (a path under ``--video_root``, or the base64 PNG/JPEG frames
   of an in-memory video that the models sample, :mod:`.frames`) is decoded and turned into every served
   model's inputs by :class:`~solireward.serving.decode.ItemEncoder` (the scoring path's
   :class:`~solireward.scoring.VideoEncoder`, one per model) in ``--num_workers`` processes (or one
   thread with 0). A failure is that item's :class:`ItemError`.
2. :class:`Batcher`: the encoded items wait in one queue; a replica takes up to ``max_batch_size`` of
   them, waiting at most ``max_wait_ms`` after the oldest arrived, and only while more items are
   being decoded: a lone request is scored as soon as its last video is ready, and under load the
   batches fill instead of each forward pass taking the one or two videos decoded meanwhile (on a
   CPU those small passes cost the cores the decoders need: ``bench/bench_serve.py``).
3. :class:`Replica`: one thread per device holding every model; it pads the batch with each model's
   collator, scores it through :func:`solireward.scoring.score_batches` and resolves each item's
   future on the event loop. Items of one request may be scored by different replicas and batches.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Mapping

import numpy as np

logger = logging.getLogger(__name__)

@dataclasses.dataclass
class Item:
    """One video to score: `source` is a checked path, or the base64 PNG/JPEG images of the frames at `indices`
    of an in-memory video of `num_frames` frames (the ones the models sample; `pixels`: what a worker holds for
    them, :func:`~solireward.serving.decode.plan_frames`)."""

    source: str | list[bytes]
    prompt: str | None = None
    fps: float | None = None
    indices: list[int] | None = None
    num_frames: int = 0
    pixels: int = 0


class ItemError(Exception):
    """Why one item could not be scored; `kind` labels it in /metrics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)  # both in args: the error crosses from worker processes by pickling
        self.kind, self.message = kind, message

    def __str__(self) -> str:
        return self.message


# A tensor returned by a worker crosses in shared memory (torch's reduction: an fd handed over a socket,
# a few ms per tensor and a round trip with the worker for each) or, as a numpy array, pickled by value
# (a copy, ~5 ms per MiB). An item's inputs are several tensors, mostly small: sharing each one made the
# thread receiving results the bottleneck at ~50 items/s on 2 cores (bench/bench_serve.py), while copying
# real-size frames (8 x 448² float32 = 19 MiB) by value would cost ~100 ms. So small ones go by value.
_BY_VALUE_MAX_BYTES = 1 << 20


def to_wire(inputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Worker side: every model's inputs, their tensors up to ``_BY_VALUE_MAX_BYTES`` as numpy arrays."""
    import torch

    def small(v: Any) -> bool:
        return isinstance(v, torch.Tensor) and v.nbytes <= _BY_VALUE_MAX_BYTES and v.dtype != torch.bfloat16
    return {name: {k: v.numpy() if small(v) else v for k, v in d.items()} for name, d in inputs.items()}


def from_wire(inputs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Server side: the inverse of :func:`to_wire` (numpy arrays back to tensors, without a copy)."""
    import torch

    return {name: {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in d.items()}
            for name, d in inputs.items()}


@dataclasses.dataclass
class Job:
    """An encoded item waiting in the queue, and the future its result goes to."""

    inputs: dict[str, Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued_at: float = dataclasses.field(default_factory=time.monotonic)


class Batcher:
    """The queue of jobs; :meth:`take` returns up to `max_batch_size`, waiting at most `max_wait_s` past the
    oldest while items announced by :meth:`expect` are still being decoded."""

    def __init__(self, max_batch_size: int, max_wait_s: float) -> None:
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_s
        self._jobs: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._decoding = 0  # items announced by expect(), neither put nor forgotten yet

    def expect(self) -> None:
        """An item went to the decoders: its job will be :meth:`put`, or :meth:`forget` called if it fails."""
        with self._cond:
            self._decoding += 1

    def forget(self) -> None:
        """An expected item will not come (it failed or its request was cancelled)."""
        with self._cond:
            self._decoding -= 1
            self._cond.notify()

    def put(self, job: Job) -> None:
        """Queue an expected item's job."""
        with self._cond:
            self._decoding -= 1
            if self._closed:
                raise ItemError("shutdown", "the server is shutting down")
            self._jobs.append(job)
            self._cond.notify()

    def take(self) -> list[Job] | None:
        """The next batch, or None once closed and drained."""
        with self._cond:
            while not self._jobs:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = self._jobs[0].queued_at + self.max_wait_s
            while len(self._jobs) < self.max_batch_size and self._decoding > 0 and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._jobs.popleft() for _ in range(min(self.max_batch_size, len(self._jobs)))]
            if self._jobs:
                self._cond.notify()  # another replica may take the rest now
            return batch

    def close(self) -> None:
        """Accept no more jobs; replicas drain what is queued, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _resolve(future: asyncio.Future, value: Any) -> None:
    if not future.done():  # the request may have been cancelled (client gone); its batch carries on
        future.set_result(value)


class Replica(threading.Thread):
    """A thread scoring batches from `batcher` with its own copies of the models on `device`."""

    def __init__(self, models: Mapping[str, Any], weights: Mapping[str, float], device: Any, batcher: Batcher,
                 on_batch: Callable[[int, float], None], ensemble: Any = None) -> None:
        super().__init__(name=f"solireward-replica-{device}", daemon=True)
        self.models, self.weights, self.device, self.batcher = dict(models), dict(weights), device, batcher
        self.ensemble = ensemble  # solireward.conservative.EnsembleOptions, or None: the weighted sum
        self.collators = {name: model.collator() for name, model in self.models.items()}
        self.on_batch = on_batch

    def run(self) -> None:
        while (batch := self.batcher.take()) is not None:
            started = time.monotonic()
            try:
                results = self.score(batch)
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: this batch fails, the server goes on
                logger.exception("scoring a batch of %d on %s failed", len(batch), self.device)
                results = [ItemError("model", f"the model failed on this batch ({type(exc).__name__}: {exc})")
                           for _ in batch]
            self.on_batch(len(batch), time.monotonic() - started)
            for job, result in zip(batch, results):
                job.loop.call_soon_threadsafe(_resolve, job.future, result)

    def score(self, batch: list[Job]) -> list[dict[str, Any] | ItemError]:
        """Each job's combined result, or its ItemError (a non-finite score)."""
        from solireward.scoring import Batch, score_batches
        from solireward.serving.ensemble import combine

        rows = list(range(len(batch)))
        scores: dict[str, dict[int, float]] = {}
        errors: dict[int, str] = {}
        for name, model in self.models.items():
            padded = self.collators[name].pad([job.inputs[name] for job in batch])
            got, failed = score_batches(model, [Batch(index=rows, inputs=padded, failed=[])], self.device)
            scores[name] = got
            for row, reason in failed.items():
                errors.setdefault(row, f"model {name!r}: {reason}")
        return [ItemError("model", errors[row]) if row in errors else
                combine({name: scores[name][row] for name in self.models}, self.models, self.weights, self.ensemble)
                for row in rows]
