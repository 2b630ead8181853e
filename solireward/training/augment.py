"""Training-time mitigations of reward hacking: per video and step, a random sampling, appearance and nuisances.

A reward model should not learn what the frame sampler chose nor pay for a nuisance of appearance,
yet a model trained on one fixed sampling of clean videos does both (issue 20: halving the frames or
the resolution, or brightening a video, moves the demo models' scores by several std). Three kinds of
augmentation, each off by default and set by :class:`~solireward.training.config.TrainConfig`:

- *sampling invariance* (``--jitter_frames LOW HIGH``, ``--jitter_size LOW HIGH``): the checkpoint's
  frame count ('segments' mode; in 'fps' mode its sampling rate, so the count follows within its
  limits) and its frame height and width (within ``max_pixels``) are each multiplied by a factor
  drawn log-uniformly from the range. The model is told the frame rate the frames were actually
  sampled at (:meth:`solireward.scoring.VideoEncoder.sample`), so a changed rate is not a changed
  speed of the motion.
- *appearance jitter* (``--color_jitter P`` with ``--color_jitter_brightness B``, ``_contrast C``,
  ``_saturation S``, ``_hue H``; as VideoAlign's ``p_color_jitter``): with probability P a video's
  sampled frames get brightness x U(1-B, 1+B), contrast x U(1-C, 1+C) (around the mean grey of
  the video), saturation x U(1-S, 1+S) and a hue rotation by U(-H, H) turns (in the YIQ chroma
  plane), in that order, then are rounded and clipped to 0..255.

- *nuisance family* (each off by default; a mitigation meant to hold on cues it was not built for): per
  video and step the sampled frames are zoomed by a factor drawn log-uniformly from
  ``--nuisance_zoom LOW HIGH`` (above 1 a centre crop resized back, objects larger; below 1 the picture
  shrunk on a black frame, a letterbox), panned by a share of the frame
  drawn from U(-P, P) in each direction (``--nuisance_pan P``, the border repeating the edge), their
  contrast times U(1-C, 1+C) about each frame's mean luma (``--nuisance_contrast C``), every pixel lighter
  by U(-S, S) grey levels (``--nuisance_shade S``, a global shade), and with probability P a static
  caption box and corner logo (``--nuisance_overlay P``), in that order, after the appearance jitter. Each
  edit is the stress probe's own (:mod:`solireward.data.frame_edits`), at a random amount.

With ``--consistency_loss_coeff`` the draws make a *twin* of each video instead: the reward loss sees the
video as evaluation does, and the consistency loss (:func:`solireward.losses.consistency_loss`) ties the
twin's score to it. Exposure normalisation is not drawn here: it is a sampling setting
(``FrameSampling.exposure``), applied alike in training and in every command that scores.

The draws come from a generator seeded by (seed, global micro-step, video), so a resumed run replays
the same augmented batches. Evaluation and every other command use the checkpoint's sampling alone.
With augmentation, each video is decoded once at its native rate and size (kept in memory with
``--cache_frames``) and sampled anew at every step; a twin's original is sampled from the same decoded
frames (:func:`~solireward.data.video.sample_frames`, which fits frames in memory exactly as a file is
read), not decoded a second time.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from solireward.data.frame_edits import contrast, overlay, pan, shade, to_uint8, zoom
from solireward.data.video import FrameSampling, read_all_frames, target_size

# RGB -> YIQ (NTSC); rotating (I, Q) turns the hue and keeps the luma Y
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float32)
_RGB = np.linalg.inv(_YIQ).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The ranges of the per-video, per-step augmentations (see the module doc); None or 0 turns one off."""

    jitter_frames: tuple[float, float] | None = None
    jitter_size: tuple[float, float] | None = None
    color_jitter: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    nuisance_zoom: tuple[float, float] | None = None
    nuisance_pan: float = 0.0
    nuisance_contrast: float = 0.0
    nuisance_shade: float = 0.0
    nuisance_overlay: float = 0.0

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        return bool(self.jitter_frames or self.jitter_size or self.color_jitter > 0 or self.nuisances_on)

    @property
    def nuisances_on(self) -> bool:
        """Whether any edit of the nuisance family is on."""
        return bool(self.nuisance_zoom or self.nuisance_pan > 0 or self.nuisance_contrast > 0
                    or self.nuisance_shade > 0 or self.nuisance_overlay > 0)

    def sampling(self, base: FrameSampling, height: int, width: int, rng: np.random.Generator) -> FrameSampling:
        """`base` with its frame count (or rate) and frame size scaled by random factors of the ranges."""
        out = base
        if self.jitter_frames:
            factor = _log_uniform(rng, self.jitter_frames)
            out = dataclasses.replace(out, num_frames=max(1, round(base.num_frames * factor))) \
                if base.mode == "segments" else dataclasses.replace(out, fps=base.fps * factor)
        if self.jitter_size:
            factor = _log_uniform(rng, self.jitter_size)
            h, w = target_size(height, width, base)
            out = dataclasses.replace(out, height=max(2, round(h * factor)), width=max(2, round(w * factor)))
        return out

    def colour(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """With probability `color_jitter`, (T, H, W, 3) uint8 frames with random brightness, contrast,
        saturation and hue; else the frames unchanged."""
        if not rng.random() < self.color_jitter:
            return frames
        x = frames.astype(np.float32) * np.float32(rng.uniform(1 - self.brightness, 1 + self.brightness))
        x = contrast(x, np.float32(rng.uniform(1 - self.contrast, 1 + self.contrast)), per_frame=False)
        grey = (x @ _YIQ[0])[..., None]
        x = grey + (x - grey) * np.float32(rng.uniform(1 - self.saturation, 1 + self.saturation))
        angle = 2 * math.pi * rng.uniform(-self.hue, self.hue)
        turn = np.array([[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]],
                        dtype=np.float32)
        x = x @ (_RGB @ turn @ _YIQ).T
        return to_uint8(x)

    def nuisances(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(T, H, W, 3) uint8 frames under a random draw of each nuisance edit that is on (see the module doc);
        the frames unchanged when none is. An edit that is off draws nothing, so it changes no other draw."""
        if self.nuisance_zoom:
            frames = zoom(frames, _log_uniform(rng, self.nuisance_zoom))
        if self.nuisance_pan > 0:
            down, right = rng.uniform(-self.nuisance_pan, self.nuisance_pan, 2)
            frames = pan(frames, float(down), float(right))
        if self.nuisance_contrast > 0:
            frames = to_uint8(contrast(frames, rng.uniform(1 - self.nuisance_contrast, 1 + self.nuisance_contrast)))
        if self.nuisance_shade > 0:
            frames = to_uint8(shade(frames, rng.uniform(-self.nuisance_shade, self.nuisance_shade)))
        if self.nuisance_overlay > 0 and rng.random() < self.nuisance_overlay:
            frames = overlay(frames)
        return frames


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


class AugmentingEncoder:
    """Picklable ``(path, prompt, video, micro_step) -> model inputs`` of one training video, augmented.

    Wraps the training :class:`~solireward.scoring.VideoEncoder`: its sampling is the base, its
    collator encodes, and it decides how files are decoded (backend, timeout). With `cache` every
    video's decoded frames are kept, else the last video's (so a twin and its original share a decode).
    """

    def __init__(self, encoder: Any, augmentation: Augmentation, seed: int, cache: bool = False) -> None:
        self.encoder, self.augmentation, self.seed = encoder, augmentation, seed
        self.cache: dict[int, tuple[np.ndarray, float]] | None = {} if cache else None
        self._last: tuple[int, tuple[np.ndarray, float]] | None = None

    def _decoded(self, path: str, video: int) -> tuple[np.ndarray, float]:
        if self.cache is not None and video in self.cache:
            return self.cache[video]
        if self._last is not None and self._last[0] == video:
            return self._last[1]
        decoded = read_all_frames(path, self.encoder.backend, self.encoder.timeout_s)
        if self.cache is not None:
            self.cache[video] = decoded
        else:
            self._last = (video, decoded)
        return decoded

    def twins(self, path: str, prompt: str | None, video: int, micro_step: int
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Model inputs of `video` as evaluation sees it (the wrapped encoder's, cached under the key `video`
        when it caches) and of its twin at `micro_step` (this encoder's draw), from one decode."""
        frames, fps = self._decoded(path, video)
        return self.encoder(frames, prompt, fps or None, key=video), self(path, prompt, video, micro_step)

    def __call__(self, path: str, prompt: str | None, video: int, micro_step: int) -> dict[str, Any]:
        """Model inputs of `video` at `micro_step`: its own draw of sampling and appearance."""
        from solireward.scoring import VideoEncoder

        frames, fps = self._decoded(path, video)
        rng = np.random.default_rng([self.seed, 29, micro_step, video])
        sampling = self.augmentation.sampling(self.encoder.sampling, frames.shape[1], frames.shape[2], rng)
        sampled, rate = VideoEncoder(self.encoder.collator, sampling).sample(frames, fps or None)
        return self.encoder.encode(self.augmentation.nuisances(self.augmentation.colour(sampled, rng), rng), rate,
                                   prompt)
