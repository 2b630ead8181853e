"""The strategies of `solireward select`: which videos of a pool to label next, and why each was picked.

Every strategy gets the candidates (pool videos not labelled yet, and scored when it needs scores) and
returns them in the order it would label them; the batch is the first ``batch_size``. Scores are the models'
``score_norm`` from `solireward infer` as a (K models, N videos) matrix; the *reward* is their conservative
combination (:func:`solireward.conservative.conservative_reward`; one model: its ``score_norm``).

- ``pressure``: what best-of-n against the reward picks. Per prompt the candidates are ranked by reward
  (highest first); the batch takes every prompt's best video, then every prompt's second best, and so on,
  each round ordered by reward (highest first), so a batch smaller than the number of prompts holds the
  prompts where the policy's pick scores highest. That is the limit of large n; with ``best_of_n`` = n the
  candidates are ranked by the probability that best-of-n over their prompt's candidates (uniform base)
  returns them (:func:`solireward.hacking.overopt.best_of_n_distribution`, exact with ties), highest first,
  ties by reward: the policy at that KL, not only its top.
- ``disagreement``: the largest standard deviation (ddof 0) of the K models' ``score_norm`` (K >= 2): what an
  ensemble is least sure of (the std that ``mean_minus_std`` subtracts).
- ``uncertainty``: the reward closest to the model's Pass/Fail boundary, ``threshold`` (a calibrated cut in
  ``score_norm`` units, e.g. ``best_f1_threshold`` of `solireward evaluate` run on the ``score_norm`` of
  labelled videos; default: the median reward of the candidates).
- ``diversity``: spread over prompts and over the space of score vectors. Prompts take turns (in an order
  drawn with ``seed``), so the batch covers as many prompts as it can and gives each ceil(batch / prompts)
  unless others run out; in its turn a prompt gives its candidate farthest (Euclidean, over the K
  ``score_norm``) from every video picked so far (the first pick of all: farthest from the candidates'
  mean), and never one within ``min_distance`` of a video already picked for the same prompt (a
  near-duplicate; a prompt with only near-duplicates left sits out, so the batch may come out smaller).
- ``random``: a uniform draw without replacement (the control): candidates in pool order, permuted by
  ``numpy.random.default_rng(seed)``.

Ties are broken by pool order, so the same inputs give the same batch.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from solireward.errors import ConfigError


@dataclasses.dataclass
class Candidates:
    """The videos a strategy may pick, in pool order: prompts, and scores when the pool was scored."""

    prompts: np.ndarray                 # (N,) str
    members: np.ndarray | None = None   # (K, N) score_norm of each model, or None
    reward: np.ndarray | None = None    # (N,) combined reward, or None

    def __len__(self) -> int:
        return len(self.prompts)


@dataclasses.dataclass
class Ranking:
    """Candidates in the order a strategy labels them, with the value it ranked by and why."""

    order: np.ndarray       # indices into the candidates
    value: np.ndarray       # per entry of `order`
    reasons: list[str]      # per entry of `order`


@dataclasses.dataclass
class StrategyOptions:
    """What the strategies take besides the candidates."""

    seed: int = 0
    threshold: float | None = None
    min_distance: float = 0.1
    best_of_n: int | None = None


def _needs_scores(c: Candidates, name: str, models: int = 1) -> None:
    if c.members is None or c.reward is None:
        raise ConfigError(f"strategy '{name}' needs scores (give one or more `solireward infer` files)",
                          field="scores")
    if len(c.members) < models:
        raise ConfigError(f"strategy '{name}' needs {models} or more models' scores, got {len(c.members)} "
                          "(give several `solireward infer` files, or one with ensemble_scores)", field="scores")


def first_appearance(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each value's code, the distinct values), codes numbered in order of first appearance."""
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()], values[np.sort(first)]


