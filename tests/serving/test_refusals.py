"""Refusals at the edge, each logged once (status, route, reason; never the key): frame rates that are no
rates, error texts that would leak the server's folders, chat-templated OpenRLHF prompts."""

from __future__ import annotations

import os
import re

import pytest

from tests.serving.conftest import GOOD, KEY, TOL, Server, all_frames, png_frames

WRONG_KEY = "wrong-key-7777"


@pytest.fixture(scope="module")
def server(reward_dirs, video_root, expected, tmp_path_factory):
    srv = Server(reward_dirs, video_root, tmp_path_factory.mktemp("refusals") / "server.log", "--num_workers", 0,
                 "--max_body_mb", 1)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def video(video_root) -> list[str]:
    return png_frames(all_frames(video_root / "good_a.mp4")[0])


def refusals(srv: Server) -> list[str]:
    return [line.partition("solireward.serve: ")[2] for line in srv.log.read_text().splitlines() if " refused " in line]


@pytest.mark.parametrize("fps", ["1e308", "1e-300", "Infinity", "-Infinity", "NaN", "0", "[8, NaN]"])
def test_a_frame_rate_must_be_finite_and_in_range(server, video, fps) -> None:
    body = '{"prompt": ["p"], "video": [%s], "extra": {"fps": %s}}' % (str(video).replace("'", '"'), fps)
    status, answer = server.call("POST", "/compute", raw=body.encode())
    assert status == 422 and "extra.fps" in answer["detail"], answer
    body = '{"items": [{"frames": %s, "fps": %s}]}' % (str(video).replace("'", '"'), fps.replace("[8, NaN]", "NaN"))
    status, answer = server.call("POST", "/v1/score", raw=body.encode())
    assert status == 422 and "items.0.fps" in answer["detail"], answer


def test_each_refusal_is_logged_once_with_status_route_and_reason_never_the_key(server, video) -> None:
    before = len(refusals(server))
    assert server.call("POST", f"/k/{WRONG_KEY}/compute", {"prompt": ["p"], "video": [video]}, key=None)[0] == 401
    assert server.call("POST", "/compute", raw=b'{"prompt": ["' + b"p" * (2 << 20) + b'"]}')[0] == 413
    assert server.call("POST", "/compute", {"prompt": ["p"], "video": [video], "extra": {"fps": 1e308}})[0] == 422
    assert server.call("POST", "/get_reward", {"query": ["no video here"]})[0] == 422
    logged = refusals(server)[before:]
    assert logged[:3] == [
        "refused 401 /compute: missing or wrong API key (in the URL)",
        "refused 413 /compute: request body exceeds --max_body_mb 1 (1048576 bytes)",
        "refused 422 /compute: field 'extra.fps': expected a finite frame rate from 0.01 to 1000 frames/s, got 1e+308"]
    assert len(logged) == 4 and logged[3].startswith(
        "refused 422 /get_reward: all 1 videos of the request failed, none has a reward: video 0 (path): no word of "
        "the text names a video file under --video_root")
    log = server.log.read_text()
    assert WRONG_KEY not in log and KEY not in log and "/k/" not in log


def test_error_texts_name_paths_relative_to_the_root_and_a_dangling_symlink_says_so(server, video_root) -> None:
    os.symlink("gone.mp4", video_root / "dangling.mp4")
    try:
        names = ["empty.mp4", "text.mp4", "truncated.mp4", "missing.mp4", "dangling.mp4", "good_a.mp4"]
        status, body = server.call("POST", "/v1/score", {"items": [{"video_path": n} for n in names]})
    finally:
        os.unlink(video_root / "dangling.mp4")
    assert status == 200
    errors = [r.get("error", "") for r in body["results"]]
    assert all(errors[:5]) and not errors[5]
    assert "dangling.mp4' is a symlink to a file that does not exist (a dangling symlink)" in errors[4]
    # nothing names the server's folders, whatever the decoder said
    for folder in (video_root, video_root.parent, video_root.resolve()):
        assert not any(str(folder) in e for e in errors), errors
    assert str(video_root.parent) not in server.log.read_text().split("refused")[-1]


def test_openrlhf_chat_templated_prompts_score_as_their_user_turn(server, expected) -> None:
    names = ["good_a.mp4", "good_c.mp4"]
    templated = [f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{GOOD[n][1]}"
                 f"<|im_end|>\n<|im_start|>assistant\n" for n in names]
    status, body = server.call("POST", "/get_reward", {"query": [f"saved to {n}." for n in names],
                                                       "prompts": templated})
    assert status == 200 and body["rewards"] == pytest.approx([expected[n]["reward"] for n in names], abs=TOL)
    server.call("POST", "/get_reward", {"query": ["good_a.mp4"], "prompts": templated[:1]})
    assert len(re.findall("prompts come in a ChatML chat template", server.log.read_text())) == 1


@pytest.mark.parametrize("text, bare", [
    ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nA red ball<|im_end|>\n<|im_start|>assistant\n",
     "A red ball"),
    ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
     "<|end_header_id|>\n\nA red ball<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "A red ball"),
    ("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nA red ball [/INST]", "A red ball"),
    ("A red ball rolls <left>", "A red ball rolls <left>")])
def test_chat_templates_are_stripped_to_the_last_user_turn(text: str, bare: str) -> None:
    from solireward.serving.chat import strip_chat_template

    assert strip_chat_template(text)[0] == bare
