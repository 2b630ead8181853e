"""What a decoding worker runs: :class:`ItemEncoder` (an item -> every served model's inputs), and in-memory
videos (base64 PNG/JPEG frames) decoded holding only what the models are given.

A served model takes its sampled frames, repeats included (a video shorter than its sampling repeats
frames), resized as its checkpoint says (:func:`~solireward.data.video.fit_frames`). What a worker
materialises for one video is planned from the frame headers alone (:func:`plan_frames`), so the server
checks ``--max_decode_pixels`` and ``--max_request_pixels`` against exactly that before anything is decoded:

* each distinct sampled frame is decoded once, one at a time;
* for a model whose sampling resizes, each distinct frame is resized right away (a greyscale or 1-bit
  frame in its own mode, a third of the RGB size) and its full-size pixels are dropped; repeats are copies
  of the small frame;
* for a model whose sampling keeps the size, the distinct frames are kept at full size in one array, and
  its repeats are full-size copies: the frames its processor is given. Those are counted.

The result equals :func:`~solireward.data.video.sample_frames` on the whole decoded video (tested).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
from typing import Any, Mapping, Sequence

import numpy as np

from solireward.errors import InputError, VideoReadError
from solireward.serving.batcher import Item, ItemError

IMAGE_FORMATS = ("PNG", "JPEG")


def sampling_key(sampling: Any) -> str:
    """One key per distinct frame setting: models with equal settings share their frames."""
    return repr(sorted(sampling.to_dict().items()))


@dataclasses.dataclass
class FramePlan:
    """What a worker does with one in-memory video: the distinct frames it decodes (`indices`), those it keeps
    at full size (`full`), each frame setting's frames (`chosen`, repeats included) and size, and the pixels
    it materialises in all (`pixels`)."""

    indices: list[int]
    full: list[int]
    chosen: dict[str, list[int]]
    sizes: dict[str, tuple[int, int]]
    pixels: int

    def resizes(self, key: str, height: int, width: int) -> bool:
        return self.sizes[key] != (height, width)


def plan_frames(num_frames: int, fps: float | None, height: int, width: int,
                samplings: Sequence[Any]) -> FramePlan:
    """The :class:`FramePlan` of a video of `num_frames` frames of `height` x `width` for the models'
    `samplings` (:class:`~solireward.data.video.FrameSampling`; `fps` is needed in their 'fps' mode)."""
    from solireward.data.video import VideoInfo, frame_indices, target_size

    info = VideoInfo(num_frames, float(fps or 0.0), height, width)
    chosen = {sampling_key(s): frame_indices(info, s) for s in samplings}
    sizes = {sampling_key(s): target_size(height, width, s) for s in samplings}
    indices = sorted(set().union(*chosen.values()))
    full = sorted(set().union(*(chosen[k] for k in chosen if sizes[k] == (height, width))))
    pixels = (len(full) or 1) * height * width  # the kept frames, or the one being decoded
    for key, frames in chosen.items():
        h, w = sizes[key]
        if (h, w) != (height, width):
            pixels += (len(set(frames)) + len(frames)) * h * w  # the resized frames, then with their repeats
        elif frames != full:
            pixels += len(frames) * h * w  # a full-size copy with repeats (or a subset of the kept frames)
    return FramePlan(indices, full, chosen, sizes, pixels)


def open_image(data: bytes, t: int) -> Any:
    """One PNG/JPEG image (frame `t` of its video), decoded, as a PIL image; anything else is an ItemError."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in IMAGE_FORMATS:
            raise ItemError("frames", f"frame {t}: expected PNG or JPEG, got {image.format}")
        image.load()
        return image
    except ItemError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this item's
        raise ItemError("frames", f"frame {t}: not a readable PNG or JPEG image ({type(exc).__name__})") from None


def rgb(image: Any) -> np.ndarray:
    """A PIL image as ``(H, W, 3)`` uint8."""
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def decode_image(data: bytes, t: int) -> np.ndarray:
    """One PNG/JPEG image (frame `t` of its video) -> ``(H, W, 3)`` uint8; anything else is an ItemError."""
    return rgb(open_image(data, t))


