"""In-memory videos (base64 PNG/JPEG frames): sizes read from the image headers, the limits checked on them,
and only the frames the served models sample kept for decoding, all before a single pixel is decoded.

A Flow-Factory video is 81 PNG frames of 832x480 (~57 MiB of PNG, ~76 MiB as base64); a model sampling 8
frames needs 8 of them decoded. The decoding cost of an item is the pixels a worker holds for the models
(:func:`.decode.plan_frames`: the frames kept, their repeats and resized copies), bounded per video (``--max_decode_pixels``: what one decoding worker holds at once) and per request
(``--max_request_pixels``); a frame's own size is bounded by ``--max_pixels``.

A frame is a ``str`` or, as :mod:`.body` hands long ones over, a memoryview of the request body. Of a
frame no model samples only the header is decoded (bad base64 after it goes unnoticed); the kept ones
travel as base64 and are decoded, and checked, in the decoding workers (:func:`.decode.decode_video`).
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Sequence

from solireward.serving.batcher import Item, ItemError
from solireward.serving.decode import plan_frames

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...; not DHT C4, JPG C8, DAC CC)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_DATA_URL_HEAD = 256  # where a data URL's comma is looked for first ("data:image/png;base64,")

Frame = str | memoryview  # one frame's base64 text (a memoryview: ASCII bytes of the request body)


class RequestRefused(Exception):
    """A whole request is refused with `status` (a limit, a missing key or field, a busy server)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a PNG or JPEG from its header alone; anything else raises ValueError."""
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ValueError("a PNG without its IHDR header")
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8"):
        at = 2
        while at + 4 <= len(data):
            if data[at] != 0xFF:
                raise ValueError("a corrupt JPEG marker")
            marker = data[at + 1]
            if marker == 0xFF:  # fill byte
                at += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
                at += 2
                continue
            (length,) = struct.unpack(">H", data[at + 2:at + 4])
            if marker in _JPEG_SOF:
                if at + 9 > len(data):
                    break
                height, width = struct.unpack(">HH", data[at + 5:at + 9])
                return width, height
            at += 2 + length
        raise ValueError("a JPEG without a frame header")
    raise ValueError("not a PNG or JPEG image")


def frames_item(images: Sequence[Frame], prompt: str | None, fps: float | None, samplings: Sequence[object],
                max_frames: int, max_pixels: int, max_decode_pixels: int) -> Item:
    """An in-memory :class:`Item` holding only the frames some model samples; limits refuse the request (413).

    `samplings` are the served models' :class:`~solireward.data.video.FrameSampling`; `fps` must be
    known when one of them samples in 'fps' mode (the caller resolves the default).
    """
    if len(images) > max_frames:
        raise RequestRefused(413, f"a video has {len(images)} frames; the limit is --max_frames {max_frames}")
    sizes = []
    for t, text in enumerate(images):
        header = _b64_prefix(text, t)
        try:
            sizes.append(image_size(header))
        except ValueError as exc:
            raise ItemError("frames", f"frame {t}: {exc}") from None
        width, height = sizes[-1]
        if width * height > max_pixels:
            raise RequestRefused(413, f"frame {t} is {width}x{height} = {width * height} pixels; the limit is "
                                      f"--max_pixels {max_pixels}")
        if sizes[-1] != sizes[0]:
            raise ItemError("frames", f"frame {t} is {width}x{height} but frame 0 is {sizes[0][0]}x{sizes[0][1]}")
    if not sizes:
        raise ItemError("frames", "no frames")
    width, height = sizes[0]
    plan = plan_frames(len(images), fps, height, width, samplings)
    if plan.pixels > max_decode_pixels:
        raise RequestRefused(413, f"a video needs {len(plan.indices)} of its {len(images)} frames of {width}x{height} "
                                  f"decoded = {plan.pixels} pixels (as held for the models: repeated and resized "
                                  f"frames included); the limit is --max_decode_pixels {max_decode_pixels}")
    frames = [_ascii(_strip_data_url(images[t])) for t in plan.indices]  # bytes: the Item crosses to a worker
    return Item(frames, prompt, fps, indices=plan.indices, num_frames=len(images), pixels=plan.pixels)


def _strip_data_url(text: Frame) -> Frame:
    """The base64 part of a frame: after the first comma of a data URL (``data:image/png;base64,...``)."""
    if isinstance(text, str):
        return text.partition(",")[2] if text.startswith("data:") else text
    if text[:5] != b"data:":
        return text
    comma = bytes(text[:_DATA_URL_HEAD]).find(b",")
    comma = comma if comma >= 0 else bytes(text).find(b",")
    return text[comma + 1:] if comma >= 0 else text[:0]


def _ascii(text: Frame) -> bytes:
    """A frame's base64 text as bytes (a non-ASCII character becomes '?', which is not base64)."""
    return text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)


def _b64_prefix(text: Frame, t: int) -> bytes:
    """The first bytes of a base64 frame (enough for its header), decoded; bad base64 is an ItemError."""
    text = _strip_data_url(text)
    # a PNG's size is in its first 24 bytes (32 characters); a JPEG's frame header follows its EXIF/ICC
    # segments (< 64 kB for all but rare files): 96 kB of base64 at most, whole 4-character groups only
    for size in (32, 96 * 1024):
        head = text[:size]
        try:
            data = base64.b64decode(head[: len(head) - len(head) % 4] if len(head) < len(text) else head,
                                    validate=True)
        except (binascii.Error, ValueError):
            raise ItemError("frames", f"frame {t} is not valid base64") from None
        if data.startswith(_PNG_SIGNATURE) or len(head) == len(text):
            return data
    return data
