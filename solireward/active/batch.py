"""`solireward select`'s library call: read a pool and its scores, pick a batch, write it for annotators.

Inputs. The pool (``--pool``) is a record file (.csv, .jsonl, .json, .parquet) of ``video_path`` and
``prompt``, relative paths read from ``--video_root`` or the file's folder: a user's policy samples, or the
``pool.jsonl`` of `solireward grid-pool`. Scores (``--scores``) are `solireward infer` output files of that
pool (run infer on the pool file itself, so the paths match): each file is one model (its ``score_norm``),
or the members of an ensemble when it holds ``ensemble_scores``. A pool video without a score in every
file (missing, or ``error``) is reported and left out, whatever the strategy (so that ``random`` draws from
the candidates the others rank). A pool row without a video path or prompt is reported and skipped. Videos already in an
annotation file or label table (``--labelled``) are left out. A pool prompt that occurs in a held-out file
(``--held_out``: pair files or video lists of the test and validation splits) is an error naming it.

Outputs (``--output_dir``, replaced atomically): ``to_label.csv``, the annotation sheet in the format
`solireward labels` imports (one row per video and dimension, ``label`` and ``annotator`` empty: each
annotator fills a copy); ``manifest.jsonl``, one row per picked video with its rank, strategy, scores, the
value the strategy ranked by and the reason; ``select.json``, what was read and left out. Video paths in
both files are relative to the output folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from solireward.active.strategies import STRATEGIES, Candidates, StrategyOptions, boundary
from solireward.config import arg
from solireward.conservative import EnsembleOptions, conservative_reward
from solireward.data.annotation_files import ANNOTATION_COLUMNS
from solireward.data.pairing import TASK_DIMENSIONS
from solireward.errors import ConfigError, InputError
from solireward.io import atomic_dir, read_records, relative_path, resolve_video_path

logger = logging.getLogger(__name__)

SHEET_FILE, MANIFEST_FILE, SUMMARY_FILE = "to_label.csv", "manifest.jsonl", "select.json"
_SHOWN = 5  # names listed in a message before "and N more"


@dataclasses.dataclass
class SelectConfig:
    """Options of `solireward select` (pick the pool videos to label next)."""

    pool: str = arg("record file of candidate videos with video_path and prompt (.csv, .jsonl, .json, .parquet)")
    output_dir: str = arg(f"folder for {SHEET_FILE}, {MANIFEST_FILE} and {SUMMARY_FILE} (replaced atomically)")
    strategy: str = arg("pressure, disagreement, uncertainty, diversity or random (see solireward.active."
                        "strategies)", choices=tuple(STRATEGIES))
    batch_size: int = arg("videos to pick")
    scores: list[str] = arg("`solireward infer` output files of the pool, one per model (or one with "
                            "ensemble_scores); not needed by random", default_factory=list)
    labelled: list[str] = arg("annotation files or label tables whose videos are already labelled (left out)",
                              default_factory=list)
    held_out: list[str] = arg("pair files or video lists (e.g. PAIRS/test.json, PAIRS/videos_val.json) whose "
                              "prompts the pool must not hold", default_factory=list)
    task: str = arg(f"task whose dimensions the sheet asks for ({', '.join(TASK_DIMENSIONS)})", "phy_deform",
                    choices=tuple(TASK_DIMENSIONS))
    dimensions: list[str] | None = arg("dimensions the sheet asks for (default: the task's)", None)
    video_root: str | None = arg("folder that relative video paths of the pool and the scores are read from "
                                 "(default: the pool file's folder)", None)
    seed: int = arg("seed of random and of diversity's prompt order", 0)
    threshold: float | None = arg("uncertainty: the Pass/Fail cut in score_norm units (default: the median "
                                  "reward of the candidates)", None)
    min_distance: float = arg("diversity: score vectors closer than this within one prompt are near-duplicates",
                              0.1)
    best_of_n: int | None = arg("pressure: rank by the probability that best-of-n picks each video (default: "
                                "the large-n limit, each prompt's best first)", None)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"expected a positive number of videos, got {self.batch_size}", field="batch_size")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"expected one of {', '.join(STRATEGIES)}, got {self.strategy!r}", field="strategy")
        if self.best_of_n is not None and self.best_of_n < 1:
            raise ConfigError(f"expected a positive n, got {self.best_of_n}", field="best_of_n")
        if self.min_distance < 0:
            raise ConfigError(f"expected 0 or more, got {self.min_distance}", field="min_distance")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ConfigError(f"expected a finite number, got {self.threshold}", field="threshold")

    def sheet_dimensions(self) -> list[str]:
        """The dimensions each picked video is asked for."""
        return list(self.dimensions) if self.dimensions else list(TASK_DIMENSIONS[self.task])


def listing(names: list[str]) -> str:
    """The first few of `names`, quoted, and how many more (for messages)."""
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(repr(n) for n in names[:_SHOWN]) + more


def read_pool(path: str, video_root: str | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(video_path as written, resolved paths, prompts) of the pool; a later repeat of a video is skipped."""
    records = read_records(path)
    root = video_root or str(Path(path).parent)
    written, keys, prompts, seen, repeats = [], [], [], set(), 0
    for row, record in enumerate(records, start=1):
        bad = [f for f in ("video_path", "prompt") if not isinstance(record.get(f), str) or not record[f].strip()]
        if bad:
            logger.warning("%s", InputError(f"expected a non-empty {bad[0]}; row skipped", file=path, row=row,
                                            field=bad[0]))
            continue
        key = resolve_video_path(record["video_path"].strip(), root)
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        written.append(record["video_path"].strip())
        keys.append(key)
        prompts.append(record["prompt"].strip())
    if repeats:
        logger.warning("%s: %d row(s) repeat a video of an earlier row; the first row of each video is kept", path,
                       repeats)
    if not keys:
        raise InputError("the pool holds no videos", file=path)
    return written, np.asarray(keys, dtype=object), np.asarray(prompts, dtype=object)


