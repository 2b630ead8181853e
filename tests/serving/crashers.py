"""Encoders for the decoding pool's tests (importable by its forked workers): an item's prompt says what
the worker does with it."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np

from solireward.serving.batcher import Item, ItemError


class Scripted:
    """``crash``: the worker kills itself (SIGKILL) on it; ``sleep N``: holds it N seconds; ``bad``: its own
    ItemError; anything else: ``{"m": {"n": [len(prompt)]}}``."""

    def __call__(self, item: Item) -> dict[str, Any]:
        prompt = item.prompt or ""
        if prompt == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if prompt.startswith("sleep "):
            time.sleep(float(prompt.split()[1]))
        if prompt == "bad":
            raise ItemError("frames", "frame 0 is not valid base64")
        return {"m": {"n": np.array([len(prompt)])}}
