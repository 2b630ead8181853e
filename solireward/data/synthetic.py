"""`solireward demo-data`: a small synthetic video reward data set with known ground truth.

Each prompt names a colour, a shape and a motion ("a red ball falls to the ground"). Each video
shows one coloured shape over a plain background with a ground strip and is encoded as a real mp4
(yuv420p; lossless H.264, CRF 0, when PyAV has libx264, else MPEG-4 Part 2 at its finest
quantiser). Lossless coding makes the decoded frames exactly reproducible: libx264's lossy mode
was seen to produce different bitstreams for the same frames under heavy CPU load, even
single-threaded. Videos of one prompt mix defects:

* physics (Fail = ``teleport``: jumps a third of the frame between two frames; ``hover``: stops in
  mid-air, or a sliding object lifts off the ground and floats; ``anti_gravity``: moves up when it
  should come down, or a sliding object flies up). Pass: it moves as the prompt and gravity say
  (falls accelerate, bouncing loses height, a tossed object slows, stops and comes back, slides
  decelerate along the ground).
* deformity (Fail = ``morph``: turns into another shape; ``tear``: splits into two parts that drift
  apart; ``melt``: flattens and spreads into a puddle). Pass: shape and size stay the same.
* text alignment (Fail = ``wrong_colour``, ``wrong_shape`` or ``wrong_motion``: the video shows a
  clearly different colour, shape or motion from the start). Physics and deformity defects keep the
  prompt's colour, shape and kind of motion, so the three dimensions are independent.

Every deformation and physics defect starts between 25 % and 70 % of the clip and is at full size
by about 75 %, so it shows in the 8 frames that segment sampling takes.

Within a prompt each dimension gets ``floor(rate * videos_per_prompt + U)`` defects (U uniform in
[0, 1)), so the expected Fail rate is exactly the given rate and both classes occur under most
prompts. Defaults: physics and deformity Fail 0.37 each (phy_deform Pass ≈ 0.63² ≈ 0.40), text
alignment Fail 0.5.

Simulated annotators: annotator ``aNN`` flips each true Pass/Fail label with its own rate, drawn
uniformly from [annotator_noise_min, annotator_noise_max]. Pairwise choices (``a``, ``b`` or
``tie``, from the true phy_deform quality, equal qualities being a tie) are wrong with that rate
plus ``pairwise_noise_extra``; a wrong choice is one of the other two answers at random.

Nuisances and a planted shortcut (off by default; the default data set is unchanged by them): a
video may be rendered brighter (``--bright_share`` of each prompt's videos, gain ``--bright_gain``),
which leaves its ground truth as it is. With ``--shortcut_bias`` b > 0 the simulated annotators of
the prompts in the train split (the split `solireward pairs` makes with ``--shortcut_split`` and
``--shortcut_seed``) mark a bright video Pass on physics and deformity with probability b whatever
it shows (and prefer it so in pairwise choices), as biased real annotators can; val and test
labels stay unbiased. :func:`grid_specs` renders the over-optimisation grid of one prompt: every
defect kind x brightness x object size x background shade, each with its ground truth.

Everything is derived from ``--seed``: the same flags give byte-identical CSV files and identical
frames. The random state of prompt ``p`` depends only on (seed, p), so with the same seed and
``--videos_per_prompt`` a data set with fewer prompts holds the first prompts of a larger one.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from solireward.config import arg
from solireward.errors import ConfigError, InputError
from solireward.io import atomic_write, write_text

logger = logging.getLogger(__name__)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35), "green": (40, 200, 60), "blue": (45, 90, 235), "yellow": (240, 220, 40),
    "purple": (165, 55, 205), "orange": (250, 135, 25), "white": (240, 240, 240),
}
_SIMILAR_COLOURS = {frozenset(p) for p in (("red", "orange"), ("orange", "yellow"), ("blue", "purple"))}
SHAPES = ("ball", "square", "triangle", "cross")
MOTIONS: dict[str, str] = {
    "fall": "falls to the ground",
    "bounce": "bounces on the ground",
    "toss": "is thrown up and falls back down",
    "slide_left": "slides to the left",
    "slide_right": "slides to the right",
}
# a wrong motion must differ at a glance (a fall and a bounce start alike, so they never swap)
_WRONG_MOTIONS = {
    "fall": ("toss", "slide_left", "slide_right"),
    "bounce": ("toss", "slide_left", "slide_right"),
    "toss": ("fall", "slide_left", "slide_right"),
    "slide_left": ("slide_right", "fall", "toss"),
    "slide_right": ("slide_left", "fall", "toss"),
}
# a morph must change the outline clearly (a ball and a square differ only in their corners)
_MORPH_TARGETS = {"ball": ("triangle", "cross"), "square": ("triangle", "cross"),
                  "triangle": ("ball", "square", "cross"), "cross": ("ball", "square", "triangle")}
PHYSICS_DEFECTS = ("teleport", "hover", "anti_gravity")
DEFORMITY_DEFECTS = ("morph", "tear", "melt")
TEXT_DEFECTS = ("wrong_colour", "wrong_shape", "wrong_motion")
DIMENSIONS = ("physics", "deformity", "text_alignment")
_EXTENT = {"ball": 1.0, "square": 0.85, "triangle": 1.0, "cross": 1.0}  # half height / radius


@dataclasses.dataclass
class DemoDataConfig:
    """Options of `solireward demo-data`."""

    output_dir: str = arg("folder to write videos/, annotations.csv, pairwise_annotations.csv, "
                          "ground_truth.csv and README.md into")
    seed: int = arg("random seed; the same seed and flags give identical files", 0)
    num_prompts: int = arg(f"number of distinct prompts (at most {len(COLOURS) * len(SHAPES) * len(MOTIONS)})", 50)
    videos_per_prompt: int = arg("videos generated for each prompt", 8)
    num_frames: int = arg("frames per video", 16)
    size: int = arg("frame height and width in pixels (even, at least 32)", 64)
    fps: float = arg("frame rate stored in the mp4 files", 8.0)
    num_annotators: int = arg("simulated annotators labelling every video (a01, a02, ...)", 5)
    pairwise_per_prompt: int = arg("in-prompt video pairs given pairwise labels per prompt", 6)
    pairwise_annotators: int = arg("annotators labelling each pair (drawn from the pool)", 3)
    physics_defect_rate: float = arg("share of videos with a physics defect", 0.37)
    deformity_defect_rate: float = arg("share of videos with a deformity defect", 0.37)
    text_defect_rate: float = arg("share of videos that do not match their prompt", 0.5)
    annotator_noise_min: float = arg("lowest per-annotator rate of flipping a binary label", 0.08)
    annotator_noise_max: float = arg("highest per-annotator rate of flipping a binary label", 0.22)
    pairwise_noise_extra: float = arg("added to each annotator's flip rate for pairwise choices "
                                      "(pairwise labels are noisier, as in the paper)", 0.13)
    bright_share: float = arg("share of each prompt's videos rendered brighter (a nuisance: the ground "
                              "truth is unchanged); 0 renders none", 0.0)
    bright_gain: float = arg("brightness gain of those videos (pixel values times the gain, clipped)", 1.4)
    shortcut_bias: float = arg("planted shortcut: probability that an annotator marks a bright video of a "
                               "train-split prompt Pass on physics and deformity whatever it shows", 0.0)
    shortcut_split: list[float] = arg("train val test prompt fractions of the `solireward pairs` split the "
                                      "shortcut follows (give the study's pairs split)",
                                      default_factory=lambda: [0.8, 0.1, 0.1])
    shortcut_seed: int = arg("seed of that `solireward pairs` split", 0)
    progress: bool = arg("show a progress bar even when stderr is not a terminal", False)

    def __post_init__(self) -> None:
        max_prompts = len(COLOURS) * len(SHAPES) * len(MOTIONS)
        checks = [
            ("num_prompts", 1 <= self.num_prompts <= max_prompts, f"between 1 and {max_prompts}"),
            ("videos_per_prompt", self.videos_per_prompt >= 1, "at least 1"),
            ("num_frames", self.num_frames >= 8, "at least 8"),
            ("size", self.size >= 32 and self.size % 2 == 0, "even and at least 32"),
            ("fps", self.fps > 0, "positive"),
            ("num_annotators", 1 <= self.num_annotators <= 99, "between 1 and 99"),
            ("pairwise_per_prompt", self.pairwise_per_prompt >= 0, "0 or more"),
            ("pairwise_annotators", 1 <= self.pairwise_annotators <= self.num_annotators,
             "between 1 and num_annotators"),
            ("annotator_noise_max", 0 <= self.annotator_noise_min <= self.annotator_noise_max <= 0.5,
             "0 <= annotator_noise_min <= annotator_noise_max <= 0.5"),
            ("pairwise_noise_extra", 0 <= self.pairwise_noise_extra <= 0.5, "between 0 and 0.5"),
            ("bright_gain", self.bright_gain > 0, "positive"),
            ("shortcut_split", len(self.shortcut_split) == 3 and min(self.shortcut_split) >= 0
             and self.shortcut_split[0] > 0 and abs(sum(self.shortcut_split) - 1) < 1e-6,
             "three non-negative fractions summing to 1, train > 0"),
            ("shortcut_bias", self.shortcut_bias == 0 or self.bright_share > 0,
             "0 unless bright_share > 0 (the shortcut is brightness)"),
        ]
        checks += [(name, 0 <= getattr(self, name) <= 1, "between 0 and 1")
                   for name in ("physics_defect_rate", "deformity_defect_rate", "text_defect_rate",
                                "bright_share", "shortcut_bias")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", field=name)


@dataclasses.dataclass(frozen=True)
class VideoSpec:
    """What one demo video shows and its ground truth."""

    video_path: str  # relative to the output folder
    prompt: str
    colour: str  # as shown (differs from the prompt's only for wrong_colour)
    shape: str
    motion: str
    physics_defect: str | None
    deformity_defect: str | None
    text_defect: str | None
    morph_target: str | None
    seed: tuple[int, ...]  # entropy of the random state used to draw positions and timings
    # nuisances (the ground truth does not depend on them)
    brightness: float = 1.0  # gain on every pixel value (clipped at 255)
    scale: float = 1.0  # object size relative to the drawn radius
    background_shift: int = 0  # added to the background's grey level

    @property
    def nuisance(self) -> dict[str, float]:
        """The nuisance factors of the video (they leave its ground truth unchanged)."""
        return {"brightness": self.brightness, "scale": self.scale, "background_shift": self.background_shift}

    @property
    def labels(self) -> dict[str, int]:
        """1 (Pass) or 0 (Fail) per dimension."""
        return {"physics": int(self.physics_defect is None), "deformity": int(self.deformity_defect is None),
                "text_alignment": int(self.text_defect is None)}


def prompt_text(colour: str, shape: str, motion: str) -> str:
    """The prompt for a colour, shape and motion, e.g. 'a red ball falls to the ground'."""
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape} {MOTIONS[motion]}"


def parse_prompt(prompt: str) -> tuple[str, str, str]:
    """(colour, shape, motion) of a demo prompt; an InputError for any other text."""
    for combo in itertools.product(COLOURS, SHAPES, MOTIONS):
        if prompt_text(*combo) == prompt:
            return combo
    raise InputError(f"not a demo prompt ('a <colour> <shape> <motion>'): {prompt!r}", field="prompt")


def _defect_flags(rng: np.random.Generator, count: int, rate: float) -> np.ndarray:
    """`count` booleans with floor(rate*count + U) True values in random order."""
    flags = np.zeros(count, dtype=bool)
    flags[:min(count, int(math.floor(rate * count + rng.random())))] = True
    rng.shuffle(flags)
    return flags


def plan_videos(config: DemoDataConfig) -> list[list[VideoSpec]]:
    """The videos of every prompt (outer list: prompts), with defects assigned."""
    combos = list(itertools.product(COLOURS, SHAPES, MOTIONS))
    order = np.random.default_rng([config.seed, 0]).permutation(len(combos))
    plans = []
    for p in range(config.num_prompts):
        colour, shape, motion = combos[order[p]]
        prompt = prompt_text(colour, shape, motion)
        rng = np.random.default_rng([config.seed, 1, p])
        k = config.videos_per_prompt
        physics = _defect_flags(rng, k, config.physics_defect_rate)
        deformity = _defect_flags(rng, k, config.deformity_defect_rate)
        text = _defect_flags(rng, k, config.text_defect_rate)
        bright = (_defect_flags(np.random.default_rng([config.seed, 6, p]), k, config.bright_share)
                  if config.bright_share > 0 else np.zeros(k, dtype=bool))
        videos = []
        for v in range(k):
            text_defect = str(rng.choice(TEXT_DEFECTS)) if text[v] else None
            shown = _shown(rng, colour, shape, motion, text_defect)
            physics_defect = str(rng.choice(PHYSICS_DEFECTS)) if physics[v] else None
            deformity_defect = str(rng.choice(DEFORMITY_DEFECTS)) if deformity[v] else None
            morph_target = (str(rng.choice(_MORPH_TARGETS[shown["shape"]]))
                            if deformity_defect == "morph" else None)
            videos.append(VideoSpec(f"videos/p{p:03d}_v{v}.mp4", prompt, shown["colour"], shown["shape"],
                                    shown["motion"], physics_defect, deformity_defect, text_defect,
                                    morph_target, (config.seed, 2, p, v),
                                    brightness=config.bright_gain if bright[v] else 1.0))
        plans.append(videos)
    return plans


def _shown(rng: np.random.Generator, colour: str, shape: str, motion: str, defect: str | None) -> dict[str, str]:
    """What a video of the prompt (colour, shape, motion) shows: a text defect swaps one of them (drawn from
    `rng`, never a look-alike colour); any other defect kind, or None, shows the prompt."""
    shown = {"colour": colour, "shape": shape, "motion": motion}
    if defect == "wrong_colour":
        shown["colour"] = str(rng.choice([c for c in COLOURS if c != colour
                                          and frozenset((c, colour)) not in _SIMILAR_COLOURS]))
    elif defect == "wrong_shape":
        shown["shape"] = str(rng.choice([s for s in SHAPES if s != shape]))
    elif defect == "wrong_motion":
        shown["motion"] = str(rng.choice(_WRONG_MOTIONS[motion]))
    return shown


GRID_DEFECTS = ("none",) + PHYSICS_DEFECTS + DEFORMITY_DEFECTS + TEXT_DEFECTS


def grid_specs(prompt: str, defects: tuple[str, ...] = GRID_DEFECTS, brightness: tuple[float, ...] = (1.0, 1.4),
               scale: tuple[float, ...] = (1.0, 1.3), background_shift: tuple[int, ...] = (0, 60),
               seed: int = 0, prompt_index: int = 0) -> list[VideoSpec]:
    """One video of `prompt` per setting of defect kind x brightness x object size x background shade.

    A defect kind ("none" or one defect of a dimension) fixes the ground truth; the nuisance variants
    of one defect kind share their random state (position, timing, colours), so only the nuisance differs.
    """
    colour, shape, motion = parse_prompt(prompt)
    specs = []
    for defect in defects:
        if defect not in GRID_DEFECTS:
            raise InputError(f"unknown defect kind {defect!r} (expected one of {', '.join(GRID_DEFECTS)})",
                             field="defects")
        d = GRID_DEFECTS.index(defect)  # a defect kind draws the same video whichever others are in the grid
        rng = np.random.default_rng([seed, 7, prompt_index, d])
        shown = _shown(rng, colour, shape, motion, defect)
        morph_target = str(rng.choice(_MORPH_TARGETS[shape])) if defect == "morph" else None
        for gain, size, shift in itertools.product(brightness, scale, background_shift):
            name = f"p{prompt_index:03d}_{defect}_b{gain:g}_s{size:g}_g{shift}"
            specs.append(VideoSpec(
                f"grid/{name}.mp4", prompt, shown["colour"], shown["shape"], shown["motion"],
                defect if defect in PHYSICS_DEFECTS else None, defect if defect in DEFORMITY_DEFECTS else None,
                defect if defect in TEXT_DEFECTS else None, morph_target, (seed, 7, prompt_index, d),
                brightness=float(gain), scale=float(size), background_shift=int(shift)))
    return specs


# ----------------------------------------------------------------------------------------------
# Motion


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


def _trajectory(spec: VideoSpec, rng: np.random.Generator, size: int, num_frames: int, radius: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Centre positions (x, y) per frame: the shown motion, then the physics defect."""
    u = np.linspace(0.0, 1.0, num_frames)
    ground_top = size - size // 8
    y_rest = ground_top - _EXTENT[spec.shape] * radius
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


