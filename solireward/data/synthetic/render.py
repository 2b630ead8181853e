"""The frames of a demo video: shapes as distance fields, deformed, drawn along the trajectory."""

from __future__ import annotations

import numpy as np

from solireward.data.frame_edits import grain, letterbox, saturate, tint, vignette
from solireward.data.synthetic.motion import trajectory
from solireward.data.synthetic.plan import COLOURS, SHAPE_EXTENT, VideoSpec


def _sdf(shape: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (negative inside) of a shape of radius r centred at the origin."""
    ax, ay = np.abs(x), np.abs(y)
    if shape == "ball":
        return np.hypot(x, y) - r
    if shape == "square":
        return np.maximum(ax, ay) - SHAPE_EXTENT["square"] * r
    if shape == "triangle":  # apex up at -r, base at +r
        return np.maximum(y - r, (ax - (y + r) / 2) / 1.118)
    if shape == "cross":
        return np.minimum(np.maximum(ax - r, ay - 0.38 * r), np.maximum(ax - 0.38 * r, ay - r))
    raise ValueError(f"unknown shape {shape!r}")


def _shape_field(spec: VideoSpec, x: np.ndarray, y: np.ndarray, r: float, amount: float) -> np.ndarray:
    """The shape's distance field at relative coordinates, deformed by `amount` in [0, 1]."""
    defect = spec.deformity_defect if amount > 0 else None
    if defect == "morph":
        return (1 - amount) * _sdf(spec.shape, x, y, r) + amount * _sdf(spec.morph_target, x, y, r)
    if defect == "melt":  # flattens to a puddle that keeps its bottom edge
        sx, sy = 1 + 1.0 * amount, 1 - 0.7 * amount
        bottom = SHAPE_EXTENT[spec.shape] * r
        return _sdf(spec.shape, x / sx, (y - bottom * (1 - sy)) / sy, r) * min(sx, sy)
    if defect == "tear":  # left and right halves pull apart and shear
        gap, shear = 1.6 * r * amount, 0.6 * r * amount
        xl, yl = x + gap / 2, y + shear / 2
        xr, yr = x - gap / 2, y - shear / 2
        return np.minimum(np.maximum(_sdf(spec.shape, xl, yl, r), xl),
                          np.maximum(_sdf(spec.shape, xr, yr, r), -xr))
    return _sdf(spec.shape, x, y, r)


def _overlay(size: int, width_share: float) -> tuple[np.ndarray, np.ndarray]:
    """A static caption box in the top-left corner: its mask (size, size) and its pixels (size, size, 3),
    a light box with two dark text lines."""
    width = max(4, round(size * width_share))
    height = max(4, round(width * 0.4))
    margin = size // 16
    mask = np.zeros((size, size), dtype=bool)
    mask[margin:margin + height, margin:margin + width] = True
    pixels = np.full((size, size, 3), 225, dtype=np.uint8)
    line = max(1, height // 5)
    for top in (margin + line, margin + 3 * line):
        pixels[top:top + line, margin + line:margin + width - line] = 40
    return mask, pixels


def render_video(spec: VideoSpec, size: int = 64, num_frames: int = 16) -> np.ndarray:
    """The (num_frames, size, size, 3) uint8 frames of a demo video."""
    rng = np.random.default_rng(list(spec.seed))
    radius = size * rng.uniform(0.10, 0.13) * spec.scale
    background = np.clip(rng.integers(22, 58) + rng.integers(-8, 9, size=3) + spec.background_shift, 0, 255
                         ).astype(np.float32)
    ground = np.array([rng.integers(95, 130), rng.integers(80, 100), rng.integers(55, 75)], dtype=np.float32)
    xs, ys = trajectory(spec, rng, size, num_frames, radius)
    onset = rng.uniform(0.25, 0.45)
    u = np.linspace(0.0, 1.0, num_frames)
    amounts = np.clip((u - onset) / 0.3, 0.0, 1.0) if spec.deformity_defect else np.zeros(num_frames)

    canvas = np.empty((size, size, 3), dtype=np.float32)
    canvas[:] = background
    canvas[size - size // 8:] = ground
    colour = np.array(COLOURS[spec.colour], dtype=np.float32)
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    overlay = _overlay(size, spec.overlay) if spec.overlay else None
    for t in range(num_frames):
        field = _shape_field(spec, grid_x - xs[t], grid_y - ys[t], radius, float(amounts[t]))
        alpha = np.clip(0.5 - field, 0.0, 1.0)[..., None]
        image = canvas * (1 - alpha) + colour * alpha
        if spec.brightness != 1.0:
            image = np.clip(image * spec.brightness, 0, 255)
        if spec.tint:
            image = np.clip(tint(image, spec.tint), 0, 255)
        if spec.saturation != 1.0:
            image = np.clip(saturate(image, spec.saturation), 0, 255)
        if spec.vignette:
            image = vignette(image, spec.vignette)
        if spec.grain:  # its own random state, so the video's other draws stay as they are
            image = np.clip(grain(image, spec.grain, np.random.default_rng([*spec.seed, 17, t])), 0, 255)
        frames[t] = np.round(image).astype(np.uint8)
        if overlay is not None:
            frames[t][overlay[0]] = overlay[1][overlay[0]]
    return letterbox(frames, spec.letterbox) if spec.letterbox else frames