def resized(image: Any, height: int, width: int) -> np.ndarray:
    """`image` as ``(height, width, 3)`` uint8, bicubic: what :func:`~solireward.data.video.resize_frames` gives
    for its RGB pixels. A 1-bit or greyscale image is resized in its own 8-bit mode (Pillow filters each band
    alike, so the result is the same) and never exists at full size in RGB."""
    from PIL import Image

    if image.mode in ("1", "L"):
        grey = np.asarray((image if image.mode == "L" else image.convert("L")).resize((width, height),
                                                                                    Image.Resampling.BICUBIC))
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray((image if image.mode == "RGB" else image.convert("RGB")).resize((width, height),
                                                                                    Image.Resampling.BICUBIC))


def decode_video(images: Sequence[bytes], indices: Sequence[int], num_frames: int, fps: float | None,
                 samplings: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Base64 PNG/JPEG frames (the video's frames at `indices`) -> each frame setting's frames (by
    :func:`sampling_key`), as :func:`~solireward.data.video.sample_frames` gives them for the whole video;
    bad base64, another format or frames of different sizes are an ItemError naming the frame."""
    from solireward.data.video import fit_frames

    if not images:
        raise ItemError("frames", "no frames")
    plan: FramePlan | None = None
    full: np.ndarray | None = None
    small: dict[str, dict[int, np.ndarray]] = {key: {} for key in samplings}
    for t, text in zip(indices, images):
        try:
            data = base64.b64decode(text, validate=True)  # strict, in C (binascii's strict_mode) from Python 3.11
        except (binascii.Error, ValueError):
            raise ItemError("frames", f"frame {t} is not valid base64") from None
        image = open_image(data, t)
        if plan is None:
            height, width = image.height, image.width
            try:
                plan = plan_frames(num_frames, fps, height, width, list(samplings.values()))
            except ValueError as exc:  # 'fps' sampling without a frame rate (the server refuses it before)
                raise ItemError("frames", str(exc)) from None
            position = {index: p for p, index in enumerate(plan.full)}
            full = np.empty((len(plan.full), height, width, 3), np.uint8) if plan.full else None
        elif (image.height, image.width) != (height, width):
            raise ItemError("frames", f"frame {t} is {image.width}x{image.height} but frame {indices[0]} is "
                                      f"{width}x{height}")
        if t in position and full is not None:
            full[position[t]] = rgb(image)
        for key, chosen in plan.chosen.items():
            if plan.resizes(key, height, width) and t in chosen:
                small[key][t] = resized(image, *plan.sizes[key])
        image.close()
    assert plan is not None
    out = {}
    for key, sampling in samplings.items():
        chosen = plan.chosen[key]
        if plan.resizes(key, height, width):
            frames = np.stack([small[key][t] for t in chosen])
        else:
            assert full is not None
            frames = full if chosen == plan.full else full[[position[t] for t in chosen]]
        out[key] = fit_frames(frames, sampling)  # the size is the fitted one already: only the exposure
    return out


class ItemEncoder:
    """Picklable ``Item -> {model name: model inputs}``: decode once per frame setting, encode per model."""

    def __init__(self, encoders: Mapping[str, Any]) -> None:
        self.encoders = dict(encoders)  # name -> solireward.scoring.VideoEncoder
        # models with equal frame settings share one decode: the key of each model's settings
        self.sampling_keys = {name: sampling_key(e.sampling) for name, e in self.encoders.items()}

    def __call__(self, item: Item) -> dict[str, Any]:
        from solireward.data.video import sampled_fps

        in_memory = None
        if not isinstance(item.source, str):
            samplings = {self.sampling_keys[name]: e.sampling for name, e in self.encoders.items()}
            in_memory = decode_video(item.source, item.indices or [], item.num_frames, item.fps, samplings)
        decoded: dict[str, tuple[np.ndarray, float | None]] = {}
        out = {}
        for name, encoder in self.encoders.items():
            key = self.sampling_keys[name]
            try:
                if key not in decoded:
                    decoded[key] = (encoder.sample(item.source) if in_memory is None else
                                    (in_memory[key], sampled_fps(item.num_frames, float(item.fps or 0.0),
                                                                 len(in_memory[key]))))
                frames, rate = decoded[key]  # each model is told the rate its frames were sampled at
                out[name] = encoder.collator.encode(frames, item.prompt, fps=rate)
            except VideoReadError as exc:
                raise ItemError("video", exc.reason) from None
            except InputError as exc:
                raise ItemError("frames", exc.reason) from None
            except Exception as exc:  # noqa: BLE001 - any processor failure is this item's
                raise ItemError("encoding", f"model {name!r} could not prepare the frames "
                                            f"({type(exc).__name__}: {exc})") from None
        return out
