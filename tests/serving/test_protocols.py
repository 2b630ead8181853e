"""Each peer's own client (tests/serving/peers.py) against a real `solireward serve` on loopback: its calls
score as `infer` does, and every failure is one its client raises on, never a reward. Also the limits
on what a request may cost, all checked before anything is decoded."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from tests.serving.conftest import GOOD, KEY, TOL, WEIGHTS, Server, all_frames, png_frames
from tests.serving.peers import FlowFactoryClient, openrlhf_query, openrlhf_request

WRONG_KEY = "not-the-key-4242"
FLOOR = -3.0 * sum(WEIGHTS.values())


@pytest.fixture(scope="module")
def server(reward_dirs, video_root, expected, tmp_path_factory):
    log = tmp_path_factory.mktemp("peers-log") / "server.log"
    srv = Server(reward_dirs, video_root, log, "--num_workers", 0, "--max_decode_pixels", 200_000,
                 "--max_request_pixels", 100_000, "--max_prompt_tokens", 64)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def frames(video_root: Path) -> dict[str, tuple[np.ndarray, float]]:
    return {name: all_frames(video_root / name) for name in GOOD}


def counter(srv: Server, line_start: str) -> float:
    """The value of the /metrics line starting with `line_start` (0 when absent)."""
    text = srv.call("GET", "/metrics")[1]
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start)), 0.0)


def ff_url(srv: Server, key: str = KEY) -> str:
    return f"http://127.0.0.1:{srv.port}/k/{key}"


# --- Flow-Factory ------------------------------------------------------------------------------------

def test_flow_factory_client_scores_as_infer_with_the_key_in_its_url(server, expected, frames) -> None:
    client = FlowFactoryClient(ff_url(server))
    assert client.health_check()
    names = list(GOOD)
    # Flow-Factory never sends extra.fps; these checkpoints sample by count, so none is needed
    rewards = client.compute([GOOD[n][1] for n in names], [list(frames[n][0]) for n in names])
    assert rewards == pytest.approx([expected[n]["reward"] for n in names], abs=TOL)
    assert client.posts == 1


def test_flow_factory_image_to_video_fields_are_ignored_and_counted(server, expected, frames) -> None:
    before = counter(server, 'solireward_ignored_fields_total{endpoint="/compute",field="condition_images"}')
    video = list(frames["good_a.mp4"][0])
    rewards = FlowFactoryClient(ff_url(server)).compute([GOOD["good_a.mp4"][1]], [video], condition_images=[[video[0]]])
    assert rewards == pytest.approx([expected["good_a.mp4"]["reward"]], abs=TOL)
    after = counter(server, 'solireward_ignored_fields_total{endpoint="/compute",field="condition_images"}')
    assert after == before + 1


def test_flow_factory_client_raises_at_once_when_every_video_failed(server, frames) -> None:
    client = FlowFactoryClient(ff_url(server))
    payload_video = list(frames["good_a.mp4"][0])
    # two videos whose frames differ in size: each is that video's error, so every video of the request fails
    odd = [payload_video[0], payload_video[1][:32]]
    with pytest.raises(RuntimeError, match=r"Server error: all 2 videos of the request failed.*frame 1 is"):
        client.compute(["a", "b"], [odd, odd])
    assert client.posts == 1  # the error field is read at once, not retried


def test_a_failed_video_gets_the_checkpoint_floor_whatever_the_rest_of_the_request(server, expected, frames) -> None:
    client = FlowFactoryClient(ff_url(server))
    odd = [frames["good_a.mp4"][0][0], frames["good_a.mp4"][0][1][:32]]
    got = []
    for name in ("good_a.mp4", "good_c.mp4"):
        rewards = client.compute([GOOD[name][1], "x"], [list(frames[name][0]), odd])
        assert rewards[0] == pytest.approx(expected[name]["reward"], abs=TOL)
        got.append(rewards[1])
    assert got == pytest.approx([FLOOR, FLOOR], abs=TOL)  # -3 x sum |weight|, not a function of the request
    assert FLOOR < min(e["reward"] for e in expected.values())
    assert server.health["failed_reward"] == pytest.approx(FLOOR)


def test_large_bodies_go_through_a_kept_buffer_and_score_the_same(server, expected, frames) -> None:
    """Bodies of 1 MiB or more are read into buffers the server keeps (guard.BodyBuffers): growing, shrinking
    and cut-off bodies leave later requests intact."""
    import socket

    from solireward.serving.guard import REUSED_MIN_BYTES

    video = png_frames(frames["good_a.mp4"][0])
    for padding in (REUSED_MIN_BYTES, 2 * REUSED_MIN_BYTES, REUSED_MIN_BYTES + 10, 3 * REUSED_MIN_BYTES):
        with socket.create_connection(("127.0.0.1", server.port)) as s:  # declares 2 MiB, sends half, leaves
            s.sendall(b"POST /compute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: "
                      b"Bearer " + KEY.encode() + b"\r\nContent-Length: " + str(2 * REUSED_MIN_BYTES).encode()
                      + b"\r\n\r\n" + b'{"prompt": ["' + b"p" * REUSED_MIN_BYTES)
        # `image` is ignored: it only makes the body large
        status, body = server.call("POST", "/compute", {"prompt": [GOOD["good_a.mp4"][1]], "video": [video],
                                                        "image": "x" * padding})
        assert status == 200 and body["rewards"] == pytest.approx([expected["good_a.mp4"]["reward"]], abs=TOL)


# --- OpenRLHF ----------------------------------------------------------------------------------------

def test_openrlhf_query_text_names_the_video(server, expected) -> None:
    url = f"http://127.0.0.1:{server.port}/k/{KEY}/get_reward"
    names = ["good_a.mp4", "sub/good_b.mp4", "good_c.mp4"]
    prompts = [GOOD[n][1] for n in names]
    prompts[1] = None  # the reference scored good_b without a prompt
    queries = [openrlhf_query("Generate: a red ball", f"Done. The video is saved at {names[0]}."),
               openrlhf_query("Make a video", names[1]),
               openrlhf_query("about ../secret.mp4 and text.mp4", f"rendered {names[2]}, see above")]
    body = openrlhf_request(url, {"query": queries, "prompts": prompts, "labels": [None] * 3})
    assert body["rewards"] == pytest.approx([expected[n]["reward"] for n in names], abs=TOL)
    assert body["extra_logs"]["reward_failed"] == [0.0, 0.0, 0.0]
    assert torch.as_tensor(body["rewards"]).shape == (3,)  # what OpenRLHF does with them


def test_openrlhf_client_raises_when_no_query_names_a_video(server) -> None:
    url = f"http://127.0.0.1:{server.port}/k/{KEY}/get_reward"
    before = counter(server, 'solireward_requests_total{endpoint="/get_reward",status="422"}')
    with pytest.raises(Exception, match="Request error for 5 times"):
        openrlhf_request(url, {"query": [openrlhf_query("a cat", "I cannot make videos."),
                                         openrlhf_query("a dog", "see ../secret.mp4")],
                               "prompts": ["a cat", "a dog"], "labels": [None, None]}, pause_s=0.05)
    assert counter(server, 'solireward_requests_total{endpoint="/get_reward",status="422"}') == before + 5
    status, body = server.call("POST", "/get_reward", {"query": ["no video here"]})
    assert status == 422 and "no word of the text names a video file under --video_root" in body["detail"]


# --- API key ---------------------------------------------------------------------------------------

def test_the_key_works_in_the_url_and_the_header_and_never_reaches_the_log(server, expected) -> None:
    request = {"items": [{"video_path": "good_a.mp4", "prompt": GOOD["good_a.mp4"][1]}]}
    status, body = server.call("POST", f"/k/{KEY}/v1/score", request, key=None)
    assert status == 200 and body["results"][0]["reward"] == pytest.approx(expected["good_a.mp4"]["reward"], abs=TOL)
    assert server.call("POST", "/v1/score", request)[0] == 200  # the header
    assert server.call("POST", f"/k/{WRONG_KEY}/v1/score", request, key=None)[0] == 401
    assert server.call("POST", f"/k/{WRONG_KEY}/v1/score", request)[0] == 401  # a wrong URL key is not excused
    assert requests.post(f"{ff_url(server, WRONG_KEY)}/compute", json={}, timeout=60).status_code == 401
    assert server.call("GET", f"/k/{WRONG_KEY}/health", key=None)[0] == 200  # health stays open
    text = server.call("GET", "/metrics")[1]
    assert KEY not in text and WRONG_KEY not in text
    log = server.log.read_text()
    assert "/k/" not in log
    for secret in (KEY, WRONG_KEY, KEY[:8], WRONG_KEY[:8]):
        assert secret not in log


# --- limits, all before decoding -----------------------------------------------------------------------

def bare_png(width: int, height: int, bit_depth: int = 1, color_type: int = 0) -> bytes:
    """A PNG whose header claims `width` x `height` (1-bit grey) with one tiny compressed all-zero row block."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    rows = zlib.compress(b"\x00" * ((width * bit_depth + 7) // 8 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_frame_sizes_come_from_the_header_and_refusals_name_them(server) -> None:
    huge = b64(bare_png(20_000, 20_000))  # 400 M pixels in ~100 bytes: PIL's own guard raises on it
    status, body = server.call("POST", "/compute", {"prompt": ["p"], "video": [[huge]]})
    assert status == 413 and "frame 0 is 20000x20000 = 400000000 pixels" in body["detail"]
    assert "--max_pixels 8294400" in body["detail"]


