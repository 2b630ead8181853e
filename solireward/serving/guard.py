"""ASGI middleware in front of every endpoint: the API key (header or URL), the body limit, request metrics.

The key may travel in the URL the client is configured with (``http://HOST:PORT/k/KEY/compute``), for
clients that send no ``Authorization`` header (Flow-Factory's and OpenRLHF's); the prefix is removed
before routing, so ``/k/KEY/health`` is ``/health``. Neither form of the key reaches a log line, a
metric label or a response (uvicorn's access log is off: it would print the URL).
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Awaitable, Callable
from urllib.parse import unquote_to_bytes

from fastapi.responses import JSONResponse

ENDPOINTS = ("/health", "/v1/score", "/compute", "/get_reward", "/metrics")
KEY_PREFIX = "/k/"
_DRAIN_FACTOR = 8  # a refused body up to 8 x --max_body_mb is read and dropped; a bigger one is cut off


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

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        scope, url_key = _key_from_path(scope)
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status = {"code": 500}

        async def record(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            headers = dict(scope.get("headers") or [])
            if scope["path"] != "/health" and not self._authorised(headers.get(b"authorization", b""), url_key):
                await _reply(record, 401, "missing or wrong API key (send 'Authorization: Bearer KEY', or use "
                                          "the URL http://HOST:PORT/k/KEY/...)", {"WWW-Authenticate": "Bearer"})
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


