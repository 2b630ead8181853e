"""Where the demo object is in each frame: the prompt's motion under gravity, then its physics defect."""

from __future__ import annotations

import math

import numpy as np

from solireward.data.synthetic.plan import SHAPE_EXTENT, VideoSpec


def _ballistic(u: np.ndarray, y0: float, v0: float, accel: float, floor: float, restitution: float
               ) -> np.ndarray:
    """Height over time of a body under constant downward `accel` (image y grows downward),
    bouncing on `floor` with `restitution` (0: it stops there)."""
    segments, t0, y, v = [], 0.0, y0, v0
    while t0 < 1 and len(segments) < 20:
        tau = (-v + math.sqrt(max(v * v + 2 * accel * (floor - y), 0.0))) / accel
        segments.append((t0, t0 + tau, y, v))
        t0, y, v = t0 + tau, floor, -restitution * (v + accel * tau)
        if abs(v) < 1e-6:
            break
    ys = np.full_like(u, floor)
    for start, end, y_s, v_s in segments:
        sel = (u >= start) & (u < end)
        tau = u[sel] - start
        ys[sel] = y_s + v_s * tau + 0.5 * accel * tau ** 2
    return ys


def trajectory(spec: VideoSpec, rng: np.random.Generator, size: int, num_frames: int, radius: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Centre positions (x, y) per frame: the shown motion, then the physics defect."""
    u = np.linspace(0.0, 1.0, num_frames)
    ground_top = size - size // 8
    y_rest = ground_top - SHAPE_EXTENT[spec.shape] * radius
    top = radius + 1.0
    margin = radius + 1.0
    vertical = spec.motion in ("fall", "bounce", "toss")
    if vertical:
        xs = np.full(num_frames, rng.uniform(0.3 * size, 0.7 * size))
        if spec.motion == "toss":
            apex = y_rest - rng.uniform(0.45, 0.6) * (y_rest - top)
            t_apex = rng.uniform(0.38, 0.46)
            accel = 2 * (y_rest - apex) / t_apex ** 2
            ys = _ballistic(u, y_rest, -accel * t_apex, accel, y_rest, 0.0)
        else:
            y0 = rng.uniform(top, top + 0.1 * size)
            t_hit = rng.uniform(0.55, 0.75) if spec.motion == "fall" else rng.uniform(0.35, 0.45)
            restitution = 0.0 if spec.motion == "fall" else rng.uniform(0.5, 0.65)
            ys = _ballistic(u, y0, 0.0, 2 * (y_rest - y0) / t_hit ** 2, y_rest, restitution)
    else:
        direction = 1.0 if spec.motion == "slide_right" else -1.0
        distance = min(rng.uniform(0.45, 0.55) * size, size - 2 * margin)
        start = margin + rng.uniform(0, size - 2 * margin - distance)
        xs = start + distance * (2 * u - u ** 2)  # decelerates to rest at the end
        if direction < 0:
            xs = size - xs
        ys = np.full(num_frames, y_rest)

    defect = spec.physics_defect
    if defect is None:
        return xs, ys
    last = num_frames - 1
    lo, hi = round(0.3 * last), round(0.6 * last)
    if defect == "teleport":  # jumps a third of the frame sideways (a sliding object: backwards)
        jump = size / 3
        if vertical:
            t = int(rng.integers(max(lo, 1), hi + 1))
            xs[t:] += jump if xs[t] < size / 2 else -jump
        else:  # the first frames from which a backward jump stays inside the frame
            room = [t for t in range(lo, round(0.7 * last) + 1) if margin <= xs[t] - direction * jump <= size - margin]
            t = int(rng.choice(room[:3])) if room else round(0.7 * last)
            xs[t:] -= direction * jump
        return np.clip(xs, margin, size - margin), ys
    if vertical:  # stop or turn upwards while clearly in the air (a quarter frame above the ground)
        airborne = [t for t in range(lo, hi + 1) if ys[t] <= y_rest - size / 4]
        t = int(rng.choice(airborne)) if airborne else int(np.argmin(ys))
    else:
        t = int(rng.integers(lo, hi + 1))
    after = np.arange(num_frames) >= t
    if defect == "hover":
        if vertical:
            ys[after] = ys[t]
        else:  # lifts off the ground by a third of the frame within two frames and floats
            ys = ys - (size / 3) * np.clip((np.arange(num_frames) - t) / 2, 0, 1)
    elif defect == "anti_gravity":  # accelerates upwards to the top of the frame and stays there
        rise = (ys[t] - top) * ((u - u[t]) / max(1 - u[t], 1e-6)) ** 2 * 1.6
        ys = np.where(after, np.maximum(ys[t] - rise, top), ys)
    return xs, ys
