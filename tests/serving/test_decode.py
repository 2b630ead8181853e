"""In-memory frames decoded holding only what the models are given (solireward.serving.decode): a 1 kB frame
of 3840x2160 costs a worker what its model keeps, not half a gigabyte, and the pixel budget counts what a
worker materialises, repeats included."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from solireward.data.video import FrameSampling, sample_frames
from solireward.serving.decode import decode_video, plan_frames, sampling_key
from solireward.serving.frames import RequestRefused, frames_item

UHD = (3840, 2160)


def one_bit_png(width: int, height: int) -> bytes:
    """A black 1-bit PNG of `width` x `height`: about 1 kB for 3840x2160."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(b"\x00" * (((width + 7) // 8 + 1) * height), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_grey_and_one_bit_frames_resize_as_their_rgb_pixels_would() -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = Image.fromarray(rng.integers(0, 256, (90, 160), dtype=np.uint8))
    images = [grey, grey.convert("1"), grey.convert("RGB").quantize(16)]  # L, 1-bit, palette
    samplings = [FrameSampling(num_frames=5, max_pixels=40 * 70), FrameSampling(num_frames=2)]
    for image in images:
        whole = np.stack([np.asarray(image.convert("RGB"))] * 3)  # a 3-frame video: the 5-frame sampling repeats
        plan = plan_frames(3, None, 90, 160, samplings)
        got = decode_video([base64.b64encode(png(image))] * len(plan.indices), plan.indices, 3, None,
                           {sampling_key(s): s for s in samplings})
        for sampling in samplings:
            assert np.array_equal(got[sampling_key(sampling)], sample_frames(whole, sampling)), image.mode


def test_the_pixel_budget_counts_repeats_and_full_size_copies() -> None:
    frame = base64.b64encode(one_bit_png(*UHD)).decode()
    pixels = UHD[0] * UHD[1]
    keeps_size = FrameSampling(num_frames=8)
    # one frame, sampled 8 times at full size: the decoded frame and the 8 its processor is given
    assert frames_item([frame], None, None, [keeps_size], 512, pixels, 1 << 40).pixels == 9 * pixels
    with pytest.raises(RequestRefused, match="= 74649600 pixels .* the limit is --max_decode_pixels 67108864"):
        frames_item([frame], None, None, [keeps_size], 512, pixels, 64 * 1024 * 1024)
    # resized at once: one frame at full size while it is decoded, then small ones
    resizes = FrameSampling(num_frames=8, max_pixels=448 * 448)
    assert frames_item([frame], None, None, [resizes], 512, pixels, 1 << 40).pixels < 1.25 * pixels


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory read from /proc (Linux)")
def test_a_1kb_uhd_frame_adds_at_most_50_mb_to_a_workers_peak_memory(tiny_model_factory, tmp_path: Path) -> None:
    """A real decoding worker (solireward.serving.pool), a checkpoint sampling 8 frames of at most 448x448: its
    peak resident memory (VmHWM, reset through /proc/PID/clear_refs) while it encodes a video of one 1-bit
    3840x2160 PNG frame of ~1 kB, over its memory before."""
    from solireward.models import RewardModel, RewardModelConfig
    from solireward.scoring import VideoEncoder
    from solireward.serving.decode import ItemEncoder
    from solireward.serving.pool import WorkerPool

    folder = tmp_path / "model"
    sampling = FrameSampling(num_frames=8, max_pixels=448 * 448)
    RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), RewardModelConfig(sampling=sampling.to_dict())
                              ).save_pretrained(folder)
    model = RewardModel.from_pretrained(folder)
    pool = WorkerPool(ItemEncoder({"m": VideoEncoder(model.collator(), sampling)}), 1)
    try:
        [pid] = pool.pids()
        data = one_bit_png(*UHD)
        assert len(data) < 1100
        big = frames_item([base64.b64encode(data).decode()], "a", None, [sampling], 512, 1 << 40, 1 << 40)
        small = frames_item([base64.b64encode(one_bit_png(64, 64)).decode()], "a", None, [sampling], 512, 1 << 40,
                            1 << 40)
        asyncio.run(pool.encode(small))  # everything imported and allocated once

        def kib(key: str) -> int:
            line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith(key))
            return int(line.split()[1])

        before = kib("VmRSS:")
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from now
        except OSError:
            pytest.skip("/proc/PID/clear_refs is not writable here")
        inputs = asyncio.run(pool.encode(big))
        added_mb = (kib("VmHWM:") - before) / 1024
        assert inputs["m"]["pixel_values_videos"].shape[0] > 0
        assert added_mb <= 50, f"a 1 kB frame added {added_mb:.0f} MB"
        print(f"a {len(data)}-byte 3840x2160 1-bit frame added {added_mb:.1f} MB to the worker's peak")
    finally:
        pool.shutdown()
