"""The RL trainers' reward clients as they behave, rewritten for the tests from reading their public code
(docs/SERVING.md names the versions): what they send, which headers, how often they retry, what they
raise on. Nothing here is configurable beyond what the peers' own configuration offers.

* Flow-Factory, ``src/flow_factory/rewards/my_reward_remote.py`` at a0b2bc5 (``RemoteRewardClient``).
* OpenRLHF v0.9.0, ``openrlhf/utils/remote_rm_utils.py`` (``request_api_wrapper``; v0.11.0 sends the same
  body from ``openrlhf/utils/agent.py`` with aiohttp and the same five tries).
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any, Sequence

import numpy as np
import requests


def png_b64(frame: np.ndarray) -> str:
    """A frame as Flow-Factory's client sends it: a PIL image saved as PNG, base64 without a data: prefix."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class FlowFactoryClient:
    """Flow-Factory's remote reward client: ``server_url`` is the only setting that names the server."""

    def __init__(self, server_url: str, timeout: float = 60.0, retries: int = 3) -> None:
        self.url, self.timeout, self.retries = server_url.rstrip("/"), timeout, retries
        self.session = requests.Session()
        self.posts = 0

    def health_check(self) -> bool:
        """GET /health (5 s); the trainer refuses to start unless it answers 2xx."""
        try:
            return self.session.get(f"{self.url}/health", timeout=5.0).ok
        except requests.RequestException:
            return False

    def compute(self, prompt: Sequence[str], video: Sequence[Sequence[np.ndarray]] | None = None,
                condition_images: Sequence[Sequence[np.ndarray]] | None = None) -> list[float]:
        """POST /compute with every input key (unused ones null, no ``extra``); an HTTP error or a dropped
        connection is retried up to `retries` tries in all, then RuntimeError; a 2xx answer with a truthy
        ``error`` raises RuntimeError at once; otherwise ``rewards`` is returned as is."""
        payload = {"prompt": list(prompt), "image": None,
                   "video": [[png_b64(f) for f in v] for v in video] if video else None,
                   "condition_images": [[png_b64(i) for i in imgs] for imgs in condition_images]
                   if condition_images else None,
                   "condition_videos": None}
        for attempt in range(self.retries):
            try:
                self.posts += 1
                response = self.session.post(f"{self.url}/compute", json=payload, timeout=self.timeout)
                response.raise_for_status()
                data = response.json()
                if data.get("error"):
                    raise RuntimeError(f"Server error: {data['error']}")
                return data["rewards"]
            except requests.RequestException as exc:
                if attempt == self.retries - 1:
                    raise RuntimeError(f"Failed to connect to {self.url}: {exc}") from exc
        raise AssertionError("unreachable")


def openrlhf_request(url: str, data: dict[str, Any], tries: int = 5, pause_s: float = 1.0) -> dict[str, Any]:
    """OpenRLHF's request wrapper: POST `data` as JSON (only a Content-Type header, 180 s timeout), retried
    after any error, `tries` times in all with a pause after each failure, then an Exception. The tests
    shorten the pause (OpenRLHF waits 1 s); nothing else differs."""
    for _ in range(tries):
        try:
            response = requests.post(url=url, json=data, headers={"Content-Type": "application/json"}, timeout=180)
            response.raise_for_status()
            return response.json()
        except Exception:  # noqa: BLE001 - OpenRLHF logs any error and tries again
            pass
        time.sleep(pause_s)
    raise Exception(f"Request error for {tries} times")  # noqa: TRY002 - the type OpenRLHF raises


def openrlhf_query(prompt: str, response: str) -> str:
    """An OpenRLHF ``query``: prompt and response tokens decoded together, special tokens kept (Qwen chat)."""
    return (f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n"
            f"<|im_start|>assistant\n{response}<|im_end|>")
