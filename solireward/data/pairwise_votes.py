"""Pairwise votes (``prompt,video_a,video_b,choice,annotator``; choice ``a``, ``b`` or ``tie``): read,
validated, and aggregated by plurality per unordered video pair.

A tie between the top choices of a pair drops it (and is counted). `solireward pairs`
(:mod:`solireward.data.pairing`) turns the decided pairs into its pair files; the benchmark importers
(:mod:`solireward.data.benchmarks`) use the same plurality rule.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from solireward.errors import InputError
from solireward.io import resolve_video_path

PAIRWISE_COLUMNS = ("prompt", "video_a", "video_b", "choice", "annotator")


def read_pairwise_annotations(path: str, video_root: str | None, check_videos: bool) -> pd.DataFrame:
    """Validated pairwise votes with absolute paths; any bad row is an InputError naming its line."""
    file = Path(path)
    if not file.is_file():
        raise InputError("pairwise annotation file does not exist", file=str(file))
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV file ({exc})", file=str(file)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in PAIRWISE_COLUMNS:
        if column not in frame.columns:
            raise InputError(f"missing column; expected columns {', '.join(PAIRWISE_COLUMNS)}",
                             file=str(file), field=column)
    frame = frame[list(PAIRWISE_COLUMNS)].apply(lambda s: s.str.strip())
    line = np.arange(2, len(frame) + 2)

    def fail(mask: np.ndarray, field: str, message: Any) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            text = message(i) if callable(message) else message
            raise InputError(f"line {line[i]} (CSV header = line 1): {text}", file=str(file),
                             row=int(line[i]), field=field)

    for column in PAIRWISE_COLUMNS:
        fail((frame[column] == "").to_numpy(), column, f"empty {column}; expected a non-empty value")
    choice = frame["choice"].str.lower()
    fail(~choice.isin(["a", "b", "tie"]).to_numpy(), "choice",
         lambda i: f"unknown choice '{frame['choice'].iloc[i]}'; expected a, b or tie (any case)")
    base = video_root if video_root else file.parent
    resolved = {}
    for column in ("video_a", "video_b"):
        codes, uniques = pd.factorize(frame[column].to_numpy(dtype=object))
        absolute = np.array([resolve_video_path(p, base) for p in uniques], dtype=object)
        resolved[column] = absolute[codes]
        if check_videos:
            missing = np.array([not os.path.isfile(p) for p in absolute], dtype=bool)
            fail(missing[codes], column, lambda i, c=column: f"video file does not exist: {resolved[c][i]}")
    fail(resolved["video_a"] == resolved["video_b"], "video_b", "video_a and video_b are the same video")
    return pd.DataFrame({"prompt": frame["prompt"].to_numpy(dtype=object), "video_a": resolved["video_a"],
                         "video_b": resolved["video_b"], "choice": choice.to_numpy(dtype=object),
                         "annotator": frame["annotator"].to_numpy(dtype=object)})


FIRST, SECOND, TIE = 0, 1, 2  # outcomes of `plurality`


def plurality(video_a: np.ndarray, video_b: np.ndarray, a_wins: np.ndarray, b_wins: np.ndarray,
              sort: bool = False) -> tuple[pd.DataFrame, int]:
    """The plurality vote per unordered video pair (votes that are neither a nor b are ties).

    Returns a frame with ``first``, ``second`` (the pair's videos in sorted order), ``vote`` (index of the
    pair's first vote) and ``outcome`` (FIRST, SECOND or TIE), one row per pair with a clear plurality, in
    order of first appearance (or of (first, second) with `sort`), and the number of split pairs dropped.
    """
    a, b = np.asarray(video_a, dtype=object), np.asarray(video_b, dtype=object)
    swap = a > b
    first_wins = (a_wins & ~swap) | (b_wins & swap)
    second_wins = (b_wins & ~swap) | (a_wins & swap)
    frame = pd.DataFrame({"first": np.where(swap, b, a), "second": np.where(swap, a, b), "vote": np.arange(len(a)),
                          "v1": first_wins.astype(int), "v2": second_wins.astype(int),
                          "vt": (~first_wins & ~second_wins).astype(int)})
    agg = frame.groupby(["first", "second"], sort=sort).agg(vote=("vote", "first"), v1=("v1", "sum"),
                                                             v2=("v2", "sum"), vt=("vt", "sum")).reset_index()
    counts = agg[["v1", "v2", "vt"]].to_numpy()
    decided = (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) == 1
    agg = agg.assign(outcome=counts.argmax(axis=1))[decided].reset_index(drop=True)
    return agg[["first", "second", "vote", "outcome"]], int((~decided).sum())


def aggregate_pairwise(votes: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Plurality per unordered video pair; returns (win/lose/prompt/quality frame, split pairs dropped)."""
    choice = votes["choice"].to_numpy(dtype=object)
    agg, split = plurality(votes["video_a"].to_numpy(dtype=object), votes["video_b"].to_numpy(dtype=object),
                           choice == "a", choice == "b", sort=True)
    outcome = agg["outcome"].to_numpy()
    win = np.where(outcome == SECOND, agg["second"], agg["first"])
    lose = np.where(outcome == SECOND, agg["first"], agg["second"])
    tie = outcome == TIE
    pairs = pd.DataFrame({"win": win, "lose": lose, "prompt": votes["prompt"].to_numpy(dtype=object)[agg["vote"]],
                          "q_win": np.where(tie, 0.5, 1.0), "q_lose": np.where(tie, 0.5, 0.0)})
    return pairs, split