def pressure(c: Candidates, options: StrategyOptions) -> Ranking:
    """Best-of-n's picks: every prompt's top video, then every prompt's second, each round by reward."""
    _needs_scores(c, "pressure")
    reward = c.reward
    codes, _ = first_appearance(c.prompts)
    by_prompt_then_reward = np.lexsort((np.arange(len(c)), -reward, codes))
    rank_in_prompt = np.empty(len(c), dtype=np.int64)
    sorted_codes = codes[by_prompt_then_reward]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    counts = np.diff(np.r_[starts, len(c)])
    rank_in_prompt[by_prompt_then_reward] = np.arange(len(c)) - np.repeat(starts, counts)
    if options.best_of_n is None:
        order = np.lexsort((np.arange(len(c)), -reward, rank_in_prompt))
        reasons = [f"best-of-n's pick #{rank_in_prompt[i] + 1} for its prompt (reward {reward[i]:+.3f})"
                   for i in order]
        return Ranking(order, reward[order], reasons)
    from solireward.hacking.overopt import best_of_n_distribution   # here: the workflow imports this module at start

    mass = np.empty(len(c))
    for p in np.unique(codes):
        members = np.flatnonzero(codes == p)
        mass[members] = best_of_n_distribution(reward[members][None, :], options.best_of_n)[0]
    order = np.lexsort((np.arange(len(c)), -reward, -mass))
    reasons = [f"best-of-{options.best_of_n} returns it with probability {mass[i]:.3f} (#{rank_in_prompt[i] + 1} "
               f"of its prompt, reward {reward[i]:+.3f})" for i in order]
    return Ranking(order, mass[order], reasons)


def disagreement(c: Candidates, options: StrategyOptions) -> Ranking:
    """The largest spread of the models' scores first."""
    _needs_scores(c, "disagreement", models=2)
    spread = c.members.std(axis=0)
    order = np.lexsort((np.arange(len(c)), -spread))
    reasons = [f"the {len(c.members)} models disagree: std {spread[i]:.3f} of their score_norm" for i in order]
    return Ranking(order, spread[order], reasons)


def boundary(c: Candidates, options: StrategyOptions) -> float:
    """The Pass/Fail cut of ``uncertainty``: the given threshold, else the candidates' median reward."""
    _needs_scores(c, "uncertainty")
    return float(np.median(c.reward)) if options.threshold is None else float(options.threshold)


def uncertainty(c: Candidates, options: StrategyOptions) -> Ranking:
    """The reward closest to the Pass/Fail boundary first."""
    cut = boundary(c, options)
    distance = np.abs(c.reward - cut)
    order = np.lexsort((np.arange(len(c)), distance))
    what = "the given threshold" if options.threshold is not None else "the median reward"
    reasons = [f"reward {c.reward[i]:+.3f} is {distance[i]:.3f} from {what} {cut:+.3f}" for i in order]
    return Ranking(order, distance[order], reasons)


def diversity(c: Candidates, options: StrategyOptions) -> Ranking:
    """Prompts take turns; each gives its candidate farthest from every pick so far (no near-duplicates)."""
    _needs_scores(c, "diversity")
    features = c.members.T
    codes, uniques = first_appearance(c.prompts)
    turn = np.random.default_rng(options.seed).permutation(len(uniques))
    nearest = np.linalg.norm(features - features.mean(axis=0), axis=1)   # before any pick: from the mean
    nearest_same = np.full(len(c), np.inf)                               # to the picks of the same prompt
    taken = np.zeros(len(c), dtype=bool)
    order, value, reasons = [], [], []
    progress = True
    while progress:
        progress = False
        for p in turn:
            free = np.flatnonzero((codes == p) & ~taken & (nearest_same >= options.min_distance))
            if not len(free):
                continue
            i = int(free[np.argmax(nearest[free])])         # argmax takes the first (pool order) on ties
            gap = float(nearest[i])
            what = "from the candidates' mean" if not order else "from the nearest video picked before"
            order.append(i)
            value.append(gap)
            reasons.append(f"turn {sum(codes[j] == p for j in order)} of its prompt; score vector {gap:.3f} {what}")
            taken[i] = True
            distance = np.linalg.norm(features - features[i], axis=1)
            nearest = distance if len(order) == 1 else np.minimum(nearest, distance)
            same = codes == p
            nearest_same[same] = np.minimum(nearest_same[same], distance[same])
            progress = True
    return Ranking(np.asarray(order, dtype=np.int64), np.asarray(value, dtype=float), reasons)


def random_control(c: Candidates, options: StrategyOptions) -> Ranking:
    """A seeded uniform permutation of the candidates."""
    order = np.random.default_rng(options.seed).permutation(len(c))
    return Ranking(order, np.arange(1, len(c) + 1, dtype=float),
                   [f"uniform draw #{k + 1} (seed {options.seed})" for k in range(len(c))])


STRATEGIES: dict[str, Callable[[Candidates, StrategyOptions], Ranking]] = {
    "pressure": pressure, "disagreement": disagreement, "uncertainty": uncertainty, "diversity": diversity,
    "random": random_control,
}