def test_a_video_costing_more_decoded_pixels_than_allowed_is_refused_before_decoding(server) -> None:
    uhd = b64(bare_png(3840, 2160))  # allowed per frame (the default --max_pixels) but not 4 of them
    status, body = server.call("POST", "/compute", {"prompt": ["p"], "video": [[uhd] * 512]})
    assert status == 413
    assert ("a video needs 4 of its 512 frames of 3840x2160 decoded = 33177600 pixels (as held for the models: "
            "repeated and resized frames included); the limit is --max_decode_pixels 200000") in body["detail"]


def test_a_request_costing_more_decoded_pixels_than_allowed_is_refused(server, frames) -> None:
    video = png_frames(frames["good_a.mp4"][0])  # 4 sampled frames of 64x64 = 16384 pixels
    status, body = server.call("POST", "/compute", {"prompt": ["p"] * 7, "video": [video] * 7})
    assert status == 413 and "need 114688 pixels decoded; the limit is --max_request_pixels 100000" in body["detail"]


def test_only_the_sampled_frames_are_decoded(server, expected, frames) -> None:
    images, fps = frames["good_a.mp4"]
    from solireward.data.video import FrameSampling, VideoInfo, frame_indices

    sampled = set(frame_indices(VideoInfo(len(images), fps, *images.shape[1:3]), FrameSampling(num_frames=4)))
    encoded = png_frames(images)
    # every other frame keeps a valid header but loses its pixel data: decoding it would fail
    video = [text if t in sampled else b64(base64.b64decode(text)[:40]) for t, text in enumerate(encoded)]
    assert len(sampled) == 4 and len(video) > 4
    status, body = server.call("POST", "/compute", {"prompt": [GOOD["good_a.mp4"][1]], "video": [video]})
    assert status == 200, body
    assert body["rewards"] == pytest.approx([expected["good_a.mp4"]["reward"]], abs=TOL)


