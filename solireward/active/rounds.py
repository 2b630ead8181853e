"""Rounds of the labelling loop in the workflow (config key ``active``; ``snakemake active_rounds``): the plan.

For one cell (default: the study's reference cell of its first task), each strategy and the ``random``
control, and each of ``seeds`` seeds (the study's train seed + s), ``rounds`` rounds of: score the pool with
the model of the round before (``infer``), pick a batch (``select``, the same batch size for every strategy),
answer it with the demo's simulated annotators (``simulate-labels``), import it with the study's clean
annotations and every earlier round's answers (``labels``), pair (``pairs``: the study's split, so the test
and validation files stay byte for byte the study's), retrain, and score the result on the study's test
pairs and test over-optimisation grid. Round 0 is the cell trained on the study's labels: the study's own
training where that seed is one of the cell's replicates, else a training of its own. The pool is the demo
generator's over-optimisation grid on the *training* prompts (``overopt-grid --seed pool_seed``, written
out by ``grid-pool``), so the loop needs the demo data.

This module turns the validated study config into that plan (:class:`RoundsPlan`) with a ConfigError
naming the ``active.*`` key for a value the schema cannot check; the workflow (``workflow/rules/active.smk``)
wires the rules to it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from solireward.active.strategies import STRATEGIES
from solireward.errors import ConfigError
from solireward.io import atomic_write, read_records
from solireward.study import AXES, NO_MITIGATION, PAIRINGS, Cell, Study

CONTROL = "random"             # the control every strategy is compared with, always run
ACTIVE_DEFAULTS: dict[str, Any] = {"strategies": ["pressure"], "rounds": 2, "batch": 0.1, "seeds": 3,
                                   "pool_seed": 1, "cell": {}, "pool": {}, "select": {}, "warm_start": False}
# strategies that rank by one model's scores (`disagreement` needs an ensemble; a round trains one model)
SCORED = ("pressure", "uncertainty", "diversity")
CELL_KEYS = tuple(axis for axis in AXES if axis != "label_source")   # the labels are the study's clean ones
# flags the workflow sets itself (the same budget, strategy and files for every round), not given by `active.*`
SET_BY_THE_ROUNDS = {"select": ("pool", "output_dir", "strategy", "batch_size", "scores", "labelled", "held_out",
                                "task", "seed", "video_root"),
                     "pool": ("input_file", "grid_dir", "seed")}


@dataclasses.dataclass(frozen=True)
class RoundsPlan:
    """What ``active_rounds`` runs: the cell, the strategies (the control last), rounds, batch and seeds."""

    cell: Cell
    strategies: tuple[str, ...]
    rounds: int
    batch: int | float
    seeds: tuple[int, ...]
    pool_seed: int
    pool: dict[str, Any]
    select: dict[str, Any]
    warm_start: bool = False

    @classmethod
    def from_study(cls, study: Study) -> "RoundsPlan":
        """The plan of a study whose config has ``active`` set (defaults: :data:`ACTIVE_DEFAULTS`)."""
        given = study.config.get("active")
        if given is None:
            raise ConfigError("the study has no rounds (set the config key `active`)", field="active")
        active = {**ACTIVE_DEFAULTS, **given}
        config = study.config
        if config["data"]["demo"] is None:
            raise ConfigError("the rounds answer each batch with the demo's simulated annotators and draw the pool "
                              "from the demo generator: they need data.demo", field="active")
        if config.get("overopt") is None:
            raise ConfigError("the rounds measure the hacking gap on the test over-optimisation grid: set "
                              "overopt (e.g. {})", field="active")
        seed = study.train.get("seed")
        if seed is None:
            raise ConfigError("give train.seed (or a seed in the train_recipe); seed s of the rounds trains with "
                              "that seed + s", field="active.seeds")
        strategies = list(dict.fromkeys(active["strategies"]))
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise ConfigError(f"unknown strategy {unknown[0]!r}; expected some of {', '.join(STRATEGIES)}",
                              field="active.strategies")
        if "disagreement" in strategies:
            raise ConfigError("'disagreement' needs several models' scores; a round trains one model per seed "
                              f"(use one of {', '.join(SCORED)})", field="active.strategies")
        strategies = [s for s in strategies if s != CONTROL] + [CONTROL]
        for key in ("rounds", "seeds"):
            if not isinstance(active[key], int) or isinstance(active[key], bool) or active[key] < 1:
                raise ConfigError(f"expected a whole number of 1 or more, got {active[key]!r}", field=f"active.{key}")
        if not isinstance(active["pool_seed"], int) or isinstance(active["pool_seed"], bool):
            raise ConfigError(f"expected a whole number, got {active['pool_seed']!r}", field="active.pool_seed")
        batch_size(active["batch"], 1)   # checks the value
        if not isinstance(active["warm_start"], bool):
            raise ConfigError(f"expected true or false, got {active['warm_start']!r}", field="active.warm_start")
        for key, reserved in SET_BY_THE_ROUNDS.items():
            taken = [flag for flag in active[key] if flag in reserved]
            if taken:
                raise ConfigError(f"'{taken[0]}' is set by the rounds (the same for every strategy); flags the "
                                  f"rounds set: {', '.join(reserved)}", field=f"active.{key}")
        return cls(cell=active_cell(study, active["cell"]), strategies=tuple(strategies), rounds=active["rounds"],
                   batch=active["batch"], seeds=tuple(seed + s for s in range(active["seeds"])),
                   pool_seed=active["pool_seed"], pool=dict(active["pool"]), select=dict(active["select"]),
                   warm_start=active["warm_start"])

    def train_cell(self, seed: int, study: Study) -> Cell:
        """The cell as the replicate whose training seed is `seed` (its train flags carry that seed)."""
        return dataclasses.replace(self.cell, replicate=seed - study.train["seed"])

    def base_cell(self, seed: int, study: Study) -> Cell | None:
        """The study's training that is round 0 of `seed`, or None when the study does not train it."""
        cell = self.train_cell(seed, study)
        return cell if cell in study.cells() else None

    def select_seed(self, seed: int, round_: int) -> int:
        """The seed of `select` (random's draw, diversity's prompt order) in a round of a seed."""
        return 1000 * seed + round_


