"""`solireward pairs`: build win-lose and win-tie pairs from the label table, split by prompt.

Task labels. A task is a group of dimensions (``TASK_DIMENSIONS`` or ``--dimensions``). A video is
Pass when every member dimension is Pass, Fail when any member is Fail (a Fail is decisive even
if another member is undecided), and dropped otherwise (a member missing or null, no Fail).

Splits. The sorted union of prompts is shuffled with ``--seed`` and cut into train/val/test with
the ``--split`` fractions (largest remainder; every split with a non-zero fraction gets at least
one prompt when there are enough). No prompt is in two splits, and both videos of a pair come
from the same split.

Pairs, per split, with W = Pass videos and L = Fail videos:

- ``cross_prompt`` (default): win-lose pairs (w, l) from W x L and win-tie pairs {w, w'} from W,
  drawn regardless of prompt (docs/DESIGN.md §2), so with P prompts about (P-1)/P of the pairs
  join two different prompts. ``in_prompt`` (the ablation baseline): both videos share a prompt.
  Fail x Fail pairs are never made; there are no self-pairs and no repeated pairs.
- Sizes: ``--pairs_per_video K`` asks for K * (#eligible videos) / 2 win-lose pairs, i.e. each
  eligible video is in about K win-lose pairs on average; ``--num_pairs N`` instead asks for N
  pairs in all, shared among splits by their number of task videos. Ties are ``--tie_ratio`` of
  all pairs of a split. Requests larger than the number of distinct valid pairs are capped.
- Sampling never builds W x L: win sides cycle through shuffled W so every video gets its share,
  lose sides are drawn at random among valid partners (numpy, group offsets by prompt), repeats
  are redrawn. When a request needs at least half of all valid pairs, those pairs are enumerated
  and a subset is chosen instead. Same seed, same inputs -> identical files.

Pairwise source (``--pairwise_annotations``, the label-noise baseline): the plurality vote per video
pair (:mod:`solireward.data.pairwise_votes`). A decided pair gives qualities 1.0 / 0.0; a ``tie``
majority gives 0.5 on both sides (equal qualities mark a tie in the pair format).
"""

from __future__ import annotations

import dataclasses
import logging
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from solireward.config import arg
from solireward.data.annotations import read_label_table
from solireward.data.pairwise_votes import aggregate_pairwise, read_pairwise_annotations
from solireward.errors import ConfigError, InputError
from solireward.io import atomic_write, write_json
from solireward.study import PAIRINGS

logger = logging.getLogger(__name__)

TASK_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "phy_deform": ("physics", "deformity"),
    "text_alignment": ("text_alignment",),
}
SPLITS = ("train", "val", "test")
_MAX_ROUNDS = 64
_TASK_HELP = ", ".join(f"{name} = {'+'.join(dims)}" for name, dims in TASK_DIMENSIONS.items())