def read_scores(files: list[str], keys: np.ndarray, root: str) -> np.ndarray:
    """(K models, N pool videos) score_norm, NaN where a file has no score for the video."""
    position = {key: i for i, key in enumerate(keys)}
    members = []
    for path in files:
        records = read_records(path)
        found: dict[int, list[float]] = {}
        width, foreign = None, 0
        for row, record in enumerate(records, start=1):
            if not isinstance(record.get("video_path"), str):
                raise InputError("expected a video_path (a `solireward infer` output file)", file=path, row=row,
                                 field="video_path")
            i = position.get(resolve_video_path(record["video_path"], root))
            foreign += i is None
            if i is None or record.get("error") is not None or record.get("score_norm") is None:
                continue
            values = record.get("ensemble_scores", [record["score_norm"]])
            if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in values) or width not in (None, len(values)):
                raise InputError(f"expected {width or 'a list of'} numbers, got {values!r}", file=path, row=row,
                                 field="ensemble_scores" if "ensemble_scores" in record else "score_norm")
            width = len(values)
            found[i] = [float(v) for v in values]
        if not found:
            raise InputError("scores none of the pool's videos (score the pool file itself with "
                             "`solireward infer`)", file=path)
        if foreign:
            logger.warning("%s: %d scored video(s) are not in the pool; ignored", path, foreign)
        block = np.full((width, len(keys)), np.nan)
        for i, values in found.items():
            block[:, i] = values
        members.append(block)
    return np.concatenate(members) if members else np.zeros((0, len(keys)))


def labelled_videos(files: list[str]) -> set[str]:
    """Resolved paths of every video in annotation files or label tables (relative to each file's folder)."""
    videos: set[str] = set()
    for path in files:
        for record in read_records(path):
            if isinstance(record.get("video_path"), str) and record["video_path"].strip():
                videos.add(resolve_video_path(record["video_path"].strip(), str(Path(path).parent)))
    return videos


def held_out_prompts(files: list[str]) -> dict[str, str]:
    """Each prompt of the held-out files (pairs: both sides; video lists: each record) -> the first file naming it."""
    prompts: dict[str, str] = {}
    for path in files:
        for record in read_records(path):
            for item in (record, record.get("win"), record.get("lose")):
                if isinstance(item, dict) and isinstance(item.get("prompt"), str):
                    prompts.setdefault(item["prompt"].strip(), path)
    return prompts


