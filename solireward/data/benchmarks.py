"""`solireward import-bench`: public pairwise video-reward test sets and preference files as pair files.

Each format names its two video fields, its prompt field and its label field(s); a label says which of
the two videos (A = first, B = second) is preferred, that neither is (a tie), or that the row is not
judged (skipped). Field names are those of the published files; ``a.b`` is field ``b`` of the object in
field ``a``. Ties and skips follow each benchmark's own evaluation script:

- ``videogen_rewardbench`` (VideoGen-RewardBench CSV; VideoAlign's ``eval_videogen_rewardbench.py``):
  ``path_A, path_B, prompt`` and labels ``Overall`` (or ``ALL`` in the copies VideoAlign's first script
  reads), ``VQ``, ``MQ``, ``TA`` in {A, B, same}; ``same`` is a tie, as there (counted in accuracy with
  ties, left out of accuracy without ties). The primary label is ``Overall``, else ``ALL``.
  ``A_model``, ``B_model``, ``fps_A/B`` and ``num_frames_A/B`` are ignored (the model's own frame settings apply).
- ``videoalign`` (VideoAlign's training CSV: ``path_A, path_B, prompt, VQ, MQ, TA, fps_A, num_frames_A,
  fps_B, num_frames_B``): the same labels; the primary one is ``label`` when the file has it (the
  single-label preference CSV this project writes), else ``Overall``/``ALL``, else ``VQ``.
- ``genai_bench`` (GenAI-Bench video, CSV/JSON/parquet): ``left_video, right_video, prompt, vote_type`` in
  {leftvote, rightvote, tievote, bothbad_vote}; both ``tievote`` and ``bothbad_vote`` are ties (GenAI-Bench
  scores them as the two "equal" answers).
- ``mj_bench_video`` (MJ-Bench-Video JSON): ``video_0_path, video_1_path``, prompt ``caption`` (or
  ``prompt``), ``overall_preference`` in {"Video 1 better", "Video 2 better", "Same", "Hard to judge"} and
  ``category_preference`` ({aspect: the same values}, each aspect a dimension). "Hard to judge" rows are
  skipped, as MJ-Bench's ``eval_overall_*.py`` scripts skip them ("Same" rows are ties, which accuracy
  without ties leaves out as those scripts do); an aspect judged "Hard to judge" is null for that aspect.
- ``mj_bench_2`` (MJ-Bench-2.0 JSON): ``caption``, ``video0_body.video_path``, ``video1_body.video_path``;
  ``video0_body.chosen`` true means video 0 is preferred, false video 1 (what MJ-Bench's scripts read).
- ``chosen_reject`` (preference JSON with the preferred video in ``chosen`` and the other in ``reject``,
  prompt ``caption`` or ``prompt``): every row prefers ``chosen``.
- ``visionreward_video`` (VisionRewardDB-Video pairs, parquet): ``video1_path, video2_path,
  standard_answer`` in {video1, video2, tie}; prompt from ``prompt`` when present.
- ``votes`` (the pairwise annotations of ``solireward pairs``: ``prompt, video_a, video_b, choice,
  annotator``): the plurality choice per pair (split votes dropped), as ``solireward pairs`` takes it.

Labels are matched case-insensitively after trimming spaces. Files may be CSV, TSV, JSON (a list of
records), JSONL or parquet, all read by :func:`solireward.io.read_records`. Relative video paths are
resolved against ``--video_root`` (default: the input file's folder). A video field that is a URL is
an error naming how many there are and an example, unless ``--url_map`` (CSV/TSV/parquet/JSON records
with ``url`` and ``path``, or one JSON object url → path; relative paths against the map's folder) or
``--video_root`` (the file named as the URL's last path component in that folder) says where it was
downloaded.

Outputs in ``--output_dir``: ``pairs.json`` (one pair per kept row, ``win`` = video A, ``lose`` = video B;
``meta`` qualities from the primary label: A 1/0, B 0/1, tie ½/½, so ``evaluate`` reads the relation as
+1, −1 or 0; ``meta.labels`` holds every dimension's relation, null where not judged, and ``meta.row``
the source row), ``videos.json`` (the distinct videos that exist, for ``solireward infer``: pairs with a
missing video are then counted by ``evaluate`` as skipped), ``votes.csv`` (the pairwise annotation form
that ``solireward pairs --pairwise_annotations`` trains from), ``preferences.csv`` (the VideoAlign form:
``label`` from the primary label and a column per further dimension) and ``summary.json`` (rows, label
counts per dimension, skipped rows by label, missing videos). Paths in the CSV files are relative to
``--output_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from solireward.config import arg
from solireward.errors import InputError
from solireward.data.pairwise_votes import plurality
from solireward.io import atomic_path, read_json, read_records, resolve_video_path, write_json

logger = logging.getLogger(__name__)

A, B, SAME = 1, -1, 0  # relation of video A to video B (A better, B better, neither)
SKIP = None            # a label value that leaves the row (primary label) or the dimension (others) unjudged
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class BenchFormat:
    """Field layout and label vocabulary of one pairwise format."""

    video_a: str
    video_b: str
    prompt: tuple[str, ...]              # candidate prompt fields, first present wins
    prompt_required: bool
    labels: tuple[str, ...]              # label fields; the first present is the primary one (one is required)
    values: dict[str, int | None]        # lower-cased label value -> relation, or SKIP
    groups: tuple[str, ...] = ()         # fields holding {dimension: label value}
    note: str = ""                       # how ties and skips are taken (summary.json)


_LETTERS = {"a": A, "b": B, "same": SAME}
_MJ = {"video 1 better": A, "video 2 better": B, "same": SAME, "hard to judge": SKIP}
_DIMENSIONS = ("Overall", "ALL", "VQ", "MQ", "TA")
_SAME_NOTE = "'same' is a tie (VideoAlign: in accuracy with ties, out of accuracy without ties)"
FORMATS: dict[str, BenchFormat] = {
    "videogen_rewardbench": BenchFormat("path_A", "path_B", ("prompt",), True, _DIMENSIONS, _LETTERS,
                                        note=_SAME_NOTE),
    "videoalign": BenchFormat("path_A", "path_B", ("prompt",), True, ("label", *_DIMENSIONS), _LETTERS,
                              note=_SAME_NOTE),
    "genai_bench": BenchFormat("left_video", "right_video", ("prompt",), True, ("vote_type",),
                               {"leftvote": A, "rightvote": B, "tievote": SAME, "bothbad_vote": SAME},
                               note="tievote and bothbad_vote are ties (neither video preferred)"),
    "mj_bench_video": BenchFormat("video_0_path", "video_1_path", ("caption", "prompt"), False,
                                  ("overall_preference",), _MJ, ("category_preference",),
                                  note="'Hard to judge' rows are skipped and 'Same' rows are ties, as MJ-Bench's "
                                       "overall evaluation leaves both out of accuracy; a category judged "
                                       "'Hard to judge' is null for that category"),
    "mj_bench_2": BenchFormat("video0_body.video_path", "video1_body.video_path", ("caption", "prompt"), False,
                              ("video0_body.chosen",), {"true": A, "false": B},
                              note="video0_body.chosen true: video 0 preferred, false: video 1 (no ties)"),
    "chosen_reject": BenchFormat("chosen", "reject", ("caption", "prompt"), False, (), {},
                                 note="every row prefers the chosen video (no ties)"),
    "visionreward_video": BenchFormat("video1_path", "video2_path", ("prompt",), False, ("standard_answer",),
                                      {"video1": A, "video2": B, "tie": SAME}, note="'tie' is a tie"),
    "votes": BenchFormat("video_a", "video_b", ("prompt",), True, ("choice",), {"a": A, "b": B, "tie": SAME},
                         note="the plurality vote per video pair; split votes are dropped"),
}
LETTER = {A: "A", B: "B", SAME: "same"}
# formats a study's pairwise training file may have (config data.pairwise_format): votes as they are,
# or a VideoAlign-style CSV that `import-bench` converts into votes
PAIRWISE_FORMATS = ("votes", "videoalign")


@dataclasses.dataclass
class ImportBenchConfig:
    """Options of `solireward import-bench` (a public pairwise test set or preference file as pair files)."""

    input: str = arg("the benchmark or preference file (CSV, TSV, JSON list, JSONL or parquet)")
    format: str = arg("its layout (see `solireward.data.benchmarks`)", choices=tuple(FORMATS))
    output_dir: str = arg("folder for pairs.json, videos.json, votes.csv, preferences.csv and summary.json")
    video_root: str | None = arg("folder relative video paths are resolved against (default: the input file's "
                                 "folder); URL video fields become the file named as the URL's last part here", None)
    url_map: str | None = arg("file mapping URL video fields to local files: records with url and path "
                              "(CSV, TSV, parquet, JSON, JSONL) or one JSON object {url: path}", None)


@dataclasses.dataclass
class BenchPairs:
    """Parsed pairs: one entry per kept row."""

    row: np.ndarray                 # source row (data rows numbered from 1; CSV line = row + 1)
    video_a: np.ndarray             # absolute paths
    video_b: np.ndarray
    prompt: np.ndarray              # str ('' when the format has none)
    labels: dict[str, np.ndarray]   # dimension -> relation (+1 A, −1 B, 0 tie, NaN not judged); primary first
    dropped: int = 0                # rows not turned into a pair (votes: split votes)
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)  # rows skipped, by primary label value


def _get(record: dict, field: str) -> Any:
    """`record[field]`, following ``a.b`` into nested objects (JSON text in a cell is parsed); _MISSING if absent."""
    value: Any = record
    for part in field.split("."):
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return _MISSING
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _text(value: Any) -> str:
    """A cell as trimmed text: booleans as true/false, None/NaN as ''."""
    if value is None or value is _MISSING or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value).strip()


def _mapping(value: Any) -> dict | None:
    """A {dimension: label} cell (an object, or its JSON text); None when absent."""
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def _url_map(path: str) -> dict[str, str]:
    """URL -> absolute local path from `path` (records with url and path, or one JSON object)."""
    data = read_json(path) if Path(path).suffix.lower() == ".json" else None
    if not isinstance(data, dict):
        records = read_records(path)
        if not all("url" in r and "path" in r for r in records):
            raise InputError("expected records with 'url' and 'path', or one JSON object {url: path}", file=path)
        data = {_text(r["url"]): _text(r["path"]) for r in records}
    base = Path(path).resolve().parent
    return {str(url): os.path.abspath(base / os.path.expanduser(str(local))) for url, local in data.items()}


def _is_url(value: str) -> bool:
    return "://" in value


def _video_paths(values: list[str], rows: list[int], fields: list[str], path: str, video_root: str | None,
                 url_map: str | None) -> list[str]:
    """Absolute local paths of video fields; URLs through `url_map` or `video_root`, else a clear error."""
    base = video_root if video_root else Path(path).parent
    mapping = _url_map(url_map) if url_map else {}
    out, unmapped = [], []
    for value, row, field in zip(values, rows, fields):
        if not _is_url(value):
            out.append(resolve_video_path(value, base))
        elif value in mapping:
            out.append(mapping[value])
        elif video_root and not url_map:
            out.append(resolve_video_path(os.path.basename(urlparse(value).path), base))
        else:
            unmapped.append((value, row, field))
            out.append("")
    if unmapped:
        value, row, field = unmapped[0]
        how = (f"--url_map {url_map} has no entry for them" if url_map else
               "download them and pass --url_map (records of url and path) or --video_root (files named as the "
               "URL's last path component)")
        raise InputError(f"{len(unmapped)} video field(s) are URLs, not local files (e.g. {value!r}); {how}",
                         file=path, row=row, field=field)
    return out


def parse_pairs(path: str, format_name: str, video_root: str | None = None, url_map: str | None = None) -> BenchPairs:
    """Read `path` in the layout `format_name`; a missing field or unknown label is an InputError."""
    if format_name not in FORMATS:
        raise InputError(f"unknown format {format_name!r}; expected one of {', '.join(FORMATS)}", field="format")
    spec = FORMATS[format_name]
    records = read_records(path)
    if not records:
        raise InputError("no rows", file=path)

    def present(field: str) -> bool:
        return any(_get(r, field) is not _MISSING for r in records)

    label_fields = [f for f in spec.labels if present(f)]
    prompt_field = next((f for f in spec.prompt if present(f)), None)
    needed = [spec.video_a, spec.video_b] + ([spec.prompt[0]] if spec.prompt_required else [])
    missing = [f for f in needed if not present(f)] + ([spec.labels[0]] if spec.labels and not label_fields else [])
    if missing:
        wanted = [*needed, *([" or ".join(spec.labels)] if spec.labels else [])]
        raise InputError(f"missing field; the {format_name} format needs {', '.join(wanted)} "
                         f"(found: {', '.join(map(str, records[0]))})", file=path, field=missing[0])

    def cells(field: str, required: bool = True) -> list[str]:
        values = []
        for row, record in enumerate(records, start=1):
            value = _get(record, field)
            if required and _text(value) == "":
                raise InputError("empty or missing value", file=path, row=row, field=field)
            values.append(_text(value))
        return values

    def relation(value: str, row: int, field: str) -> int | None:
        key = value.lower()
        if key not in spec.values:
            raise InputError(f"unknown label {value!r}; expected one of "
                             f"{', '.join(repr(v) for v in spec.values)} (any case)", file=path, row=row, field=field)
        return spec.values[key]

    n = len(records)
    rows = list(range(1, n + 1))
    labels: dict[str, list[int | None]] = {}
    for field in label_fields:
        labels[field] = [relation(v, row, field) for row, v in zip(rows, cells(field))]
    if not spec.labels:
        labels[spec.video_a] = [A] * n
    for group in spec.groups:
        for row, record in enumerate(records, start=1):
            mapping = _mapping(_get(record, group)) or {}
            for dimension, value in mapping.items():
                judged = relation(_text(value), row, f"{group}.{dimension}")
                labels.setdefault(str(dimension), [SKIP] * n)[row - 1] = judged
    prompts = cells(prompt_field, spec.prompt_required) if prompt_field else [""] * n
    raw_a, raw_b = cells(spec.video_a), cells(spec.video_b)
    videos = _video_paths(raw_a + raw_b, rows + rows, [spec.video_a] * n + [spec.video_b] * n, path, video_root,
                          url_map)
    primary = next(iter(labels.values()))
    keep = np.array([value is not SKIP for value in primary], dtype=bool)
    skipped: dict[str, int] = {}
    if label_fields:
        for value, kept in zip(cells(label_fields[0]), keep):
            if not kept:
                skipped[value] = skipped.get(value, 0) + 1
    as_float = {k: np.array([np.nan if v is SKIP else float(v) for v in values])[keep] for k, values in labels.items()}
    result = BenchPairs(np.asarray(rows)[keep], np.asarray(videos[:n], dtype=object)[keep],
                        np.asarray(videos[n:], dtype=object)[keep], np.asarray(prompts, dtype=object)[keep],
                        as_float, skipped=skipped)
    same = result.video_a == result.video_b
    if same.any():
        raise InputError("both sides name the same video", file=path, row=int(result.row[np.argmax(same)]),
                         field=spec.video_b)
    if format_name == "votes":
        result = _plurality(result)
    return result


def _plurality(votes: BenchPairs) -> BenchPairs:
    """One pair per unordered video pair: the plurality relation (split votes dropped)."""
    (dimension, relation), = votes.labels.items()
    agg, split = plurality(votes.video_a, votes.video_b, relation == A, relation == B)
    vote = agg["vote"].to_numpy()
    outcome = np.array([A, B, SAME], dtype=float)[agg["outcome"].to_numpy()]  # plurality's FIRST, SECOND, TIE
    return BenchPairs(votes.row[vote], agg["first"].to_numpy(dtype=object), agg["second"].to_numpy(dtype=object),
                      votes.prompt[vote], {dimension: outcome}, split)


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
                                 "labels": {d: None if np.isnan(v[i]) else int(v[i]) for d, v in pairs.labels.items()},
                                 "row": int(pairs.row[i]), "source": format_name}})
    return records


def _letters(relation: np.ndarray) -> list[str]:
    """Relations as VideoAlign's letters ('' where not judged)."""
    return ["" if np.isnan(v) else LETTER[int(v)] for v in relation]


