"""The state of one server: models, decoding pool, queue, replicas, and the rules every protocol shares
(the frame rate of in-memory frames, the prompt limit, the reward of a failed video)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from solireward.conservative import EnsembleOptions
from solireward.serving.batcher import Batcher, Item, ItemError, Job, Replica
from solireward.serving.config import API_KEY_ENV, ServeConfig, failed_reward_value
from solireward.serving.decode import ItemEncoder
from solireward.serving.devices import pick_devices
from solireward.serving.ensemble import load_models, model_specs
from solireward.serving.frames import Frame, RequestRefused, frames_item
from solireward.serving.metrics import Metrics
from solireward.serving.pool import WorkerPool

logger = logging.getLogger("solireward.serve")

_MAX_LOGGED_FAILURES = 5
_CHARS_PER_TOKEN = 64  # a prompt longer than this x --max_prompt_tokens is refused without tokenizing it
# failures of the request's own inputs (4xx when all of a request's videos fail); the others are the server's
CLIENT_KINDS = ("path", "video", "frames", "encoding", "crash")


class ServerState:
    """Models, decoding pool, queue and replicas of one server; built by :meth:`load` in a thread."""

    def __init__(self, config: ServeConfig, on_fatal: Callable[[], None] | None = None) -> None:
        self.config = config
        self.folders, self.weights = model_specs(config.model, config.weights)
        self.video_root = Path(config.video_root).resolve() if config.video_root else None
        if self.video_root is not None and not self.video_root.is_dir():
            from solireward.errors import InputError

            raise InputError("--video_root is not a folder", file=str(self.video_root))
        self.api_key = config.api_key or os.environ.get(API_KEY_ENV) or None
        fixed = failed_reward_value(config.failed_reward)
        # the floor: each model's score_norm at score_mean - k x score_std is -k; weighted, -k x sum |w|
        self.floor_norm = -config.floor_sigmas
        self.ensemble = EnsembleOptions(config.ensemble, config.ensemble_lambda) if config.ensemble else None
        # with a conservative ensemble every model at its floor combines to the floor itself
        self.failed_reward = fixed if fixed is not None else (
            self.floor_norm if self.ensemble else self.floor_norm * sum(map(abs, self.weights.values())))
        self.metrics = Metrics(config.max_batch_size)
        self.devices = pick_devices(config.devices)
        self.on_fatal = on_fatal
        self.ready = threading.Event()
        self.error: str | None = None
        self.info: dict[str, Any] = {}
        self.samplings: dict[str, Any] = {}
        self.tokenizers: list[Any] = []
        self.pool: WorkerPool | None = None
        self.batcher = Batcher(config.max_batch_size, config.max_wait_ms / 1000)
        self.replicas: list[Replica] = []
        self.in_flight = 0

    def load(self) -> None:
        """Load every model on every device, start the decoding pool and the replicas."""
        import torch

        from solireward.inference import cpu_threads_for_model
        from solireward.scoring import VideoEncoder

        try:
            started = time.monotonic()
            if any(d.type == "cpu" for d in self.devices) and "OMP_NUM_THREADS" not in os.environ:
                torch.set_num_threads(cpu_threads_for_model(self.config.num_workers))
            replicas = []
            for device in self.devices:
                models = load_models(self.folders, device, self.config.torch_dtype, self.config.attn_implementation)
                replicas.append(Replica(models, self.weights, device, self.batcher, self.metrics.batch, self.ensemble))
            first = replicas[0].models
            self.samplings = {name: _sampling(model) for name, model in first.items()}
            self.tokenizers = [model.processor.tokenizer for model in first.values()]
            encoder = ItemEncoder({name: VideoEncoder(model.collator(), self.samplings[name],
                                                      backend=self.config.video_backend,
                                                      timeout_s=self.config.decode_timeout)
                                   for name, model in first.items()})
            self.pool = WorkerPool(encoder, self.config.num_workers, self.config.decode_timeout)
            self.replicas = replicas
            for replica in replicas:
                replica.start()
            self.info = {**_describe(self.folders, self.weights, first, self.devices),
                         "failed_reward": self.failed_reward, "frames_fps": self.config.frames_fps}
            logger.info("loaded %d model(s) on %s in %.1f s; ready", len(first),
                        ", ".join(map(str, self.devices)), time.monotonic() - started)
            logger.info("a failed video in a partly failed request gets reward %.6g (--failed_reward %s)",
                        self.failed_reward, self.config.failed_reward)
            self.ready.set()
        except Exception as exc:  # noqa: BLE001 - reported by /health and the log; the server then exits
            logger.exception("loading the models failed")
            self.error = f"{type(exc).__name__}: {exc}"
            if self.on_fatal is not None:
                self.on_fatal()

    def close(self) -> None:
        """Finish the queued batches, then stop the replicas and the decoding pool."""
        self.batcher.close()
        for replica in self.replicas:
            replica.join()
        if self.pool is not None:
            self.pool.shutdown()

    def check_ready(self) -> None:
        """503 with Retry-After until the models are loaded."""
        if not self.ready.is_set():
            raise RequestRefused(503, f"the models are not loaded{f': {self.error}' if self.error else ' yet'}",
                                 {"Retry-After": "5"})

    def frames_fps(self, fps: float | None, field: str) -> float | None:
        """The frame rate of in-memory frames: the request's, else ``--frames_fps``; an error naming `field`
        when neither is given and a served checkpoint samples in 'fps' mode."""
        if fps is not None or self.config.frames_fps is not None:
            return fps if fps is not None else self.config.frames_fps
        fps_models = [f"{name!r} ({s.fps:g} frames/s)" for name, s in self.samplings.items() if s.mode == "fps"]
        if fps_models:
            raise RequestRefused(422, f"field '{field}' is missing: model {', '.join(fps_models)} samples frames "
                                      f"by time and needs the frame rate of in-memory frames; send it, or start "
                                      f"the server with --frames_fps")
        return None

    def frames(self, images: Sequence[Frame], prompt: str | None, fps: float | None) -> Item:
        """An in-memory video as an :class:`Item` (only the frames the models sample; header checks)."""
        c = self.config
        return frames_item(images, prompt, fps, list(self.samplings.values()), c.max_frames, c.max_pixels,
                           c.max_decode_pixels)

    def check_request(self, items: Sequence[Item | ItemError]) -> None:
        """Refuse (413) a request whose prompts or decoded pixels exceed their limits; before any decoding."""
        c = self.config
        pixels = sum(item.pixels for item in items if isinstance(item, Item))
        if pixels > c.max_request_pixels:
            raise RequestRefused(413, f"the request's in-memory videos need {pixels} pixels decoded; the limit is "
                                      f"--max_request_pixels {c.max_request_pixels}")
        for i, item in enumerate(items):
            if not isinstance(item, Item) or not item.prompt:
                continue
            if len(item.prompt) > _CHARS_PER_TOKEN * c.max_prompt_tokens:
                raise RequestRefused(413, f"video {i}: the prompt has {len(item.prompt)} characters, more than "
                                          f"{_CHARS_PER_TOKEN} x --max_prompt_tokens {c.max_prompt_tokens}")
            tokens = max(len(t(item.prompt, add_special_tokens=False)["input_ids"]) for t in self.tokenizers)
            if tokens > c.max_prompt_tokens:
                raise RequestRefused(413, f"video {i}: the prompt has {tokens} tokens; the limit is "
                                          f"--max_prompt_tokens {c.max_prompt_tokens}")

    async def score(self, endpoint: str, items: Sequence[Item | ItemError]) -> list[dict[str, Any] | ItemError]:
        """Each item's result (``{"reward", "scores"}``) or ItemError, in order; failures go to the log and /metrics."""
        self.check_ready()
        self.check_request(items)
        queued = sum(isinstance(i, Item) for i in items)
        if self.in_flight + queued > self.config.max_queue:
            raise RequestRefused(503, f"the server is busy: {self.in_flight} videos queued, the limit is "
                                      f"--max_queue {self.config.max_queue}", {"Retry-After": "1"})
        self.in_flight += queued
        try:
            results = await asyncio.gather(*(self._one(item) for item in items))
        finally:
            self.in_flight -= queued
        results = [self._relative(r) if isinstance(r, ItemError) else r for r in results]
        failed = [(i, r) for i, r in enumerate(results) if isinstance(r, ItemError)]
        self.metrics.scored(endpoint, len(items), [r.kind for _, r in failed])
        for i, error in failed[:_MAX_LOGGED_FAILURES]:
            logger.warning("%s: item %d of %d failed (%s): %s", endpoint, i, len(items), error.kind, error.message)
        if len(failed) > _MAX_LOGGED_FAILURES:
            logger.warning("%s: ... and %d more failed items in this request", endpoint,
                           len(failed) - _MAX_LOGGED_FAILURES)
        return results

    def _relative(self, error: ItemError) -> ItemError:
        """`error` with paths under ``--video_root`` made relative to it (decoders name the absolute file)."""
        if self.video_root is None:
            return error
        message = error.message
        for root in dict.fromkeys((str(self.video_root), os.path.abspath(str(self.config.video_root)))):
            message = message.replace(root + os.sep, "").replace(root, "--video_root")
        return error if message == error.message else ItemError(error.kind, message)

    async def _one(self, item: Item | ItemError) -> dict[str, Any] | ItemError:
        if isinstance(item, ItemError):
            return item
        assert self.pool is not None
        self.batcher.expect()
        try:
            try:
                inputs = await self.pool.encode(item)
            except BaseException:  # failed, or the request was cancelled: the batcher stops waiting for it
                self.batcher.forget()
                raise
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self.batcher.put(Job(inputs, future, loop))
            return await future
        except ItemError as exc:
            return exc