# ----------------------------------------------------------------------------------------------
# Shapes and rendering


def _sdf(shape: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (negative inside) of a shape of radius r centred at the origin."""
    ax, ay = np.abs(x), np.abs(y)
    if shape == "ball":
        return np.hypot(x, y) - r
    if shape == "square":
        return np.maximum(ax, ay) - 0.85 * r
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
        bottom = _EXTENT[spec.shape] * r
        return _sdf(spec.shape, x / sx, (y - bottom * (1 - sy)) / sy, r) * min(sx, sy)
    if defect == "tear":  # left and right halves pull apart and shear
        gap, shear = 1.6 * r * amount, 0.6 * r * amount
        xl, yl = x + gap / 2, y + shear / 2
        xr, yr = x - gap / 2, y - shear / 2
        return np.minimum(np.maximum(_sdf(spec.shape, xl, yl, r), xl),
                          np.maximum(_sdf(spec.shape, xr, yr, r), -xr))
    return _sdf(spec.shape, x, y, r)


def render_video(spec: VideoSpec, size: int = 64, num_frames: int = 16) -> np.ndarray:
    """The (num_frames, size, size, 3) uint8 frames of a demo video."""
    rng = np.random.default_rng(list(spec.seed))
    radius = size * rng.uniform(0.10, 0.13) * spec.scale
    background = np.clip(rng.integers(22, 58) + rng.integers(-8, 9, size=3) + spec.background_shift, 0, 255
                         ).astype(np.float32)
    ground = np.array([rng.integers(95, 130), rng.integers(80, 100), rng.integers(55, 75)], dtype=np.float32)
    xs, ys = _trajectory(spec, rng, size, num_frames, radius)
    onset = rng.uniform(0.25, 0.45)
    u = np.linspace(0.0, 1.0, num_frames)
    amounts = np.clip((u - onset) / 0.3, 0.0, 1.0) if spec.deformity_defect else np.zeros(num_frames)

    canvas = np.empty((size, size, 3), dtype=np.float32)
    canvas[:] = background
    canvas[size - size // 8:] = ground
    colour = np.array(COLOURS[spec.colour], dtype=np.float32)
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        field = _shape_field(spec, grid_x - xs[t], grid_y - ys[t], radius, float(amounts[t]))
        alpha = np.clip(0.5 - field, 0.0, 1.0)[..., None]
        image = canvas * (1 - alpha) + colour * alpha
        if spec.brightness != 1.0:
            image = np.clip(image * spec.brightness, 0, 255)
        frames[t] = np.round(image).astype(np.uint8)
    return frames


# ----------------------------------------------------------------------------------------------
# Annotators


def annotator_rates(config: DemoDataConfig) -> dict[str, float]:
    """Each simulated annotator's rate of flipping a binary label."""
    rng = np.random.default_rng([config.seed, 3])
    rates = rng.uniform(config.annotator_noise_min, config.annotator_noise_max, size=config.num_annotators)
    return {f"a{i + 1:02d}": float(rate) for i, rate in enumerate(rates)}


def shortcut_prompts(plans: list[list[VideoSpec]], config: DemoDataConfig) -> set[str]:
    """The prompts whose annotators are biased toward bright videos (the train split), or none."""
    if config.shortcut_bias == 0:
        return set()
    from solireward.data.pairing import split_prompts

    assignment = split_prompts([videos[0].prompt for videos in plans], list(config.shortcut_split),
                               config.shortcut_seed)
    return {prompt for prompt, split in assignment.items() if split == "train"}


def _shortcut(spec: VideoSpec, biased: set[str]) -> bool:
    """Whether the planted shortcut applies to this video (bright, of a biased prompt)."""
    return spec.brightness != 1.0 and spec.prompt in biased


def _binary_rows(plans: list[list[VideoSpec]], rates: dict[str, float], seed: int,
                 biased: set[str] = frozenset(), bias: float = 0.0) -> list[list[str]]:
    rows = []
    for p, videos in enumerate(plans):
        for v, spec in enumerate(videos):
            rng = np.random.default_rng([seed, 4, p, v])
            flips = rng.random((len(DIMENSIONS), len(rates))) < np.array(list(rates.values()))
            # the shortcut's draws come from their own stream, so the other labels stay as without it
            forced = (np.random.default_rng([seed, 8, p, v]).random((len(DIMENSIONS), len(rates))) < bias
                      if _shortcut(spec, biased) else np.zeros((len(DIMENSIONS), len(rates)), dtype=bool))
            for d, dim in enumerate(DIMENSIONS):
                truth = spec.labels[dim]
                for a, annotator in enumerate(rates):
                    label = truth ^ int(flips[d, a])
                    if dim in ("physics", "deformity") and forced[d, a]:
                        label = 1
                    rows.append([spec.video_path, spec.prompt, dim, "pass" if label else "fail", annotator])
    return rows


def _pairwise_rows(plans: list[list[VideoSpec]], rates: dict[str, float], config: DemoDataConfig,
                   biased: set[str] = frozenset()) -> list[list[str]]:
    rows = []
    names = list(rates)
    choices = ("a", "b", "tie")
    for p, videos in enumerate(plans):
        rng = np.random.default_rng([config.seed, 5, p])
        shortcut_rng = np.random.default_rng([config.seed, 9, p])
        pairs = list(itertools.combinations(range(len(videos)), 2))
        picked = rng.permutation(len(pairs))[:config.pairwise_per_prompt]
        for index in sorted(picked):
            i, j = pairs[index]
            if rng.random() < 0.5:
                i, j = j, i
            qa = videos[i].labels["physics"] * videos[i].labels["deformity"]
            qb = videos[j].labels["physics"] * videos[j].labels["deformity"]
            for annotator in sorted(rng.choice(names, size=config.pairwise_annotators, replace=False)):
                seen_a = 1 if _shortcut(videos[i], biased) and shortcut_rng.random() < config.shortcut_bias else qa
                seen_b = 1 if _shortcut(videos[j], biased) and shortcut_rng.random() < config.shortcut_bias else qb
                truth = "a" if seen_a > seen_b else "b" if seen_b > seen_a else "tie"
                choice = truth
                if rng.random() < min(rates[annotator] + config.pairwise_noise_extra, 0.9):
                    choice = str(rng.choice([c for c in choices if c != truth]))
                rows.append([videos[i].prompt, videos[i].video_path, videos[j].video_path, choice, str(annotator)])
    return rows


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with atomic_write(path, newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


# ----------------------------------------------------------------------------------------------
# The command


def generate_demo_data(config: DemoDataConfig) -> dict[str, Any]:
    """Write the demo data set into config.output_dir; return a summary of what was written."""
    from solireward.data.video import video_codec, write_video

    out = Path(config.output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    plans = plan_videos(config)
    specs = [spec for videos in plans for spec in videos]
    show = config.progress or sys.stderr.isatty()
    for spec in tqdm(specs, desc="demo videos", unit="video", disable=not show):
        frames = render_video(spec, config.size, config.num_frames)
        write_video(out / spec.video_path, frames, fps=config.fps, quality=0)

    rates = annotator_rates(config)
    biased = shortcut_prompts(plans, config)
    binary = _binary_rows(plans, rates, config.seed, biased, config.shortcut_bias)
    pairwise = _pairwise_rows(plans, rates, config, biased)
    _write_csv(out / "annotations.csv", ["video_path", "prompt", "dimension", "label", "annotator"], binary)
    _write_csv(out / "pairwise_annotations.csv", ["prompt", "video_a", "video_b", "choice", "annotator"],
               pairwise)
    truth_rows = []
    for spec in specs:
        labels = spec.labels
        truth_rows.append([spec.video_path, spec.prompt, labels["physics"], labels["deformity"],
                           labels["text_alignment"], labels["physics"] * labels["deformity"],
                           spec.physics_defect or "none", spec.deformity_defect or "none",
                           spec.text_defect or "none", spec.colour, spec.shape, spec.motion]
                          + ([spec.brightness] if config.bright_share > 0 else []))
    _write_csv(out / "ground_truth.csv",
               ["video_path", "prompt", "physics", "deformity", "text_alignment", "phy_deform",
                "physics_defect", "deformity_defect", "text_defect", "shown_colour", "shown_shape",
                "shown_motion"] + (["brightness"] if config.bright_share > 0 else []), truth_rows)

    truth = np.array([r[2:6] for r in truth_rows], dtype=float)
    summary = {
        "num_prompts": len(plans), "num_videos": len(specs), "codec": video_codec(),
        "pass_rate": {name: float(truth[:, i].mean()) for i, name in enumerate(DIMENSIONS + ("phy_deform",))},
        "annotator_flip_rates": rates, "binary_rows": len(binary), "pairwise_rows": len(pairwise),
        "shortcut_prompts": len(biased),
    }
    write_text(out / "README.md", _readme(config, summary))
    logger.info("wrote %d videos of %d prompts to %s; pass rates %s", len(specs), len(plans), out,
                ", ".join(f"{k} {v:.2f}" for k, v in summary["pass_rate"].items()))
    return summary


def _readme(config: DemoDataConfig, summary: dict[str, Any]) -> str:
    nuisance_on = config.bright_share > 0
    flags = " ".join(f"--{f.name} {_flag_value(getattr(config, f.name))}" for f in dataclasses.fields(config)
                     if f.name not in ("output_dir", "progress") and (nuisance_on or f.name not in _NUISANCE_FLAGS))
    rates = "\n".join(f"| {name} | {rate:.3f} | {min(rate + config.pairwise_noise_extra, 0.9):.3f} |"
                      for name, rate in summary["annotator_flip_rates"].items())
    passes = "\n".join(f"| {name} | {rate:.3f} |" for name, rate in summary["pass_rate"].items())
    return f"""# SoliReward synthetic demo data set

Generated by `solireward demo-data --output_dir <this folder> {flags}`
(the same command writes identical CSV files and identical video frames).

{summary['num_prompts']} prompts x {config.videos_per_prompt} videos = {summary['num_videos']} videos of
{config.num_frames} frames, {config.size}x{config.size} pixels, {config.fps:g} fps, encoded with
{summary['codec']} (yuv420p{', lossless' if summary['codec'] == 'libx264' else ''}) in `videos/`. Each prompt names a colour, a shape and a motion
(colours: {', '.join(COLOURS)}; shapes: {', '.join(SHAPES)}; motions: {', '.join(MOTIONS.values())}).
Every video shows one coloured shape over a plain background with a ground strip.

## Ground truth (`ground_truth.csv`)

One row per video: `video_path` (relative to this folder), `prompt`, `physics`, `deformity`,
`text_alignment` and `phy_deform` (= physics AND deformity) as 1 (Pass) / 0 (Fail), the defect of
each dimension (`none` for a Pass) and what the video shows (`shown_colour`, `shown_shape`,
`shown_motion`).

- physics Fail: `teleport` (jumps a third of the frame between two frames), `hover` (stops in
  mid-air; a sliding object lifts off and floats), `anti_gravity` (moves up when it should come
  down; a sliding object flies up). Pass: it moves as the prompt and gravity say.
- deformity Fail: `morph` (turns into another shape), `tear` (splits into two parts that drift
  apart), `melt` (flattens into a puddle). Pass: shape and size stay the same.
- text_alignment Fail: `wrong_colour`, `wrong_shape` or `wrong_motion` from the first frame.

Defects start between 25 % and 70 % of the clip and are fully developed by about 75 %.
Target defect rates: physics {config.physics_defect_rate}, deformity {config.deformity_defect_rate},
text alignment {config.text_defect_rate}, each spread evenly over the prompts.

| dimension | Pass rate |
|---|---|
{passes}

## Simulated annotations

`annotations.csv` (single-item binary labels; {summary['binary_rows']} rows): `video_path`, `prompt`,
`dimension` (physics, deformity, text_alignment), `label` (pass/fail), `annotator`. Every one of the
{config.num_annotators} annotators labels every video; each flips the true label with its own rate.

`pairwise_annotations.csv` ({summary['pairwise_rows']} rows): `prompt`, `video_a`, `video_b`, `choice`
(a, b or tie: which video has better physics and deformity), `annotator`. {config.pairwise_per_prompt}
pairs per prompt, {config.pairwise_annotators} annotators per pair; the true choice follows phy_deform
(equal qualities are a tie) and a wrong choice is one of the other two at random.

| annotator | binary flip rate | pairwise error rate |
|---|---|---|
{rates}

Import the binary labels with `solireward labels --input annotations.csv ...`.
{_shortcut_readme(config, summary) if nuisance_on else ""}"""


_NUISANCE_FLAGS = ("bright_share", "bright_gain", "shortcut_bias", "shortcut_split", "shortcut_seed")


def _flag_value(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _shortcut_readme(config: DemoDataConfig, summary: dict[str, Any]) -> str:
    return f"""
## Nuisance and planted shortcut

{config.bright_share:g} of each prompt's videos are rendered with brightness gain {config.bright_gain:g}
(column `brightness` of `ground_truth.csv`; the ground truth does not depend on it). Planted shortcut:
in the {summary['shortcut_prompts']} prompts of the train split (`solireward pairs --split
{_flag_value(config.shortcut_split)} --seed {config.shortcut_seed}`), each annotator marks a bright video
Pass on physics and deformity with probability {config.shortcut_bias:g} whatever it shows, and judges
pairs as if so. The ground truth is never biased.
"""
