"""`solireward demo-data`'s library call: render and write the videos, the label files and the README."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from solireward.data.synthetic.annotators import (annotator_rates, binary_rows, pairwise_rows, shortcut_prompts,
                                                   trusted_prompts)
from solireward.data.synthetic.plan import CUES, DIMENSIONS, TRUSTED_ANNOTATIONS, DemoDataConfig, plan_videos
from solireward.data.synthetic.readme import demo_readme
from solireward.data.synthetic.render import render_video
from solireward.io import atomic_write, write_text

logger = logging.getLogger(__name__)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    """Write `header` and `rows` to a CSV file atomically, with Unix line ends."""
    with atomic_write(path, newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate_demo_data(config: DemoDataConfig) -> dict[str, Any]:
    """Write the demo data set into config.output_dir; return a summary of what was written."""
    from solireward.data.video_write import video_codec, write_video

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
    binary = binary_rows(plans, rates, config.seed)
    pairwise = pairwise_rows(plans, rates, config)
    header = ["video_path", "prompt", "dimension", "label", "annotator"]
    _write_csv(out / "annotations.csv", header, binary)
    for cue in CUES:  # the same annotators with a planted shortcut, each cue a label source of its own
        if getattr(config, cue.bias) > 0:
            _write_csv(out / cue.annotations, header,
                       binary_rows(plans, rates, config.seed, biased, getattr(config, cue.bias), cue))
    trusted = trusted_prompts(plans, config)
    if trusted:  # the unbiased annotators' labels of those prompts' videos
        _write_csv(out / TRUSTED_ANNOTATIONS, header, [row for row in binary if row[1] in trusted])
    _write_csv(out / "pairwise_annotations.csv", ["prompt", "video_a", "video_b", "choice", "annotator"],
               pairwise)
    shown = [cue.name for cue in CUES if getattr(config, cue.share) > 0]  # a nuisance column per cue rendered
    truth_rows = []
    for spec in specs:
        labels = spec.labels
        truth_rows.append([spec.video_path, spec.prompt, labels["physics"], labels["deformity"],
                           labels["text_alignment"], labels["physics"] * labels["deformity"],
                           spec.physics_defect or "none", spec.deformity_defect or "none",
                           spec.text_defect or "none", spec.colour, spec.shape, spec.motion]
                          + [getattr(spec, name) for name in shown])
    _write_csv(out / "ground_truth.csv",
               ["video_path", "prompt", "physics", "deformity", "text_alignment", "phy_deform",
                "physics_defect", "deformity_defect", "text_defect", "shown_colour", "shown_shape",
                "shown_motion"] + shown, truth_rows)

    truth = np.array([r[2:6] for r in truth_rows], dtype=float)
    summary = {
        "num_prompts": len(plans), "num_videos": len(specs), "codec": video_codec(),
        "pass_rate": {name: float(truth[:, i].mean()) for i, name in enumerate(DIMENSIONS + ("phy_deform",))},
        "annotator_flip_rates": rates, "binary_rows": len(binary), "pairwise_rows": len(pairwise),
        "shortcut_prompts": len(biased), "trusted_prompts": len(trusted),
    }
    write_text(out / "README.md", demo_readme(config, summary))
    logger.info("wrote %d videos of %d prompts to %s; pass rates %s", len(specs), len(plans), out,
                ", ".join(f"{k} {v:.2f}" for k, v in summary["pass_rate"].items()))
    return summary