@dataclasses.dataclass
class PairingConfig:
    """Options of `solireward pairs` (cross-prompt / in-prompt pair building, split by prompt)."""

    # `--strategy` is the old name of `--pairing` (kept, with a warning, until the next release)
    DEPRECATED: ClassVar[dict[tuple[str, str | None], tuple[str, str | None]]] = {("strategy", None): ("pairing", None)}

    output_dir: str = arg("folder for train/val/test.json, videos_{split}.json and summary.json")
    labels: str | None = arg("label table from `solireward labels` (.jsonl or .parquet); required "
                             "unless --pairwise_annotations is given", None)
    task: str = arg(f"reward task; selects the dimension group ({_TASK_HELP}) "
                    "unless --dimensions is given, in which case it is only the name", "phy_deform")
    dimensions: list[str] | None = arg("custom dimension group: Pass when all are Pass, Fail when any "
                                       "is Fail", None)
    pairing: str = arg("cross_prompt: pair videos regardless of prompt (mostly across prompts); "
                       "in_prompt: both videos share a prompt (baseline)", "cross_prompt",
                       choices=PAIRINGS)
    pairs_per_video: float = arg("win-lose pairs per eligible video, on average (ignored with --num_pairs)", 4.0)
    num_pairs: int | None = arg("total number of pairs over all splits, shared by each split's share "
                                "of the task's videos (overrides --pairs_per_video)", None)
    tie_ratio: float = arg("share of win-tie pairs among all pairs of a split (0 for no ties)", 0.2)
    split: list[float] = arg("train val test fractions of the prompts", default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = arg("random seed of the prompt split and the pair sampling", 0)
    pairwise_annotations: str | None = arg("build pairs from pairwise annotations instead (CSV: prompt, "
                                           "video_a, video_b, choice a/b/tie, annotator) aggregated by "
                                           "majority; --labels then only fills videos_{split}.json", None)
    video_root: str | None = arg("folder that relative paths in --pairwise_annotations are resolved "
                                 "against (default: the CSV's folder)", None)
    check_videos: bool = arg("with --pairwise_annotations: fail when a video file does not exist", True)

    def __post_init__(self) -> None:
        if not 0 <= self.tie_ratio < 1:
            raise ConfigError(f"expected a share in [0, 1), got {self.tie_ratio}", field="tie_ratio")
        if self.pairs_per_video <= 0:
            raise ConfigError(f"expected a positive number, got {self.pairs_per_video}", field="pairs_per_video")
        if self.num_pairs is not None and self.num_pairs <= 0:
            raise ConfigError(f"expected a positive number, got {self.num_pairs}", field="num_pairs")
        if not self.labels and not self.pairwise_annotations:
            raise ConfigError("give labels (a binary label table) or pairwise_annotations", field="labels")
        if not self.dimensions and self.task not in TASK_DIMENSIONS:
            raise ConfigError(f"unknown task '{self.task}'; known tasks: {', '.join(TASK_DIMENSIONS)} "
                              "(or set dimensions for a custom group)", field="task")
        fractions = self.split
        if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0, atol=1e-6) \
                or fractions[0] <= 0:
            raise ConfigError(f"expected three non-negative fractions (train val test) summing to 1 with "
                              f"train > 0, got {fractions}", field="split")


# ----------------------------------------------------------------------------------------------
# Task labels and the prompt split


def task_dimensions(config: PairingConfig) -> tuple[str, ...]:
    """The dimension group of the task: config.dimensions, else TASK_DIMENSIONS[config.task]."""
    if config.dimensions:
        return tuple(dict.fromkeys(config.dimensions))
    return TASK_DIMENSIONS[config.task]


def task_labels(table: pd.DataFrame, dimensions: tuple[str, ...], source: str = "label table") -> tuple[pd.DataFrame, int]:
    """Per-video task label from the label table; returns (video_path/prompt/label frame, dropped count)."""
    known = sorted(table["dimension"].astype(str).unique().tolist())
    unknown = [d for d in dimensions if d not in known]
    if unknown:
        raise InputError(f"dimension(s) {', '.join(unknown)} not in the label table; it has: {', '.join(known)}",
                         file=source, field="dimension")
    sub = table[table["dimension"].isin(dimensions)]
    if sub.duplicated(["video_path", "dimension"]).any():
        row = int(np.flatnonzero(sub.duplicated(["video_path", "dimension"]).to_numpy())[0])
        raise InputError(f"video {sub['video_path'].iloc[row]} has two rows for dimension "
                         f"{sub['dimension'].iloc[row]}; a label table has one row per video x dimension",
                         file=source, field="dimension")
    video_code, videos = pd.factorize(sub["video_path"].to_numpy(dtype=object))
    label = pd.to_numeric(sub["label"], errors="coerce").to_numpy(dtype=float)
    n_pass = np.bincount(video_code, weights=label == 1, minlength=len(videos))
    n_fail = np.bincount(video_code, weights=label == 0, minlength=len(videos))
    first = np.full(len(videos), len(sub), dtype=np.int64)
    np.minimum.at(first, video_code, np.arange(len(sub)))
    quality = np.where(n_fail > 0, 0, np.where(n_pass == len(dimensions), 1, -1))
    keep = quality >= 0
    frame = pd.DataFrame({"video_path": np.asarray(videos, dtype=object)[keep],
                          "prompt": sub["prompt"].to_numpy(dtype=object)[first[keep]],
                          "label": quality[keep].astype(np.int64)})
    frame = frame.sort_values("video_path", kind="stable").reset_index(drop=True)
    return frame, int((~keep).sum())


