"""A conservative reward from several reward models (Coste et al. 2023, "Reward Model Ensembles Help
Mitigate Overoptimization").

K models (e.g. replicate seeds of one training cell) score the same videos; each score is first put
on its model's own scale, ``score_norm`` = (score - score_mean) / score_std with the mean and std
stored in its checkpoint, then per video:

- ``mean``: the mean of the K normalised scores;
- ``mean_minus_std``: mean - λ · std, with std the standard deviation of the K scores (ddof 0):
  videos the models disagree on are paid less (uncertainty-weighted optimisation);
- ``min``: the smallest of the K normalised scores (worst-case optimisation).

With one model every method returns its normalised score. `solireward infer` and `solireward
overopt` take several ``--model_name_or_path`` folders with ``--ensemble`` and ``--ensemble_lambda``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from solireward.config import arg
from solireward.errors import ConfigError, InputError

ENSEMBLES = ("mean_minus_std", "mean", "min")


@dataclasses.dataclass
class EnsembleOptions:
    """How the scores of several reward models are combined (ignored with one model)."""

    ensemble: str = arg("combination of several models' normalised scores: mean_minus_std (mean - λ·std over the "
                        "models), mean, or min", "mean_minus_std", choices=ENSEMBLES)
    ensemble_lambda: float = arg("λ of mean_minus_std", 1.0)

    def __post_init__(self) -> None:
        if self.ensemble not in ENSEMBLES:
            raise ConfigError(f"expected one of {', '.join(ENSEMBLES)}, got {self.ensemble!r}", field="ensemble")
        if not self.ensemble_lambda >= 0:
            raise ConfigError(f"expected a non-negative number, got {self.ensemble_lambda}", field="ensemble_lambda")

    def describe(self, n_models: int) -> dict[str, Any]:
        """What the combined reward is, for result files."""
        return {"method": self.ensemble, "lambda": self.ensemble_lambda if self.ensemble == "mean_minus_std" else None,
                "n_models": n_models}


def conservative_reward(scores: Any, method: str = "mean_minus_std", lam: float = 1.0) -> np.ndarray:
    """(K models, N videos) normalised scores -> (N,) combined reward (see the module doc)."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2 or x.shape[0] < 1:
        raise InputError(f"expected scores of shape (models, videos), got {x.shape}", field="scores")
    if method == "mean":
        return x.mean(0)
    if method == "mean_minus_std":
        return x.mean(0) - lam * x.std(0)
    if method == "min":
        return x.min(0)
    raise ConfigError(f"expected one of {', '.join(ENSEMBLES)}, got {method!r}", field="ensemble")
