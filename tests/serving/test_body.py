"""serving.body.parse_body against pydantic's own parse of the whole body: the same values (long frames as
memoryviews of the body), the same errors, and the whole-body parse wherever the elided one cannot vouch;
and the buffers that large bodies are read into (serving.guard.BodyBuffers)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from solireward.serving.body import MIN_ELIDED, _elide, parse_body
from solireward.serving.guard import BodyBuffers
from solireward.serving.protocols import ComputeRequest, GetRewardRequest, ScoreRequest

FRAME = base64.b64encode(os.urandom(3 * MIN_ELIDED)).decode()  # a long frame, with '+' and '/'


def frame(n: int) -> str:
    return FRAME[n:] + FRAME[:n]


def plain(value: Any) -> Any:
    """`value` with every memoryview as the str it holds (what the whole-body parse gives)."""
    if isinstance(value, memoryview):
        return str(value, "ascii")
    if isinstance(value, BaseModel):
        return {name: plain(v) for name, v in {**value.__dict__, **(value.model_extra or {})}.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def errors(exc: ValidationError) -> list[tuple]:
    """What the server reports of a validation error (its JSON error message includes the position)."""
    return [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]


def same_as_pydantic(body: bytes, model: type[BaseModel]) -> BaseModel:
    parsed = parse_body(body, model)
    assert plain(parsed) == plain(model.model_validate_json(body))
    return parsed


def test_long_frames_stay_bytes_of_the_body_and_everything_else_is_restored() -> None:
    request = {"prompt": ["p" * 2 * MIN_ELIDED, None], "video": [[frame(0), "short", frame(1)], [frame(2)]],
               "image": [frame(3)], "condition_images": None, "condition_videos": {"v": [frame(4)]},
               "extra": {"fps": [8, 8.5], "note": "n" * 3 * MIN_ELIDED, "k" * 2 * MIN_ELIDED: frame(5)}}
    body = json.dumps(request).encode()
    parsed = same_as_pydantic(body, ComputeRequest)
    assert [type(f) for f in parsed.videos[0]] == [memoryview, str, memoryview]
    assert bytes(parsed.videos[1][0]) == frame(2).encode() and parsed.videos[1][0].obj is body  # no copy
    assert isinstance(parsed.image[0], str) and isinstance(parsed.extra["note"], str)  # only frames stay bytes
    assert isinstance(parsed.prompts[0], str) and isinstance(parsed.condition_videos["v"][0], str)
    # what pydantic parses holds none of the 8 long values, only the long key
    reduced, spans = _elide(body)
    assert len(spans) == 8 and len(reduced) < 2 * MIN_ELIDED + 400


def test_score_items_and_openrlhf_bodies() -> None:
    body = json.dumps({"items": [{"frames": [frame(0), frame(1)], "fps": 8, "id": "x" * 2 * MIN_ELIDED},
                                 {"video_path": "v" * 2 * MIN_ELIDED, "prompt": "q" * 2 * MIN_ELIDED}]}).encode()
    parsed = same_as_pydantic(body, ScoreRequest)
    assert isinstance(parsed.items[0].frames[1], memoryview) and isinstance(parsed.items[0].id, str)
    assert isinstance(parsed.items[1].video_path, str)
    body = json.dumps({"query": ["q" * 2 * MIN_ELIDED], "labels": None, "more": ["m" * 2 * MIN_ELIDED]}).encode()
    parsed = same_as_pydantic(body, GetRewardRequest)
    assert parsed.model_extra == {"more": ["m" * 2 * MIN_ELIDED]}


@pytest.mark.parametrize("text", [
    frame(0).replace("/", "\\/"),  # escapes: the string is left to pydantic
    frame(0)[:100] + '\\"' + frame(0)[100:],  # an escaped quote inside
    frame(0)[:100] + "\\\\" + frame(0)[100:],  # an escaped backslash: the next quote ends the string
    frame(0)[:100] + "\\u00e9" + frame(0)[100:],
    frame(0)[:100] + "\u00e9" + frame(0)[100:],  # non-ASCII UTF-8: left to pydantic
])
def test_strings_with_escapes_or_non_ascii_are_parsed_by_pydantic(text: str) -> None:
    body = ('{"prompt": ["p"], "video": [["' + text + '", "' + frame(1) + '"]]}').encode()
    parsed = same_as_pydantic(body, ComputeRequest)
    assert isinstance(parsed.videos[0][0], str) and isinstance(parsed.videos[0][1], memoryview)


@pytest.mark.parametrize("body", [
    b'{"prompt": ["p"], "video": [["' + frame(0).encode() + b'"]',  # cut short
    b'{"prompt": ["p"], "video": [["' + frame(0).encode() + b'"],]}',  # trailing comma
    b'{"prompt": ["p"], "video": [["' + frame(0).encode() + b'\n"]]}',  # a raw control character in a frame
    b'{"prompt": ["p"], "video": [["' + frame(0).encode() + b'\xff"]]}',  # not UTF-8
    b'{"prompt": ["p"], "video": [["' + frame(0).encode(),  # unterminated string
    b'{"prompt": ["p"], "video": [["' + frame(0).encode() + b'"]]} x',  # trailing garbage
    b'{"prompt": ["p"], "video": [[' + frame(0).encode() + b']]}',  # a frame without quotes
])
def test_bad_json_is_refused_with_the_whole_body_parsers_error(body: bytes) -> None:
    with pytest.raises(ValidationError) as elided:
        parse_body(body, ComputeRequest)
    with pytest.raises(ValidationError) as whole:
        ComputeRequest.model_validate_json(body)
    assert errors(elided.value) == errors(whole.value)


@pytest.mark.parametrize("request_", [
    {"prompts": ["a", "b"], "videos": [[frame(0)]]},  # the model's own check
    {"prompts": ["a"], "videos": [[frame(0)]], "unknown": frame(1)},  # extra="forbid"
    {"prompts": [frame(0)], "videos": [frame(1)]},  # a frame where a list of frames belongs
    {"items": [{"frames": [frame(0)], "video_path": frame(1)}]},
])
def test_field_errors_are_the_whole_body_parsers(request_: dict) -> None:
    body = json.dumps(request_).encode()
    model = ScoreRequest if "items" in request_ else ComputeRequest
    with pytest.raises(ValidationError) as elided:
        parse_body(body, model)
    with pytest.raises(ValidationError) as whole:
        model.model_validate_json(body)
    assert errors(elided.value) == errors(whole.value)


def test_a_long_string_a_non_string_field_accepts_is_parsed_whole() -> None:
    # pydantic turns a numeric string into a float; a marker would not parse, so the whole body is parsed
    body = json.dumps({"items": [{"frames": [frame(0)], "fps": "0" * 2 * MIN_ELIDED + "8.5"}]}).encode()
    parsed = same_as_pydantic(body, ScoreRequest)
    assert parsed.items[0].fps == 8.5


def test_a_body_holding_an_escaped_nul_is_parsed_whole() -> None:
    body = b'{"prompt": ["a\\u0000b"], "video": [["' + frame(0).encode() + b'"]]}'  # what a marker is made of
    parsed = same_as_pydantic(body, ComputeRequest)
    assert parsed.prompts == ["a\x00b"] and isinstance(parsed.videos[0][0], str)


def test_keys_and_short_bodies_are_not_elided() -> None:
    assert _elide(json.dumps({"prompts": ["a"], "videos": [["x" * (MIN_ELIDED - 1)]]}).encode()) is None
    assert _elide(json.dumps({"k" * 2 * MIN_ELIDED: 1, "k2" * MIN_ELIDED: 2}).encode()) is None
    assert _elide(b'{"' + b"k" * 2 * MIN_ELIDED + b'" \n\t :1}') is None


def test_the_protocols_put_no_limit_on_strings_that_a_marker_would_pass() -> None:
    """A marker stands in for a long string during validation: a length or pattern limit would see the marker."""
    for model in (ComputeRequest, ScoreRequest, GetRewardRequest):
        schema = json.dumps(model.model_json_schema())
        assert '"maxLength"' not in schema and '"pattern"' not in schema, model.__name__


def test_a_body_in_a_bytearray_parses_as_bytes() -> None:
    body = json.dumps({"prompt": ["p"], "video": [[frame(0), frame(1)]]}).encode()
    parsed = same_as_pydantic(bytearray(body), ComputeRequest)
    assert bytes(parsed.videos[0][1]) == frame(1).encode()


def test_body_buffers_are_reused_only_once_nothing_views_them() -> None:
    buffers = BodyBuffers(keep=1)
    first = buffers.take()
    assert first == bytearray()  # a new one grows as the body arrives
    first += b"x" * 1000
    buffers.give(first)
    assert buffers.take() is first
    assert buffers.take() is not first  # none kept now: a new one
    view = memoryview(first)[10:20]
    buffers.give(first)  # still viewed (a frame of a parsed body): not kept
    assert buffers.take() is not first
    view.release()
    buffers.give(first)
    buffers.give(bytearray(5))  # one is kept already
    assert buffers.take() is first and first == b"x" * 1000
