"""The FastAPI application of `solireward serve`: endpoints, guards (API key, body size), model loading.

Endpoints (docs/SERVING.md): ``GET /health``, ``POST /v1/score``, ``POST /compute`` (Flow-Factory),
``POST /get_reward`` (OpenRLHF), ``GET /metrics`` (Prometheus). The models load in a thread once the
socket is bound, so ``/health`` answers 503 until they are ready. Every video of a request is
decoded, queued and scored on its own (:mod:`.batcher`): a bad video is an error of that video alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import io
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from solireward.serving.batcher import Batcher, EncoderPool, Item, ItemEncoder, ItemError, Job, Replica
from solireward.serving.config import API_KEY_ENV, ServeConfig, failed_reward_value
from solireward.serving.ensemble import load_models, model_specs
from solireward.serving.metrics import Metrics
from solireward.serving.protocols import ComputeRequest, GetRewardRequest, ScoreRequest

logger = logging.getLogger("solireward.serve")

ENDPOINTS = ("/health", "/v1/score", "/compute", "/get_reward", "/metrics")
_MAX_LOGGED_FAILURES = 5
_DRAIN_FACTOR = 8  # a refused body up to 8 x --max_body_mb is read and dropped; a bigger one is cut off


class RequestRefused(Exception):
    """A whole request is refused with `status` (a limit, a missing key, a busy server)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def pick_devices(names: Sequence[str]) -> list[Any]:
    """torch devices of ``--devices``: auto (every GPU, else cpu), cpu, or GPU indices / cuda:N."""
    import torch

    from solireward.errors import ConfigError

    names = list(names)
    if names == ["auto"]:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [torch.device(f"cuda:{i}") for i in range(count)] or [torch.device("cpu")]
    if "cpu" in names:
        if len(names) > 1:
            raise ConfigError("cpu cannot be combined with other devices", field="devices")
        return [torch.device("cpu")]
    devices = []
    for name in names:
        index = name.removeprefix("cuda:")
        if not index.isdigit():
            raise ConfigError(f"expected auto, cpu or GPU indices, got {name!r}", field="devices")
        if not torch.cuda.is_available() or int(index) >= torch.cuda.device_count():
            raise ConfigError(f"GPU {index} is not available on this machine", field="devices")
        devices.append(torch.device(f"cuda:{index}"))
    if len(set(devices)) != len(devices):
        raise ConfigError("a device is listed twice", field="devices")
    return devices


