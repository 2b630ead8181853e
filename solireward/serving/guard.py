"""ASGI middleware in front of every endpoint: the API key (header or URL), the body limit, request metrics.

The key may travel in the URL the client is configured with (``http://HOST:PORT/k/KEY/compute``), for
clients that send no ``Authorization`` header (Flow-Factory's and OpenRLHF's); the prefix is removed
before routing, so ``/k/KEY/health`` is ``/health``. Neither form of the key reaches a log line, a
metric label or a response (uvicorn's access log is off: it would print the URL).
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any, Awaitable, Callable
from urllib.parse import unquote_to_bytes

from fastapi.responses import JSONResponse

logger = logging.getLogger("solireward.serve")

ENDPOINTS = ("/health", "/v1/score", "/compute", "/get_reward", "/metrics")
KEY_PREFIX = "/k/"
_DRAIN_FACTOR = 8  # a refused body up to 8 x --max_body_mb is read and dropped; a bigger one is cut off
REUSED_MIN_BYTES = 1 << 20  # a body of this size or more (with a Content-Length) goes into a kept buffer
KEPT_BUFFERS = 2


class BodyBuffers:
    """Buffers for large request bodies, kept for the next ones (on the event loop only): filling fresh
    memory costs the kernel's page faults, ~100 ms for a real-size Flow-Factory request of 142 MiB on 2
    cores against ~30 ms to refill a kept buffer (bench/bench_serve.py's payload)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._free: list[bytearray] = []

    def take(self) -> bytearray:
        """A kept buffer (its old bytes are overwritten, then cut to the new body's size), or a new empty one:
        memory grows only as a body arrives, never to what its Content-Length claims."""
        return self._free.pop() if self._free else bytearray()

    def give(self, buffer: bytearray) -> None:
        """Keep `buffer` for a later body, unless `keep` buffers are kept or a view of it is still alive."""
        if len(self._free) >= self.keep:
            return
        try:
            buffer.append(0)  # a bytearray with live memoryviews cannot resize: then it is not reused
        except BufferError:
            return
        buffer.pop()
        self._free.append(buffer)


def route(path: str) -> str:
    """The endpoint `path` names, or "other": what logs and metric labels show of a path (never a key in it)."""
    return path if path in ENDPOINTS else "other"


def log_refusal(status: int, path: str, reason: str) -> None:
    """Log a refused or failed request once, with its status, route and reason: the peers' clients do not
    show the server's reason (Flow-Factory's and OpenRLHF's print neither ``detail`` nor ``error``)."""
    (logger.error if status >= 500 else logger.warning)("refused %d %s: %s", status, route(path), reason)


def _key_from_path(scope: dict) -> tuple[dict, bytes | None]:
    """``/k/KEY/rest`` -> (the scope with path ``/rest``, KEY); other paths -> (the scope, None)."""
    path = scope["path"]
    if not path.startswith(KEY_PREFIX):
        return scope, None
    rest = path[len(KEY_PREFIX):].partition("/")[2]
    raw = scope.get("raw_path") or path.encode()
    raw_key, _, raw_rest = raw[len(KEY_PREFIX):].partition(b"/")
    return {**scope, "path": "/" + rest, "raw_path": b"/" + raw_rest}, unquote_to_bytes(raw_key)


class Guard:
    """ASGI middleware: request metrics (by known endpoint and status), the API key (401) on every endpoint
    but /health, and the request body limit (413), all checked before the body is parsed."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app, self.state = app, state
        self.buffers = BodyBuffers(KEPT_BUFFERS)

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        scope, url_key = _key_from_path(scope)
        endpoint = route(scope["path"])
        status = {"code": 500}

        async def record(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            headers = dict(scope.get("headers") or [])
            if scope["path"] != "/health" and not self._authorised(headers.get(b"authorization", b""), url_key):
                reason = ("missing or wrong API key (send 'Authorization: Bearer KEY', or use the URL "
                          "http://HOST:PORT/k/KEY/...)")
                sent = ("in the URL" if url_key is not None else "as a header" if b"authorization" in headers
                        else "none sent")
                log_refusal(401, endpoint, f"missing or wrong API key ({sent})")
                await _reply(record, 401, reason, {"WWW-Authenticate": "Bearer"})
                return
            limit = self.state.config.max_body_bytes
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                if int(declared) <= _DRAIN_FACTOR * limit:
                    await _discard(receive, _DRAIN_FACTOR * limit)
                await self._too_large(record, endpoint)
                return
            length = int(declared) if declared is not None and declared.isdigit() else 0
            buffer = self.buffers.take() if length >= REUSED_MIN_BYTES else None
            try:
                body = await self._read(receive, record, limit, buffer, endpoint)
                if body is None:
                    return
                replay = [{"type": "http.request", "body": body, "more_body": False}]

                async def replayed() -> dict:
                    return replay.pop() if replay else await receive()

                await self.app(scope, replayed, record)
            finally:
                if buffer is not None:
                    self.buffers.give(buffer)
        finally:
            self.state.metrics.request(endpoint, status["code"], time.monotonic() - started)

    async def _read(self, receive: Callable[[], Awaitable[dict]], send: Callable, limit: int,
                    buffer: bytearray | None, path: str) -> bytes | bytearray | None:
        """The whole body (written over `buffer` when given); None once answered 413 or the client is gone."""
        chunks, more, size = [], True, 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            if buffer is not None:
                buffer[size:size + len(chunk)] = chunk  # in place, or growing the buffer at its end
            else:
                chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > limit:
                if more:
                    await _discard(receive, _DRAIN_FACTOR * limit - size)
                await self._too_large(send, path)
                return None
        if buffer is None:
            return b"".join(chunks)
        del buffer[size:]
        return buffer

    def _authorised(self, header: bytes, url_key: bytes | None) -> bool:
        """The Bearer token or the key of the URL equals the API key (constant-time comparisons: their
        length may leak, the key's content does not); a wrong key in the URL fails even with a right header."""
        key = self.state.api_key
        if key is None:
            return True
        if url_key is not None:
            return hmac.compare_digest(url_key, key.encode())
        scheme, _, token = header.decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("latin-1"), key.encode())

    async def _too_large(self, send: Callable, path: str) -> None:
        reason = (f"request body exceeds --max_body_mb {self.state.config.max_body_mb:g} "
                  f"({self.state.config.max_body_bytes} bytes)")
        log_refusal(413, path, reason)
        await _reply(send, 413, reason, {"Connection": "close"})


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


