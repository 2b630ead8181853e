"""Frame-sampling overrides: the one place where given frame settings are checked and applied.

``train`` (settings given for a new or continued model), ``infer`` (``--num_frames``, ``--fps``,
``--height`` ... over the checkpoint's settings) and any other caller split the frame-sampling keys
off their options with :func:`split_overrides`, then apply them to the stored settings with
:func:`apply_overrides`, which warns about each changed setting when asked to (reward models are
known to be gamed through fps, frame count and resolution).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

from solireward.config import build_dataclass
from solireward.data.video import FrameSampling

logger = logging.getLogger(__name__)

SAMPLING_KEYS = frozenset(f.name for f in dataclasses.fields(FrameSampling))


def split_overrides(values: Mapping[str, Any], source: str = "command line") -> tuple[dict[str, Any], dict[str, Any]]:
    """(the frame-sampling keys of `values`, type-checked and converted; the other keys as given)."""
    given = {k: v for k, v in values.items() if k in SAMPLING_KEYS}
    rest = {k: v for k, v in values.items() if k not in SAMPLING_KEYS}
    if given:  # names and types checked now, naming their source, not after a model has loaded
        checked = build_dataclass(FrameSampling, given, source)
        given = {k: getattr(checked, k) for k in given}
    return given, rest


def apply_overrides(stored: Mapping[str, Any] | None, overrides: Mapping[str, Any], source: str = "command line",
                    warn: bool = False) -> FrameSampling:
    """`stored` settings (None: the defaults) with `overrides` applied; with `warn`, a warning per changed setting."""
    base = FrameSampling.from_dict(dict(stored or {}))
    if not overrides:
        return base
    sampling = build_dataclass(FrameSampling, {**base.to_dict(), **overrides}, source)
    before, after = base.to_dict(), sampling.to_dict()
    for key in (k for k, v in after.items() if before.get(k) != v) if warn else ():
        logger.warning("frame setting %s=%r differs from the value stored at training time (%r): "
                       "reward models are known to be gamed through fps, frame count and resolution, "
                       "so these scores may not be comparable with the training-time behaviour",
                       key, after[key], before[key])
    return sampling
