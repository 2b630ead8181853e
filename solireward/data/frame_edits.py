"""Edits of a clip's frames that a reward should ignore: zoom, pan, a letterbox, contrast, shade, a colour cast,
vivid colours, a vignette, sensor grain and a static overlay.

One implementation of each, used by the stress probe (:mod:`solireward.hacking.perturbations`, fixed
amounts), by training's nuisance twins (:mod:`solireward.training.augment`, random amounts) and by the demo
generator's colour-cast, saturation, vignette, grain and letterbox cues. Frames are (..., 3) arrays, clips
(T, H, W, 3); the geometric edits take and return uint8, the photometric ones (:func:`contrast`, :func:`shade`,
:func:`tint`, :func:`saturate`, :func:`vignette`, :func:`grain`) return
float32 for the caller to chain and round with :func:`to_uint8`.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""RGB -> luma weights (ITU-R BT.601, the Y row of YIQ)."""


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Frames rounded and clipped to 0..255."""
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def zoom(frames: np.ndarray, factor: float) -> np.ndarray:
    """Objects `factor` times as large: a centre crop of 1/`factor` of each side resized back (bilinear), or below
    1 the whole picture shrunk to `factor` of each side on a black frame (:func:`letterbox`)."""
    from PIL import Image

    if factor < 1:
        return letterbox(frames, factor)

    height, width = frames.shape[1:3]
    h, w = max(1, round(height / factor)), max(1, round(width / factor))
    top, left = (height - h) // 2, (width - w) // 2
    return np.stack([np.asarray(Image.fromarray(f).crop((left, top, left + w, top + h))
                                .resize((width, height), Image.BILINEAR).convert("RGB")) for f in frames])


def pan(frames: np.ndarray, down: float, right: float) -> np.ndarray:
    """The picture moved down and right by these shares of the frame (negative: up, left); the uncovered
    border repeats the edge."""
    height, width = frames.shape[1:3]
    dy, dx = round(down * height), round(right * width)
    padded = np.pad(frames, ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0)), mode="edge")
    top, left = max(-dy, 0), max(-dx, 0)
    return np.ascontiguousarray(padded[:, top:top + height, left:left + width])


LETTERBOX_SCALE = 0.75
"""The picture's share of each side in the stress probe's letterbox and the demo's letterbox cue by default."""


def letterbox(frames: np.ndarray, scale: float) -> np.ndarray:
    """The picture shrunk to `scale` of each side (bilinear), centred on a black frame."""
    from PIL import Image

    height, width = frames.shape[1:3]
    h, w = max(1, round(scale * height)), max(1, round(scale * width))
    top, left = (height - h) // 2, (width - w) // 2
    out = np.zeros_like(frames)
    out[:, top:top + h, left:left + w] = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)
                                                              .convert("RGB")) for f in frames])
    return out


def contrast(frames: np.ndarray, factor: float, per_frame: bool = True) -> np.ndarray:
    """Contrast times `factor` about the mean luma of each frame (`per_frame`) or of the whole clip (float32)."""
    rgb = frames.astype(np.float32)
    luma = rgb @ LUMA
    mean = luma.mean(axis=(1, 2))[:, None, None, None] if per_frame else luma.mean()
    return mean + factor * (rgb - mean)


def shade(frames: np.ndarray, offset: float) -> np.ndarray:
    """Every pixel `offset` grey levels lighter (negative: darker), as a global shade change (float32)."""
    return frames.astype(np.float32) + np.float32(offset)


WARM_CAST = 0.25
"""The strength of the stress probe's colour cast and of the demo's tint cue by default (:func:`tint`)."""


def tint(frames: np.ndarray, strength: float) -> np.ndarray:
    """A warm colour cast, as from a white balance set too low: red times 1 + `strength`, blue times
    1 - `strength`, green as it is (float32; negative `strength`: a cold cast)."""
    return frames.astype(np.float32) * np.array([1 + strength, 1.0, 1 - strength], dtype=np.float32)


VIVID = 1.6
"""The saturation factor of the stress probe's saturation and of the demo's saturation cue by default."""


def saturate(frames: np.ndarray, factor: float) -> np.ndarray:
    """Colours `factor` times as saturated: each pixel's distance from its own grey (its luma) times `factor`
    (float32; below 1: paler)."""
    rgb = frames.astype(np.float32)
    grey = (rgb @ LUMA)[..., None]
    return grey + np.float32(factor) * (rgb - grey)


VIGNETTE = 0.8
"""The strength of the stress probe's vignette and of the demo's vignette cue by default (:func:`vignette`)."""


def vignette(frames: np.ndarray, strength: float) -> np.ndarray:
    """A lens vignette: each pixel times 1 - `strength` (r / R)^2, r its distance from the centre and R the
    half-diagonal, so the corners are darkest (float32)."""
    height, width = frames.shape[-3:-1]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((y + 0.5 - height / 2) ** 2 + (x + 0.5 - width / 2) ** 2) / ((height / 2) ** 2 + (width / 2) ** 2)
    return frames.astype(np.float32) * (1 - np.float32(strength) * r2)[..., None]


GRAIN_SIGMA = 12.0
"""The grey levels of the stress probe's sensor grain and of the demo's grain cue by default (:func:`grain`)."""


def grain(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Sensor grain: independent Gaussian noise of `sigma` grey levels on every pixel and channel (float32)."""
    return frames.astype(np.float32) + rng.normal(0.0, sigma, frames.shape).astype(np.float32)


def overlay(frames: np.ndarray) -> np.ndarray:
    """A static dark caption box with light "words" across the bottom and a logo (a white square with a red
    mark) in the top-right corner, on every frame."""
    out = frames.astype(np.float32)
    height, width = out.shape[1:3]
    top, left, right = round(0.82 * height), round(0.08 * width), round(0.92 * width)
    out[:, top:height - max(1, round(0.04 * height)), left:right] *= 0.3
    rows = slice(top + max(1, round(0.04 * height)), top + max(2, round(0.08 * height)))
    for start in range(left + 2, right - 2, max(4, width // 12)):
        out[:, rows, start:start + max(2, width // 18)] = 235.0
    side = max(3, round(0.14 * min(height, width)))
    y, x = max(1, round(0.04 * height)), width - side - max(1, round(0.04 * width))
    out[:, y:y + side, x:x + side] = 245.0
    inner = max(1, side // 3)
    out[:, y + inner:y + side - inner, x + inner:x + side - inner] = np.array([220.0, 30.0, 40.0])
    return to_uint8(out)