def test_prompt_length_is_limited_in_tokens(server, frames) -> None:
    video = png_frames(frames["good_a.mp4"][0])
    status, body = server.call("POST", "/compute", {"prompt": ["a red ball " * 40], "video": [video]})
    assert status == 413 and "video 0: the prompt has" in body["detail"]
    assert "tokens; the limit is --max_prompt_tokens 64" in body["detail"]
    status, body = server.call("POST", "/get_reward", {"query": ["good_a.mp4"], "prompts": ["x" * 112_000]})
    assert status == 413 and "112000 characters, more than 64 x --max_prompt_tokens 64" in body["detail"]


def test_default_body_limit_fits_a_flow_factory_batch() -> None:
    from solireward.serving.config import ServeConfig

    png_video_mib = 57  # 81 PNG frames of 832x480 from a video generator
    batch = 16 * png_video_mib * 4 / 3  # base64
    assert ServeConfig(model=["m=x"]).max_body_mb >= batch


# --- checkpoints sampling by time ---------------------------------------------------------------------

def test_frames_without_a_rate_are_an_error_naming_the_field(fps_model_dir, video_root, frames, tmp_path) -> None:
    srv = Server({"fps": fps_model_dir}, video_root, tmp_path / "server.log", "--num_workers", 0)
    try:
        client = FlowFactoryClient(ff_url(srv))
        with pytest.raises(RuntimeError, match="422"):
            client.compute(["a red ball"], [list(frames["good_a.mp4"][0])])
        status, body = srv.call("POST", "/compute", {"prompt": ["p"], "video": [png_frames(frames["good_a.mp4"][0])]})
        assert status == 422 and "field 'extra.fps' is missing" in body["detail"]
        assert "'fps' (2 frames/s)" in body["detail"] and "--frames_fps" in body["detail"]
    finally:
        srv.stop()


