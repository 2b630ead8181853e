"""Several named reward models scored together: their specs, loading, and one reward from their scores.

Each model contributes ``score`` (raw) and ``score_norm`` = (score - score_mean) / score_std with the
mean and std stored in its checkpoint (as `solireward infer` writes); the reward is
``sum(weight[name] * score_norm[name])`` with weights 1 unless given. The server, the in-process
adapters (:mod:`solireward.integrations`) and every protocol build their rewards with :func:`combine`.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from solireward.config import parse_key_values
from solireward.conservative import EnsembleOptions, conservative_reward
from solireward.errors import ConfigError, InputError

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def parse_pairs(values: Sequence[str], field: str) -> dict[str, str]:
    """``["NAME=VALUE", ...]`` -> ``{NAME: VALUE}``; a malformed entry or a repeated name is a ConfigError."""
    names = [str(text).partition("=")[0].strip() for text in values]
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise ConfigError(f"model name {repeated!r} given twice", field=field)
    pairs = {name: value.strip() for name, value in parse_key_values(values, field).items()}
    for name, value in pairs.items():
        if not value:
            raise ConfigError(f"expected NAME=VALUE, got {name + '='!r}", field=field)
        if not _NAME.match(name):
            raise ConfigError(f"model name {name!r}: use 1-64 letters, digits, '_', '.' or '-'", field=field)
    return pairs


def model_specs(models: Sequence[str], weights: Sequence[str] = ()) -> tuple[dict[str, Path], dict[str, float]]:
    """Model folders and weights from ``NAME=DIR`` and ``NAME=W`` entries; every folder must hold a reward model."""
    from solireward.models.reward_model import CONFIG_NAME

    folders = {name: Path(path).expanduser() for name, path in parse_pairs(models, "model").items()}
    for name, folder in folders.items():
        if not (folder / CONFIG_NAME).is_file():
            raise InputError(f"model {name!r}: not a reward-model folder ({CONFIG_NAME} is missing)",
                             file=str(folder))
    return folders, checked_weights(folders, parse_pairs(weights, "weights"))


def checked_weights(names: Mapping[str, Any], weights: Mapping[str, Any] | None) -> dict[str, float]:
    """A finite float weight per model name (default 1); a weight naming no model is a ConfigError."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ConfigError(f"weights name no served model: {', '.join(unknown)}", field="weights")
    out = {}
    for name in names:
        try:
            value = float(weights.get(name, 1.0))
        except (TypeError, ValueError):
            raise ConfigError(f"weight of {name!r}: expected a number, got {weights[name]!r}", field="weights") from None
        if not math.isfinite(value):
            raise ConfigError(f"weight of {name!r}: expected a finite number", field="weights")
        out[name] = value
    return out


def load_models(folders: Mapping[str, str | os.PathLike], device: Any, torch_dtype: str = "auto",
                attn_implementation: str = "sdpa") -> dict[str, Any]:
    """Each named reward model, loaded on `device` in eval mode (auto dtype: float32 on CPU), for the RL path (the
    server and the in-process rewards): a model whose scores collapsed in training is refused, since it ranks
    nothing and its rewards would be noise an RL run trains on."""
    from solireward.inference import _pick_dtype
    from solireward.models import RewardModel

    models = {}
    for name, folder in folders.items():
        model = RewardModel.from_pretrained(folder, torch_dtype=_pick_dtype(torch_dtype, device),
                                            attn_implementation=attn_implementation, device=device)
        if model.config.collapsed:
            raise InputError(f"model {name!r}: {model.collapse_note()}, so it is not used for rewards: retrain it",
                             file=str(folder))
        models[name] = model
    return models


def combined(values: Mapping[str, float], weights: Mapping[str, float], ensemble: EnsembleOptions | None = None
             ) -> float:
    """One reward from each model's value: their weighted sum, or with `ensemble` (several models of one task,
    e.g. replicates) the conservative reward over them (mean − λ·std, mean or min; Coste et al. 2023)."""
    if ensemble is not None and len(values) > 1:
        stacked = [[float(value)] for value in values.values()]
        return float(conservative_reward(stacked, ensemble.ensemble, ensemble.ensemble_lambda)[0])
    return float(sum(weights[name] * value for name, value in values.items()))


def combine(scores: Mapping[str, float], models: Mapping[str, Any], weights: Mapping[str, float],
            ensemble: EnsembleOptions | None = None) -> dict[str, Any]:
    """``{"reward", "scores": {name: {"score", "score_norm"}}}`` of one video scored by every model."""
    per_model = {name: {"score": float(scores[name]), "score_norm": float(models[name].normalise(scores[name]))}
                 for name in models}
    reward = combined({name: s["score_norm"] for name, s in per_model.items()}, weights, ensemble)
    return {"reward": reward, "scores": per_model}
