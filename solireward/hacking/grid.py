"""The generator-settings grid of `solireward overopt`, rendered once per study (`solireward overopt-grid`).

For each held-out prompt (the distinct prompts of a record file, e.g. the test split; all of them by
default), the demo generator renders one video per setting of a finite grid: defect kind x nuisance values
(one axis per plantable cue: brightness, object size, background shade, a caption box, a colour cast, grain, a
letterbox, vivid colours, a vignette; :func:`solireward.data.synthetic.grid_specs`).
The defect kind fixes the ground truth; the nuisances leave it unchanged.

**Design.** Each (prompt, defect kind) gets ``--settings_per_defect`` k combinations of the nuisance values (all
of them with ``--settings_per_defect 0``; k is capped at the least common multiple of the axes' numbers of
values, beyond which combinations would repeat): combination j takes, on each nuisance axis a with L_a values,
value number (o_a + j) mod L_a. Where the axes have no more combinations of value numbers than a prompt has
kinds, the offsets o run through every one of them in turn over the kinds, in an order shuffled per prompt
(seeded); where they have more (four axes of two values or more against 10 kinds), each kind takes a distinct
one drawn at random per prompt (seeded): running through them in turn would give every kind the same offsets on
the first axes, and those axes would then take their values together in every video (brightness, size and
background shade did, in the seven-axis grids before this was mended). Within a kind with k = L_a each value of
axis a appears once, so no nuisance says anything about the ground truth; and which kind sees which combination
of nuisance values changes from prompt to prompt, so a preference for one axis is not mistaken, on average over
prompts, for one for another. With the default 2 and two values per axis every axis stays in the grid at 2
settings per defect kind: 20 per prompt for the 10 kinds, against 80 for the full cross product. The defect kind
of each column is the same for every prompt; its nuisance values are not.

A grid folder holds ``grid.json`` (the prompts, the settings, each video's labels, and how it was
rendered) and ``prompt-NNN.npz`` (the ``(settings, frames, size, size, 3)`` uint8 frames of prompt
NNN, compressed without loss: scores equal those of frames rendered in memory, and the file is
smaller and faster to read than the same videos as mp4). It is written atomically, so a folder with
``grid.json`` is complete. Each model scores the same frames (`overopt --grid_dir`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from solireward.config import arg
from solireward.data.pairing import TASK_DIMENSIONS
from solireward.data.synthetic import GRID_AXES, GRID_DEFECTS, grid_specs, render_video
from solireward.data.synthetic.plan import CUES
from solireward.errors import ConfigError, InputError
from solireward.io import atomic_dir, read_json, read_records

GRID_FILE = "grid.json"
GRID_VERSION = 2
NUISANCE_AXES = tuple(cue.name for cue in CUES)
"""The grid's nuisance axes, one per plantable cue: options of :class:`GridOptions` and keys of its settings."""


