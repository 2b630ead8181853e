"""`solireward probe`: how a reward model's score moves under changes that should or should not move it.

Each input video is decoded once (every frame, at its native size and frame rate) and scored clean
and under each perturbation, in memory; only ``reencode`` writes and reads an mp4. Perturbations,
by what they should do to the score of a physics / deformity reward:

- ``invariant`` (should not move it): fewer or more sampled frames (``frames_x0.5``, ``frames_x2``:
  the checkpoint's ``num_frames`` in 'segments' mode, its sampling ``fps`` in 'fps' mode, clamped to
  its frame limits there), the same motion at half the frame rate (``video_fps_x0.5``: every other
  frame, fps halved), resolution (``resolution_x0.5``, ``resolution_x2``: the checkpoint's frame size,
  within its ``max_pixels``), and a mild lossy re-encode (``reencode``: CRF 28).
- ``lower`` (should lower it): reversed time (``reverse``: a falling object rises), frames shuffled
  (``shuffle``), one frame frozen for the whole clip (``freeze``), heavy noise (``noise``, Gaussian,
  sigma 40 grey levels) and heavy blur (``blur``, Gaussian, radius 4 % of the frame).
- ``no_gain`` (a nuisance the reward must not pay for): brightness x1.4 (``brightness``) and
  saturation x1.6 (``saturation``): the over-exposed look optimisation drifts to.
- ``report`` (no expected direction): ``prompt_swap``, another video's prompt with this video. A
  text-alignment reward should drop; a physics reward may not care. Reported, not judged.

Per perturbation, with d = perturbed - clean score of each video and s the standard deviation of the
clean scores: ``mean_change_std`` = mean(d) / s (mean(d) itself when s = 0), ``share_up`` = share of
videos with d > 0, ``spearman`` = rank correlation of clean and perturbed scores (null when either is
constant), and a verdict against the expected direction with threshold t (``--threshold``, in clean
std units): invariant passes when |mean_change_std| <= t, lower when mean_change_std <= -t, no_gain
when mean_change_std <= t. Writes ``probe.json`` and ``probe.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from solireward.config import arg
from solireward.data.video import FrameSampling, read_video, target_size, video_info, write_video
from solireward.errors import ConfigError, InputError
from solireward.io import markdown_cell, read_records

logger = logging.getLogger(__name__)

# (frames, prompts, fps, sampling) -> one score per video
Scorer = Callable[[Sequence[np.ndarray], Sequence[str | None], Sequence[float], FrameSampling], list[float]]

DEFAULT_FPS = 8.0  # assumed for a video whose container gives no frame rate

EXPECTED = {
    "invariant": "should not move the score",
    "lower": "should lower the score (physics / deformity)",
    "no_gain": "a nuisance the reward must not pay for",
    "report": "reported, not judged",
}


@dataclasses.dataclass
class ProbeConfig:
    """Options of `solireward probe`."""

    model_name_or_path: str = arg("trained reward-model folder (solireward train)")
    input_file: str = arg("videos to probe: a JSON/JSONL list of {video_path, prompt} (relative paths are read "
                          "from the file's folder), e.g. a split's videos_test.json")
    output_dir: str = arg("folder to write probe.json and probe.md into")
    max_videos: int = arg("probe at most this many videos, evenly spaced through the input file", 32)
    threshold: float = arg("verdict threshold on the mean score change, in standard deviations of the clean "
                           "scores", 0.25)
    seed: int = arg("seed of the shuffle and noise perturbations", 0)
    batch_size: int = arg("videos per forward pass", 8)
    video_backend: str = arg("video decoder", "auto", choices=("auto", "decord", "pyav"))

    def __post_init__(self) -> None:
        for name, ok, expected in (("max_videos", self.max_videos >= 2, "at least 2"),
                                   ("threshold", self.threshold > 0, "positive"),
                                   ("batch_size", self.batch_size >= 1, "at least 1")):
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", field=name)


@dataclasses.dataclass
class Clip:
    """One video in memory: all its frames at their native rate, and its prompt."""

    frames: np.ndarray
    fps: float
    prompt: str | None


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """A named change of a clip (`apply`) or of the frame sampling (`sampling`), and what it should do."""

    name: str
    expected: str
    description: str
    apply: Callable[[Clip, np.random.Generator], Clip] | None = None
    sampling: Callable[[FrameSampling, Clip], FrameSampling] | None = None


# ----------------------------------------------------------------------------------------------
# Perturbations


def _frames(clip: Clip, frames: np.ndarray, fps: float | None = None) -> Clip:
    return Clip(np.ascontiguousarray(frames), clip.fps if fps is None else fps, clip.prompt)


def _scale_count(factor: float) -> Callable[[FrameSampling, Clip], FrameSampling]:
    def change(sampling: FrameSampling, clip: Clip) -> FrameSampling:
        if sampling.mode == "segments":
            return dataclasses.replace(sampling, num_frames=max(1, round(sampling.num_frames * factor)))
        return dataclasses.replace(sampling, fps=sampling.fps * factor)  # the sampler clamps the count
    return change


def _scale_size(factor: float) -> Callable[[FrameSampling, Clip], FrameSampling]:
    def change(sampling: FrameSampling, clip: Clip) -> FrameSampling:
        height, width = target_size(clip.frames.shape[1], clip.frames.shape[2], sampling)
        return dataclasses.replace(sampling, height=max(2, round(height * factor)), width=max(2, round(width * factor)))
    return change


def _reencode(clip: Clip, rng: np.random.Generator) -> Clip:
    frames = clip.frames[:, : clip.frames.shape[1] // 2 * 2, : clip.frames.shape[2] // 2 * 2]
    with tempfile.TemporaryDirectory(prefix="solireward-probe-") as folder:
        path = Path(folder) / "clip.mp4"
        write_video(path, frames, fps=clip.fps, quality=28)
        return _frames(clip, read_all_frames(path)[0])


def _shuffle(clip: Clip, rng: np.random.Generator) -> Clip:
    order = rng.permutation(len(clip.frames))
    if len(order) > 1 and (order == np.arange(len(order))).all():
        order = np.roll(order, 1)
    return _frames(clip, clip.frames[order])


def _noise(clip: Clip, rng: np.random.Generator) -> Clip:
    noisy = clip.frames.astype(np.float32) + rng.normal(0.0, 40.0, clip.frames.shape).astype(np.float32)
    return _frames(clip, np.clip(np.round(noisy), 0, 255).astype(np.uint8))


def _blur(clip: Clip, rng: np.random.Generator) -> Clip:
    from PIL import Image, ImageFilter

    radius = max(1.5, 0.04 * min(clip.frames.shape[1:3]))
    blurred = [np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(radius))) for f in clip.frames]
    return _frames(clip, np.stack(blurred))


def _gain(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, np.clip(np.round(clip.frames.astype(np.float32) * 1.4), 0, 255).astype(np.uint8))


def _saturate(clip: Clip, rng: np.random.Generator) -> Clip:
    rgb = clip.frames.astype(np.float32)
    grey = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    return _frames(clip, np.clip(np.round(grey + 1.6 * (rgb - grey)), 0, 255).astype(np.uint8))


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("frames_x0.5", "invariant", "half the sampled frames", sampling=_scale_count(0.5)),
    Perturbation("frames_x2", "invariant", "twice the sampled frames", sampling=_scale_count(2.0)),
    Perturbation("video_fps_x0.5", "invariant", "the same motion at half the frame rate (every other frame)",
                 apply=lambda c, rng: _frames(c, c.frames[::2], c.fps / 2)),
    Perturbation("resolution_x0.5", "invariant", "half the frame size", sampling=_scale_size(0.5)),
    Perturbation("resolution_x2", "invariant", "twice the frame size (within max_pixels)", sampling=_scale_size(2.0)),
    Perturbation("reencode", "invariant", "a mild lossy re-encode (CRF 28)", apply=_reencode),
    Perturbation("reverse", "lower", "time reversed (a falling object rises)",
                 apply=lambda c, rng: _frames(c, c.frames[::-1])),
    Perturbation("shuffle", "lower", "frames in random order", apply=_shuffle),
    Perturbation("freeze", "lower", "the middle frame for the whole clip",
                 apply=lambda c, rng: _frames(c, np.repeat(c.frames[len(c.frames) // 2][None], len(c.frames), 0))),
    Perturbation("noise", "lower", "heavy Gaussian noise (sigma 40)", apply=_noise),
    Perturbation("blur", "lower", "heavy Gaussian blur (radius 4 % of the frame)", apply=_blur),
    Perturbation("brightness", "no_gain", "brightness x1.4 (over-exposed)", apply=_gain),
    Perturbation("saturation", "no_gain", "saturation x1.6", apply=_saturate),
    Perturbation("prompt_swap", "report", "another video's prompt"),
)


def swapped_prompts(prompts: Sequence[str | None]) -> list[str | None] | None:
    """For each video the prompt of the next video (cyclically) with a different prompt; None if there is none."""
    out = []
    for i, prompt in enumerate(prompts):
        other = next((prompts[(i + k) % len(prompts)] for k in range(1, len(prompts))
                      if prompts[(i + k) % len(prompts)] != prompt), None)
        if other is None:
            return None
        out.append(other)
    return out


# ----------------------------------------------------------------------------------------------
# Inputs and scorers


def read_all_frames(path: str | Path, backend: str = "auto") -> tuple[np.ndarray, float]:
    """Every frame of a video at its native size, as (T, H, W, 3) uint8, and its frame rate (0 if unknown)."""
    info = video_info(path, backend)
    if info.fps > 0:
        sampling = FrameSampling(mode="fps", fps=info.fps, min_frames=1, max_frames=max(1, info.num_frames))
    else:
        sampling = FrameSampling(mode="segments", num_frames=max(1, info.num_frames))
    return read_video(path, sampling, backend=backend), info.fps


def load_clips(input_file: str, max_videos: int | None = None, backend: str = "auto") -> tuple[list[Clip], list[str]]:
    """Decode (at most `max_videos`, evenly spaced) videos of a record file; returns the clips and their paths."""
    records = read_records(input_file)
    if not records:
        raise InputError("holds no records", file=input_file)
    keep = range(len(records)) if max_videos is None or len(records) <= max_videos else \
        np.unique(np.round(np.linspace(0, len(records) - 1, max_videos)).astype(int)).tolist()
    root = Path(input_file).parent
    clips, paths = [], []
    for row in keep:
        record = records[row]
        video_path = record.get("video_path")
        if not isinstance(video_path, str) or not video_path.strip():
            raise InputError("no 'video_path' (expected a non-empty string)", file=input_file, row=row,
                             field="video_path")
        path = Path(video_path) if Path(video_path).is_absolute() else root / video_path
        frames, fps = read_all_frames(path, backend)
        clips.append(Clip(frames, fps if fps > 0 else DEFAULT_FPS, record.get("prompt")))
        paths.append(video_path)
    return clips, paths


def model_scorer(model: Any, batch_size: int = 8) -> Scorer:
    """A :data:`Scorer` of a :class:`~solireward.models.RewardModel`: raw scores through the scoring path."""
    from solireward.scoring import score_videos

    def score(frames: Sequence[np.ndarray], prompts: Sequence[str | None], fps: Sequence[float],
              sampling: FrameSampling) -> list[float]:
        scores, _ = score_videos(model, list(frames), list(prompts), sampling=sampling, fps=list(fps),
                                 batch_size=batch_size, on_error="raise")
        return [scores[i] for i in range(len(frames))]

    return score


def score_clips(scorer: Scorer, clips: Sequence[Clip], sampling: FrameSampling | Sequence[FrameSampling],
                prompts: Sequence[str | None] | None = None) -> np.ndarray:
    """Scores of `clips`; `sampling` is one setting or one per clip (clips sharing a setting are scored together)."""
    per_clip = [sampling] * len(clips) if isinstance(sampling, FrameSampling) else list(sampling)
    prompts = [c.prompt for c in clips] if prompts is None else list(prompts)
    out = np.empty(len(clips))
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(per_clip):
        groups.setdefault(repr(s), []).append(i)
    for members in groups.values():
        values = scorer([clips[i].frames for i in members], [prompts[i] for i in members],
                        [clips[i].fps for i in members], per_clip[members[0]])
        out[members] = values
    return out


# ----------------------------------------------------------------------------------------------
# Statistics


def change_stats(clean: np.ndarray, perturbed: np.ndarray, expected: str, threshold: float) -> dict[str, Any]:
    """Mean change in clean-std units, share of rises, Spearman correlation and the verdict (see module doc)."""
    from scipy.stats import spearmanr

    d = perturbed - clean
    std = float(clean.std())
    mean_change = float(d.mean())
    effect = mean_change / std if std > 0 else mean_change
    constant = np.ptp(clean) == 0 or np.ptp(perturbed) == 0
    rho = None if constant else float(spearmanr(clean, perturbed).statistic)
    tol = 1e-9 * max(1.0, float(np.abs(clean).max()))
    if expected == "invariant":
        flagged, verdict = abs(effect) > threshold, ("moves" if abs(effect) > threshold else "ok")
    elif expected == "lower":
        flagged = effect > -threshold
        verdict = "ok (drops)" if not flagged else ("rises" if effect > threshold else "no drop")
    elif expected == "no_gain":
        flagged, verdict = effect > threshold, ("pays" if effect > threshold else "ok")
    else:
        flagged, verdict = False, "reported"
    return {"mean_change": mean_change, "mean_change_std": effect, "share_up": float((d > tol).mean()),
            "spearman": rho, "flagged": bool(flagged), "verdict": verdict}


def probe_scorer(scorer: Scorer, clips: Sequence[Clip], sampling: FrameSampling, threshold: float = 0.25,
                 seed: int = 0, perturbations: Sequence[Perturbation] = PERTURBATIONS) -> dict[str, Any]:
    """Score `clips` clean and under each perturbation; the per-perturbation statistics."""
    if len(clips) < 2:
        raise InputError(f"the probe needs at least 2 videos, got {len(clips)}", field="input_file")
    clean = score_clips(scorer, clips, sampling)
    rows = []
    for k, perturbation in enumerate(perturbations):
        rng = np.random.default_rng([seed, k])
        prompts = None
        if perturbation.name == "prompt_swap":
            prompts = swapped_prompts([c.prompt for c in clips])
            if prompts is None:
                logger.info("probe: every video has the same prompt; prompt_swap skipped")
                continue
        changed = [perturbation.apply(c, rng) for c in clips] if perturbation.apply else list(clips)
        settings = [perturbation.sampling(sampling, c) for c in clips] if perturbation.sampling else sampling
        perturbed = score_clips(scorer, changed, settings, prompts)
        rows.append({"name": perturbation.name, "expected": perturbation.expected,
                     "description": perturbation.description,
                     **change_stats(clean, perturbed, perturbation.expected, threshold)})
    return {"n_videos": len(clips), "clean": {"mean": float(clean.mean()), "std": float(clean.std())},
            "threshold": threshold, "expected": EXPECTED, "perturbations": rows}


def run_probe(config: ProbeConfig, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Load the model and the videos, probe them; the result written as probe.json (see the command)."""
    from solireward.models import RewardModel

    start = time.perf_counter()
    model = RewardModel.from_pretrained(config.model_name_or_path)
    clips, paths = load_clips(config.input_file, config.max_videos, config.video_backend)
    sampling = FrameSampling.from_dict(dict(model.config.sampling))
    result = probe_scorer(model_scorer(model, config.batch_size), clips, sampling, config.threshold, config.seed)
    return {"model": config.model_name_or_path, "input_file": config.input_file, "videos": paths,
            "reward_task": model.config.reward_task, "sampling": sampling.to_dict(), "tags": tags or {},
            **result, "seconds": round(time.perf_counter() - start, 1)}


def probe_markdown(result: dict[str, Any]) -> str:
    """The probe result as a Markdown table with its thresholds."""
    t = result["threshold"]
    lines = [f"# Stress probe: {result.get('model', '')}", "",
             f"{result['n_videos']} videos; clean score mean {result['clean']['mean']:.4g}, "
             f"std {result['clean']['std']:.4g}. Change = mean(perturbed − clean) / std(clean).", "",
             f"Verdicts (t = {t:g} clean std): *invariant* ok when |change| ≤ {t:g}; *lower* ok when change ≤ "
             f"−{t:g}; *no_gain* ok when change ≤ {t:g}; *report*: not judged.", "",
             "| perturbation | what | expected | change (std) | share up | Spearman | verdict |",
             "|---|---|---|---|---|---|---|"]
    for row in result["perturbations"]:
        verdict = f"**{row['verdict']}**" if row["flagged"] else row["verdict"]
        lines.append(f"| {row['name']} | {row['description']} | {row['expected']} | {markdown_cell(row['mean_change_std'], 2, signed=True)} "
                     f"| {row['share_up']:.2f} | {markdown_cell(row['spearman'], 2, signed=True)} | {verdict} |")
    return "\n".join(lines) + "\n"
