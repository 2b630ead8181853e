"""Read frames from video files (decord or PyAV) with the release's frame sampling; write mp4s.

Sampling (:class:`FrameSampling`):

* ``segments`` (the InternVL path of the release): split the ``n`` frames into ``k`` segments and
  take one frame per segment, ``s = (n - 1) / k`` and ``index_i = int(s / 2 + round(s * i))`` for
  ``i = 0 .. k-1`` (``round`` is NumPy's round-half-to-even, as in the release). A video with fewer
  than ``k`` frames repeats frames, so the result always holds exactly ``k`` frames.
* ``fps`` (the Qwen path): take frames at ``fps`` frames per second of video. The count is
  ``round(n * fps / native_fps)`` clamped to ``[min_frames, max_frames]`` and to at most ``n``;
  only when the video has fewer than ``min_frames`` frames does it exceed ``n``: then
  ``min_frames`` indices are spread evenly over the video and frames repeat. Indices are the
  evenly spaced ``round(linspace(0, n - 1, count))``.

Resizing (after decoding, the same code for both backends, bicubic with Pillow): ``height`` and
``width`` give the exact size; one of them alone keeps the aspect ratio; ``max_pixels`` then
shrinks the frame, keeping the aspect ratio, until ``height * width <= max_pixels``.

Backends: ``decord`` (default; ``VideoReader.get_batch`` seeks to the key frame before each
needed frame and decodes from there), ``pyav`` (decodes frames in order, single-threaded, and
stops after the last needed one; only needed frames are converted to RGB) and ``auto`` (decord,
then PyAV when decord is not installed or cannot open or decode the file). Both are 2-4x faster
than decoding and converting every frame (``bench/bench_video.py``). decord wins on long videos
with frequent key frames (it skips whole groups of pictures); PyAV wins on short clips with a
single key frame, as most generated videos are, because decord converts every frame it decodes.

The ``decord`` module comes from the ``decord2`` package, a maintained fork of dmlc's decord, whose
last release (0.6.0) dates from 2021 and has decoder hangs reported against it. decord2 3.3 returns
the same frames as 0.6.0 at the same speed, within measurement noise (8 frames of 144p, 480p and
720p clips). 3.4 is excluded (``<3.4``): importing 3.4.0 dlopens every library of the ``nvidia``
pip packages with RTLD_GLOBAL, so a CUDA build of torch then sends its CPU matrix products to
libnvblas's ``sgemm_``, which crashes the process. ``tests/data/test_video.py`` checks that
importing the decoder leaves torch working; lift the bound once it passes on a newer release.
PyAV stays the fallback, and the only decoder where decord2 has no wheel (it has Linux ones only).

Every failure is a :class:`~solireward.errors.VideoReadError` naming the file and saying what is
wrong: missing, empty, not a video, corrupt or truncated, no frames, or too slow to decode. Cheap
checks run before any decoder (existence, size, a text file renamed to .mp4, and the top-level box
layout of MP4/MOV files, which finds a cut-off file exactly); this also keeps most broken files
away from decord, whose C++ code prints an "ERROR opening" line to stderr that no setting silences
(its FFmpeg messages are silenced with ``decord.logging.set_level(QUIET)``).

Timeout: the decoder runs in a daemon worker thread and the caller waits at most ``timeout_s``
seconds for it. A C decoder call cannot be interrupted from Python, so a decoder that hangs is
abandoned, not killed: the caller gets a ``VideoReadError`` at once and goes on; the abandoned
thread keeps its CPU time and memory until the C call returns (PyAV's loop then notices the
cancellation and stops at the next frame; decord's ``get_batch`` is one C call and finishes its
batch), and being a daemon thread it never keeps the interpreter from exiting. Both decoders
release the GIL while decoding, so the waiting thread is not blocked. Running each read in a
child process would allow a hard kill but costs a process start and a copy of every frame per
video, which is far slower than decoding the small videos reward models read.
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import threading
from typing import Any, Callable, NamedTuple

import numpy as np

from solireward.config import arg, build_dataclass
from solireward.data import frame_cache
from solireward.data.video_checks import check_file, describe_unopenable, short_message
from solireward.errors import ConfigError, InputError, VideoReadError

BACKENDS = ("decord", "pyav", "auto")
SAMPLING_MODES = ("segments", "fps")


@dataclasses.dataclass
class FrameSampling:
    """How frames are taken from a video and resized (recorded in every reward-model checkpoint)."""

    mode: str = arg("frame sampling: 'segments' takes num_frames frames, one per equal segment "
                    "(InternVL); 'fps' takes frames at --fps frames per second (Qwen)", "segments",
                    choices=SAMPLING_MODES)
    num_frames: int = arg("number of frames in 'segments' mode", 8)
    fps: float = arg("frames per second of video to sample in 'fps' mode", 2.0)
    min_frames: int = arg("fewest frames in 'fps' mode (frames repeat when the video is shorter)", 4)
    max_frames: int = arg("most frames in 'fps' mode", 768)
    height: int | None = arg("resize frames to this height (alone: keep the aspect ratio); "
                             "unset keeps the video's height", None)
    width: int | None = arg("resize frames to this width (alone: keep the aspect ratio); "
                            "unset keeps the video's width", None)
    max_pixels: int | None = arg("then shrink frames, keeping the aspect ratio, until "
                                 "height*width <= max_pixels; unset means no limit", None)
    exposure: float | None = arg("then scale the video's pixel values so that their mean is this (1-254): a "
                                 "global change of brightness is undone but for what clipping lost (a "
                                 "mitigation where exposure is a nuisance); unset: off", None)

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ConfigError(f"expected one of {', '.join(SAMPLING_MODES)}, got {self.mode!r}", field="mode")
        for name in ("num_frames", "min_frames", "max_frames"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"must be at least 1, got {getattr(self, name)}", field=name)
        if not self.fps > 0:
            raise ConfigError(f"must be positive, got {self.fps}", field="fps")
        if self.min_frames > self.max_frames:
            raise ConfigError(f"min_frames ({self.min_frames}) exceeds max_frames ({self.max_frames})",
                              field="min_frames")
        for name in ("height", "width", "max_pixels"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"must be a positive integer or unset, got {value}", field=name)
        if self.exposure is not None and not 1 <= self.exposure <= 254:
            raise ConfigError(f"expected a mean pixel value in [1, 254] or unset, got {self.exposure}",
                              field="exposure")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "frame sampling") -> FrameSampling:
        """Build from a dict; an unknown key or a value of the wrong type is a ConfigError."""
        if not isinstance(values, dict):
            raise ConfigError(f"expected a mapping of sampling settings, got {type(values).__name__}", file=source)
        return build_dataclass(cls, values, source)


class VideoInfo(NamedTuple):
    """What the container says about a video's frames."""

    num_frames: int
    fps: float
    height: int
    width: int


