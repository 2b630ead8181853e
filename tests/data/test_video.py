"""Video reading: frame indices, both backends, resizing, and a named error for every bad file."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from solireward.data import video
from solireward.data.video import (FrameSampling, VideoInfo, fps_indices, read_video, segment_indices,
                                   target_size, video_info)
from solireward.data.video_write import write_video
from solireward.errors import ConfigError, VideoReadError

NUM_FRAMES, HEIGHT, WIDTH = 20, 48, 64


def _marked_frames() -> np.ndarray:
    """Frames whose top band has brightness 10 * index, so a read frame tells its own index."""
    frames = np.zeros((NUM_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(NUM_FRAMES):
        frames[t, :16] = 10 * t
        frames[t, 24:40, 8:24] = (220, 40, 40)
    return frames


def _frame_ids(frames: np.ndarray) -> list[int]:
    h = frames.shape[1]
    return [int(round(f[h // 24: h // 3 - h // 24, 2:-2].mean() / 10)) for f in frames]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, _marked_frames(), fps=10)
    return path


def test_segment_indices_follow_the_release_formula() -> None:
    # n = 16, k = 8: s = 15/8 = 1.875; int(0.9375 + round(1.875 i)) with round half to even
    assert segment_indices(16, 8) == [0, 2, 4, 6, 8, 9, 11, 13]
    assert segment_indices(20, 4) == [2, 7, 12, 16]
    assert segment_indices(4, 8) == [0, 0, 1, 1, 2, 2, 2, 3]  # short video: frames repeat
    assert segment_indices(1, 3) == [0, 0, 0]


def test_fps_indices_clamp_and_repeat() -> None:
    assert fps_indices(16, 8.0, 2.0, 4, 768) == [0, 5, 10, 15]
    assert fps_indices(100, 10.0, 2.0, 4, 6) == [0, 20, 40, 59, 79, 99]  # capped at max_frames
    assert fps_indices(2, 10.0, 2.0, 4, 768) == [0, 0, 1, 1]  # fewer frames than min_frames
    assert fps_indices(10, 10.0, 30.0, 4, 768) == list(range(10))  # never more than the video has


def test_target_size() -> None:
    assert target_size(48, 64, FrameSampling()) == (48, 64)
    assert target_size(48, 64, FrameSampling(height=24, width=40)) == (24, 40)
    assert target_size(48, 64, FrameSampling(height=24)) == (24, 32)
    assert target_size(48, 64, FrameSampling(width=32)) == (24, 32)
    h, w = target_size(480, 640, FrameSampling(max_pixels=28 * 28 * 4))
    assert h * w <= 28 * 28 * 4 and abs(w / h - 4 / 3) < 0.05


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("decord") is None, reason="decord2 is not installed")
def test_importing_decord_first_leaves_torch_matmul_working() -> None:
    """decord2 3.4.0 loaded libnvblas globally on import, and torch's next CPU matmul crashed in it."""
    code = "import decord, torch; print((torch.ones(64, 256) @ torch.ones(256, 512)).sum().item())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.split() == ["8388608.0"], (run.returncode, run.stderr[-2000:])