RETRYABLE_KINDS = ("worker", "shutdown")  # the server's failures worth a retry (503); any other is a 500


def request_failure(results: Sequence[dict[str, Any] | ItemError]) -> tuple[int, str] | None:
    """None when the request can be answered with rewards (every failure, if any, the video's own and some video
    scored); else the HTTP status and a message naming each failed video's reason (the first 5): 503/500 when the
    server failed a video (503: a decoding worker or shutdown, worth retrying), never a floor reward for the
    server's fault; 422 when every video failed for its own reasons."""
    errors = [(i, r) for i, r in enumerate(results) if isinstance(r, ItemError)]
    faults = [(i, e) for i, e in errors if e.kind not in CLIENT_KINDS]
    if faults:
        status = 503 if all(e.kind in RETRYABLE_KINDS for _, e in faults) else 500
        return status, (f"the server could not score {len(faults)} of the {len(results)} videos because of its own "
                        f"failure, not theirs; no reward is given: {_reasons(faults)}")
    if len(errors) < len(results):
        return None
    return 422, f"all {len(errors)} videos of the request failed, none has a reward: {_reasons(errors)}"


def _reasons(errors: Sequence[tuple[int, ItemError]]) -> str:
    text = "; ".join(f"video {i} ({e.kind}): {e.message}" for i, e in errors[:_MAX_LOGGED_FAILURES])
    more = len(errors) - _MAX_LOGGED_FAILURES
    return text + (f"; ... and {more} more" if more > 0 else "")


def _sampling(model: Any) -> Any:
    from solireward.data.video import FrameSampling

    return FrameSampling.from_dict(dict(model.config.sampling))


def _describe(folders: dict[str, Path], weights: dict[str, float], models: dict[str, Any],
              devices: Sequence[Any]) -> dict[str, Any]:
    from importlib.metadata import version

    import torch
    import transformers

    import solireward

    return {
        "models": {name: {"path": str(folders[name]), "weight": weights[name], "model_type": m.config.model_type,
                          "reward_task": m.config.reward_task, "reduce_sequence": m.config.reduce_sequence,
                          "sampling": dict(m.config.sampling), "score_mean": m.config.score_mean,
                          "score_std": m.config.score_std} for name, m in models.items()},
        "devices": [str(d) for d in devices],
        "versions": {"solireward": solireward.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "fastapi": version("fastapi"),
                     "uvicorn": version("uvicorn")},
    }