# ----------------------------------------------------------------------------------------------
# Frame indices and sizes


def segment_indices(num_video_frames: int, num_segments: int) -> list[int]:
    """One frame per segment, as released: s = (n-1)/k, index_i = int(s/2 + round(s*i))."""
    if num_video_frames < 1 or num_segments < 1:
        raise ValueError("segment_indices needs at least one video frame and one segment")
    step = (num_video_frames - 1) / num_segments
    return [int(step / 2 + np.round(step * i)) for i in range(num_segments)]


def fps_indices(num_video_frames: int, native_fps: float, target_fps: float, min_frames: int,
                max_frames: int) -> list[int]:
    """Evenly spaced frames at `target_fps`, count clamped to [min_frames, max_frames] (see module doc)."""
    if num_video_frames < 1:
        raise ValueError("fps_indices needs at least one video frame")
    count = int(round(num_video_frames * target_fps / native_fps))
    count = min(max(count, min_frames), max_frames, max(num_video_frames, min_frames))
    return np.round(np.linspace(0, num_video_frames - 1, count)).astype(int).tolist()


def frame_indices(info: VideoInfo, sampling: FrameSampling) -> list[int]:
    """The frame indices `sampling` takes from a video described by `info`."""
    if sampling.mode == "segments":
        return segment_indices(info.num_frames, sampling.num_frames)
    if not info.fps > 0:
        raise ValueError("the video's frame rate is unknown, so 'fps' sampling is impossible; "
                         "use --mode segments")
    return fps_indices(info.num_frames, info.fps, sampling.fps, sampling.min_frames, sampling.max_frames)