def checked_path(video_path: str, root: Path | None) -> str:
    """`video_path` resolved under `root` (symlinks followed); anything that lands outside is an ItemError."""
    if root is None:
        raise ItemError("path", "this server accepts no video paths (start it with --video_root)")
    if "\x00" in video_path:
        raise ItemError("path", "video_path holds a NUL character")
    path = Path(video_path)
    try:
        resolved = (path if path.is_absolute() else root / path).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ItemError("path", f"{video_path!r} cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(root):
        raise ItemError("path", f"{video_path!r} is outside --video_root (after resolving '..' and symlinks); refused")
    return str(resolved)


def frames_item(images: Sequence[str], prompt: str | None, fps: float | None, config: ServeConfig) -> Item:
    """An in-memory :class:`Item` from base64 images; too many frames or pixels refuse the request (413)."""
    from PIL import Image

    if len(images) > config.max_frames:
        raise RequestRefused(413, f"a video has {len(images)} frames; the limit is --max_frames {config.max_frames}")
    frames = []
    for t, text in enumerate(images):
        if text.startswith("data:"):
            text = text.partition(",")[2]
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ItemError("frames", f"frame {t} is not valid base64") from None
        try:
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                width, height = image.size
        except Image.DecompressionBombError:
            width = height = config.max_pixels + 1
        except Exception:  # noqa: BLE001 - not an image: this item's error
            raise ItemError("frames", f"frame {t}: not a readable PNG or JPEG image") from None
        if width * height > config.max_pixels:
            raise RequestRefused(413, f"frame {t} has {width}x{height} pixels; the limit is --max_pixels "
                                      f"{config.max_pixels}")
        frames.append(data)
    return Item(frames, prompt, fps)


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
        self.fixed_failed_reward = failed_reward_value(config.failed_reward)
        self.metrics = Metrics(config.max_batch_size)
        self.devices = pick_devices(config.devices)
        self.on_fatal = on_fatal
        self.ready = threading.Event()
        self.error: str | None = None
        self.info: dict[str, Any] = {}
        self.pool: EncoderPool | None = None
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
                replicas.append(Replica(models, self.weights, device, self.batcher, self.metrics.batch))
            first = replicas[0].models
            encoder = ItemEncoder({name: VideoEncoder(model.collator(), _sampling(model),
                                                      backend=self.config.video_backend,
                                                      timeout_s=self.config.decode_timeout)
                                   for name, model in first.items()})
            self.pool = EncoderPool(encoder, self.config.num_workers)
            self.replicas = replicas
            for replica in replicas:
                replica.start()
            self.info = _describe(self.folders, self.weights, first, self.devices)
            logger.info("loaded %d model(s) on %s in %.1f s; ready", len(first),
                        ", ".join(map(str, self.devices)), time.monotonic() - started)
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

    async def score(self, endpoint: str, items: Sequence[Item | ItemError]) -> list[dict[str, Any] | ItemError]:
        """Each item's result (``{"reward", "scores"}``) or ItemError, in order; failures go to the log and /metrics."""
        if not self.ready.is_set():
            raise RequestRefused(503, f"the models are not loaded{f': {self.error}' if self.error else ' yet'}",
                                 {"Retry-After": "5"})
        queued = sum(isinstance(i, Item) for i in items)
        if self.in_flight + queued > self.config.max_queue:
            raise RequestRefused(503, f"the server is busy: {self.in_flight} videos queued, the limit is "
                                      f"--max_queue {self.config.max_queue}", {"Retry-After": "1"})
        self.in_flight += queued
        try:
            results = await asyncio.gather(*(self._one(item) for item in items))
        finally:
            self.in_flight -= queued
        failed = [(i, r) for i, r in enumerate(results) if isinstance(r, ItemError)]
        self.metrics.scored(endpoint, len(items), [r.kind for _, r in failed])
        for i, error in failed[:_MAX_LOGGED_FAILURES]:
            logger.warning("%s: item %d of %d failed (%s): %s", endpoint, i, len(items), error.kind, error.message)
        if len(failed) > _MAX_LOGGED_FAILURES:
            logger.warning("%s: ... and %d more failed items in this request", endpoint,
                           len(failed) - _MAX_LOGGED_FAILURES)
        return results

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

    def sentinel(self, results: Sequence[dict[str, Any] | ItemError]) -> float:
        """The reward of failed items in the foreign protocols: --failed_reward, or the lowest valid one (0)."""
        if self.fixed_failed_reward is not None:
            return self.fixed_failed_reward
        valid = [r["reward"] for r in results if not isinstance(r, ItemError)]
        return min(valid) if valid else 0.0


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


def _public(result: dict[str, Any] | ItemError, marker: Any = None) -> dict[str, Any]:
    head = {"id": marker} if marker is not None else {}
    if isinstance(result, ItemError):
        return {**head, "error": result.message, "kind": result.kind}
    return {**head, **result}


def _fps_list(extra: dict[str, Any], n: int) -> list[float | None]:
    """``extra["fps"]``: absent, one positive number, or one per video."""
    fps = extra.get("fps")
    values = fps if isinstance(fps, list) else [fps] * n
    if len(values) != n or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and math.isfinite(v) and v > 0) for v in values):
        raise RequestRefused(422, f"field 'extra.fps': expected a positive number or a list of {n}, got {fps!r}")
    return [None if v is None else float(v) for v in values]


