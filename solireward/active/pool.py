"""`solireward grid-pool`: the over-optimisation grid as a pool of mp4 files with its ground truth.

`solireward overopt-grid` renders the demo generator's grid (defect kind x nuisances) for the prompts of a
record file; on the *training* prompts (``--input_file PAIRS/videos_train.json``) it is a pool of candidate
videos with known truth. This writes it where `infer`, `select`, `simulate-labels` and `labels` read videos:
``videos/<name>.mp4`` (the grid's frames, lossless as the demo's), ``pool.jsonl`` (``video_path``, ``prompt``,
``defect``, nuisances; the input of `infer` and `select`) and ``ground_truth.csv`` (the demo's columns:
each dimension's 0/1, ``phy_deform``, each dimension's defect or ``none``; the input of `simulate-labels`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from solireward.config import arg
from solireward.data.synthetic import DIMENSIONS, VideoSpec
from solireward.hacking.grid import Grid, gold_reward
from solireward.io import atomic_dir

logger = logging.getLogger(__name__)

POOL_FILE, TRUTH_FILE = "pool.jsonl", "ground_truth.csv"
DEFECT_COLUMNS = ("physics_defect", "deformity_defect", "text_defect")  # demo-data's ground_truth.csv


@dataclasses.dataclass
class GridPoolConfig:
    """Options of `solireward grid-pool` (write a rendered grid as a pool of mp4 files)."""

    grid_dir: str = arg("grid folder written by `solireward overopt-grid` (on training prompts)")
    output_dir: str = arg(f"folder for videos/, {POOL_FILE} and {TRUTH_FILE} (replaced atomically)")


def _truth_row(spec: VideoSpec, video_path: str) -> list[Any]:
    labels = spec.labels
    defects = (spec.physics_defect, spec.deformity_defect, spec.text_defect)
    return [video_path, spec.prompt, *(labels[d] for d in DIMENSIONS), gold_reward(labels, "phy_deform"),
            *(d or "none" for d in defects)]


def write_grid_pool(config: GridPoolConfig) -> dict[str, Any]:
    """Write every grid video as mp4 with the pool file and the ground truth; returns a summary."""
    from solireward.data.video_write import write_video

    grid = Grid.load(config.grid_dir)
    settings = grid.settings
    records, truth = [], []
    with atomic_dir(config.output_dir) as tmp:
        for p, specs in enumerate(grid.specs):
            frames = grid.frames(p)
            for spec, clip, setting in zip(specs, frames, settings[p]):
                video_path = f"videos/{Path(spec.video_path).name}"
                write_video(tmp / video_path, clip, fps=grid.options.fps, quality=0)
                records.append({"video_path": video_path, "prompt": spec.prompt, **setting})
                truth.append(_truth_row(spec, video_path))
        with open(tmp / POOL_FILE, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(tmp / TRUTH_FILE, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["video_path", "prompt", *DIMENSIONS, "phy_deform", *DEFECT_COLUMNS])
            writer.writerows(truth)
    return {"prompts": len(grid.prompts), "videos": len(records), "output_dir": config.output_dir}