def split_prompts(prompts: list[str], fractions: list[float], seed: int) -> dict[str, str]:
    """Assign each prompt to train/val/test deterministically from `seed` (see module docstring).

    `fractions` are three non-negative shares (train val test) summing to 1, with train > 0
    (checked by PairingConfig).
    """
    ordered = sorted(set(prompts))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    shuffled = [ordered[i] for i in rng.permutation(len(ordered))]
    exact = np.asarray(fractions) * len(ordered)
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: len(ordered) - counts.sum()]:
        counts[i] += 1
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if len(ordered) >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                counts[i] += 1
                counts[int(np.argmax(counts))] -= 1
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return {p: SPLITS[s] for s in range(3) for p in shuffled[bounds[s]:bounds[s + 1]]}


# ----------------------------------------------------------------------------------------------
# Sampling


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(c) for each c in `counts`."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


class _PairSpace:
    """Valid pairs between pool A and pool B, and random draws from them.

    ``same_prompt`` restricts pairs to videos of one prompt (in-prompt); otherwise any two videos
    pair, whatever their prompts (cross-prompt). For in-prompt pairs both pools must be sorted by
    prompt group (non-decreasing codes): partners are addressed through per-group offsets into B.
    ``symmetric`` means A and B are the same pool (win-tie pairs): unordered, no self-pairs.
    """

    def __init__(self, groups_a: np.ndarray, groups_b: np.ndarray, n_groups: int, same_prompt: bool,
                 symmetric: bool) -> None:
        if same_prompt and (np.any(np.diff(groups_a) < 0) or np.any(np.diff(groups_b) < 0)):
            raise ValueError("in-prompt pools must be sorted by prompt group")
        self.ga, self.gb = groups_a, groups_b
        self.same, self.symmetric = same_prompt, symmetric
        self.count_b = np.bincount(groups_b, minlength=n_groups).astype(np.int64)
        self.start_b = np.cumsum(self.count_b) - self.count_b
        count_a = np.bincount(groups_a, minlength=n_groups).astype(np.int64)
        partners = self.count_b[groups_a] if same_prompt else np.full(len(groups_a), len(groups_b), np.int64)
        self.partners = partners - 1 if symmetric else partners
        self.eligible = np.flatnonzero(self.partners > 0)
        partners_of_b = count_a[groups_b] if same_prompt else np.full(len(groups_b), len(groups_a), np.int64)
        self.eligible_b = np.flatnonzero((partners_of_b - 1 if symmetric else partners_of_b) > 0)
        if symmetric:
            self.total = int((count_a * (count_a - 1) // 2).sum()) if same_prompt \
                else len(groups_a) * (len(groups_a) - 1) // 2
        else:
            self.total = int((count_a * self.count_b).sum()) if same_prompt else len(groups_a) * len(groups_b)

    def keys(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """One integer per pair (order-free when symmetric), for finding repeats."""
        if self.symmetric:
            a, b = np.minimum(a, b), np.maximum(a, b)
        return a.astype(np.int64) * len(self.gb) + b

    def all_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every valid pair (each unordered pair once when symmetric)."""
        counts = self.count_b[self.ga] if self.same else np.full(len(self.ga), len(self.gb), np.int64)
        a = np.repeat(np.arange(len(self.ga), dtype=np.int64), counts)
        b = self._partner(a, _ragged_arange(counts))
        keep = a < b if self.symmetric else np.ones(len(a), dtype=bool)
        return a[keep], b[keep]

    def _partner(self, a: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """The `offset`-th candidate partner of each A index (self included when symmetric)."""
        return self.start_b[self.ga[a]] + offset if self.same else offset

    def draw_partner(self, a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random candidate partner for each A index (may be itself when symmetric)."""
        span = self.count_b[self.ga[a]] if self.same else np.full(len(a), len(self.gb), np.int64)
        offset = np.floor(rng.random(len(a)) * span).astype(np.int64)
        return self._partner(a, np.minimum(offset, span - 1))

    def valid(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether each (a, b) is an allowed pair (same prompt when in-prompt; no self-pair)."""
        ok = self.ga[a] == self.gb[b] if self.same else np.ones(len(a), dtype=bool)
        return ok & (a != b) if self.symmetric else ok


def _tile_permutations(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` items cycling through fresh random permutations of `pool` (balanced use of every item)."""
    reps = -(-n // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n]


def sample_pairs(space: _PairSpace, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` distinct valid pairs (capped at the number that exist), as local (a, b) index arrays."""
    n = int(min(n, space.total))
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if 2 * n >= space.total:
        a, b = space.all_pairs()
        chosen = rng.choice(len(a), size=n, replace=False)
        return a[chosen], b[chosen]
    a = _tile_permutations(space.eligible, n, rng)
    if space.same:
        b = space.draw_partner(a, rng)
    else:
        b = _tile_permutations(space.eligible_b, n, rng)
    for round_ in range(_MAX_ROUNDS):
        _, first = np.unique(space.keys(a, b), return_index=True)
        good = np.zeros(n, dtype=bool)
        good[first] = True
        good &= space.valid(a, b)
        bad = np.flatnonzero(~good)
        if not len(bad):
            break
        if round_ >= _MAX_ROUNDS // 4:   # the win side may have run out of partners: move it too
            a[bad] = rng.choice(space.eligible, size=len(bad))
        b[bad] = space.draw_partner(a[bad], rng)
    else:
        _, first = np.unique(space.keys(a, b), return_index=True)
        good = np.zeros(n, dtype=bool)
        good[first] = True
        good &= space.valid(a, b)
        a, b = a[good], b[good]
    return a, b


# ----------------------------------------------------------------------------------------------
# Output


def _video_json(paths: np.ndarray, prompts: np.ndarray) -> list[str]:
    """Encoded `{"video_path": ..., "prompt": ...}` records (JSON text, one per video)."""
    return [f'{{"video_path": {encode_basestring(p)}, "prompt": {encode_basestring(q)}}}'
            for p, q in zip(np.asarray(paths, dtype=object).tolist(), np.asarray(prompts, dtype=object).tolist())]


def write_pair_file(path: Path, win: list[str], lose: list[str], q_win: np.ndarray, q_lose: np.ndarray) -> None:
    """Write a pair file (JSON list, one pair per line) from pre-encoded video records."""
    qualities = np.stack([np.asarray(q_win, float), np.asarray(q_lose, float)], axis=1).reshape(-1, 2)
    kinds, which = np.unique(qualities, axis=0, return_inverse=True)
    metas = [f'{{"win": {{"quality": {qw!r}}}, "lose": {{"quality": {ql!r}}}}}' for qw, ql in kinds.tolist()]
    lines = [f'{{"win": {w}, "lose": {l}, "meta": {metas[i]}}}' for w, l, i in zip(win, lose, which.ravel().tolist())]
    with atomic_write(path, encoding="utf-8") as handle:
        handle.write("[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n")


def _write_videos(path: Path, videos: pd.DataFrame) -> None:
    """Write the inference input of a split: a JSON list of {video_path, prompt, label}, one per line."""
    records = _video_json(videos["video_path"].to_numpy(), videos["prompt"].to_numpy())
    labels = ["null" if pd.isna(v) else str(int(v)) for v in videos["label"].to_numpy(dtype=object)]
    lines = [f'{r[:-1]}, "label": {lab}}}' for r, lab in zip(records, labels)]
    with atomic_write(path, encoding="utf-8") as handle:
        handle.write("[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n")


# ----------------------------------------------------------------------------------------------
# Builders


def _pair_targets(config: PairingConfig, n_videos: int, n_all_videos: int, eligible: int) -> tuple[int, int]:
    """Requested (win-lose, tie) counts of one split."""
    if config.num_pairs is not None:
        total = int(round(config.num_pairs * n_videos / n_all_videos)) if n_all_videos else 0
        ties = int(round(total * config.tie_ratio))
        return total - ties, ties
    non_ties = int(round(config.pairs_per_video * eligible / 2))
    return non_ties, int(round(non_ties * config.tie_ratio / (1 - config.tie_ratio)))


def build_pairs(config: PairingConfig) -> dict[str, Any]:
    """Build and write every split's pairs and video lists; returns the summary (also written)."""
    out = Path(config.output_dir)
    dimensions = task_dimensions(config)
    videos, dropped = (None, 0)
    if config.labels:
        table = read_label_table(config.labels)
        videos, dropped = task_labels(table, dimensions, str(config.labels))
        if videos.empty:
            raise InputError(f"no video has a complete label for task '{config.task}' "
                             f"({'+'.join(dimensions)})", file=str(config.labels))
    summary: dict[str, Any] = {
        "task": config.task, "dimensions": list(dimensions),
        "source": "pairwise_annotations" if config.pairwise_annotations else "labels",
        "pairing": "pairwise_annotations" if config.pairwise_annotations else config.pairing,
        "seed": config.seed, "split_fractions": list(config.split), "tie_ratio": config.tie_ratio,
        "pairs_per_video": None if config.num_pairs is not None else config.pairs_per_video,
        "num_pairs": config.num_pairs, "videos_dropped_incomplete": dropped,
    }
    if config.pairwise_annotations:
        splits, undecided = _build_from_pairwise(config, videos, out)
        summary["pairwise_pairs_undecided"] = undecided
    else:
        splits = _build_from_labels(config, videos, out)
    summary["splits"] = splits
    write_json(out / "summary.json", summary)
    for name in SPLITS:
        s = splits[name]
        logger.info("pairs %s: %d pairs (%d win-lose, %d ties) from %d videos (%s pass, %s fail) over %d prompts",
                    name, s["pairs"], s["non_ties"], s["ties"], s["videos"], s["pass"], s["fail"], s["prompts"])
    if dropped:
        logger.info("pairs: %d video(s) dropped: a member dimension of '%s' missing or undecided", dropped, config.task)
    return summary


def _build_from_labels(config: PairingConfig, videos: pd.DataFrame, out: Path) -> dict[str, dict]:
    assignment = split_prompts(videos["prompt"].tolist(), list(config.split), config.seed)
    split_of = videos["prompt"].map(assignment).to_numpy()
    same_prompt = config.pairing == "in_prompt"
    records = np.asarray(_video_json(videos["video_path"].to_numpy(), videos["prompt"].to_numpy()), dtype=object)
    prompt_of, _ = pd.factorize(videos["prompt"].to_numpy())
    results = {}
    for index, name in enumerate(SPLITS):
        rows = np.flatnonzero(split_of == name)
        sub = videos.iloc[rows]
        labels = sub["label"].to_numpy()
        win_rows, lose_rows = rows[labels == 1], rows[labels == 0]
        n_prompts = int(sub["prompt"].nunique())
        if len(rows) and (not len(win_rows) or not len(lose_rows)):
            message = (f"the {name} split has {len(win_rows)} Pass and {len(lose_rows)} Fail videos for task "
                       f"'{config.task}' over {n_prompts} prompt(s); win-lose pairs need both")
            if name == "train":
                raise InputError(message, file=str(config.labels), field="label")
            logger.warning("%s; its pair file will hold ties only or nothing", message)
        prompt_code, _ = pd.factorize(videos["prompt"].to_numpy()[rows])
        g_win, g_lose = prompt_code[labels == 1], prompt_code[labels == 0]
        by_group_w, by_group_l = np.argsort(g_win, kind="stable"), np.argsort(g_lose, kind="stable")
        win_rows, g_win = win_rows[by_group_w], g_win[by_group_w]
        lose_rows, g_lose = lose_rows[by_group_l], g_lose[by_group_l]
        n_groups = int(prompt_code.max()) + 1 if len(rows) else 0
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1, index]))
        wl = _PairSpace(g_win, g_lose, n_groups, same_prompt, symmetric=False)
        ww = _PairSpace(g_win, g_win, n_groups, same_prompt, symmetric=True)
        eligible = len(wl.eligible) + len(wl.eligible_b)
        want_wl, want_tie = _pair_targets(config, len(rows), len(videos), eligible)
        if want_wl > wl.total or want_tie > ww.total:
            logger.info("pairs %s: asked for %d win-lose and %d tie pairs, only %d and %d distinct ones exist; capped",
                        name, want_wl, want_tie, wl.total, ww.total)
        a, b = sample_pairs(wl, want_wl, rng)
        ta, tb = sample_pairs(ww, want_tie, rng)
        win = np.concatenate([win_rows[a], win_rows[ta]])
        lose = np.concatenate([lose_rows[b], win_rows[tb]])
        q_lose = np.concatenate([np.zeros(len(a)), np.ones(len(ta))])
        order = rng.permutation(len(win))
        write_pair_file(out / f"{name}.json", records[win[order]].tolist(), records[lose[order]].tolist(),
                        np.ones(len(win)), q_lose[order])
        _write_videos(out / f"videos_{name}.json", sub)
        results[name] = {"pairs": int(len(win)), "non_ties": int(len(a)), "ties": int(len(ta)),
                         "requested_non_ties": int(want_wl), "requested_ties": int(want_tie),
                         "videos": int(len(rows)), "prompts": n_prompts,
                         "pass": int(len(win_rows)), "fail": int(len(lose_rows)),
                         "cross_prompt_pairs": int((prompt_of[win] != prompt_of[lose]).sum())}
    return results


def _build_from_pairwise(config: PairingConfig, videos: pd.DataFrame | None, out: Path) -> tuple[dict[str, dict], int]:
    votes = read_pairwise_annotations(config.pairwise_annotations, config.video_root, config.check_videos)
    pairs, undecided = aggregate_pairwise(votes)
    prompts = set(pairs["prompt"]) | (set(videos["prompt"]) if videos is not None else set())
    assignment = split_prompts(sorted(prompts), list(config.split), config.seed)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2]))
    pairs = pairs.iloc[rng.permutation(len(pairs))].reset_index(drop=True)
    pair_split = pairs["prompt"].map(assignment).to_numpy()
    results = {}
    for name in SPLITS:
        sub = pairs[pair_split == name]
        if name == "train" and sub.empty:
            raise InputError("no decided pair falls in the train split", file=str(config.pairwise_annotations))
        win = _video_json(sub["win"].to_numpy(), sub["prompt"].to_numpy())
        lose = _video_json(sub["lose"].to_numpy(), sub["prompt"].to_numpy())
        write_pair_file(out / f"{name}.json", win, lose, sub["q_win"].to_numpy(), sub["q_lose"].to_numpy())
        if videos is not None:
            split_videos = videos[videos["prompt"].map(assignment).to_numpy() == name]
        else:
            paths = pd.unique(np.concatenate([sub["win"].to_numpy(), sub["lose"].to_numpy()]))
            prompt_of = dict(zip(np.concatenate([sub["win"], sub["lose"]]), np.concatenate([sub["prompt"]] * 2)))
            split_videos = pd.DataFrame({"video_path": sorted(paths), "label": None})
            split_videos["prompt"] = split_videos["video_path"].map(prompt_of)
        _write_videos(out / f"videos_{name}.json", split_videos)
        ties = int((sub["q_win"] == sub["q_lose"]).sum())
        labels = split_videos["label"]
        results[name] = {"pairs": int(len(sub)), "non_ties": int(len(sub) - ties), "ties": ties,
                         "videos": int(len(split_videos)),
                         "prompts": int(len({*sub["prompt"], *split_videos["prompt"]})),
                         "pass": int((labels == 1).sum()) if videos is not None else None,
                         "fail": int((labels == 0).sum()) if videos is not None else None}
    return results, undecided