@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_read_segments_takes_the_right_frames(clip: Path, backend: str) -> None:
    frames = read_video(clip, FrameSampling(num_frames=8), backend=backend)
    assert frames.shape == (8, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert _frame_ids(frames) == segment_indices(NUM_FRAMES, 8)
    red = frames[:, 28:36, 12:20].reshape(-1, 3).mean(axis=0)
    assert red[0] > 180 and red[1] < 90 and red[2] < 90


def test_backends_agree(clip: Path) -> None:
    sampling = FrameSampling(num_frames=5)
    a = read_video(clip, sampling, backend="decord").astype(int)
    b = read_video(clip, sampling, backend="pyav").astype(int)
    assert a.shape == b.shape and np.abs(a - b).mean() < 3
    assert video_info(clip, "decord") == video_info(clip, "pyav") == VideoInfo(NUM_FRAMES, 10.0, HEIGHT, WIDTH)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_fps_mode_and_resizing(clip: Path, backend: str) -> None:
    # 20 frames at 10 fps = 2 s; 2 fps -> 4 frames (= min_frames)
    frames = read_video(clip, FrameSampling(mode="fps", fps=2.0, min_frames=4), backend=backend)
    assert frames.shape == (4, HEIGHT, WIDTH, 3)
    assert _frame_ids(frames) == [0, 6, 13, 19]
    frames = read_video(clip, FrameSampling(mode="fps", fps=5.0, min_frames=2, height=24, width=40),
                        backend=backend)
    assert frames.shape == (10, 24, 40, 3)
    frames = read_video(clip, FrameSampling(num_frames=3, max_pixels=768), backend=backend)
    assert frames.shape == (3, 24, 32, 3)
    assert _frame_ids(frames) == segment_indices(NUM_FRAMES, 3)  # resizing keeps the content


def test_mpeg4_files_read_back(tmp_path: Path) -> None:
    path = tmp_path / "mpeg4.mp4"
    write_video(path, _marked_frames(), fps=10, codec="mpeg4")
    assert _frame_ids(read_video(path, FrameSampling(num_frames=4))) == segment_indices(NUM_FRAMES, 4)


def test_frame_sampling_round_trip_and_validation() -> None:
    sampling = FrameSampling(mode="fps", fps=1.5, max_pixels=1000)
    assert FrameSampling.from_dict(sampling.to_dict()) == sampling
    with pytest.raises(ConfigError, match="frame_count"):
        FrameSampling.from_dict({"frame_count": 8})
    with pytest.raises(ConfigError, match="mode"):
        FrameSampling(mode="uniform")
    with pytest.raises(ConfigError, match="min_frames"):
        FrameSampling(min_frames=10, max_frames=5)


def test_exposure_undoes_a_global_gain_in_files_and_in_memory(clip: Path) -> None:
    frames = read_video(clip, FrameSampling(num_frames=4))
    dark = (frames * 0.6).astype(np.uint8)
    sampling = FrameSampling(num_frames=4, exposure=90)
    fitted, darker = video.sample_frames(frames, sampling), video.sample_frames(dark, sampling)
    assert abs(frames.mean() - 90) > 20 and abs(fitted.mean() - 90) < 6  # black and saturated pixels stay
    assert np.abs(fitted.astype(int) - darker).mean() < 2  # the gain is gone but for rounding
    whole = video.read_all_frames(clip)[0]  # the file path fits its frames the same way
    assert np.array_equal(read_video(clip, sampling), video.sample_frames(whole, sampling))
    with pytest.raises(ConfigError, match="exposure"):
        FrameSampling(exposure=0)


def test_serve_fits_the_frames_it_kept_as_infer_fits_a_whole_video(clip: Path) -> None:
    import base64
    import io

    from PIL import Image

    from solireward.serving.decode import decode_video, plan_frames, sampling_key

    whole = video.read_all_frames(clip)[0]
    # resized with exposure, kept at full size, and more frames than the clip has (repeats)
    samplings = [FrameSampling(num_frames=4, height=32, exposure=90), FrameSampling(num_frames=3),
                 FrameSampling(num_frames=2 * len(whole), max_pixels=500)]
    plan = plan_frames(len(whole), None, whole.shape[1], whole.shape[2], samplings)
    pngs = []
    for t in plan.indices:  # what `serve` decodes of an in-memory video: the kept frames' PNG bytes
        buffer = io.BytesIO()
        Image.fromarray(whole[t]).save(buffer, format="PNG")
        pngs.append(base64.b64encode(buffer.getvalue()))
    got = decode_video(pngs, plan.indices, len(whole), None, {sampling_key(s): s for s in samplings})
    for sampling in samplings:
        assert np.array_equal(got[sampling_key(sampling)], video.sample_frames(whole, sampling))


def _bad_files(tmp: Path, clip: Path) -> dict[str, tuple[Path, str]]:
    data = clip.read_bytes()
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "notes.mp4").write_text("these are my notes, not a video\n")
    (tmp / "half.mp4").write_bytes(data[: len(data) // 2])
    (tmp / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    corrupt = bytearray(data)
    mdat = data.index(b"mdat") + 4
    corrupt[mdat:mdat + 600] = bytes(600)  # the coded frames zeroed, the container intact
    (tmp / "corrupt.mp4").write_bytes(bytes(corrupt))
    return {
        "missing": (tmp / "missing.mp4", "does not exist"),
        "empty": (tmp / "empty.mp4", "empty"),
        "text": (tmp / "notes.mp4", "not a video file: it holds text"),
        "truncated": (tmp / "half.mp4", "truncated video"),
        "noise": (tmp / "noise.mp4", "not a video file"),
        "corrupt": (tmp / "corrupt.mp4", "corrupt"),
    }


@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_bad_files_raise_named_errors(tmp_path: Path, clip: Path, backend: str) -> None:
    for name, (path, reason) in _bad_files(tmp_path, clip).items():
        with pytest.raises(VideoReadError, match=reason) as info:
            read_video(path, FrameSampling(), backend=backend)
        assert info.value.path == str(path), name
        assert str(path) in str(info.value)


def test_video_without_frames(tmp_path: Path) -> None:
    import av

    path = tmp_path / "no_frames.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()  # write the header although no frame follows
        container.mux(stream.encode())
    for backend in ("decord", "pyav"):
        with pytest.raises(VideoReadError, match="no video frames"):
            video_info(path, backend)


def test_decoder_timeout(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()

    def hanging_decoder(path, indices_for, cancel):
        cancel.wait(10)  # a decoder that never returns on its own
        released.set()

    monkeypatch.setitem(video._BACKENDS, "pyav", hanging_decoder)
    with pytest.raises(VideoReadError, match="timed out") as info:
        read_video(clip, FrameSampling(), backend="pyav", timeout_s=0.05)
    assert info.value.path == str(clip)
    assert released.wait(5)  # the abandoned worker was told to stop
    monkeypatch.undo()
    assert len(read_video(clip, FrameSampling(num_frames=4), backend="pyav", timeout_s=5)) == 4  # a new worker


def test_reads_reuse_one_thread_per_caller(clip: Path) -> None:
    """A thread per read cost about 1 ms; the caller's read thread serves every read that keeps its deadline."""
    read_video(clip, FrameSampling(num_frames=4), timeout_s=5)
    before = sum(t.name == "video-read" for t in threading.enumerate())
    for _ in range(10):
        read_video(clip, FrameSampling(num_frames=4), timeout_s=5)
    assert sum(t.name == "video-read" for t in threading.enumerate()) == before


def test_auto_falls_back_to_pyav(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_decord(path, indices_for, cancel):
        raise VideoReadError(path, "corrupt or truncated video: decord failed")

    monkeypatch.setitem(video._BACKENDS, "decord", broken_decord)
    assert _frame_ids(read_video(clip, FrameSampling(num_frames=4), backend="auto")) == segment_indices(20, 4)
    with pytest.raises(VideoReadError, match="decord failed"):
        read_video(clip, FrameSampling(num_frames=4), backend="decord")
