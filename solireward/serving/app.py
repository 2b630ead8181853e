"""The FastAPI application of `solireward serve`: the endpoints of the three protocols.

Endpoints (docs/SERVING.md): ``GET /health``, ``POST /v1/score``, ``POST /compute`` (Flow-Factory),
``POST /get_reward`` (OpenRLHF), ``GET /metrics`` (Prometheus), each also under ``/k/KEY/``. The models
load in a thread once the socket is bound, so ``/health`` answers 503 until they are ready. Every video
of a request is decoded, queued and scored on its own (:mod:`.batcher`): a bad video is an error of that
video alone, and a request none of whose videos could be scored is an error the caller's client raises on.
Split along its seams: :mod:`.guard` (key, body limit), :mod:`.body` (parsing without materialising
frames), :mod:`.state` (models, shared rules), :mod:`.frames` (in-memory videos), :mod:`.paths`, :mod:`.devices`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ValidationError

from solireward.serving.batcher import Item, ItemError
from solireward.serving.body import parse_body
from solireward.serving.chat import strip_chat_template
from solireward.serving.config import ServeConfig, fps_problem
from solireward.serving.frames import RequestRefused
from solireward.serving.guard import Guard, log_refusal
from solireward.serving.paths import checked_path, find_video
from solireward.serving.protocols import IGNORED_COMPUTE_FIELDS, ComputeRequest, GetRewardRequest, ScoreRequest
from solireward.serving.state import ServerState, request_failure

__all__ = ["ServerState", "create_app"]

logger = logging.getLogger("solireward.serve")


def _public(result: dict[str, Any] | ItemError, marker: Any = None) -> dict[str, Any]:
    head = {"id": marker} if marker is not None else {}
    if isinstance(result, ItemError):
        return {**head, "error": result.message, "kind": result.kind}
    return {**head, **result}


def _failed(results: list[dict[str, Any] | ItemError]) -> list[dict[str, Any]]:
    return [{"index": i, "error": r.message, "kind": r.kind} for i, r in enumerate(results) if isinstance(r, ItemError)]


def _fps_list(extra: dict[str, Any], n: int) -> list[float | None]:
    """``extra["fps"]``: absent, one frame rate (:func:`.config.fps_problem`), or one per video."""
    fps = extra.get("fps")
    values = fps if isinstance(fps, list) else [fps] * n
    if len(values) != n:
        raise RequestRefused(422, f"field 'extra.fps': expected one frame rate or a list of {n}, got {len(values)}")
    for i, value in enumerate(values):
        if value is not None and (problem := fps_problem(value)):
            where = f"extra.fps.{i}" if isinstance(fps, list) else "extra.fps"
            raise RequestRefused(422, f"field '{where}': {problem}")
    return [None if v is None else float(v) for v in values]


def _failure(status: int, message: str, results: list[dict[str, Any] | ItemError], error_field: str,
             path: str) -> JSONResponse:
    """A request that gets no rewards: logged once, `message` under `error_field` (and `failed`); a 503 says
    when to retry."""
    log_refusal(status, path, message)
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({error_field: message, "detail": message, "failed": _failed(results)}, status_code=status,
                        headers=headers)


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    """The body as `model` (:func:`.body.parse_body`: long frames stay bytes of the body), on the event loop.
    Errors go to the 400/422 handler."""
    chunks = [chunk async for chunk in request.stream() if chunk]
    # one chunk (what Guard replays) is used as is: request.body() would copy it, ~40 ms per real-size video
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    try:
        return parse_body(body, model)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None


def _check_items(n: int, config: ServeConfig) -> None:
    if n > config.max_items:
        raise RequestRefused(413, f"the request has {n} videos; the limit is --max_items {config.max_items}")


def create_app(config: ServeConfig, on_fatal: Callable[[], None] | None = None,
               state: ServerState | None = None) -> FastAPI:
    """The application; models load in a thread started when the server starts."""
    import contextlib

    state = state or ServerState(config, on_fatal)
    query_pattern = re.compile(config.query_pattern)
    templates_seen: set[str] = set()

    def _bare_prompt(prompt: str | None) -> str | None:
        """An OpenRLHF prompt without its chat template (:mod:`.chat`); each template is logged once."""
        if prompt is None:
            return None
        bare, template = strip_chat_template(prompt)
        if template is not None and template not in templates_seen:
            templates_seen.add(template)
            logger.info("/get_reward: prompts come in a %s chat template; the reward models read the last user "
                        "turn (logged once per template)", template)
        return bare

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
        log_refusal(exc.status, request.url.path, exc.detail)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ()) if part != "body"]
            if error.get("type") == "json_invalid":
                detail = f"request body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
                log_refusal(400, request.url.path, detail)
                return JSONResponse({"detail": detail}, 400)
            errors.append({"field": ".".join(location) or "body", "message": error.get("msg", "invalid")})
        detail = "; ".join(f"field '{e['field']}': {e['message']}" for e in errors[:5])
        log_refusal(422, request.url.path, detail)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.get("/health")
    async def health() -> JSONResponse:
        if not state.ready.is_set():
            body = {"status": "failed", "error": state.error} if state.error else {"status": "loading"}
            return JSONResponse(body, status_code=503)
        assert state.pool is not None
        pool = state.pool.status()
        if not pool["serving"]:
            return JSONResponse({"status": "unavailable", "error": "no decoding worker is ready (restarting after a "
                                                                   "worker died, see the log)", "pool": pool},
                                status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ok", **state.info, "pool": pool})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        pool = state.pool.status() if state.pool is not None else None
        return PlainTextResponse(state.metrics.render(state.in_flight, pool), media_type="text/plain; version=0.0.4")

    @app.post("/v1/score")
    async def score(request: Request) -> JSONResponse:
        body = await _parse(request, ScoreRequest)
        state.check_ready()
        _check_items(len(body.items), config)
        items: list[Item | ItemError] = []
        for i, item in enumerate(body.items):
            try:
                if item.video_path is not None:
                    items.append(Item(checked_path(item.video_path, state.video_root), item.prompt))
                else:
                    fps = state.frames_fps(item.fps, f"items.{i}.fps")
                    items.append(state.frames(item.frames, item.prompt, fps))
            except ItemError as exc:
                items.append(exc)
        results = await state.score("/v1/score", items)
        failure = request_failure(results)
        if failure is not None and failure[0] >= 500:
            return _failure(*failure, results, "detail", "/v1/score")
        return JSONResponse({"results": [_public(r, item.id) for r, item in zip(results, body.items)]})

    @app.post("/compute")
    async def compute(request: Request) -> JSONResponse:
        body = await _parse(request, ComputeRequest)
        state.check_ready()
        _check_items(len(body.videos), config)
        for field in IGNORED_COMPUTE_FIELDS:
            if getattr(body, field) is not None:
                state.metrics.ignored("/compute", field)
        fps = [state.frames_fps(rate, "extra.fps") for rate in _fps_list(body.extra, len(body.videos))]
        items: list[Item | ItemError] = []
        for frames, prompt, rate in zip(body.videos, body.prompts, fps):
            try:
                items.append(state.frames(frames, prompt, rate))
            except ItemError as exc:
                items.append(exc)
        results = await state.score("/compute", items)
        failure = request_failure(results)
        # Flow-Factory's client raises at once on 'error' in a 200 (the videos' own failures: a retry gives the
        # same) and retries an HTTP error twice more before it raises (the server's: a retry may succeed)
        if failure is not None and failure[0] >= 500:
            return _failure(*failure, results, "error", "/compute")
        if failure is not None:
            log_refusal(failure[0], "/compute", failure[1])
            return JSONResponse({"error": failure[1], "failed": _failed(results)})
        return JSONResponse({
            "rewards": [state.failed_reward if isinstance(r, ItemError) else r["reward"] for r in results],
            "failed": _failed(results)})

    @app.post("/get_reward")
    async def get_reward(request: Request) -> JSONResponse:
        body = await _parse(request, GetRewardRequest)
        state.check_ready()
        _check_items(len(body.query), config)
        prompts = [_bare_prompt(p) for p in body.prompts] if body.prompts else [None] * len(body.query)
        items: list[Item | ItemError] = []
        for query, prompt in zip(body.query, prompts):
            try:
                items.append(Item(find_video(query, state.video_root, query_pattern), prompt))
            except ItemError as exc:
                items.append(exc)
        results = await state.score("/get_reward", items)
        failure = request_failure(results)
        if failure is not None:
            return _failure(*failure, results, "detail", "/get_reward")
        rewards = [state.failed_reward if isinstance(r, ItemError) else r["reward"] for r in results]
        logs: dict[str, list[float]] = {"reward_failed": [float(isinstance(r, ItemError)) for r in results]}
        for name in state.folders:
            logs[f"score_norm/{name}"] = [state.floor_norm if isinstance(r, ItemError) else
                                          r["scores"][name]["score_norm"] for r in results]
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": logs})

    app.add_middleware(Guard, state=state)
    return app

