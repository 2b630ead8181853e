"""The one scoring path: a video (a file, or frames in memory) -> processed model inputs -> a score.

Training evaluation, ``solireward infer``, :meth:`RewardModel.score` and anything serving rewards
go through the same three pieces:

- :class:`VideoEncoder` turns one record (``source``: an mp4 path or a ``(T, H, W, 3)`` uint8 array
  of frames, plus its prompt) into the model inputs of one video: frames sampled and resized with
  the checkpoint's :class:`FrameSampling` (or any other), then the chat prompt and the processor,
  told the frame rate the sampled frames stand for (so Qwen2.5-VL's time positions follow it). It is picklable,
  so DataLoader workers run it; ``cache=True`` keeps each record's inputs (decode and processor
  are deterministic) for data sets seen many times.
- :class:`ScoringDataset` maps record ``i`` to a :class:`Sample`: its inputs, or why the video could
  not be read or processed (caught per record, inside the worker).
- :func:`score_batches` runs a model over a loader of :class:`Batch` es (the readable samples padded
  into one batch, the failures passed beside it), applies the ``on_error`` policy (``"record"``: an
  error for that record alone; ``"raise"``: stop, as training does) and returns scores and errors by
  record index. :func:`score_videos` puts the pieces together.

This module sits between ``data`` and ``models``: it needs only a model that is callable on the
inputs and has ``collator()`` (see :class:`solireward.models.RewardCollator`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch

from solireward.data.video import FrameSampling, read_video_and_fps, sample_frames, sampled_fps
from solireward.errors import InputError, VideoReadError

OnError = Literal["record", "raise"]


@dataclasses.dataclass
class Sample:
    """One record's model inputs (batch dimension 1), or why there are none."""

    index: int
    inputs: dict[str, torch.Tensor] | None
    error: str | None = None


@dataclasses.dataclass
class Batch:
    """The readable samples of a loader batch padded into `inputs` (rows in the order of `index`)."""

    index: list[int]
    inputs: dict[str, torch.Tensor] | None
    failed: list[tuple[int, str]]


class VideoEncoder:
    """Picklable ``(source, prompt) -> model inputs`` of one video, with the checkpoint's frame sampling.

    ``source`` is an mp4 path (decoded with ``backend`` within ``timeout_s``) or frames already in
    memory, a ``(T, H, W, 3)`` uint8 array sampled as if it were a video at ``fps`` frames per second.
    Failures raise :class:`VideoReadError` (the file) or :class:`EncodingError` (the processor).
    """

    def __init__(self, collator: Any, sampling: FrameSampling, *, backend: str = "auto",
                 timeout_s: float | None = 60.0, cache: bool = False) -> None:
        self.collator, self.sampling, self.backend, self.timeout_s = collator, sampling, backend, timeout_s
        self.cache: dict[Any, dict[str, torch.Tensor]] | None = {} if cache else None

    def sample(self, source: str | np.ndarray, fps: float | None = None) -> tuple[np.ndarray, float | None]:
        """The sampled, resized ``(T, H, W, 3)`` uint8 frames of `source` and the frame rate they stand for.

        The rate (:func:`~solireward.data.video.sampled_fps`: frames taken / duration) is what the model
        is told, so it follows any change of the sampling rate, frame count or the video's own rate.
        """
        if isinstance(source, np.ndarray):
            frames = sample_frames(source, self.sampling, fps=fps)
            return frames, sampled_fps(len(source), fps or 0.0, len(frames))
        return read_video_and_fps(source, self.sampling, backend=self.backend, timeout_s=self.timeout_s)

    def frames(self, source: str | np.ndarray, fps: float | None = None) -> np.ndarray:
        """The sampled, resized ``(T, H, W, 3)`` uint8 frames of `source`."""
        return self.sample(source, fps)[0]

    def encode(self, frames: np.ndarray, rate: float | None, prompt: str | None) -> dict[str, torch.Tensor]:
        """Model inputs of sampled `frames` standing for `rate` frames/s; EncodingError if the processor fails."""
        try:
            return self.collator.encode(frames, prompt, fps=rate)
        except Exception as exc:  # noqa: BLE001 - any processor failure belongs to this video
            raise EncodingError(f"the processor could not prepare its frames ({type(exc).__name__}: {exc})"
                                ) from exc

    def __call__(self, source: str | np.ndarray, prompt: str | None, fps: float | None = None,
                 key: Any = None) -> dict[str, torch.Tensor]:
        """Model inputs of one video; with a cache, `key` (default: the path) names the entry."""
        key = source if key is None and isinstance(source, str) else key
        if self.cache is not None and key is not None and key in self.cache:
            return self.cache[key]
        encoded = self.encode(*self.sample(source, fps), prompt)
        if self.cache is not None and key is not None:
            self.cache[key] = encoded
        return encoded


class EncodingError(Exception):
    """The processor rejected a video's frames (e.g. an aspect ratio above 200)."""