def test_frames_without_a_rate_take_the_servers_default(fps_model_dir, video_root, frames, tmp_path) -> None:
    srv = Server({"fps": fps_model_dir}, video_root, tmp_path / "server.log", "--num_workers", 0,
                 "--frames_fps", 8)
    try:
        images, fps = frames["good_a.mp4"]
        assert fps == 8.0  # the demo videos' rate: the default is then exact
        rewards = FlowFactoryClient(ff_url(srv)).compute(["a red ball"], [list(images)])
        status, body = srv.call("POST", "/v1/score", {"items": [{"video_path": "good_a.mp4", "prompt": "a red ball"}]})
        assert status == 200 and rewards == pytest.approx([body["results"][0]["reward"]], abs=TOL)
        assert srv.health["frames_fps"] == 8.0
    finally:
        srv.stop()


def test_qwen25_is_told_the_rate_its_frames_were_sampled_at(tiny_model_factory, video_root, frames, tmp_path) -> None:
    """A checkpoint sampling at 4 frames/s but capped at 4 frames: a 2 s video gives 4 frames (2 temporal patches)
    standing for 2 frames/s. The server (from a path and from PNG frames) must score as `infer` does, which tells the
    model 2 frames/s; telling it the checkpoint's 4 frames/s moves Qwen2.5-VL's time positions and its score."""
    import json

    from solireward.data.video import FrameSampling
    from solireward.models import RewardModel, RewardModelConfig
    from tests.conftest import run_cli

    torch.manual_seed(3)
    sampling = FrameSampling(mode="fps", fps=4.0, min_frames=2, max_frames=4, height=56, width=56)
    folder = tmp_path / "qwen25"
    RewardModel.from_backbone(tiny_model_factory("Qwen2.5-VL"),
                              RewardModelConfig(reduce_sequence="last_token", sampling=sampling.to_dict())
                              ).save_pretrained(folder)
    records = tmp_path / "videos.json"
    records.write_text(json.dumps([{"video_path": str(video_root / "good_a.mp4"), "prompt": "a red ball"}]))
    assert run_cli("infer", "--model_name_or_path", folder, "--input_file", records, "--output_file",
                   tmp_path / "scores.json", "--num_workers", 0) == 0
    reference = json.loads((tmp_path / "scores.json").read_text())[0]["score_norm"]
    srv = Server({"q": folder}, video_root, tmp_path / "server.log", "--num_workers", 0)
    try:
        status, body = srv.call("POST", "/v1/score", {"items": [{"video_path": "good_a.mp4", "prompt": "a red ball"}]})
        assert status == 200 and body["results"][0]["reward"] == pytest.approx(reference, abs=TOL)
        images, fps = frames["good_a.mp4"]
        status, body = srv.call("POST", "/compute", {"prompt": ["a red ball"], "video": [png_frames(images)],
                                                     "extra": {"fps": fps}})
        assert status == 200 and body["rewards"] == pytest.approx([reference], abs=TOL)
    finally:
        srv.stop()


def test_the_server_can_serve_a_conservative_ensemble(reward_dirs, video_root, expected, frames, tmp_path) -> None:
    """--ensemble mean_minus_std: the reward is mean - lambda x std of the models' score_norm; a failed video gets
    the floor itself (every model at its floor); weights and an ensemble together are refused."""
    import subprocess
    import sys

    refused = subprocess.run([sys.executable, "-m", "solireward.cli", "serve", "--model", f"phys={reward_dirs['phys']}",
                              "--weights", "phys=2", "--ensemble", "mean_minus_std"], capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and "drop --weights" in refused.stderr
    srv = Server(reward_dirs, video_root, tmp_path / "ok.log", "--num_workers", 0, "--ensemble", "mean_minus_std",
                 "--ensemble_lambda", 0.5, weights=False)
    try:
        names = list(GOOD)
        status, body = srv.call("POST", "/v1/score", {"items": [{"video_path": n, "prompt": GOOD[n][1]}
                                                                for n in names]})
        assert status == 200
        for result, name in zip(body["results"], names):
            norms = np.array([expected[name]["scores"][m]["score_norm"] for m in ("phys", "text")])
            assert result["reward"] == pytest.approx(norms.mean() - 0.5 * norms.std(), abs=TOL)
        odd = [frames["good_a.mp4"][0][0], frames["good_a.mp4"][0][1][:32]]  # frames of two sizes: a failed video
        rewards = FlowFactoryClient(ff_url(srv)).compute(["a", "b"], [list(frames["good_a.mp4"][0]), odd])
        assert rewards[1] == pytest.approx(-3.0) and srv.health["failed_reward"] == -3.0
    finally:
        srv.stop()
