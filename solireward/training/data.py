"""Training data: pair files → labelled videos → batch plans → decoded, collated batches.

Pair file: a JSON list of ``{"win": REC, "lose": REC, "meta": {"win": {"quality": q},
"lose": {"quality": q}}}`` with ``REC = {"video_path", "prompt"}``; a tie has equal qualities.

Batch plans are index lists computed up front for the whole run from ``seed`` and the epoch
number alone, so a resumed run replays exactly the same batches (no sampler state to save):

- ``in_batch`` / ``cross_prompt``: each epoch is a fresh permutation of the labelled videos, cut
  into micro-batches; the last one is filled up from the start of the permutation so every
  micro-batch is full and every rank runs the same number of steps.
- ``in_batch`` / ``in_prompt``: prompts are shuffled, then each prompt's videos (shuffled) are laid
  out one prompt after another and cut into micro-batches, so a batch holds whole prompt groups
  (a group may straddle two batches) and in-prompt pairs exist inside it.
- ``pairs_file``: each epoch is a permutation of the pair list, cut into micro-batches of pairs.

Unreadable videos: training data must be clean, so the first video that cannot be decoded stops
training with a :class:`~solireward.errors.VideoReadError` naming the file (decoding runs in
DataLoader workers; the error travels back as data and is raised in the main process).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import torch

from solireward.errors import InputError, VideoReadError
from solireward.io import pair_quality, read_json
from solireward.scoring import EncodingError, VideoEncoder
from solireward.training.augment import AugmentingEncoder


@dataclasses.dataclass
class PairSet:
    """The distinct videos of a pair file and its pairs as indices into them."""

    source: str
    video_paths: list[str]
    prompts: list[str | None]
    win: np.ndarray          # (P,) int64 index of the win-side video
    lose: np.ndarray         # (P,) int64 index of the lose-side video
    q_win: np.ndarray        # (P,) float64 quality of the win side
    q_lose: np.ndarray       # (P,) float64 quality of the lose side

    @property
    def num_pairs(self) -> int:
        """Number of pairs."""
        return len(self.win)

    @property
    def is_tie(self) -> np.ndarray:
        """True where both sides have the same quality."""
        return self.q_win == self.q_lose

    def video_qualities(self, strict: bool = True) -> np.ndarray:
        """One quality per video; with `strict`, a video with two different qualities is an InputError."""
        quality = np.full(len(self.video_paths), np.nan)
        for side, q_side in ((self.win, self.q_win), (self.lose, self.q_lose)):
            for row, (video, q) in enumerate(zip(side.tolist(), q_side.tolist())):
                if np.isnan(quality[video]):
                    quality[video] = q
                elif quality[video] != q and strict:
                    raise InputError(
                        f"video {self.video_paths[video]} has quality {quality[video]:g} in one pair and {q:g} "
                        "in another; in-batch pairing needs one label per video (use --batching pairs_file "
                        "for pairwise-annotated data)", file=self.source, row=row)
        return quality


def _record(item: Any, source: str, row: int, side: str) -> tuple[str, str | None]:
    if not isinstance(item, dict) or not isinstance(item.get("video_path"), str) or not item["video_path"]:
        raise InputError(f"'{side}' must be an object with a non-empty string video_path", file=source,
                         row=row, field=side)
    prompt = item.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(f"'{side}.prompt' must be a string or null", file=source, row=row, field=f"{side}.prompt")
    return item["video_path"], prompt


def read_pair_file(path: str) -> PairSet:
    """Read and validate a pair file; rows in errors are 0-based list positions."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError("expected a JSON list of pairs", file=str(path))
    if not data:
        raise InputError("the pair file holds no pairs", file=str(path))
    index: dict[str, int] = {}
    paths: list[str] = []
    prompts: list[str | None] = []
    win, lose, q_win, q_lose = [], [], [], []
    for row, pair in enumerate(data):
        if not isinstance(pair, dict):
            raise InputError("expected an object with win, lose and meta", file=str(path), row=row)
        ids = []
        for side in ("win", "lose"):
            video, prompt = _record(pair.get(side), str(path), row, side)
            if video not in index:
                index[video] = len(paths)
                paths.append(video)
                prompts.append(prompt)
            elif prompts[index[video]] != prompt:
                raise InputError(f"video {video} appears with two prompts ({prompts[index[video]]!r} and "
                                 f"{prompt!r})", file=str(path), row=row, field=f"{side}.prompt")
            ids.append(index[video])
        qw = pair_quality(pair.get("meta"), "win", str(path), row)
        ql = pair_quality(pair.get("meta"), "lose", str(path), row)
        if qw < ql:
            raise InputError(f"the win side has a lower quality ({qw:g}) than the lose side ({ql:g})",
                             file=str(path), row=row, field="meta")
        if ids[0] == ids[1]:
            raise InputError(f"a video is paired with itself: {paths[ids[0]]}", file=str(path), row=row)
        win.append(ids[0])
        lose.append(ids[1])
        q_win.append(qw)
        q_lose.append(ql)
    return PairSet(str(path), paths, prompts, np.asarray(win, np.int64), np.asarray(lose, np.int64),
                   np.asarray(q_win, np.float64), np.asarray(q_lose, np.float64))