class ScoringDataset(torch.utils.data.Dataset):
    """Record ``i`` -> :class:`Sample`; ``sources[i]`` is a path or frames, ``fps[i]`` the frames' rate.

    A video that cannot be read or processed becomes an error :class:`Sample` here, inside the
    worker; the ``on_error`` policy is applied by :func:`score_batches` in the main process, because an
    exception raised in a DataLoader worker loses its type (and would stop the loader).
    """

    def __init__(self, sources: Sequence[str | np.ndarray], prompts: Sequence[str | None], encoder: VideoEncoder,
                 fps: Sequence[float | None] | None = None) -> None:
        if len(prompts) != len(sources):
            raise InputError(f"{len(sources)} videos but {len(prompts)} prompts", field="prompts")
        if fps is not None and len(fps) != len(sources):
            raise InputError(f"{len(sources)} videos but {len(fps)} fps values", field="fps")
        self.sources, self.prompts, self.encoder = list(sources), list(prompts), encoder
        self.fps = list(fps) if fps is not None else [None] * len(self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def name(self, i: int) -> str:
        """How record `i` is named in an error: its path, or its position for frames in memory."""
        source = self.sources[i]
        return source if isinstance(source, str) else f"<frames of item {i}>"

    def __getitem__(self, i: int) -> Sample:
        try:
            return Sample(i, self.encoder(self.sources[i], self.prompts[i], self.fps[i]))
        except InputError:  # a setting, not this video, is wrong (e.g. the backend is not installed)
            raise
        except (VideoReadError, EncodingError) as exc:
            return Sample(i, None, exc.reason if isinstance(exc, VideoReadError) else str(exc))
        except Exception as exc:  # noqa: BLE001 - any other decoder failure is this video's alone
            return Sample(i, None, f"{type(exc).__name__}: {exc}")


class PadReadable:
    """``collate_fn``: one :class:`Batch` of the readable samples; unreadable ones go to ``failed``."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __call__(self, samples: list[Sample]) -> Batch:
        good = [s for s in samples if s.error is None]
        return Batch(index=[s.index for s in good],
                     inputs=self.collator.pad([s.inputs for s in good]) if good else None,
                     failed=[(s.index, s.error) for s in samples if s.error is not None])


def loader(dataset: ScoringDataset, collator: Any, *, batch_size: int = 8, num_workers: int = 0,
           prefetch_factor: int = 2, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader of :class:`Batch` es that decodes and encodes in its worker processes."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=PadReadable(collator),
        pin_memory=pin_memory, prefetch_factor=prefetch_factor if num_workers > 0 else None,
        # its own generator: building a loader must not draw from the global RNG (training resumes equal)
        generator=torch.Generator().manual_seed(0))


def to_device(inputs: Mapping[str, Any], device: torch.device, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Tensors to `device`; floating ones (pixel values) also to `dtype` when given."""
    return {k: v.to(device, dtype=dtype if v.is_floating_point() else None, non_blocking=True)
            if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def score_batches(module: Callable[..., torch.Tensor], batches: Iterable[Batch], device: torch.device, *,
                  on_error: OnError = "record", name: Callable[[int], str] = str,
                  input_dtype: torch.dtype | None = None, autocast: Callable[[], Any] = contextlib.nullcontext,
                  on_batch: Callable[[Batch, int], None] | None = None) -> tuple[dict[int, float], dict[int, str]]:
    """Scores and errors by record index; `module` runs in eval mode without gradients, then is restored.

    ``on_error="record"``: an unreadable video or a non-finite score is an error of its record;
    ``"raise"``: it raises :class:`VideoReadError` naming the record (``name(index)``). `on_batch(batch,
    n_errors)` is called after each batch (progress bars).
    """
    if on_error not in ("record", "raise"):
        raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
    scores: dict[int, float] = {}
    errors: dict[int, str] = {}
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), autocast():
            for batch in batches:
                if batch.failed and on_error == "raise":
                    index, reason = batch.failed[0]
                    raise VideoReadError(name(index), reason)
                errors.update(batch.failed)
                if batch.index:
                    values = module(**to_device(batch.inputs, device, input_dtype)).float().cpu().tolist()
                    for index, value in zip(batch.index, values):
                        if math.isfinite(value):
                            scores[index] = value
                        elif on_error == "raise":
                            raise VideoReadError(name(index), f"the model returned a non-finite score ({value})")
                        else:
                            errors[index] = f"the model returned a non-finite score ({value})"
                if on_batch is not None:
                    on_batch(batch, len(errors))
    finally:
        module.train(was_training)
    return scores, errors


def score_videos(model: Any, sources: Sequence[str | np.ndarray], prompts: Sequence[str | None] | None = None, *,
                 sampling: FrameSampling | None = None, fps: Sequence[float | None] | None = None,
                 batch_size: int = 8, num_workers: int = 0, prefetch_factor: int = 2, backend: str = "auto",
                 timeout_s: float | None = 60.0, on_error: OnError = "record", progress: bool = False,
                 module: Callable[..., torch.Tensor] | None = None, device: torch.device | None = None,
                 input_dtype: torch.dtype | None = None, autocast: Callable[[], Any] = contextlib.nullcontext,
                 ) -> tuple[dict[int, float], dict[int, str]]:
    """Score videos (paths or in-memory frames) with `model`: scores and errors by position in `sources`.

    ``sampling`` defaults to the checkpoint's frame settings. ``module`` (default: `model`) is what
    runs the batches, e.g. a DDP or DeepSpeed wrapper of `model`, on ``device`` (default: the model's).
    """
    from tqdm import tqdm

    prompts = [None] * len(sources) if prompts is None else list(prompts)
    sampling = sampling or FrameSampling.from_dict(dict(model.config.sampling))
    device = device or model.device
    collator = model.collator()
    dataset = ScoringDataset(sources, prompts, VideoEncoder(collator, sampling, backend=backend, timeout_s=timeout_s),
                             fps=fps)
    batches = loader(dataset, collator, batch_size=batch_size, num_workers=num_workers,
                     prefetch_factor=prefetch_factor, pin_memory=device.type == "cuda")
    with tqdm(total=len(dataset), desc="scoring", unit=" videos", disable=not progress) as bar:
        def advance(batch: Batch, n_errors: int) -> None:
            bar.update(len(batch.index) + len(batch.failed))
            bar.set_postfix(failed=n_errors, refresh=False)

        return score_batches(module or model, batches, device, on_error=on_error, name=dataset.name,
                             input_dtype=input_dtype, autocast=autocast, on_batch=advance)