class Guard:
    """ASGI middleware: request metrics (by known endpoint and status), the API key (401) on every endpoint
    but /health, and the request body limit (413), all checked before the body is parsed."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status = {"code": 500}

        async def record(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            headers = dict(scope.get("headers") or [])
            if scope["path"] != "/health" and not self._authorised(headers.get(b"authorization", b"")):
                await _reply(record, 401, "missing or wrong API key (send 'Authorization: Bearer KEY')",
                             {"WWW-Authenticate": "Bearer"})
                return
            limit = self.state.config.max_body_bytes
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                if int(declared) <= _DRAIN_FACTOR * limit:
                    await _discard(receive, _DRAIN_FACTOR * limit)
                await self._too_large(record)
                return
            body, more = [], True
            size = 0
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body.append(message.get("body", b""))
                size += len(body[-1])
                more = message.get("more_body", False)
                if size > limit:
                    if more:
                        await _discard(receive, _DRAIN_FACTOR * limit - size)
                    await self._too_large(record)
                    return
            replay = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

            async def replayed() -> dict:
                return replay.pop() if replay else await receive()

            await self.app(scope, replayed, record)
        finally:
            self.state.metrics.request(endpoint, status["code"], time.monotonic() - started)

    def _authorised(self, header: bytes) -> bool:
        key = self.state.api_key
        if key is None:
            return True
        scheme, _, token = header.decode("latin-1").partition(" ")
        # constant-time comparison of the token (its length may leak; the key's content does not)
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())

    async def _too_large(self, send: Callable) -> None:
        await _reply(send, 413, f"request body exceeds --max_body_mb {self.state.config.max_body_mb:g} "
                                f"({self.state.config.max_body_bytes} bytes)", {"Connection": "close"})


async def _discard(receive: Callable[[], Awaitable[dict]], budget: int) -> None:
    """Read and drop up to `budget` bytes of a refused body, so that clients which send the whole body
    before reading (most do) get the 413 rather than a broken pipe; a bigger body is cut off."""
    more = True
    while more and budget > 0:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        budget -= len(message.get("body", b""))
        more = message.get("more_body", False)


async def _reply(send: Callable, status: int, detail: str, headers: dict[str, str]) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


def create_app(config: ServeConfig, on_fatal: Callable[[], None] | None = None,
               state: ServerState | None = None) -> FastAPI:
    """The application; models load in a thread started when the server starts."""
    import contextlib

    state = state or ServerState(config, on_fatal)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=state.load, name="solireward-load", daemon=True).start()
        yield
        logger.info("shutting down: finishing the batches in flight")
        await asyncio.get_running_loop().run_in_executor(None, state.close)

    app = FastAPI(title="SoliReward reward server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.solireward = state

    @app.exception_handler(RequestRefused)
    async def refused(request: Request, exc: RequestRefused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ()) if part != "body"]
            if error.get("type") == "json_invalid":
                return JSONResponse({"detail": f"request body is not valid JSON "
                                               f"({error.get('ctx', {}).get('error', 'parse error')})"}, 400)
            errors.append({"field": ".".join(location) or "body", "message": error.get("msg", "invalid")})
        detail = "; ".join(f"field '{e['field']}': {e['message']}" for e in errors[:5])
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.get("/health")
    async def health() -> JSONResponse:
        if not state.ready.is_set():
            body = {"status": "failed", "error": state.error} if state.error else {"status": "loading"}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", **state.info})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(state.metrics.render(state.in_flight), media_type="text/plain; version=0.0.4")

    @app.post("/v1/score")
    async def score(body: ScoreRequest) -> JSONResponse:
        _check_items(len(body.items), config)
        items: list[Item | ItemError] = []
        for item in body.items:
            try:
                items.append(Item(checked_path(item.video_path, state.video_root), item.prompt, item.fps)
                             if item.video_path is not None else frames_item(item.frames, item.prompt, item.fps, config))
            except ItemError as exc:
                items.append(exc)
        results = await state.score("/v1/score", items)
        return JSONResponse({"results": [_public(r, item.id) for r, item in zip(results, body.items)]})

    @app.post("/compute")
    async def compute(body: ComputeRequest) -> JSONResponse:
        _check_items(len(body.videos), config)
        fps = _fps_list(body.extra, len(body.videos))
        items: list[Item | ItemError] = []
        for frames, prompt, rate in zip(body.videos, body.prompts, fps):
            try:
                items.append(frames_item(frames, prompt, rate, config))
            except ItemError as exc:
                items.append(exc)
        results = await state.score("/compute", items)
        sentinel = state.sentinel(results)
        return JSONResponse({
            "rewards": [sentinel if isinstance(r, ItemError) else r["reward"] for r in results],
            "failed": [{"index": i, "error": r.message} for i, r in enumerate(results) if isinstance(r, ItemError)]})

    @app.post("/get_reward")
    async def get_reward(body: GetRewardRequest) -> JSONResponse:
        _check_items(len(body.query), config)
        prompts = body.prompts or [None] * len(body.query)
        items: list[Item | ItemError] = []
        for query, prompt in zip(body.query, prompts):
            try:
                items.append(Item(checked_path(query.strip(), state.video_root), prompt))
            except ItemError as exc:
                items.append(exc)
        results = await state.score("/get_reward", items)
        sentinel = state.sentinel(results)
        rewards = [sentinel if isinstance(r, ItemError) else r["reward"] for r in results]
        logs: dict[str, list[float]] = {"reward_failed": [float(isinstance(r, ItemError)) for r in results]}
        for name in state.folders:
            logs[f"score_norm/{name}"] = [sentinel if isinstance(r, ItemError) else r["scores"][name]["score_norm"]
                                          for r in results]
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": logs})

    app.add_middleware(Guard, state=state)
    return app


def _check_items(n: int, config: ServeConfig) -> None:
    if n > config.max_items:
        raise RequestRefused(413, f"the request has {n} videos; the limit is --max_items {config.max_items}")