def target_size(height: int, width: int, sampling: FrameSampling) -> tuple[int, int]:
    """Output (height, width) for a video of the given size under `sampling`'s resize settings."""
    h, w = height, width
    if sampling.height and sampling.width:
        h, w = sampling.height, sampling.width
    elif sampling.height:
        h, w = sampling.height, max(1, round(width * sampling.height / height))
    elif sampling.width:
        h, w = max(1, round(height * sampling.width / width)), sampling.width
    if sampling.max_pixels and h * w > sampling.max_pixels:
        scale = math.sqrt(sampling.max_pixels / (h * w))
        h, w = max(1, int(h * scale)), max(1, int(w * scale))
        while h * w > sampling.max_pixels and (h > 1 or w > 1):  # guard against float rounding
            h, w = (h - 1, w) if h >= w else (h, w - 1)
    return int(h), int(w)


def fit_frames(frames: np.ndarray, sampling: FrameSampling) -> np.ndarray:
    """Sampled ``(T, H, W, 3)`` uint8 frames resized as `sampling` says and, with its `exposure`, scaled to
    about that mean pixel value (one gain for the whole video, rounded and clipped)."""
    height, width = target_size(frames.shape[1], frames.shape[2], sampling)
    frames = resize_frames(frames, height, width)
    if sampling.exposure is not None and len(frames):
        values, gain = frames.astype(np.float32), 1.0
        for _ in range(4):  # clipping lowers the mean a gain gives: correct the gain for it
            gain *= sampling.exposure / max(float(np.clip(values * gain, 0, 255).mean()), 1.0)
        frames = np.clip(np.rint(values * np.float32(gain)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frames)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames to (T, height, width, 3) with bicubic filtering."""
    if frames.shape[1:3] == (height, width):
        return frames
    from PIL import Image

    out = np.empty((frames.shape[0], height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC))
    return out


# ----------------------------------------------------------------------------------------------
# Backends. Each reads (info, frames) for a path; `indices_for(info)` picks frames once the
# video's length is known (None: only the info is wanted). They run inside the worker thread.

_NO_STREAM = "no video stream: the file holds no video frames"
IndicesFor = Callable[[VideoInfo], list[int]] | None
_decord_quiet = False


def _decord_module():
    global _decord_quiet
    try:
        import decord
    except ImportError:
        raise InputError("the 'decord' video backend is not installed: install decord2 or use "
                         "the 'pyav' backend", field="backend") from None
    if not _decord_quiet:
        decord.logging.set_level(decord.logging.QUIET)  # keep FFmpeg's console messages out of the way
        _decord_quiet = True
    return decord


def _read_decord(path: str, indices_for: IndicesFor, cancel: threading.Event
                 ) -> tuple[VideoInfo, np.ndarray | None]:
    decord = _decord_module()
    try:
        reader = decord.VideoReader(path, num_threads=1)
    except Exception as exc:  # decord raises DECORDError / RuntimeError with FFmpeg's message
        if "cannot find video stream" in str(exc):
            raise VideoReadError(path, _NO_STREAM) from None
        raise VideoReadError(path, describe_unopenable(path, short_message(exc))) from None
    num_frames = len(reader)
    if num_frames < 1:
        raise VideoReadError(path, "video has no frames")
    fps = float(reader.get_avg_fps() or 0.0)
    # decord does not report the frame size without decoding, and decoding frame 0 before the
    # batch would make get_batch seek back and decode it twice: take the size from the batch
    try:
        indices = [0] if indices_for is None else indices_for(VideoInfo(num_frames, fps, 0, 0))
    except ValueError as exc:
        raise VideoReadError(path, str(exc)) from None
    try:
        frames = reader.get_batch(indices).asnumpy()
    except Exception as exc:
        raise VideoReadError(path, f"corrupt or truncated video: decoding failed ({short_message(exc)})") from None
    if frames.ndim != 4 or frames.shape[0] != len(indices):
        raise VideoReadError(path, f"corrupt or truncated video: {frames.shape[0]} of {len(indices)} "
                                   "frames could be decoded")
    info = VideoInfo(num_frames, fps, int(frames.shape[1]), int(frames.shape[2]))
    return info, (None if indices_for is None else frames)


def _read_pyav(path: str, indices_for: IndicesFor, cancel: threading.Event
               ) -> tuple[VideoInfo, np.ndarray | None]:
    import av

    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except Exception as exc:
        raise VideoReadError(path, describe_unopenable(path, short_message(exc))) from None
    with container:
        if not container.streams.video:
            raise VideoReadError(path, _NO_STREAM)
        stream = container.streams.video[0]
        num_frames = stream.frames
        if num_frames <= 0:  # the container does not store a count (e.g. WebM): count packets
            try:
                num_frames = sum(1 for p in container.demux(stream) if p.size)
                container.seek(0)
            except Exception as exc:
                raise VideoReadError(path, f"corrupt or truncated video: demuxing failed ({short_message(exc)})") \
                    from None
        if num_frames < 1:
            raise VideoReadError(path, "video has no frames")
        rate = stream.average_rate or stream.guessed_rate
        info = VideoInfo(num_frames, float(rate) if rate else 0.0, int(stream.codec_context.height),
                         int(stream.codec_context.width))
        if indices_for is None:
            return info, None
        try:
            indices = indices_for(info)
        except ValueError as exc:
            raise VideoReadError(path, str(exc)) from None
        wanted, last = set(indices), max(indices)
        decoded: dict[int, np.ndarray] = {}
        count = 0
        try:
            for count, frame in enumerate(container.decode(stream), start=1):
                if cancel.is_set():
                    return info, None
                if count - 1 in wanted:
                    decoded[count - 1] = frame.to_ndarray(format="rgb24")
                if count - 1 >= last:
                    break
        except Exception as exc:
            raise VideoReadError(path, f"corrupt or truncated video: decoding failed after {count} frames "
                                       f"({short_message(exc)})") from None
    if last not in decoded:
        if count == 0:
            raise VideoReadError(path, "corrupt or truncated video: no frame could be decoded "
                                       f"(the header promises {num_frames})")
        raise VideoReadError(path, f"truncated video: the stream ended after {count} frames but the header "
                                   f"promises {num_frames} (frame {last} was needed)")
    return info, np.stack([decoded[i] for i in indices])


_BACKENDS = {"decord": _read_decord, "pyav": _read_pyav}


class _ReadThread:
    """A daemon thread that runs one calling thread's decodes, one at a time, for as long as none overruns its
    deadline: starting a thread per read took about 1 ms, a quarter of reading a demo clip."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="video-read", daemon=True).start()

    def _serve(self) -> None:
        while True:
            fn, cancel, box, done = self.jobs.get()
            try:
                box["value"] = fn(cancel)
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                done.set()


_read_threads = threading.local()  # each calling thread its own, so one caller's decode never delays another's


def _forget_read_threads() -> None:
    global _read_threads
    _read_threads = threading.local()  # a forked child (a DataLoader worker) has none of its parent's threads


os.register_at_fork(after_in_child=_forget_read_threads)


def _with_deadline(path: str, fn: Callable[[threading.Event], Any], timeout_s: float | None) -> Any:
    """Run fn(cancel) in the caller's read thread; raise VideoReadError if it takes longer than timeout_s (the
    thread is then abandoned, told to stop through `cancel`, and the next read starts a new one)."""
    cancel = threading.Event()
    if timeout_s is None or timeout_s <= 0:
        return fn(cancel)
    worker = getattr(_read_threads, "worker", None)
    if worker is None:
        worker = _read_threads.worker = _ReadThread()
    box: dict[str, Any] = {}
    done = threading.Event()
    worker.jobs.put((fn, cancel, box, done))
    if not done.wait(timeout_s):
        cancel.set()
        _read_threads.worker = None
        raise VideoReadError(path, f"decoding timed out: no result after {timeout_s:g} s (the file may be "
                                   "damaged, or far larger than expected); the read was abandoned")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _read(path: str | os.PathLike, indices_for: IndicesFor, backend: str, timeout_s: float | None
          ) -> tuple[VideoInfo, np.ndarray | None]:
    path = os.fspath(path)
    if backend not in BACKENDS:
        raise InputError(f"unknown video backend {backend!r}; expected one of {', '.join(BACKENDS)}",
                         field="backend")
    check_file(path)
    if backend != "auto":
        reader = _BACKENDS[backend]
        return _with_deadline(path, lambda cancel: reader(path, indices_for, cancel), timeout_s)
    decord_reader, pyav_reader = _BACKENDS["decord"], _BACKENDS["pyav"]
    try:
        _decord_module()
    except InputError:
        return _with_deadline(path, lambda cancel: pyav_reader(path, indices_for, cancel), timeout_s)
    try:
        return _with_deadline(path, lambda cancel: decord_reader(path, indices_for, cancel), timeout_s)
    except VideoReadError as exc:
        if exc.reason.startswith("decoding timed out"):
            raise
        return _with_deadline(path, lambda cancel: pyav_reader(path, indices_for, cancel), timeout_s)


# ----------------------------------------------------------------------------------------------
# Public API


def video_info(path: str | os.PathLike, backend: str = "auto", timeout_s: float | None = 60.0) -> VideoInfo:
    """(num_frames, fps, height, width) of a video; a VideoReadError when it cannot be read."""
    return _read(path, None, backend, timeout_s)[0]


def sampled_fps(num_video_frames: int, native_fps: float, num_sampled: int) -> float | None:
    """Frames per second of video that `num_sampled` frames taken across the whole video stand for
    (count / duration, as transformers' ``VideoMetadata.sampled_fps``); None when the native rate is unknown."""
    return num_sampled * native_fps / num_video_frames if native_fps > 0 and num_video_frames > 0 else None


def read_video_and_fps(path: str | os.PathLike, sampling: FrameSampling | None = None, backend: str = "auto",
                       timeout_s: float | None = 60.0) -> tuple[np.ndarray, float | None]:
    """:func:`read_video`'s frames and the frame rate they stand for (:func:`sampled_fps`, what a model is told)."""
    sampling = sampling or FrameSampling()

    def read() -> tuple[np.ndarray, float | None]:
        info, frames = _read(path, lambda info: frame_indices(info, sampling), backend, timeout_s)
        return fit_frames(frames, sampling), sampled_fps(info.num_frames, info.fps, len(frames))

    return frame_cache.memo(path, backend, sampling.to_dict(), read)


def read_video(path: str | os.PathLike, sampling: FrameSampling | None = None, backend: str = "auto",
               timeout_s: float | None = 60.0) -> np.ndarray:
    """The frames `sampling` selects, resized, as a (T, H, W, 3) uint8 array.

    `backend` is 'decord', 'pyav' or 'auto'; `timeout_s` (None or 0: no limit) bounds the decode.
    """
    return read_video_and_fps(path, sampling, backend, timeout_s)[0]


def read_all_frames(path: str | os.PathLike, backend: str = "auto", timeout_s: float | None = 60.0
                    ) -> tuple[np.ndarray, float]:
    """Every frame of a video at its native size, as (T, H, W, 3) uint8, and its frame rate (0 if unknown)."""
    def read() -> tuple[np.ndarray, float]:
        info, frames = _read(path, lambda info: frame_indices(info, _every_frame(info)), backend, timeout_s)
        return fit_frames(frames, _every_frame(info)), info.fps

    frames, fps = frame_cache.memo(path, backend, None, read)
    return frames, fps or 0.0


def _every_frame(info: VideoInfo) -> FrameSampling:
    """The sampling that takes every frame of a video described by `info`, at its native size."""
    if info.fps > 0:
        return FrameSampling(mode="fps", fps=info.fps, min_frames=1, max_frames=max(1, info.num_frames))
    return FrameSampling(mode="segments", num_frames=max(1, info.num_frames))


def sample_frames(frames: np.ndarray, sampling: FrameSampling | None = None, fps: float | None = None
                  ) -> np.ndarray:
    """What :func:`read_video` returns for a video whose decoded frames are `frames` at `fps` frames/s.

    `frames` is a ``(T, H, W, 3)`` uint8 array already in memory (e.g. a generator's output): the
    same indices and resizing as for an mp4, so scores match the file path without re-encoding.
    ``fps`` is needed in 'fps' sampling mode only.
    """
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise InputError(f"expected frames of shape (T, H, W, 3) with T >= 1, got "
                         f"{getattr(frames, 'shape', type(frames).__name__)}", field="frames")
    if frames.dtype != np.uint8:
        raise InputError(f"expected uint8 frames, got {frames.dtype}", field="frames")
    sampling = sampling or FrameSampling()
    info = VideoInfo(len(frames), float(fps or 0.0), frames.shape[1], frames.shape[2])
    try:
        indices = frame_indices(info, sampling)
    except ValueError as exc:
        raise InputError(f"{exc} (pass the frames' fps)", field="fps") from None
    return fit_frames(frames[indices], sampling)
