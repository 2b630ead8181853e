"""`solireward import-bench`: public pairwise video-reward test sets and preference files as pair files.

Each format names its two video columns, its prompt column and its label column(s); a label says
which of the two videos (A = first, B = second) is preferred, or that neither is (``same``):

- ``videogen_rewardbench`` (VideoGen-RewardBench CSV): ``path_A, path_B, prompt`` and per-dimension
  labels ``VQ, MQ, TA, Overall`` (and ``ALL`` in some copies) in {A, B, same}; the primary label is
  ``Overall``. ``fps_A/B`` and ``num_frames_A/B`` are ignored (the model's own frame settings apply).
- ``genai_bench`` (GenAI-Bench video): ``left_video, right_video, prompt, vote_type`` in {leftvote,
  rightvote, tievote, bothbad_vote}. ``bothbad_vote`` (both videos bad) is scored as a tie: the
  voter preferred neither, which is what a tie label states.
- ``mj_bench_video`` (MJ-Bench-Video): ``video_0_path, video_1_path, overall_preference`` in
  {"Video 1 better", "Video 2 better", "Same"}; prompt from ``prompt`` or ``caption`` when present.
- ``visionreward_video`` (VisionRewardDB-Video): ``video1_path, video2_path, standard_answer`` in
  {video1, video2, tie}; prompt from ``prompt`` when present.
- ``videoalign`` (a VideoAlign-style preference CSV, for training): ``path_A, path_B, prompt, label`` in
  {A, B, same}.
- ``votes`` (the pairwise annotations of ``solireward pairs``: ``prompt, video_a, video_b, choice,
  annotator``): the plurality choice per pair (split votes dropped), as ``solireward pairs`` takes it.

Labels are matched case-insensitively after trimming spaces. Files may be CSV, TSV, JSON (a list of
records) or JSONL. Relative video paths are resolved against ``--video_root`` (default: the input
file's folder).

Outputs in ``--output_dir``: ``pairs.json`` (one pair per row, ``win`` = video A, ``lose`` = video B;
``meta`` qualities from the primary label: A 1/0, B 0/1, same ½/½, so ``evaluate`` reads the relation
as +1, −1 or 0; ``meta.labels`` holds every dimension's relation and ``meta.row`` the source row),
``videos.json`` (the distinct videos that exist, for ``solireward infer``: pairs with a missing video
are then counted by ``evaluate`` as skipped), ``votes.csv`` (the pairwise annotation form that
``solireward pairs --pairwise_annotations`` trains from), ``preferences.csv`` (the VideoAlign form) and
``summary.json`` (rows, label counts per dimension, missing videos). Paths in the CSV files are
relative to ``--output_dir``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solireward.config import arg
from solireward.errors import InputError
from solireward.io import atomic_path, write_json

logger = logging.getLogger(__name__)

A, B, SAME = 1, -1, 0  # relation of video A to video B (A better, B better, neither)


@dataclasses.dataclass(frozen=True)
class BenchFormat:
    """Column layout and label vocabulary of one pairwise format."""

    video_a: str
    video_b: str
    prompt: tuple[str, ...]          # candidate prompt columns, first present wins
    prompt_required: bool
    labels: tuple[str, ...]          # label columns; the first is the primary one (required)
    optional_labels: tuple[str, ...]  # further label columns used when present
    values: dict[str, int]           # lower-cased label value -> relation


_ABS = {"a": A, "b": B, "same": SAME}
FORMATS: dict[str, BenchFormat] = {
    "videogen_rewardbench": BenchFormat("path_A", "path_B", ("prompt",), True, ("Overall",),
                                        ("VQ", "MQ", "TA", "ALL"), _ABS),
    "genai_bench": BenchFormat("left_video", "right_video", ("prompt",), True, ("vote_type",), (),
                               {"leftvote": A, "rightvote": B, "tievote": SAME, "bothbad_vote": SAME}),
    "mj_bench_video": BenchFormat("video_0_path", "video_1_path", ("prompt", "caption"), False,
                                  ("overall_preference",), (),
                                  {"video 1 better": A, "video 2 better": B, "same": SAME}),
    "visionreward_video": BenchFormat("video1_path", "video2_path", ("prompt",), False, ("standard_answer",), (),
                                      {"video1": A, "video2": B, "tie": SAME}),
    "videoalign": BenchFormat("path_A", "path_B", ("prompt",), True, ("label",), (), _ABS),
    "votes": BenchFormat("video_a", "video_b", ("prompt",), True, ("choice",), (),
                         {"a": A, "b": B, "tie": SAME}),
}
LETTER = {A: "A", B: "B", SAME: "same"}
# formats a study's pairwise training file may have (config data.pairwise_format): votes as they are,
# or a VideoAlign-style CSV that `import-bench` converts into votes
PAIRWISE_FORMATS = ("votes", "videoalign")


@dataclasses.dataclass
class ImportBenchConfig:
    """Options of `solireward import-bench` (a public pairwise test set or preference CSV as pair files)."""

    input: str = arg("the benchmark or preference file (CSV, TSV, JSON list or JSONL)")
    format: str = arg("its column layout (see `solireward.data.benchmarks`)", choices=tuple(FORMATS))
    output_dir: str = arg("folder for pairs.json, videos.json, votes.csv, preferences.csv and summary.json")
    video_root: str | None = arg("folder relative video paths are resolved against (default: the input "
                                 "file's folder)", None)


@dataclasses.dataclass
class BenchPairs:
    """Parsed pairs: one entry per kept row."""

    row: np.ndarray                 # source row (data rows numbered from 1; CSV line = row + 1)
    video_a: np.ndarray             # absolute paths
    video_b: np.ndarray
    prompt: np.ndarray              # str ('' when the format has none)
    labels: dict[str, np.ndarray]   # dimension -> relation (+1 A, −1 B, 0 same); primary first
    dropped: int = 0                # rows not turned into a pair (votes: split votes)


def read_table(path: str) -> pd.DataFrame:
    """A CSV/TSV/JSON/JSONL file as strings; an unreadable file is an InputError naming it."""
    file = Path(path)
    if not file.is_file():
        raise InputError("file does not exist", file=path)
    suffix = file.suffix.lower()
    try:
        if suffix in (".json", ".jsonl"):
            frame = pd.read_json(file, lines=suffix == ".jsonl", dtype=False)
            frame = frame.astype(object).where(frame.notna(), "").astype(str)
        else:
            frame = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable {suffix.lstrip('.') or 'CSV'} table ({exc})", file=path) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.apply(lambda s: s.astype(str).str.strip())


def parse_pairs(path: str, format_name: str, video_root: str | None = None) -> BenchPairs:
    """Read `path` in the layout `format_name`; a missing column or unknown label is an InputError."""
    if format_name not in FORMATS:
        raise InputError(f"unknown format {format_name!r}; expected one of {', '.join(FORMATS)}", field="format")
    spec = FORMATS[format_name]
    frame = read_table(path)
    required = [spec.video_a, spec.video_b, *spec.labels] + ([spec.prompt[0]] if spec.prompt_required else [])
    for column in required:
        if column not in frame.columns:
            raise InputError(f"missing column; the {format_name} format needs {', '.join(required)} "
                             f"(found: {', '.join(frame.columns)})", file=path, field=column)
    rows = np.arange(1, len(frame) + 1)

    def fail_at(mask: np.ndarray, field: str, message: Any) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise InputError(message(i) if callable(message) else message, file=path, row=int(rows[i]),
                             field=field)

    for column in (spec.video_a, spec.video_b):
        fail_at((frame[column] == "").to_numpy(), column, "empty video path")
    prompt_column = next((c for c in spec.prompt if c in frame.columns), None)
    prompt = frame[prompt_column].to_numpy(dtype=object) if prompt_column else np.full(len(frame), "", dtype=object)
    if spec.prompt_required:
        fail_at(prompt == "", prompt_column, "empty prompt")
    labels = {}
    for column in (*spec.labels, *(c for c in spec.optional_labels if c in frame.columns)):
        values = frame[column].str.lower()
        known = values.isin(list(spec.values)).to_numpy()
        fail_at(~known, column, lambda i, c=column: f"unknown label {frame[c].iloc[i]!r}; expected one of "
                f"{', '.join(repr(v) for v in spec.values)} (any case)")
        labels[column] = values.map(spec.values).to_numpy(dtype=np.int64)
    base = os.path.abspath(video_root if video_root else Path(path).parent)
    video_a, video_b = ([os.path.abspath(os.path.join(base, os.path.expanduser(p))) for p in frame[c]]
                        for c in (spec.video_a, spec.video_b))
    result = BenchPairs(rows, np.asarray(video_a, dtype=object), np.asarray(video_b, dtype=object), prompt, labels)
    fail_at(result.video_a == result.video_b, spec.video_b, "both sides name the same video")
    if format_name == "votes":
        result = _plurality(result)
    return result


def _plurality(votes: BenchPairs) -> BenchPairs:
    """One pair per unordered video pair: the plurality relation (split votes dropped)."""
    (dimension, relation), = votes.labels.items()
    swap = votes.video_a > votes.video_b
    first, second = np.where(swap, votes.video_b, votes.video_a), np.where(swap, votes.video_a, votes.video_b)
    oriented = np.where(swap, -relation, relation)
    frame = pd.DataFrame({"first": first, "second": second, "prompt": votes.prompt, "row": votes.row,
                          "a": oriented == A, "b": oriented == B, "same": oriented == SAME})
    agg = frame.groupby(["first", "second"], sort=False).agg(prompt=("prompt", "first"), row=("row", "first"),
                                                             a=("a", "sum"), b=("b", "sum"), same=("same", "sum"))
    counts = agg[["a", "b", "same"]].to_numpy()
    decided = (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) == 1
    outcome = np.array([A, B, SAME])[counts.argmax(axis=1)]
    agg = agg[decided].reset_index()
    return BenchPairs(agg["row"].to_numpy(), agg["first"].to_numpy(dtype=object), agg["second"].to_numpy(dtype=object),
                      agg["prompt"].to_numpy(dtype=object), {dimension: outcome[decided]}, int((~decided).sum()))


def pair_records(pairs: BenchPairs, format_name: str) -> list[dict[str, Any]]:
    """Pair-file records: win = video A, lose = video B, qualities from the primary label."""
    quality = {A: (1.0, 0.0), B: (0.0, 1.0), SAME: (0.5, 0.5)}
    primary = next(iter(pairs.labels.values()))
    records = []
    for i in range(len(pairs.row)):
        qa, qb = quality[int(primary[i])]
        prompt = pairs.prompt[i] or None
        records.append({"win": {"video_path": pairs.video_a[i], "prompt": prompt},
                        "lose": {"video_path": pairs.video_b[i], "prompt": prompt},
                        "meta": {"win": {"quality": qa}, "lose": {"quality": qb},
                                 "labels": {d: int(v[i]) for d, v in pairs.labels.items()},
                                 "row": int(pairs.row[i]), "source": format_name}})
    return records


def import_bench(config: ImportBenchConfig) -> dict[str, Any]:
    """Write the pair, video, votes and preference files of `config.input`; returns the summary."""
    pairs = parse_pairs(config.input, config.format, config.video_root)
    out = Path(config.output_dir)
    videos: dict[str, str] = {}
    for side in (pairs.video_a, pairs.video_b):
        for video, prompt in zip(side, pairs.prompt):
            videos.setdefault(video, prompt)
    missing = {v for v in videos if not os.path.isfile(v)}
    has_missing = np.array([a in missing or b in missing for a, b in zip(pairs.video_a, pairs.video_b)], dtype=bool)
    write_json(out / "pairs.json", pair_records(pairs, config.format))
    write_json(out / "videos.json", [{"video_path": v, "prompt": p or None} for v, p in videos.items()
                                     if v not in missing])
    relative = {v: Path(os.path.relpath(v, out.resolve())).as_posix() for v in videos}
    primary = next(iter(pairs.labels.values()))
    a_rel, b_rel = [relative[v] for v in pairs.video_a], [relative[v] for v in pairs.video_b]
    for name, frame in (
            ("votes.csv", pd.DataFrame({"prompt": pairs.prompt, "video_a": a_rel, "video_b": b_rel,
                                        "choice": [{A: "a", B: "b", SAME: "tie"}[int(v)] for v in primary],
                                        "annotator": f"import_{config.format}"})),
            ("preferences.csv", pd.DataFrame({"path_A": a_rel, "path_B": b_rel, "prompt": pairs.prompt,
                                              "label": [LETTER[int(v)] for v in primary]}))):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    summary = {"input": str(Path(config.input).resolve()), "format": config.format, "pairs": int(len(pairs.row)),
               "rows_dropped": pairs.dropped,
               "labels": {d: {LETTER[k]: int((v == k).sum()) for k in (A, B, SAME)} for d, v in pairs.labels.items()},
               "primary_label": next(iter(pairs.labels)), "videos": len(videos), "videos_missing": len(missing),
               "pairs_with_missing_video": int(has_missing.sum()),
               "missing_examples": sorted(missing)[:5]}
    if config.format == "genai_bench":
        summary["note"] = "bothbad_vote is scored as a tie (neither video preferred)"
    write_json(out / "summary.json", summary)
    if missing:
        logger.warning("%d of %d videos do not exist (e.g. %s); %d pair(s) will be skipped by evaluate",
                       len(missing), len(videos), sorted(missing)[0], int(has_missing.sum()))
    return summary
