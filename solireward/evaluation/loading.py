"""Reading a score file and a pair file into arrays (the inputs of `solireward evaluate`; see the package)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from solireward.errors import InputError
from solireward.io import pair_quality, read_json, read_records


@dataclasses.dataclass
class ScoreTable:
    """The records of a score file as arrays (one entry per record)."""

    video_path: list[str]
    prompt: list[str | None]
    score: np.ndarray       # float, NaN where the record has no valid score
    label: np.ndarray       # float in [0, 1], NaN where unlabelled
    errored: np.ndarray     # bool: an `error` field and no score
    nonfinite: np.ndarray   # bool: the score is NaN or infinite

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.score)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            return None
    return None


def load_scores(path: str, score_field: str = "score") -> ScoreTable:
    """Read and validate a score file (see the module docstring); rows are 1-based in errors."""
    records = read_records(path)
    paths, prompts, scores, labels, errored, nonfinite = [], [], [], [], [], []
    for row, rec in enumerate(records, start=1):
        video = rec.get("video_path")
        if not isinstance(video, str) or not video:
            raise InputError("expected a non-empty string video_path", file=path, row=row, field="video_path")
        prompt = rec.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise InputError(f"expected a string or null, got {prompt!r}", file=path, row=row, field="prompt")
        raw = rec.get(score_field)
        is_error = raw is None and rec.get("error") not in (None, "")
        score = math.nan
        if raw is None and not is_error:
            raise InputError(f"record has neither '{score_field}' nor 'error'", file=path, row=row,
                             field=score_field)
        if raw is not None:
            score = _number(raw) if not isinstance(raw, (str, bool)) else None
            if score is None:
                raise InputError(f"expected a number, got {raw!r}", file=path, row=row, field=score_field)
        label = rec.get("label")
        if label is None or (isinstance(label, str) and not label.strip()):
            label_value = math.nan
        else:
            label_value = _number(label)
            if label_value is None or not 0.0 <= label_value <= 1.0:
                raise InputError(f"expected a quality in [0, 1] (1 Pass, 0 Fail) or null, got {label!r}",
                                 file=path, row=row, field="label")
        paths.append(video)
        prompts.append(prompt)
        scores.append(score)
        labels.append(label_value)
        errored.append(is_error)
        nonfinite.append(raw is not None and not math.isfinite(score))
    return ScoreTable(paths, prompts, np.asarray(scores, dtype=float), np.asarray(labels, dtype=float),
                      np.asarray(errored, dtype=bool), np.asarray(nonfinite, dtype=bool))


@dataclasses.dataclass
class PairScores:
    """Scores of the evaluable pairs of a pair file, and why the others were skipped."""

    d: np.ndarray          # r_win − r_lose
    relation: np.ndarray   # +1 win, 0 tie, −1 lose (sign of q_win − q_lose)
    in_file: int
    skipped_missing: int
    skipped_error: int
    row: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # 1-based
    prompt_win: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=object))
    prompt_lose: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=object))
    labels: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # meta.labels per dimension (NaN: null)


def pair_scores(path: str, table: ScoreTable) -> PairScores:
    """Look up each side of each pair in `table`; skip (and count) pairs with a side not scored."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of {win, lose, meta} pairs", file=path)
    by_path: dict[str, list[int]] = {}
    for i, video in enumerate(table.video_path):
        by_path.setdefault(video, []).append(i)

    def find(rec: dict, row: int, side: str) -> int | None:
        candidates = by_path.get(rec["video_path"], [])
        if len(candidates) <= 1 or len({table.score[i] for i in candidates}) == 1:
            return candidates[0] if candidates else None
        same_prompt = [i for i in candidates if table.prompt[i] == rec.get("prompt")]
        if not same_prompt:
            raise InputError(f"video {rec['video_path']} is scored more than once with different scores and "
                             "none of its records has this pair's prompt", file=path, row=row, field=side)
        return same_prompt[0]

    valid = table.valid
    win_idx, lose_idx, relation, rows, prompts = [], [], [], [], []
    dimensions: dict[str, list[float]] = {}
    missing = error = 0
    for row, pair in enumerate(data, start=1):
        if not isinstance(pair, dict):
            raise InputError("expected an object with 'win' and 'lose'", file=path, row=row)
        for side in ("win", "lose"):
            rec = pair.get(side)
            if not isinstance(rec, dict) or not isinstance(rec.get("video_path"), str):
                raise InputError("expected a video record with a string video_path", file=path, row=row,
                                 field=f"{side}.video_path")
        qw = pair_quality(pair.get("meta"), "win", path, row, default=1.0)
        ql = pair_quality(pair.get("meta"), "lose", path, row, default=0.0)
        w, lo = find(pair["win"], row, "win"), find(pair["lose"], row, "lose")
        if w is None or lo is None:
            missing += 1
            continue
        if not (valid[w] and valid[lo]):
            error += 1
            continue
        labels = (pair.get("meta") or {}).get("labels") or {}
        if not isinstance(labels, dict) or any(v not in (-1, 0, 1, None) for v in labels.values()):
            raise InputError(f"expected {{dimension: -1, 0, 1 or null}}, got {labels!r}", file=path, row=row,
                             field="meta.labels")
        if relation and set(labels) != set(dimensions):
            raise InputError(f"dimensions {sorted(labels)} differ from earlier pairs' {sorted(dimensions)}",
                             file=path, row=row, field="meta.labels")
        for key, value in labels.items():
            dimensions.setdefault(key, []).append(math.nan if value is None else float(value))
        win_idx.append(w)
        lose_idx.append(lo)
        relation.append(int(np.sign(qw - ql)))
        rows.append(row)
        prompts.append(tuple(pair[side].get("prompt") or table.prompt[i] or table.video_path[i]
                             for side, i in (("win", w), ("lose", lo))))
    d = table.score[np.asarray(win_idx, dtype=np.int64)] - table.score[np.asarray(lose_idx, dtype=np.int64)]
    sides = np.array(prompts, dtype=object).reshape(-1, 2)
    return PairScores(d, np.asarray(relation, dtype=np.int64), len(data), missing, error,
                      np.asarray(rows, dtype=np.int64), sides[:, 0], sides[:, 1],
                      {k: np.asarray(v, dtype=float) for k, v in dimensions.items()})