def active_cell(study: Study, overrides: dict[str, Any]) -> Cell:
    """The study's reference cell of its first task with `overrides` (keys of :data:`CELL_KEYS`) applied."""
    config = study.config
    unknown = [k for k in overrides if k not in CELL_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; expected some of {', '.join(CELL_KEYS)}",
                          field="active.cell")
    cell = dataclasses.replace(study.reference(config["tasks"][0]), **{k: str(v) for k, v in overrides.items()})
    choices = {"task": config["tasks"], "pairing": list(PAIRINGS),
               "head": list(config["heads"]), "loss": list(config["losses"]),
               "mitigation": [NO_MITIGATION, *config["mitigations"]]}
    for key, allowed in choices.items():
        if getattr(cell, key) not in allowed:
            raise ConfigError(f"{getattr(cell, key)!r} is not one of the study's: {', '.join(allowed)}",
                              field=f"active.cell.{key}")
    return cell


def batch_size(batch: Any, training_videos: int) -> int:
    """Videos per round: `batch` as a whole number, or a share in (0, 1) of the training videos (at least 1)."""
    if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
        return batch
    if isinstance(batch, float) and 0 < batch < 1:
        return max(1, math.floor(batch * training_videos + 0.5))
    raise ConfigError(f"expected a share of the training videos in (0, 1) or a whole number of videos, got "
                      f"{batch!r}", field="active.batch")


def write_budget(videos_train: str, batch: Any, output: str) -> int:
    """Write `select`'s ``--config`` file with the batch size for the training videos of `videos_train` (a
    ``videos_train.json`` of `pairs`); returns the size."""
    videos = len(read_records(videos_train))
    size = batch_size(batch, videos)
    with atomic_write(output, encoding="utf-8") as f:
        f.write(f"# `solireward select --config THIS_FILE`: active.batch {batch!r} of {videos} training videos "
                f"({videos_train})\nbatch_size: {size}\n")
    return size
