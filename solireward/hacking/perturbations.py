"""The stress probe's perturbations: changes of a video (or of its frame sampling) and what each should do.

By what they should do to the score of a physics / deformity reward:

- ``invariant`` (should not move it). Sampling: fewer or more sampled frames (``frames_x0.5``,
  ``frames_x2``: the checkpoint's ``num_frames`` in 'segments' mode, its sampling ``fps`` in 'fps'
  mode, clamped to its frame limits there), the same motion at half the frame rate
  (``video_fps_x0.5``: every other frame, fps halved), resolution (``resolution_x0.5``,
  ``resolution_x2``: the checkpoint's frame size, within its ``max_pixels``). Nuisances a user's own
  videos take, each on every frame: a mild lossy re-encode (``reencode``: CRF 28) and strong JPEG
  quantisation (``jpeg``: quality 15); zoom (``zoom_x1.15``, ``zoom_x1.3``: centre crop resized back,
  objects larger); a pan (``pan``: content moved right and down by 10 % of the frame, the uncovered
  border repeating the edge); contrast x0.6 about each frame's mean luma (``contrast``); hue rotated
  by 30 degrees (``hue``, greys unchanged); a warm colour cast as from a white balance set too low (``tint``:
  red x1.25, blue x0.75); mild sensor grain (``grain``: Gaussian noise, sigma 12 grey levels); an unsharp mask
  (``sharpen``); playback speed (``speed_x2``: every other frame at the same frame rate; ``speed_x0.5``: each
  frame twice); the picture shrunk to 75 % on a black frame (``letterbox``); a lens vignette, the corners at a
  fifth of their brightness (``vignette``); a static overlay (``overlay``: a caption box across the bottom and a
  logo in the top-right corner).
- ``lower`` (should lower it): reversed time (``reverse``: a falling object rises), frames shuffled
  (``shuffle``), one frame frozen for the whole clip (``freeze``), heavy noise (``noise``, Gaussian,
  sigma 40 grey levels) and heavy blur (``blur``, Gaussian, radius 4 % of the frame).
- ``no_gain`` (a nuisance the reward must not pay for): brightness x1.4 (``brightness``) and
  saturation x1.6 (``saturation``): the over-exposed look optimisation drifts to.
- ``report`` (no expected direction): ``prompt_swap``, another video's prompt with this video. A
  text-alignment reward should drop; a physics reward may not care. Reported, not judged.

A perturbation that cannot change a video leaves it as it is (hue on a grey video, contrast or
sharpening on a flat one, a speed change of a clip under 4 frames), and the probe then reports that
video as not tested. A hue rotation changes named colours: a text-alignment reward may rightly move.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from solireward.data import frame_edits
from solireward.data.frame_edits import to_uint8
from solireward.data.video import FrameSampling, read_all_frames, target_size
from solireward.data.video_write import write_video

EXPECTED = {
    "invariant": "should not move the score",
    "lower": "should lower the score (physics / deformity)",
    "no_gain": "a nuisance the reward must not pay for",
    "report": "reported, not judged",
}
IGNORE = ("invariant", "no_gain")
"""The expected behaviours of a nuisance the score should ignore (the probe's shortcut flag looks at these)."""


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
    unchanged_hint: str = "the perturbation does not reach the model"
    """Why a perturbation may leave the model's input unchanged (shown when it does)."""


def _frames(clip: Clip, frames: np.ndarray, fps: float | None = None) -> Clip:
    return Clip(np.ascontiguousarray(frames), clip.fps if fps is None else fps, clip.prompt)


def _per_frame(clip: Clip, change: Callable[[object], object]) -> Clip:
    """`clip` with `change` (PIL image -> PIL image) applied to each frame."""
    from PIL import Image

    return _frames(clip, np.stack([np.asarray(change(Image.fromarray(f)).convert("RGB")) for f in clip.frames]))


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


def _jpeg(quality: int) -> Callable[[Clip, np.random.Generator], Clip]:
    def change(clip: Clip, rng: np.random.Generator) -> Clip:
        from PIL import Image

        def compress(image: Image.Image) -> Image.Image:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
            return Image.open(io.BytesIO(buffer.getvalue()))
        return _per_frame(clip, compress)
    return change


def _zoom(factor: float) -> Callable[[Clip, np.random.Generator], Clip]:
    return lambda clip, rng: _frames(clip, frame_edits.zoom(clip.frames, factor))


def _pan(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, frame_edits.pan(clip.frames, 0.1, 0.1))


def _contrast(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, to_uint8(frame_edits.contrast(clip.frames, 0.6)))


_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _hue(degrees: float) -> Callable[[Clip, np.random.Generator], Clip]:
    angle = np.deg2rad(degrees)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    matrix = (np.linalg.inv(_YIQ) @ rotation @ _YIQ).astype(np.float32)  # a grey pixel has no chroma: unchanged

    def change(clip: Clip, rng: np.random.Generator) -> Clip:
        return _frames(clip, to_uint8(clip.frames.astype(np.float32) @ matrix.T))
    return change


def _tint(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, to_uint8(frame_edits.tint(clip.frames, frame_edits.WARM_CAST)))


def _grain(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, to_uint8(frame_edits.grain(clip.frames, frame_edits.GRAIN_SIGMA, rng)))


def _sharpen(clip: Clip, rng: np.random.Generator) -> Clip:
    from PIL import ImageFilter

    return _per_frame(clip, lambda im: im.filter(ImageFilter.UnsharpMask(radius=2, percent=150, threshold=2)))


MIN_SPEED_FRAMES = 4  # a clip shorter than this is left as it is by a speed change


def _speed_x2(clip: Clip, rng: np.random.Generator) -> Clip:
    return clip if len(clip.frames) < MIN_SPEED_FRAMES else _frames(clip, clip.frames[::2])


def _speed_x05(clip: Clip, rng: np.random.Generator) -> Clip:
    return clip if len(clip.frames) < MIN_SPEED_FRAMES else _frames(clip, np.repeat(clip.frames, 2, axis=0))


def _letterbox(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, frame_edits.letterbox(clip.frames, frame_edits.LETTERBOX_SCALE))


def _vignette(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, to_uint8(frame_edits.vignette(clip.frames, frame_edits.VIGNETTE)))


def _overlay(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, frame_edits.overlay(clip.frames))


def _shuffle(clip: Clip, rng: np.random.Generator) -> Clip:
    order = rng.permutation(len(clip.frames))
    if len(order) > 1 and (order == np.arange(len(order))).all():
        order = np.roll(order, 1)
    return _frames(clip, clip.frames[order])


def _noise(clip: Clip, rng: np.random.Generator) -> Clip:
    noisy = clip.frames.astype(np.float32) + rng.normal(0.0, 40.0, clip.frames.shape).astype(np.float32)
    return _frames(clip, to_uint8(noisy))


def _blur(clip: Clip, rng: np.random.Generator) -> Clip:
    from PIL import ImageFilter

    radius = max(1.5, 0.04 * min(clip.frames.shape[1:3]))
    return _per_frame(clip, lambda im: im.filter(ImageFilter.GaussianBlur(radius)))


def _gain(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, to_uint8(clip.frames.astype(np.float32) * 1.4))


def _saturate(clip: Clip, rng: np.random.Generator) -> Clip:
    return _frames(clip, to_uint8(frame_edits.saturate(clip.frames, frame_edits.VIVID)))


_FRAME_LIMITS = ("the sampler's frame limits (min_frames, max_frames, the video's own frame count) keep the "
                 "frame count")
_SIZE_CAP = "the size is capped (max_pixels) or the processor resizes to the same size"
_FLAT = "every video is flat (one colour per frame) where the model looks"

PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("frames_x0.5", "invariant", "half the sampled frames", sampling=_scale_count(0.5),
                 unchanged_hint=_FRAME_LIMITS),
    Perturbation("frames_x2", "invariant", "twice the sampled frames", sampling=_scale_count(2.0),
                 unchanged_hint=_FRAME_LIMITS),
    Perturbation("video_fps_x0.5", "invariant", "the same motion at half the frame rate (every other frame)",
                 apply=lambda c, rng: _frames(c, c.frames[::2], c.fps / 2)),
    Perturbation("resolution_x0.5", "invariant", "half the frame size", sampling=_scale_size(0.5),
                 unchanged_hint=_SIZE_CAP),
    Perturbation("resolution_x2", "invariant", "twice the frame size (within max_pixels)", sampling=_scale_size(2.0),
                 unchanged_hint=_SIZE_CAP),
    Perturbation("reencode", "invariant", "a mild lossy re-encode (CRF 28)", apply=_reencode),
    Perturbation("jpeg", "invariant", "JPEG artefacts (each frame at quality 15)", apply=_jpeg(15)),
    Perturbation("zoom_x1.15", "invariant", "zoom x1.15 (centre crop, resized back: objects larger)",
                 apply=_zoom(1.15)),
    Perturbation("zoom_x1.3", "invariant", "zoom x1.3 (centre crop, resized back: objects larger)", apply=_zoom(1.3)),
    Perturbation("pan", "invariant", "the picture moved right and down by 10 % of the frame", apply=_pan),
    Perturbation("contrast", "invariant", "contrast x0.6", apply=_contrast, unchanged_hint=_FLAT),
    Perturbation("hue", "invariant", "hue rotated by 30 degrees", apply=_hue(30.0),
                 unchanged_hint="every video is grey (a hue rotation leaves greys as they are)"),
    Perturbation("tint", "invariant", f"a warm colour cast (red x{1 + frame_edits.WARM_CAST:g}, blue "
                 f"x{1 - frame_edits.WARM_CAST:g}: white balance)", apply=_tint),
    Perturbation("grain", "invariant", f"sensor grain (Gaussian noise of {frame_edits.GRAIN_SIGMA:g} grey levels)",
                 apply=_grain),
    Perturbation("sharpen", "invariant", "sharpened (unsharp mask)", apply=_sharpen, unchanged_hint=_FLAT),
    Perturbation("speed_x2", "invariant", "played twice as fast (every other frame, same frame rate)",
                 apply=_speed_x2, unchanged_hint=f"every video has under {MIN_SPEED_FRAMES} frames, or the sampler "
                 "takes the same frames"),
    Perturbation("speed_x0.5", "invariant", "played at half speed (each frame twice, same frame rate)",
                 apply=_speed_x05, unchanged_hint=f"every video has under {MIN_SPEED_FRAMES} frames, or the sampler "
                 "spreads its frames over the whole clip and takes the same ones"),
    Perturbation("letterbox", "invariant", f"the picture shrunk to {frame_edits.LETTERBOX_SCALE * 100:g} % on a black "
                 "frame", apply=_letterbox),
    Perturbation("vignette", "invariant", f"a lens vignette (the corners x{1 - frame_edits.VIGNETTE:g})",
                 apply=_vignette),
    Perturbation("overlay", "invariant", "a static caption box and corner logo", apply=_overlay),
    Perturbation("reverse", "lower", "time reversed (a falling object rises)",
                 apply=lambda c, rng: _frames(c, c.frames[::-1])),
    Perturbation("shuffle", "lower", "frames in random order", apply=_shuffle),
    Perturbation("freeze", "lower", "the middle frame for the whole clip",
                 apply=lambda c, rng: _frames(c, np.repeat(c.frames[len(c.frames) // 2][None], len(c.frames), 0))),
    Perturbation("noise", "lower", "heavy Gaussian noise (sigma 40)", apply=_noise),
    Perturbation("blur", "lower", "heavy Gaussian blur (radius 4 % of the frame)", apply=_blur),
    Perturbation("brightness", "no_gain", "brightness x1.4 (over-exposed)", apply=_gain),
    Perturbation("saturation", "no_gain", f"saturation x{frame_edits.VIVID:g}", apply=_saturate),
    Perturbation("prompt_swap", "report", "another video's prompt"),
)
NAMES = tuple(p.name for p in PERTURBATIONS)


def select(names: Sequence[str] | None) -> list[Perturbation]:
    """The perturbations of `names` in the probe's order (None: every one)."""
    return [p for p in PERTURBATIONS if names is None or p.name in names]


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