def import_bench(config: ImportBenchConfig) -> dict[str, Any]:
    """Write the pair, video, votes and preference files of `config.input`; returns the summary."""
    pairs = parse_pairs(config.input, config.format, config.video_root, config.url_map)
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
    (primary_name, primary), *others = pairs.labels.items()
    a_rel, b_rel = [relative[v] for v in pairs.video_a], [relative[v] for v in pairs.video_b]
    preferences = pd.DataFrame({"path_A": a_rel, "path_B": b_rel, "prompt": pairs.prompt, "label": _letters(primary)})
    for name, relation in others:
        preferences[name] = _letters(relation)
    for name, frame in (
            ("votes.csv", pd.DataFrame({"prompt": pairs.prompt, "video_a": a_rel, "video_b": b_rel,
                                        "choice": [{A: "a", B: "b", SAME: "tie"}[int(v)] for v in primary],
                                        "annotator": f"import_{config.format}"})),
            ("preferences.csv", preferences)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    summary = {"input": str(Path(config.input).resolve()), "format": config.format, "pairs": int(len(pairs.row)),
               "rows_dropped": pairs.dropped, "rows_skipped": pairs.skipped,
               "labels": {d: {**{LETTER[k]: int((v == k).sum()) for k in (A, B, SAME)}, "null": int(np.isnan(v).sum())}
                          for d, v in pairs.labels.items()},
               "primary_label": primary_name, "videos": len(videos), "videos_missing": len(missing),
               "pairs_with_missing_video": int(has_missing.sum()), "missing_examples": sorted(missing)[:5],
               "note": FORMATS[config.format].note}
    write_json(out / "summary.json", summary)
    if missing:
        logger.warning("%d of %d videos do not exist (e.g. %s); %d pair(s) will be skipped by evaluate",
                       len(missing), len(videos), sorted(missing)[0], int(has_missing.sum()))
    return summary
