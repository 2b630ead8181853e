"""`solireward simulate-labels`: answer a batch sheet with the demo's simulated annotators (demo only).

The annotators are `solireward demo-data`'s (:mod:`solireward.data.synthetic.annotators`, reused, not
copied): ``--num_annotators`` annotators ``a01``, ``a02``, ... whose flip rates are drawn from ``--demo_seed``
exactly as demo-data draws them, each flipping a video's true Pass/Fail with its rate. The truth comes from a
ground-truth file with demo-data's columns (``video_path``, ``prompt``, ``physics_defect``,
``deformity_defect``, ``text_defect``, a defect name or ``none``): demo-data's own, or `solireward
grid-pool`'s. The flips of a video depend only on ``--seed`` and the video's place in that file (its
prompt's order of first appearance, then its order within the prompt), as in demo-data: the same video gets
the same answers whichever batch holds it, and demo-data's ground truth with ``--seed`` equal to demo-data's
seed gives back its annotations.csv rows.

Output: an annotation file (.csv) with one row per sheet row and annotator, video paths relative to its
folder, to import together with the earlier annotation files (`solireward labels --input OLD.csv NEW.csv`).
A sheet video already answered by one of these annotators in a ``--labelled`` annotation file is an error
naming both: the merged import would hold two votes of one annotator for one video.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path
from typing import Any

from solireward.active.batch import listing
from solireward.active.pool import DEFECT_COLUMNS
from solireward.config import arg
from solireward.data.annotation_files import ANNOTATION_COLUMNS, read_annotation_files
from solireward.data.synthetic import DemoDataConfig, VideoSpec, annotator_rates
from solireward.data.synthetic.annotators import binary_rows
from solireward.errors import ConfigError, InputError
from solireward.io import atomic_write, read_records, relative_path, resolve_video_path

logger = logging.getLogger(__name__)

_DEMO = {f.name: f.default for f in dataclasses.fields(DemoDataConfig)}


@dataclasses.dataclass
class SimulateLabelsConfig:
    """Options of `solireward simulate-labels` (answer a batch sheet with the demo's simulated annotators)."""

    batch: str = arg("the sheet to answer: to_label.csv of `solireward select` (video_path, prompt, dimension)")
    ground_truth: str = arg("ground truth of the sheet's videos with demo-data's columns (ground_truth.csv of "
                            "`solireward grid-pool` or `solireward demo-data`)")
    output: str = arg("annotation file to write (.csv), one row per sheet row and annotator")
    labelled: list[str] = arg("annotation files already imported: a sheet video answered there by one of these "
                              "annotators is an error", default_factory=list)
    seed: int = arg("seed of the annotators' flips (demo-data's seed reproduces its labels of its own videos)", 1)
    demo_seed: int = arg("demo-data's --seed: fixes each annotator's flip rate", _DEMO["seed"])
    num_annotators: int = arg("simulated annotators (demo-data's --num_annotators)", _DEMO["num_annotators"])
    annotator_noise_min: float = arg("demo-data's --annotator_noise_min", _DEMO["annotator_noise_min"])
    annotator_noise_max: float = arg("demo-data's --annotator_noise_max", _DEMO["annotator_noise_max"])

    def __post_init__(self) -> None:
        if Path(self.output).suffix.lower() != ".csv":
            raise ConfigError(f"expected a .csv file, got {self.output!r}", field="output")

    def demo_config(self) -> DemoDataConfig:
        """demo-data's options that fix the annotators (its checks apply); output_dir is not used."""
        return DemoDataConfig(output_dir=str(Path(self.output).parent), seed=self.demo_seed,
                              num_annotators=self.num_annotators, annotator_noise_min=self.annotator_noise_min,
                              annotator_noise_max=self.annotator_noise_max)


def truth_plans(path: str) -> tuple[list[list[VideoSpec]], dict[str, VideoSpec]]:
    """The ground truth as demo-data's plans (videos grouped by prompt, in file order) and by resolved path."""
    root = str(Path(path).parent)
    plans: dict[str, list[VideoSpec]] = {}
    by_key: dict[str, VideoSpec] = {}
    for row, record in enumerate(read_records(path), start=1):
        bad = [f for f in ("video_path", "prompt", *DEFECT_COLUMNS)
               if not isinstance(record.get(f), str) or not record[f].strip()]
        if bad:
            logger.warning("%s", InputError("expected a non-empty value (demo-data's ground_truth.csv columns: "
                                            f"video_path, prompt, {', '.join(DEFECT_COLUMNS)}); row skipped",
                                            file=path, row=row, field=bad[0]))
            continue
        physics, deformity, text = (None if record[c] == "none" else record[c] for c in DEFECT_COLUMNS)
        spec = VideoSpec(video_path=record["video_path"], prompt=record["prompt"], colour="", shape="", motion="",
                         physics_defect=physics, deformity_defect=deformity, text_defect=text, morph_target=None,
                         seed=())
        plans.setdefault(spec.prompt, []).append(spec)
        by_key[resolve_video_path(spec.video_path, root)] = spec
    return list(plans.values()), by_key


def _answered(files: list[str], annotators: set[str]) -> dict[str, str]:
    """Resolved video path -> 'FILE line N (annotator)' of a vote by one of `annotators`."""
    if not files:
        return {}
    frame, names, kinds = read_annotation_files(files)
    seen: dict[str, str] = {}
    for video, annotator, index, line in zip(frame["video_path"], frame["annotator"], frame["_file"], frame["_line"]):
        if annotator.strip() in annotators and video.strip():
            key = resolve_video_path(video.strip(), str(Path(names[index]).parent))
            seen.setdefault(key, f"{names[index]} line {line} ({annotator.strip()})")
    return seen


def simulate_labels(config: SimulateLabelsConfig) -> dict[str, Any]:
    """Answer every sheet row with every simulated annotator and write the annotation file; returns a summary."""
    sheet, _, _ = read_annotation_files([config.batch])
    batch_root = str(Path(config.batch).parent)
    wanted: dict[tuple[str, str], int] = {}
    for video, dimension in zip(sheet["video_path"], sheet["dimension"]):
        if video.strip() and dimension.strip():
            wanted.setdefault((resolve_video_path(video.strip(), batch_root), dimension.strip()), len(wanted))
    plans, by_key = truth_plans(config.ground_truth)
    unknown = sorted({key for key, _ in wanted if key not in by_key})
    if unknown:
        logger.warning("%d sheet video(s) are not in %s and get no answers: %s", len(unknown), config.ground_truth,
                       listing(unknown))
    rates = annotator_rates(config.demo_config())
    sheet_videos = {key for key, _ in wanted}
    clash = {key: where for key, where in _answered(config.labelled, set(rates)).items() if key in sheet_videos}
    if clash:
        raise InputError(f"{len(clash)} sheet video(s) already have votes of these simulated annotators: "
                         f"{listing([f'{k} at {w}' for k, w in sorted(clash.items())])}; a merged import would "
                         "count an annotator twice (select with --labelled leaves labelled videos out)",
                         file=config.batch, field="video_path")
    truth_root = str(Path(config.ground_truth).parent)
    out_dir = Path(config.output).parent
    answers: list[tuple[int, list[str]]] = []
    for row in binary_rows(plans, rates, config.seed):
        key = resolve_video_path(row[0], truth_root)
        order = wanted.get((key, row[2]))
        if order is not None:
            answers.append((order, [relative_path(key, out_dir), *row[1:]]))
    if not answers:
        raise InputError("no sheet row could be answered (no video of the sheet is in the ground truth, or no "
                         "dimension of the sheet is a demo dimension)", file=config.batch)
    unanswered = len(wanted) - len({order for order, _ in answers})
    if unanswered:
        logger.warning("%d sheet row(s) got no answers (video not in the ground truth, or not one of the demo's "
                       "dimensions)", unanswered)
    answers.sort(key=lambda item: item[0])                  # sheet order; annotators in order within a row
    with atomic_write(config.output, newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(ANNOTATION_COLUMNS)
        writer.writerows(row for _, row in answers)
    videos = len({row[0] for _, row in answers})
    return {"videos": videos, "rows": len(answers), "annotators": list(rates), "unknown_videos": len(unknown),
            "output": config.output}
