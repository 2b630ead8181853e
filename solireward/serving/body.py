"""Request bodies parsed without turning every base64 frame into a Python string.

A Flow-Factory video is 81 base64 PNG frames, ~71 MiB of JSON; a model sampling 8 of them needs those 8
and the first bytes of the others (their sizes, :mod:`.frames`). :func:`parse_body` finds the body's long
plain string values in the raw bytes (a few ``bytes.find`` per string), lets pydantic parse the body with
each of them replaced by a short marker, and puts them back: as memoryviews of the body in the frame
fields, as ``str`` anywhere else. Whatever it cannot vouch for is parsed whole, as it was before.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

FRAME_FIELDS = ("videos", "frames")  # ComputeRequest.videos (a list per video), ScoreItem.frames
MIN_ELIDED = 256  # string values at least this long (in bytes) are elided (a real frame is longer)
_MARK = "\x00"  # a marker is "\u0000<n>"; no string of a body that is elided can hold a NUL
_KEY_END = re.compile(rb"[ \t\n\r]*:")  # what follows a string that is an object's key


def parse_body(body: bytes, model: type[M]) -> M:
    """`body` validated as `model`; long strings of the frame fields come back as memoryviews of `body`.

    The result and the errors are those of ``model.model_validate_json(body)``: a body the elided parse
    refuses (bad JSON, a wrong field) is parsed whole, so that its errors are the full parser's.
    """
    elided = _elide(body)
    if elided is None:
        return model.model_validate_json(body)
    reduced, spans = elided
    try:
        parsed = model.model_validate_json(reduced)
    except ValidationError:
        return model.model_validate_json(body)
    _restore_model(parsed, spans)
    return parsed


def _elide(body: bytes) -> tuple[bytes, list[memoryview]] | None:
    """The body with each long plain string value replaced by ``"\\u0000<n>"``, and the n-th one's bytes;
    None when there is none, or the body holds what the markers could be mistaken for.

    A JSON string starts at a quote outside a string and ends at the next quote not escaped by an odd
    run of backslashes; what is elided has no backslash and only ASCII from 0x20 on (no control character,
    nothing to check as UTF-8), so the reduced body is valid JSON exactly when `body` is, and its other
    strings are `body`'s.
    """
    if len(body) < MIN_ELIDED:
        return None
    signed = np.frombuffer(body, np.int8)  # bytes >= 0x80 are negative: one min() checks both bounds
    view = memoryview(body)
    find = body.find
    pieces: list[bytes] = []
    spans: list[memoryview] = []
    copied = at = 0  # body[:copied] is in pieces; strings before `at` are done
    while (start := find(b'"', at)) >= 0:
        end = find(b'"', start + 1)
        if end < 0:
            return None  # unterminated: the full parser says so
        if find(b"\\", start + 1, end) >= 0:
            end = _escaped_end(body, start)
            if end < 0 or find(b"\\u0000", start, end) >= 0:
                return None
        elif end - start > MIN_ELIDED and not _KEY_END.match(body, end + 1) and signed[start + 1:end].min() >= 0x20:
            pieces += (body[copied:start + 1], b"\\u0000%d" % len(spans))
            spans.append(view[start + 1:end])
            copied = end
        at = end + 1
    if not spans:
        return None
    pieces.append(body[copied:])
    return b"".join(pieces), spans


def _escaped_end(body: bytes, start: int) -> int:
    """Where the string starting at `start` ends (its closing quote), when it holds escapes; -1 if it does not."""
    at = start + 1
    while (end := body.find(b'"', at)) >= 0:
        backslashes = end - len(body[at:end].rstrip(b"\\")) - at
        if backslashes % 2 == 0:
            return end
        at = end + 1
    return -1


def _restore_model(model: BaseModel, spans: list[memoryview]) -> None:
    """Put the elided strings back into `model` and the models it holds (in place)."""
    fields = {**model.__dict__, **(model.model_extra or {})}
    for name, value in fields.items():
        restored = _restore(value, spans, name in FRAME_FIELDS)
        if restored is not value:
            setattr(model, name, restored)


def _restore(value: Any, spans: list[memoryview], frames: bool) -> Any:
    """`value` with each marker replaced: by the memoryview in a frame field, else by the string."""
    if isinstance(value, str):
        if not value.startswith(_MARK):
            return value
        span = spans[int(value[1:])]
        return span if frames else str(span, "ascii")
    if isinstance(value, BaseModel):
        _restore_model(value, spans)
        return value
    if isinstance(value, list):
        return [_restore(v, spans, frames) for v in value]
    if isinstance(value, dict):
        return {k: _restore(v, spans, frames) for k, v in value.items()}
    return value
