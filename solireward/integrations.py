"""In-process reward adapters for RL trainers: a VideoAlign-style callable, a verl-style `compute_score`,
and GRPO group advantages.

They score through the same path as `solireward infer` and `solireward serve` (the checkpoint's frame
sampling, :func:`solireward.scoring.score_videos`) and build rewards as the server does
(:func:`solireward.serving.ensemble.combine`): ``reward = sum(weight * score_norm)`` over the models.
A video that cannot be read raises :class:`~solireward.errors.VideoReadError` naming it: in process,
the caller holds the inputs (the server, which cannot, reports such videos per item instead).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Mapping, Sequence

import numpy as np

from solireward.serving.ensemble import checked_weights, combine, load_models, parse_pairs


class VideoReward:
    """``reward(video_paths, prompts) -> [{name: score_norm, ..., "reward": ...}]`` over named reward models.

    `models` maps names to reward-model folders (or loaded :class:`~solireward.models.RewardModel` s);
    `weights` (default 1 each) weigh their ``score_norm`` in ``reward``.
    """

    def __init__(self, models: Mapping[str, str | os.PathLike | Any], weights: Mapping[str, float] | None = None, *,
                 device: str = "auto", torch_dtype: str = "auto", batch_size: int = 8, num_workers: int = 0,
                 video_backend: str = "auto") -> None:
        from solireward.inference import _pick_device

        if not models:
            raise ValueError("no reward models given")
        folders = {name: m for name, m in models.items() if isinstance(m, (str, os.PathLike))}
        loaded = load_models(folders, _pick_device(device, 0, False), torch_dtype) if folders else {}
        self.models: dict[str, Any] = {name: loaded.get(name, m) for name, m in models.items()}
        self.weights = checked_weights(self.models, weights)
        self.batch_size, self.num_workers, self.video_backend = batch_size, num_workers, video_backend

    def results(self, sources: Sequence[Any], prompts: Sequence[str | None] | None = None,
                fps: Sequence[float | None] | None = None) -> list[dict[str, Any]]:
        """``{"reward", "scores": {name: {"score", "score_norm"}}}`` per video (paths or uint8 frames), in order."""
        from solireward.scoring import score_videos

        per_model = {}
        for name, model in self.models.items():
            scores, _ = score_videos(model, list(sources), prompts, fps=fps, batch_size=self.batch_size,
                                     num_workers=self.num_workers, backend=self.video_backend, on_error="raise")
            per_model[name] = scores
        return [combine({name: per_model[name][i] for name in self.models}, self.models, self.weights)
                for i in range(len(sources))]

    def __call__(self, video_paths: Sequence[str | os.PathLike], prompts: Sequence[str | None] | None = None
                 ) -> list[dict[str, float]]:
        """One dict per video: each model's ``score_norm`` under its name, and ``reward``."""
        results = self.results([os.fspath(p) for p in video_paths], prompts)
        return [{**{name: r["scores"][name]["score_norm"] for name in self.models}, "reward": r["reward"]}
                for r in results]

    def score_frames(self, frames: Any, prompt: str | None = None, fps: float | None = None) -> dict[str, Any]:
        """The result of one in-memory video: float ``(T, C, H, W)`` in [0, 1] or uint8 ``(T, H, W, 3)``."""
        from solireward.models.reward_model import as_uint8_frames

        return self.results([as_uint8_frames(frames)], [prompt], fps=[fps])[0]


@functools.lru_cache(maxsize=4)
def _cached_reward(models: tuple[tuple[str, str], ...], weights: tuple[tuple[str, float], ...],
                   device: str) -> VideoReward:
    return VideoReward(dict(models), dict(weights), device=device)


def compute_score(data_source: Any, solution_str: Any, ground_truth: Any = None, extra_info: Mapping[str, Any] | None
                  = None, *, models: Mapping[str, str] | Sequence[str] | None = None,
                  weights: Mapping[str, float] | None = None, device: str = "auto") -> dict[str, float]:
    """verl custom reward function: ``{"score": reward, name: score_norm, ...}`` of one generated video.

    `solution_str` is the video: a float ``(T, C, H, W)`` tensor in [0, 1] (or uint8 ``(T, H, W, 3)``);
    ``extra_info["fps"]`` is its frame rate and ``extra_info["prompt"]`` its prompt. `models` (``{name:
    folder}`` or ``["name=folder", ...]``) and `weights` come from verl's ``custom_reward_function.reward_kwargs``;
    the models are loaded once per process and kept. `data_source` and `ground_truth` are not used.
    """
    if not models:
        raise ValueError("compute_score needs models={name: reward-model folder} (verl: custom_reward_function."
                         "reward_kwargs.models)")
    folders = parse_pairs(models, "models") if not isinstance(models, Mapping) else dict(models)
    reward = _cached_reward(tuple(sorted((k, str(v)) for k, v in folders.items())),
                            tuple(sorted((weights or {}).items())), device)
    info = dict(extra_info or {})
    result = reward.score_frames(solution_str, info.get("prompt"), info.get("fps"))
    return {"score": result["reward"], **{name: s["score_norm"] for name, s in result["scores"].items()}}


def grpo_advantages(rewards: Sequence[float] | np.ndarray, groups: Sequence[Any] | np.ndarray) -> np.ndarray:
    """GRPO advantages ``(r - mean) / std`` within each prompt group (population std), as float64.

    The same computation as the evaluation diagnostics (:func:`solireward.evaluation.group_advantages`);
    a group of one video, or of equal rewards, carries no signal and gets 0 (not NaN).
    """
    from solireward.evaluation import group_advantages

    rewards = np.asarray(rewards, dtype=np.float64)
    groups = np.asarray(groups)
    if rewards.shape != groups.shape or rewards.ndim != 1:
        raise ValueError(f"expected one group per reward, got {rewards.shape} rewards and {groups.shape} groups")
    advantages, _, _ = group_advantages(rewards, groups)
    return np.nan_to_num(np.asarray(advantages, dtype=np.float64), nan=0.0)