def check_held_out(prompts: np.ndarray, held_out: dict[str, str], pool: str) -> None:
    """An InputError naming the pool prompts that are test or validation prompts."""
    clash = sorted({p for p in prompts if p in held_out})
    if clash:
        where = sorted({held_out[p] for p in clash})
        raise InputError(f"{len(clash)} pool prompt(s) are held-out prompts of {', '.join(where)}: "
                         f"{listing(clash)}; a pool must hold training prompts only (labelling a test or "
                         "validation prompt's videos leaks them into training)", file=pool, field="prompt")


def select_batch(config: SelectConfig, ensemble: EnsembleOptions) -> dict[str, Any]:
    """Pick the batch and write the sheet, the manifest and the summary; returns the summary."""
    root = config.video_root or str(Path(config.pool).parent)
    written, keys, prompts = read_pool(config.pool, config.video_root)
    check_held_out(prompts, held_out_prompts(config.held_out), config.pool)
    members = read_scores(config.scores, keys, root) if config.scores else None
    done = labelled_videos(config.labelled)
    eligible = np.array([key not in done for key in keys], dtype=bool)
    unscored = np.zeros(len(keys), dtype=bool) if members is None else np.isnan(members).any(axis=0)
    if unscored.any():
        logger.warning("%d pool video(s) have no score in every scores file and are left out: %s",
                       int(unscored.sum()), listing([written[i] for i in np.flatnonzero(unscored)]))
    index = np.flatnonzero(eligible & ~unscored)
    if not len(index):
        raise InputError("no pool video is left to pick (all labelled or unscored)", file=config.pool)
    picked_members = None if members is None else members[:, index]
    reward = None if members is None else conservative_reward(picked_members, ensemble.ensemble,
                                                              ensemble.ensemble_lambda)
    candidates = Candidates(prompts[index], picked_members, reward)
    options = StrategyOptions(seed=config.seed, threshold=config.threshold, min_distance=config.min_distance,
                              best_of_n=config.best_of_n)
    ranking = STRATEGIES[config.strategy](candidates, options)
    take = min(config.batch_size, len(ranking.order))
    if take < config.batch_size:
        logger.warning("strategy %s picked %d videos, fewer than the %d asked for (%d candidates)",
                       config.strategy, take, config.batch_size, len(candidates))
    out = Path(config.output_dir)
    rows = []
    for rank in range(take):
        c = int(ranking.order[rank])
        i = int(index[c])
        rows.append({"rank": rank + 1, "video_path": relative_path(keys[i], out), "prompt": str(prompts[i]),
                     "strategy": config.strategy,
                     "score": None if reward is None else float(reward[c]),
                     "score_std": None if picked_members is None or len(picked_members) < 2
                     else float(picked_members[:, c].std()),
                     "value": float(ranking.value[rank]), "reason": ranking.reasons[rank],
                     "pool_video_path": written[i]})
    summary = {
        "strategy": config.strategy, "batch_size": config.batch_size, "selected": take,
        "pool_videos": len(keys), "already_labelled": int((~eligible).sum()),
        "unscored": int((eligible & unscored).sum()), "candidates": len(candidates),
        "prompts_in_batch": len({r["prompt"] for r in rows}), "dimensions": config.sheet_dimensions(),
        "models": 0 if members is None else len(members),
        "ensemble": None if members is None else ensemble.describe(len(members)),
        "seed": config.seed, "min_distance": config.min_distance if config.strategy == "diversity" else None,
        "best_of_n": config.best_of_n if config.strategy == "pressure" else None,
        "threshold": boundary(candidates, options) if config.strategy == "uncertainty" else None,
        "inputs": {"pool": relative_path(config.pool, out), "scores": [relative_path(p, out) for p in config.scores],
                   "labelled": [relative_path(p, out) for p in config.labelled],
                   "held_out": [relative_path(p, out) for p in config.held_out]},
    }
    write_batch(out, rows, config.sheet_dimensions(), summary)
    return summary


def write_batch(out: Path, rows: list[dict[str, Any]], dimensions: list[str], summary: dict[str, Any]) -> None:
    """Write the sheet, the manifest and the summary into `out`, replacing it as a whole."""
    with atomic_dir(out) as tmp:
        with open(tmp / SHEET_FILE, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(ANNOTATION_COLUMNS)
            writer.writerows([row["video_path"], row["prompt"], dimension, "", ""]
                             for row in rows for dimension in dimensions)
        with open(tmp / MANIFEST_FILE, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
