"""Preemption: SIGTERM and SIGUSR1 (what SLURM sends at a time limit, on preemption or as the ``--signal``
warning) are recorded, not obeyed at once, so the trainer can finish its step and checkpoint it."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

logger = logging.getLogger(__name__)

EXIT_PREEMPTED = 75
"""Exit status of `solireward train` stopped by SIGTERM/SIGUSR1 after writing a checkpoint (EX_TEMPFAIL)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """While entered, SIGTERM and SIGUSR1 only record their arrival (`received`); the previous handlers
    come back on exit. Outside the main thread (where Python cannot set handlers) it does nothing."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            logger.warning("%s received: stopping after this step with a checkpoint",
                           signal.Signals(signum).name)
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