@dataclasses.dataclass
class GridOptions:
    """The grid's prompts, settings and rendering."""

    num_prompts: int | None = arg("held-out prompts optimised, evenly spaced among the file's distinct prompts "
                                  "(default: every one)", None)
    defects: list[str] = arg("defect kinds of the grid ('none' and defects of each dimension)",
                             default_factory=lambda: list(GRID_DEFECTS))
    brightness: list[float] = arg("brightness gains of the grid (a nuisance)",
                                  default_factory=lambda: list(GRID_AXES["brightness"]))
    scale: list[float] = arg("object sizes of the grid, relative (a nuisance)",
                             default_factory=lambda: list(GRID_AXES["scale"]))
    background_shift: list[int] = arg("background shades of the grid, added grey levels (a nuisance)",
                                      default_factory=lambda: list(GRID_AXES["background_shift"]))
    overlay: list[float] = arg("widths of a static caption box in the top-left corner, shares of the frame width (a "
                               "nuisance, the demo's overlay cue); 0: none", default_factory=lambda: [0.0])
    tint: list[float] = arg("strengths of a warm colour cast (red x(1 + s), blue x(1 - s); a nuisance, the demo's "
                            "tint cue); 0: none", default_factory=lambda: [0.0])
    grain: list[float] = arg("grey levels of sensor grain (a nuisance, the demo's grain cue); 0: none",
                             default_factory=lambda: [0.0])
    letterbox: list[float] = arg("the picture's share of each side inside a black frame (a nuisance, the demo's "
                                 "letterbox cue); 0: none", default_factory=lambda: [0.0])
    saturation: list[float] = arg("saturation factors: colours this many times as saturated (a nuisance, the demo's "
                                  "saturation cue); 1: as drawn", default_factory=lambda: [1.0])
    vignette: list[float] = arg("strengths of a lens vignette, how much darker the corners get (a nuisance, the "
                                "demo's vignette cue); 0: none", default_factory=lambda: [0.0])
    settings_per_defect: int = arg("nuisance combinations per defect kind, a balanced fraction of the cross product "
                                   "of the nuisance values, at most the least common multiple of their numbers of "
                                   "values, beyond which combinations would repeat (0: all of the product)", 2)
    size: int = arg("frame height and width of the rendered videos (the demo data's)", 64)
    num_frames: int = arg("frames per rendered video (the demo data's)", 16)
    fps: float = arg("frame rate of the rendered videos (the demo data's)", 8.0)

    def __post_init__(self) -> None:
        checks = [("num_prompts", self.num_prompts is None or self.num_prompts >= 1, "at least 1"),
                  ("brightness", bool(self.brightness) and min(self.brightness) > 0, "positive gains"),
                  ("scale", bool(self.scale) and min(self.scale) > 0, "positive sizes"),
                  ("background_shift", bool(self.background_shift), "one or more values"),
                  ("overlay", bool(self.overlay) and all(v == 0 or 0.05 <= v <= 1 for v in self.overlay),
                   "0 or widths between 0.05 and 1"),
                  ("tint", bool(self.tint) and all(0 <= v <= 0.5 for v in self.tint), "strengths between 0 and 0.5"),
                  ("grain", bool(self.grain) and all(0 <= v <= 64 for v in self.grain),
                   "grey levels between 0 and 64"),
                  ("letterbox", bool(self.letterbox) and all(v == 0 or 0.25 <= v < 1 for v in self.letterbox),
                   "0 or shares of at least 0.25 and below 1"),
                  ("saturation", bool(self.saturation) and all(0 <= v <= 3 for v in self.saturation),
                   "factors between 0 and 3"),
                  ("vignette", bool(self.vignette) and all(0 <= v <= 1 for v in self.vignette),
                   "strengths between 0 and 1"),
                  ("defects", bool(self.defects) and set(self.defects) <= set(GRID_DEFECTS),
                   f"one or more of {', '.join(GRID_DEFECTS)}"),
                  ("settings_per_defect", self.settings_per_defect >= 0, "0 (all) or more"),
                  ("size", self.size >= 32 and self.size % 2 == 0, "even and at least 32"),
                  ("num_frames", self.num_frames >= 8, "at least 8"),
                  ("fps", self.fps > 0, "positive")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", field=name)

    def combinations(self, position: int) -> list[tuple[Any, ...]]:
        """The nuisance values (one per axis of NUISANCE_AXES) of a defect kind with offsets number `position`
        (see the module doc)."""
        values = [list(getattr(self, axis)) for axis in NUISANCE_AXES]
        if not self.settings_per_defect:
            return list(itertools.product(*values))
        count = min(self.settings_per_defect, math.lcm(*map(len, values)))  # more would repeat combinations
        offsets = list(itertools.product(*(range(len(v)) for v in values)))[position % math.prod(map(len, values))]
        return [tuple(v[(o + j) % len(v)] for v, o in zip(values, offsets)) for j in range(count)]

    def positions(self, kinds: int, rng: np.random.Generator) -> np.ndarray:
        """The offsets numbers (:meth:`combinations`) of a prompt's `kinds` defect kinds (see the module doc)."""
        order = rng.permutation(kinds)
        total = math.prod(len(getattr(self, axis)) for axis in NUISANCE_AXES)
        return order if total <= kinds else rng.choice(total, size=kinds, replace=False)


@dataclasses.dataclass
class GridConfig:
    """Where `solireward overopt-grid` reads its prompts and writes the grid."""

    input_file: str = arg("held-out videos whose distinct demo prompts are optimised (e.g. a split's "
                          "videos_test.json); only the prompts are read")
    grid_dir: str = arg("folder to write grid.json and the frames into (replaced atomically)")
    seed: int = arg("seed of the grid's random state (positions, timings, colours)", 0)


def held_out_prompts(input_file: str, count: int | None = None) -> list[str]:
    """`count` (None: all) distinct prompts of a record file, evenly spaced in order of first appearance."""
    prompts: list[str] = []
    for row, record in enumerate(read_records(input_file)):
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise InputError("no 'prompt' (expected a demo prompt)", file=input_file, row=row, field="prompt")
        if prompt not in prompts:
            prompts.append(prompt)
    if not prompts:
        raise InputError("holds no records", file=input_file)
    if count is None or count >= len(prompts):
        return prompts
    keep = np.unique(np.round(np.linspace(0, len(prompts) - 1, count)).astype(int))
    return [prompts[i] for i in keep]


def gold_reward(labels: dict[str, int], task: str) -> int:
    """The ground truth of `task` for a grid video of these labels: 1 (Pass) or 0."""
    return int(all(labels[dimension] for dimension in TASK_DIMENSIONS[task]))


def _defect(spec: Any) -> str:
    """The defect kind of a grid video ("none" without one)."""
    return spec.physics_defect or spec.deformity_defect or spec.text_defect or "none"


class Grid:
    """Prompts x settings of demo videos with known labels; the frames of one prompt at a time."""

    def __init__(self, prompts: Sequence[str], options: GridOptions, seed: int, folder: Path | None = None) -> None:
        self.prompts, self.options, self.seed, self.folder = list(prompts), options, seed, folder
        self.specs = []
        for p, prompt in enumerate(self.prompts):
            positions = options.positions(len(options.defects), np.random.default_rng([seed, 13, p]))
            keep = {(defect, *values) for defect, position in zip(options.defects, positions)
                    for values in options.combinations(int(position))}
            axes = {axis: tuple(getattr(options, axis)) for axis in NUISANCE_AXES}
            self.specs.append([s for s in grid_specs(prompt, tuple(options.defects), axes, seed, p)
                               if (_defect(s), *(s.nuisance[axis] for axis in NUISANCE_AXES)) in keep])

    @classmethod
    def from_records(cls, input_file: str, options: GridOptions, seed: int) -> Grid:
        """The grid of the held-out prompts of a record file (rendered in memory when its frames are asked for)."""
        try:
            return cls(held_out_prompts(input_file, options.num_prompts), options, seed)
        except InputError as exc:
            if exc.file:
                raise
            raise InputError(exc.reason, file=input_file, field="prompt") from None

    @classmethod
    def load(cls, folder: str | Path) -> Grid:
        """A grid written by :meth:`save` (its frames read from the folder)."""
        folder = Path(folder)
        manifest = read_json(folder / GRID_FILE)
        if not isinstance(manifest, dict) or manifest.get("version") != GRID_VERSION:
            raise InputError(f"not a grid of version {GRID_VERSION} (write it with `solireward overopt-grid`)",
                             file=str(folder / GRID_FILE))
        return cls(manifest["prompts"], GridOptions(**manifest["options"]), int(manifest["seed"]), folder)

    @property
    def settings(self) -> list[list[dict[str, Any]]]:
        """Per prompt, the settings of its row: defect kind (the same in a column for every prompt) and nuisances."""
        return [[{"defect": _defect(s), **s.nuisance} for s in row] for row in self.specs]

    def gold(self, task: str) -> np.ndarray:
        """(prompts, settings) ground truth of `task`, 1 or 0."""
        return np.array([[gold_reward(s.labels, task) for s in row] for row in self.specs], dtype=float)

    def frames(self, p: int) -> np.ndarray:
        """The ``(settings, T, H, W, 3)`` uint8 frames of prompt `p` (read from the folder, else rendered)."""
        if self.folder is not None:
            path = self.folder / f"prompt-{p:03d}.npz"
            try:
                with np.load(path) as data:
                    frames = data["frames"]
            except (OSError, KeyError, ValueError) as exc:
                raise InputError(f"cannot read the grid's frames ({type(exc).__name__}: {exc})",
                                 file=str(path)) from None
            expected = (len(self.specs[p]), self.options.num_frames, self.options.size, self.options.size, 3)
            if frames.shape != expected or frames.dtype != np.uint8:
                raise InputError(f"expected uint8 frames of shape {expected}, got {frames.dtype} {frames.shape}",
                                 file=str(path))
            return frames
        return np.stack([render_video(s, self.options.size, self.options.num_frames) for s in self.specs[p]])

    def save(self, folder: str | Path) -> None:
        """Render every prompt's frames and write the grid into `folder` (replaced atomically)."""
        with atomic_dir(folder) as tmp:
            for p in range(len(self.prompts)):
                np.savez_compressed(tmp / f"prompt-{p:03d}.npz", frames=self.frames(p))
            manifest = {"version": GRID_VERSION, "prompts": self.prompts, "seed": self.seed,
                        "options": dataclasses.asdict(self.options), "settings": self.settings,
                        "labels": [[s.labels for s in row] for row in self.specs]}
            (tmp / GRID_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