def prompt_groups(prompts: Sequence[str | None]) -> np.ndarray:
    """Integer id per video of its prompt (videos without a prompt each get their own group)."""
    ids: dict[str, int] = {}
    out = np.empty(len(prompts), np.int64)
    for i, prompt in enumerate(prompts):
        key = prompt if prompt is not None else f"\0video-{i}"
        out[i] = ids.setdefault(key, len(ids))
    return out


# ----------------------------------------------------------------------------------------------
# Batch plans


@dataclasses.dataclass
class BatchPlan:
    """Micro-batches of the whole run: ``batches[m][r]`` = item indices of rank r at micro-step m."""

    batches: list[list[np.ndarray]]
    micro_steps_per_epoch: int

    def for_rank(self, rank: int) -> list[np.ndarray]:
        """The micro-batches one rank processes, in order."""
        return [step[rank] for step in self.batches]


def _epoch_order(n_items: int, rng: np.random.Generator, groups: np.ndarray | None) -> np.ndarray:
    if groups is None:
        return rng.permutation(n_items)
    unique = np.unique(groups)
    order = []
    for g in rng.permutation(unique):
        members = np.flatnonzero(groups == g)
        order.append(rng.permutation(members))
    return np.concatenate(order)


def make_plan(n_items: int, batch_size: int, world_size: int, accumulation: int, seed: int,
              num_epochs: int, groups: np.ndarray | None = None) -> BatchPlan:
    """Deterministic micro-batches for `num_epochs` epochs over `n_items` items (see module docstring).

    With `groups`, items of a group are kept together (in-prompt batches).
    """
    per_step = batch_size * world_size
    if n_items < per_step:
        raise InputError(f"a micro-step needs {per_step} items (batch size {batch_size} x {world_size} "
                         f"process(es)) but the training data has only {n_items}; lower "
                         "--per_device_train_batch_size")
    block = per_step * accumulation
    micro_per_epoch = math.ceil(n_items / block) * accumulation
    batches: list[list[np.ndarray]] = []
    for epoch in range(num_epochs):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7, epoch]))
        order = _epoch_order(n_items, rng, groups)
        order = np.resize(order, micro_per_epoch * per_step)
        for m in range(micro_per_epoch):
            chunk = order[m * per_step:(m + 1) * per_step]
            batches.append([chunk[r * batch_size:(r + 1) * batch_size] for r in range(world_size)])
    return BatchPlan(batches, micro_per_epoch)


# ----------------------------------------------------------------------------------------------
# Datasets


