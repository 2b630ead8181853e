"""Why a video file cannot be read, said before and after a decoder tries: missing, empty, unreadable, text, an
mp4 whose boxes are cut off or misplaced, or a container the decoders do not know (from its first bytes); and
decoder messages shortened to one line. :mod:`solireward.data.video` raises what these return."""

from __future__ import annotations

import errno
import os
import re

from solireward.errors import VideoReadError


_SIGNATURES = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"),  # mp4 / mov
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"RIFF"), (0, b"FLV"), (0, b"OggS"), (0, b"GIF8"),
    (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"), (0, b"\x00\x00\x00\x01"),  # MPEG-PS/ES, H.264
)


def describe_unopenable(path: str, detail: str) -> str:
    """Why a non-empty file could not be opened, judged from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if any(head[offset:offset + len(magic)] == magic for offset, magic in _SIGNATURES) or (
            head[:1] == b"\x47" and len(head) > 188 and head[188:189] == b"\x47"):  # MPEG-TS
        return f"corrupt or truncated video: it starts like a video container but cannot be opened ({detail})"
    return f"not a video file: its content is not a recognised video format ({detail})"


def _is_text(head: bytes) -> bool:
    """Whether the first bytes of a file are printable UTF-8 text (never a video)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:  # may also be a multi-byte character cut at the end
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return bool(text) and all(c.isprintable() or c.isspace() for c in text)


def _mp4_problem(path: str, size: int) -> str | None:
    """Walk the top-level boxes of an MP4/MOV file; say what is missing or cut off, if anything."""
    boxes, offset = [], 0
    with open(path, "rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if box_size == 1 and len(header) == 16:  # 64-bit size follows the type
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:  # the box runs to the end of the file
                box_size = size - offset
            if box_size < 8 or not all(32 <= c < 127 for c in kind):
                return None  # not a box header: trailing data FFmpeg may tolerate; let the decoder judge
            name = kind.decode("ascii")
            if offset + box_size > size:
                return (f"truncated video: the MP4 box '{name}' at byte {offset} needs {box_size} bytes "
                        f"but the file ends after {size - offset}")
            boxes.append(kind)
            offset += box_size
    if b"moov" not in boxes:
        return "corrupt or truncated video: the MP4 index ('moov' box) is missing"
    return None


def check_file(path: str) -> None:
    """Raise a VideoReadError for problems found without a decoder (missing, empty, text, cut mp4)."""
    if not os.path.exists(path):
        try:
            os.stat(path)
        except OSError as exc:  # exists() says False for every OSError; a loop is not a missing file
            if exc.errno == errno.ELOOP:
                raise VideoReadError(path, "a symbolic-link loop (the link leads back to itself)") from None
        raise VideoReadError(path, "file does not exist")
    if os.path.isdir(path):
        raise VideoReadError(path, "is a directory, not a video file")
    size = os.path.getsize(path)
    if size == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except PermissionError:
        raise VideoReadError(path, "file is not readable (permission denied)") from None
    if _is_text(head):
        raise VideoReadError(path, "not a video file: it holds text")
    if head[4:8] == b"ftyp":
        problem = _mp4_problem(path, size)
        if problem:
            raise VideoReadError(path, problem)


_DECORD_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+?:\d+: ")


def short_message(exc: BaseException) -> str:
    """One line of an exception's message, without decord's log prefixes and stack trace."""
    text = _DECORD_LOG_PREFIX.sub("", str(exc)).split("Stack trace")[0]
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
