"""In-process reward adapters for RL trainers: VideoAlign's ``reward(...)`` (what DanceGRPO calls), verl's
``compute_score`` (a decoded response naming the video, or the frames), and GRPO group advantages.

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

from solireward.conservative import EnsembleOptions
from solireward.serving.ensemble import checked_weights, combine, combined, load_models, parse_pairs
from solireward.serving.paths import DEFAULT_QUERY_PATTERN, find_video


class VideoReward:
    """VideoAlign-style rewards over named reward models: ``reward(video_paths, prompts, fps=None, num_frames=None,
    max_pixels=None, use_norm=True) -> [{name: score_norm, ..., "Overall": ...}]``; calling it gives ``reward``
    instead of ``Overall``.

    `models` maps names to reward-model folders (or loaded :class:`~solireward.models.RewardModel` s);
    `weights` (default 1 each) weigh their ``score_norm`` in ``reward``; or `ensemble`
    (:class:`~solireward.conservative.EnsembleOptions`, for several models of one task) makes ``reward`` their
    conservative reward, e.g. mean − λ·std.
    """

    def __init__(self, models: Mapping[str, str | os.PathLike | Any], weights: Mapping[str, float] | None = None, *,
                 device: str = "auto", torch_dtype: str = "auto", batch_size: int = 8, num_workers: int = 0,
                 video_backend: str = "auto", ensemble: EnsembleOptions | None = None) -> None:
        from solireward.inference import _pick_device

        if not models:
            raise ValueError("no reward models given")
        folders = {name: m for name, m in models.items() if isinstance(m, (str, os.PathLike))}
        loaded = load_models(folders, _pick_device(device, 0, False), torch_dtype) if folders else {}
        self.models: dict[str, Any] = {name: loaded.get(name, m) for name, m in models.items()}
        self.weights = checked_weights(self.models, weights)
        self.ensemble = ensemble
        self.batch_size, self.num_workers, self.video_backend = batch_size, num_workers, video_backend

    def results(self, sources: Sequence[Any], prompts: Sequence[str | None] | None = None,
                fps: Sequence[float | None] | None = None,
                sampling: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """``{"reward", "scores": {name: {"score", "score_norm"}}}`` per video (paths or uint8 frames), in order.

        `sampling` overrides fields of every checkpoint's frame sampling (``mode``, ``fps``, ``num_frames``,
        ``max_pixels``): scores then differ from the checkpoint's own.
        """
        from solireward.data.video import FrameSampling
        from solireward.scoring import score_videos

        per_model = {}
        for name, model in self.models.items():
            frames = FrameSampling.from_dict({**model.config.sampling, **sampling}) if sampling else None
            scores, _ = score_videos(model, list(sources), prompts, sampling=frames, fps=fps,
                                     batch_size=self.batch_size, num_workers=self.num_workers,
                                     backend=self.video_backend, on_error="raise")
            per_model[name] = scores
        return [combine({name: per_model[name][i] for name in self.models}, self.models, self.weights, self.ensemble)
                for i in range(len(sources))]

    def reward(self, video_paths: Sequence[str | os.PathLike], prompts: Sequence[str | None] | None = None,
               fps: float | None = None, num_frames: int | None = None, max_pixels: int | None = None,
               use_norm: bool = True) -> list[dict[str, float]]:
        """VideoAlign's ``VideoVLMRewardInference.reward``: one dict per video, each model's score under its
        name (``score_norm``, or the raw ``score`` with ``use_norm=False``) and ``Overall``, their weighted sum (or
        their conservative reward with `ensemble`).

        `fps` (sample at that rate) or `num_frames` (that many evenly spaced frames), not both, and
        `max_pixels` override the checkpoints' frame sampling, as in VideoAlign.
        """
        if fps is not None and num_frames is not None:
            raise ValueError("fps and num_frames cannot both be set")
        sampling: dict[str, Any] = {}
        if fps is not None:
            sampling.update(mode="fps", fps=float(fps))
        if num_frames is not None:
            sampling.update(mode="segments", num_frames=int(num_frames))
        if max_pixels is not None:
            sampling["max_pixels"] = int(max_pixels)
        key = "score_norm" if use_norm else "score"
        out = []
        for r in self.results([os.fspath(p) for p in video_paths], prompts, sampling=sampling):
            row = {name: r["scores"][name][key] for name in self.models}
            out.append({**row, "Overall": combined(row, self.weights, self.ensemble)})
        return out

    def __call__(self, video_paths: Sequence[str | os.PathLike], prompts: Sequence[str | None] | None = None
                 ) -> list[dict[str, float]]:
        """One dict per video: each model's ``score_norm`` under its name, and ``reward`` (= ``Overall`` of
        :meth:`reward`)."""
        rows = self.reward(video_paths, prompts)
        return [{**{name: row[name] for name in self.models}, "reward": row["Overall"]} for row in rows]

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
                  weights: Mapping[str, float] | None = None, device: str = "auto", video_root: str | None = None,
                  query_pattern: str = DEFAULT_QUERY_PATTERN) -> dict[str, float]:
    """verl custom reward function: ``{"score": reward, name: score_norm, ...}`` of one generated video.

    `solution_str` is what verl's reward managers pass, the decoded response text: its last word naming a
    video file (under `video_root` when given; `query_pattern` as the server's ``--query_pattern``) is the
    video. A custom manager may pass the frames instead: a float ``(T, C, H, W)`` tensor in [0, 1] (or uint8
    ``(T, H, W, 3)``), with ``extra_info["fps"]`` their frame rate. ``extra_info["prompt"]`` is the prompt.
    `models` (``{name: folder}`` or ``["name=folder", ...]``), `weights` and `video_root` come from verl's
    ``custom_reward_function.reward_kwargs``; the models are loaded once per process and kept. `data_source`
    and `ground_truth` are not used. A response naming no video raises (verl then stops: no silent reward).
    """
    from pathlib import Path

    from solireward.errors import InputError
    from solireward.serving.batcher import ItemError

    if not models:
        raise ValueError("compute_score needs models={name: reward-model folder} (verl: custom_reward_function."
                         "reward_kwargs.models)")
    folders = parse_pairs(models, "models") if not isinstance(models, Mapping) else dict(models)
    reward = _cached_reward(tuple(sorted((k, str(v)) for k, v in folders.items())),
                            tuple(sorted((weights or {}).items())), device)
    info = dict(extra_info or {})
    if isinstance(solution_str, str):
        root = Path(video_root).resolve() if video_root else None
        try:
            path = find_video(solution_str, root, query_pattern)
        except ItemError as exc:
            raise InputError(f"solution_str: {exc.message}", field="solution_str") from None
        result = reward.results([path], [info.get("prompt")])[0]
    else:
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