class VideoBatches(torch.utils.data.Dataset):
    """Each item is one whole micro-batch: its distinct videos encoded (the scoring path's
    :class:`~solireward.scoring.VideoEncoder`) and padded once.

    ``mode="videos"``: an item index list names videos (in-batch pairing); ``mode="pairs"``: it
    names pairs of `pairs`, whose distinct videos are scored once and whose win/lose positions are
    returned as indices into the batch. An encoder with ``cache=True`` keeps each video's processed
    inputs (in each DataLoader worker) for later epochs: decoding and the processor are
    deterministic, and on small models they cost more than the forward pass.
    A video that cannot be read makes the item ``{"error": (path, reason)}``, re-raised in the main
    process by :func:`raise_if_error` (an exception raised in a worker would lose its type).
    With `augment` (:class:`~solireward.training.augment.AugmentingEncoder`), each video of item i is
    encoded with its own draw for micro-step ``first_step + i`` instead; with ``twins=True`` the videos are
    encoded as they are and the draws become ``out["twins"]``, the jittered twins of the consistency loss.
    """

    def __init__(self, batches: Sequence[np.ndarray], video_paths: Sequence[str], prompts: Sequence[str | None],
                 qualities: np.ndarray, groups: np.ndarray, encoder: VideoEncoder, mode: str = "videos",
                 pairs: PairSet | None = None, augment: AugmentingEncoder | None = None, first_step: int = 0,
                 twins: bool = False) -> None:
        if twins and augment is None:
            raise ValueError("twins need an augmenting encoder")
        self.batches, self.paths, self.prompts = list(batches), list(video_paths), list(prompts)
        self.qualities, self.groups = qualities, groups
        self.encoder, self.mode, self.pairs = encoder, mode, pairs
        self.augment, self.first_step, self.twins = augment, first_step, twins

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, Any]:
        items = np.asarray(self.batches[i], np.int64)
        out: dict[str, Any] = {}
        if self.mode == "pairs":
            assert self.pairs is not None
            ends = np.concatenate([self.pairs.win[items], self.pairs.lose[items]])
            videos, inverse = np.unique(ends, return_inverse=True)
            out["win_idx"] = torch.as_tensor(inverse[:len(items)], dtype=torch.long)
            out["lose_idx"] = torch.as_tensor(inverse[len(items):], dtype=torch.long)
            out["is_tie"] = torch.as_tensor(self.pairs.is_tie[items])
        else:
            videos = items
        encoded, twins = [], []
        for v in videos.tolist():
            try:
                if self.augment is None:
                    encoded.append(self.encoder(self.paths[v], self.prompts[v], key=v))
                elif self.twins:
                    original, twin = self.augment.twins(self.paths[v], self.prompts[v], v, self.first_step + i)
                    encoded.append(original)
                    twins.append(twin)
                else:
                    encoded.append(self.augment(self.paths[v], self.prompts[v], v, self.first_step + i))
            except VideoReadError as exc:
                return {"error": (exc.path, exc.reason)}
            except EncodingError as exc:
                return {"error": (self.paths[v], str(exc))}
        out["inputs"] = self.encoder.collator.pad(encoded)
        if twins:
            out["twins"] = self.encoder.collator.pad(twins)
        out["video_ids"] = torch.as_tensor(videos, dtype=torch.long)
        out["qualities"] = torch.as_tensor(self.qualities[videos], dtype=torch.float32)
        out["groups"] = torch.as_tensor(self.groups[videos], dtype=torch.long)
        return out


def raise_if_error(batch: dict[str, Any]) -> dict[str, Any]:
    """Re-raise a video error reported by a DataLoader worker, in the main process."""
    if "error" in batch:
        path, reason = batch["error"]
        raise VideoReadError(path, reason)
    return batch


def eval_shards(n_videos: int, batch_size: int, world_size: int) -> list[list[np.ndarray]]:
    """Evaluation batches per rank, padded (by repeating video 0) so every rank runs as many passes."""
    per_round = batch_size * world_size
    rounds = max(1, math.ceil(n_videos / per_round))
    order = np.arange(rounds * per_round) % max(n_videos, 1)
    valid = np.arange(rounds * per_round) < n_videos
    shards: list[list[np.ndarray]] = [[] for _ in range(world_size)]
    for k in range(rounds):
        chunk = order[k * per_round:(k + 1) * per_round]
        keep = valid[k * per_round:(k + 1) * per_round]
        for r in range(world_size):
            sl = slice(r * batch_size, (r + 1) * batch_size)
            shards[r].append(np.where(keep[sl], chunk[sl], -1))
    return shards
