"""`solireward serve` as a real server (uvicorn in a subprocess, loopback): every endpoint over HTTP, scores
equal to `solireward infer`, bad items isolated, hostile paths refused, limits, API key, concurrency, SIGTERM."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import BAD, GOOD, KEY, TOL, WEIGHTS, Server, all_frames, free_port, png_frames

FLOOR = -3.0 * sum(WEIGHTS.values())  # the default --failed_reward floor: -3 x sum |weight|


@pytest.fixture(scope="module")
def server(reward_dirs, video_root, expected, tmp_path_factory):
    """One server for the module: decoding in a thread, small limits so each is easy to cross."""
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    srv = Server(reward_dirs, video_root, log, "--num_workers", 0, "--max_batch_size", 4, "--max_wait_ms", 20,
                 "--max_items", 16, "--max_body_mb", 1, "--max_frames", 64, "--max_pixels", 10000)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def good_frames(video_root: Path) -> dict[str, tuple[list[str], float]]:
    out = {}
    for name in GOOD:
        frames, fps = all_frames(video_root / name)
        out[name] = (png_frames(frames), fps)
    return out


def assert_matches(result: dict, reference: dict) -> None:
    assert result["reward"] == pytest.approx(reference["reward"], abs=TOL)
    assert set(result["scores"]) == set(reference["scores"])
    for name, scores in reference["scores"].items():
        assert result["scores"][name]["score"] == pytest.approx(scores["score"], abs=TOL)
        assert result["scores"][name]["score_norm"] == pytest.approx(scores["score_norm"], abs=TOL)


def test_health_names_models_frame_settings_and_versions(server: Server) -> None:
    health = server.health
    assert health["status"] == "ok"
    assert set(health["models"]) == {"phys", "text"}
    assert health["models"]["text"]["weight"] == 0.5 and health["models"]["phys"]["weight"] == 1.0
    assert health["models"]["phys"]["sampling"]["num_frames"] == 4
    assert {"solireward", "torch", "transformers", "fastapi", "uvicorn"} <= set(health["versions"])
    assert health["devices"] == ["cpu"]


def test_score_mixes_good_and_bad_videos_in_order(server: Server, expected: dict, good_frames: dict) -> None:
    items = []
    for i, (name, (_, prompt)) in enumerate(GOOD.items()):
        items.append({"id": f"path-{i}", "video_path": name, "prompt": prompt})
        items.append({"id": f"bad-{i}", "video_path": BAD[i], "prompt": "anything"})
        frames, fps = good_frames[name]
        items.append({"id": f"frames-{i}", "frames": frames, "fps": fps, "prompt": prompt})
    items.append({"id": "not-base64", "frames": ["%%%"], "fps": 8})
    items.append({"id": "not-an-image", "frames": [base64.b64encode(b"GIF89a nonsense").decode()], "fps": 8})
    status, body = server.call("POST", "/v1/score", {"items": items})
    assert status == 200, body
    results = body["results"]
    assert [r["id"] for r in results] == [item["id"] for item in items]
    for i, name in enumerate(GOOD):
        assert_matches(results[3 * i], expected[name])
        assert_matches(results[3 * i + 2], expected[name])
        assert "error" in results[3 * i + 1] and "reward" not in results[3 * i + 1]
    assert "does not exist" in results[10]["error"]
    assert "base64" in results[-2]["error"]
    assert "PNG or JPEG" in results[-1]["error"]


def test_paths_outside_the_root_are_refused_per_item(server: Server, expected: dict, video_root: Path) -> None:
    hostile = ["../secret.mp4", str(video_root.parent / "secret.mp4"), "escape.mp4", "sub/up/secret.mp4",
               "sub/../../secret.mp4", "loop.mp4", "/etc/passwd"]
    items = [{"video_path": p} for p in hostile] + [
        {"video_path": "alias.mp4", "prompt": GOOD["good_a.mp4"][1]},
        {"video_path": str(video_root / "good_a.mp4"), "prompt": GOOD["good_a.mp4"][1]}]
    status, body = server.call("POST", "/v1/score", {"items": items})
    assert status == 200, body
    results = body["results"]
    for path, result in zip(hostile, results):
        assert "reward" not in result, path
        assert result["kind"] == "path" if path != "loop.mp4" else result["kind"] in ("path", "video")
    for result in results[:5] + results[6:7]:
        assert "outside --video_root" in result["error"]
    assert "symlink loop" in results[5]["error"]
    for result in results[:7]:  # no message names the server's own folders
        assert str(video_root) not in result["error"] and str(video_root.resolve()) not in result["error"]
    assert_matches(results[-2], expected["good_a.mp4"])  # a symlink that stays inside the root
    assert_matches(results[-1], expected["good_a.mp4"])  # an absolute path inside the root


def test_compute_speaks_flow_factory(server: Server, expected: dict, good_frames: dict) -> None:
    names = list(GOOD)
    videos = [good_frames[n][0] for n in names] + [["%%%"]]
    prompts = [GOOD[n][1] for n in names] + ["broken"]
    fps = [good_frames[n][1] for n in names] + [8.0]
    status, body = server.call("POST", "/compute", {"prompts": prompts, "videos": videos, "extra": {"fps": fps}})
    assert status == 200, body
    rewards = body["rewards"]
    for reward, name in zip(rewards, names):
        assert reward == pytest.approx(expected[name]["reward"], abs=TOL)
    assert rewards[-1] == pytest.approx(FLOOR, abs=TOL)
    assert FLOOR < min(expected[n]["reward"] for n in names)
    assert [(f["index"], f["kind"]) for f in body["failed"]] == [(len(names), "frames")]
    # Flow-Factory's own client spells the keys in the singular and sends the unused ones as null
    status, body = server.call("POST", "/compute", {"prompt": prompts[:1], "video": videos[:1], "image": None,
                                                    "condition_images": None, "condition_videos": None,
                                                    "extra": {"fps": fps[0]}})
    assert status == 200 and body["rewards"][0] == pytest.approx(expected[names[0]]["reward"], abs=TOL)


def test_compute_frames_read_the_same_however_json_spells_them(server: Server, expected: dict,
                                                              good_frames: dict) -> None:
    """Plain frames take the fast parse (serving.body); escaped ones and data URLs score the same, and a
    malformed body is a 400 whatever the frames hold."""
    from solireward.serving.body import MIN_ELIDED

    frames, fps = good_frames["good_a.mp4"]
    assert min(map(len, frames)) >= MIN_ELIDED  # every frame is elided from what pydantic parses
    plain = json.dumps(frames)
    escaped = plain.replace("/", "\\/").replace("A", "\\u0041")  # JSON escapes: the same strings
    assert escaped != plain and json.loads(escaped) == frames
    data_urls = json.dumps([f"data:image/png;base64,{f}" for f in frames])
    prompts = json.dumps([GOOD["good_a.mp4"][1]] * 3)
    raw = f'{{"prompt": {prompts}, "video": [{plain}, {escaped}, {data_urls}], "extra": {{"fps": {fps}}}}}'.encode()
    status, body = server.call("POST", "/compute", raw=raw)
    assert status == 200, body
    assert body["rewards"] == pytest.approx([expected["good_a.mp4"]["reward"]] * 3, abs=TOL) and not body["failed"]
    inside = raw.index(frames[3].encode()) + 100  # a byte in the middle of a frame
    for bad in (raw[:-3], raw[:inside] + b"\n" + raw[inside:], raw[:inside] + b"\xff" + raw[inside:],
                raw[:inside] + b'"' + raw[inside:]):
        status, body = server.call("POST", "/compute", raw=bad)
        assert status == 400 and "request body is not valid JSON" in body["detail"], body


def test_an_unused_frame_is_read_as_far_as_its_header_and_a_kept_one_whole(server: Server, expected: dict,
                                                                           good_frames: dict) -> None:
    from solireward.data.video import FrameSampling, VideoInfo, frame_indices

    frames, fps = good_frames["good_a.mp4"]
    sampled = frame_indices(VideoInfo(len(frames), fps, 64, 64), FrameSampling(num_frames=4))
    unused = next(t for t in range(len(frames)) if t not in sampled)
    kept = sampled[1]

    def spoiled(t: int, at: int) -> list[str]:
        """The video with 4 characters of frame t's base64 made invalid from character `at` on."""
        video = list(frames)
        video[t] = video[t][:at] + "!!!!" + video[t][at + 4:]
        return video

    # a PNG's header is its first 32 base64 characters
    videos = [spoiled(unused, 40), spoiled(kept, 40), spoiled(unused, 8)]
    status, body = server.call("POST", "/compute", {"prompt": [GOOD["good_a.mp4"][1]] * 3, "video": videos,
                                                    "extra": {"fps": fps}})
    assert status == 200, body
    assert body["rewards"][0] == pytest.approx(expected["good_a.mp4"]["reward"], abs=TOL)
    assert [(f["index"], f["kind"], f["error"]) for f in body["failed"]] == [
        (1, "frames", f"frame {kept} is not valid base64"), (2, "frames", f"frame {unused} is not valid base64")]


def test_get_reward_speaks_openrlhf(server: Server, expected: dict) -> None:
    names = list(GOOD)
    query = [f"  {n}\n" for n in names] + ["text.mp4", "../secret.mp4"]
    prompts = [GOOD[n][1] or "" for n in names] + ["x", "y"]
    # the prompt is part of the model input: the reference used no prompt for good_b, so neither may we
    prompts[names.index("sub/good_b.mp4")] = None
    status, body = server.call("POST", "/get_reward", {"query": query, "prompts": prompts, "labels": None})
    assert status == 200, body
    for reward, name in zip(body["rewards"], names):
        assert reward == pytest.approx(expected[name]["reward"], abs=TOL)
    assert body["rewards"][-2:] == pytest.approx([FLOOR, FLOOR], abs=TOL)
    assert body["scores"] == body["rewards"]
    assert body["extra_logs"]["reward_failed"] == [0.0] * len(names) + [1.0, 1.0]
    assert body["extra_logs"]["score_norm/phys"][0] == pytest.approx(
        expected[names[0]]["scores"]["phys"]["score_norm"], abs=TOL)
    assert body["extra_logs"]["score_norm/phys"][-1] == -3.0


def test_limits_are_4xx_naming_the_flag(server: Server, good_frames: dict) -> None:
    frames, fps = good_frames["good_a.mp4"]
    status, body = server.call("POST", "/v1/score", raw=b'{"items": [{"video_path": "' + b"a" * (1 << 20) + b'"}]}')
    assert status == 413 and "--max_body_mb" in body["detail"]
    status, body = server.call("POST", "/v1/score", {"items": [{"video_path": "good_a.mp4"}] * 17})
    assert status == 413 and "--max_items 16" in body["detail"]
    status, body = server.call("POST", "/v1/score", {"items": [{"frames": frames * 5, "fps": fps}]})
    assert status == 413 and "--max_frames 64" in body["detail"]
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (200, 100)).save(buffer, format="PNG")
    big = base64.b64encode(buffer.getvalue()).decode()
    status, body = server.call("POST", "/compute", {"prompts": ["p"], "videos": [[big]]})
    assert status == 413 and "frame 0 is 200x100 = 20000 pixels; the limit is --max_pixels 10000" in body["detail"]
    buffer = io.BytesIO()
    Image.new("RGB", (100, 50)).save(buffer, format="JPEG", exif=b"Exif\x00\x00" + b"\x00" * 3000)
    jpeg = base64.b64encode(buffer.getvalue()).decode()  # the size sits behind an EXIF segment
    status, body = server.call("POST", "/compute", {"prompts": ["p"], "videos": [[jpeg, big]]})
    assert status == 413 and "frame 1 is 200x100" in body["detail"]
    status, body = server.call("POST", "/v1/score", {"items": [{"frames": [jpeg] * 4, "fps": 8},
                                                               {"frames": [jpeg, jpeg[:40]], "fps": 8}]})
    assert status == 200 and "reward" in body["results"][0], body
    assert "frame 1: a JPEG without a frame header" in body["results"][1]["error"]


def test_malformed_requests_name_the_field(server: Server) -> None:
    status, body = server.call("POST", "/v1/score", raw=b'{"items": [')
    assert status == 400 and "not valid JSON" in body["detail"]
    status, body = server.call("POST", "/v1/score", {"videos": []})
    assert status == 422 and "'items'" in body["detail"]
    status, body = server.call("POST", "/v1/score", {"items": [{"video_path": "good_a.mp4", "fps": "fast"}]})
    assert status == 422 and "items.0.fps" in body["detail"]
    status, body = server.call("POST", "/v1/score", {"items": [{"video_path": "good_a.mp4", "frames": ["x"]}]})
    assert status == 422 and "exactly one of video_path and frames" in body["detail"]
    status, body = server.call("POST", "/compute", {"prompts": ["a", "b"], "videos": [["x"]]})
    assert status == 422 and "1 videos but 2 prompts" in body["detail"]
    status, body = server.call("POST", "/compute", {"prompts": ["a"], "videos": [["x"]], "extra": {"fps": "8"}})
    assert status == 422 and "extra.fps" in body["detail"]
    status, body = server.call("POST", "/get_reward", {"query": "good_a.mp4"})
    assert status == 422 and "query" in body["detail"]


def test_api_key_is_required_except_for_health(server: Server) -> None:
    request = {"items": [{"video_path": "good_a.mp4"}]}
    assert server.call("POST", "/v1/score", request, key=None)[0] == 401
    status, body = server.call("POST", "/v1/score", request, key="wrong-key")
    assert status == 401 and "API key" in body["detail"]
    assert server.call("GET", "/metrics", key="x" + KEY)[0] == 401
    assert server.call("GET", "/health", key=None)[0] == 200


def test_concurrent_clients_get_their_own_results(server: Server, expected: dict) -> None:
    names = list(GOOD)
    errors: list[str] = []

    def client(c: int) -> None:
        for r in range(25):
            name = names[(c + r) % len(names)]
            marker = f"client{c}-req{r}"
            status, body = server.call("POST", "/v1/score", {"items": [
                {"id": marker, "video_path": name, "prompt": GOOD[name][1]},
                {"id": marker + "-bad", "video_path": "text.mp4"}]})
            if status != 200:
                errors.append(f"{marker}: {status} {body}")
                continue
            results = body["results"]
            if [x.get("id") for x in results] != [marker, marker + "-bad"] or "error" not in results[1] \
                    or abs(results[0]["reward"] - expected[name]["reward"]) > TOL:
                errors.append(f"{marker}: {results}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    status, text = server.call("GET", "/metrics")
    assert status == 200
    count = next(line for line in text.splitlines() if line.startswith("solireward_batch_size_count"))
    total = next(line for line in text.splitlines() if line.startswith("solireward_batch_size_sum"))
    assert float(total.split()[-1]) / float(count.split()[-1]) > 1.0  # requests shared batches


def test_a_client_that_disconnects_does_not_disturb_others(server: Server, expected: dict) -> None:
    payload = json.dumps({"items": [{"video_path": n, "prompt": GOOD[n][1]} for n in GOOD] * 3}).encode()
    sockets = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer "
                  + KEY.encode() + b"\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        sockets.append(s)
    time.sleep(0.05)
    for s in sockets:
        s.close()
    status, body = server.call("POST", "/v1/score", {"items": [{"video_path": n, "prompt": GOOD[n][1]} for n in GOOD]})
    assert status == 200
    for result, name in zip(body["results"], GOOD):
        assert_matches(result, expected[name])


def test_metrics_count_requests_items_errors_batches_and_latency(server: Server) -> None:
    status, text = server.call("GET", "/metrics")
    assert status == 200
    assert 'solireward_requests_total{endpoint="/v1/score",status="200"}' in text
    assert 'solireward_requests_total{endpoint="/v1/score",status="413"}' in text
    assert 'solireward_requests_total{endpoint="/v1/score",status="401"}' in text
    assert 'solireward_item_errors_total{endpoint="/v1/score",kind="path"}' in text
    assert 'solireward_item_errors_total{endpoint="/get_reward",kind="video"}' in text
    assert 'solireward_item_errors_total{endpoint="/compute",kind="frames"}' in text
    assert 'solireward_items_total{endpoint="/compute"}' in text
    assert "solireward_batch_size_bucket" in text and 'solireward_request_seconds_bucket{endpoint="/v1/score"' in text


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight(reward_dirs, video_root, expected, tmp_path) -> None:
    """Decoding in a worker process; SIGTERM while requests are queued: each still gets its full answer."""
    srv = Server(reward_dirs, video_root, tmp_path / "server.log", "--num_workers", 1, "--max_batch_size", 2,
                 "--max_wait_ms", 5)
    try:
        names = list(GOOD)
        answers: dict[int, tuple[int, Any]] = {}

        def client(c: int) -> None:
            answers[c] = srv.call("POST", "/v1/score", {"items": [
                {"id": f"{c}-{i}", "video_path": n, "prompt": GOOD[n][1]} for i, n in enumerate(names * 3)]})

        threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # signal once videos are queued
            text = srv.call("GET", "/metrics")[1]
            queued = next(line for line in text.splitlines() if line.startswith("solireward_queued_items "))
            if float(queued.split()[-1]) > 0:
                break
            time.sleep(0.01)
        srv.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        # uvicorn shuts down gracefully, then re-raises the signal: the status says 'terminated by SIGTERM'
        assert srv.proc.wait(60) in (0, -signal.SIGTERM), srv.log.read_text()
        assert "Application shutdown complete" in srv.log.read_text()
        for c in range(4):
            status, body = answers[c]
            assert status == 200, body
            assert [r["id"] for r in body["results"]] == [f"{c}-{i}" for i in range(len(names) * 3)]
            for result, name in zip(body["results"], names * 3):
                assert_matches(result, expected[name])
        with pytest.raises(OSError):
            srv.call("GET", "/health", key=None, timeout=5)
    finally:
        srv.stop()


def batch_totals(srv: Server) -> tuple[float, float]:
    """(videos scored, forward passes) so far, from the batch-size histogram of /metrics."""
    text = srv.call("GET", "/metrics")[1]
    values = dict(line.split()[:2] for line in text.splitlines()
                  if line.startswith(("solireward_batch_size_sum", "solireward_batch_size_count")))
    return float(values["solireward_batch_size_sum"]), float(values["solireward_batch_size_count"])


@pytest.mark.slow
def test_a_batch_waits_only_while_videos_are_being_decoded(reward_dirs, video_root, expected, tmp_path) -> None:
    """A long --max_wait_ms: a request's videos share one forward pass, scored once the last is decoded,
    not when the wait runs out (decoding in a worker process: the inputs cross by value and in shared memory)."""
    srv = Server(reward_dirs, video_root, tmp_path / "server.log", "--num_workers", 1, "--max_batch_size", 8,
                 "--max_wait_ms", 60_000)
    try:
        names = list(GOOD)
        before = batch_totals(srv)
        started = time.monotonic()
        status, body = srv.call("POST", "/v1/score", {"items": [{"video_path": n, "prompt": GOOD[n][1]}
                                                                for n in names]}, timeout=120)
        took = time.monotonic() - started
        assert status == 200, body
        for result, name in zip(body["results"], names):
            assert_matches(result, expected[name])
        after = batch_totals(srv)
        assert (after[0] - before[0], after[1] - before[1]) == (len(names), 1)
        assert took < 30, f"the batch waited for --max_wait_ms ({took:.1f} s) although nothing more was decoding"
        status, body = srv.call("POST", "/v1/score", {"items": [{"video_path": "text.mp4"}, {"video_path": names[0]}]},
                                timeout=120)  # a failed video is not waited for either
        assert status == 200 and "error" in body["results"][0] and "reward" in body["results"][1]
        assert time.monotonic() - started < 60
    finally:
        srv.stop()


def test_a_model_whose_scores_collapsed_in_training_is_not_served(reward_dirs, video_root, tmp_path) -> None:
    """A model that `solireward train` flagged as collapsed (near-constant scores) ranks nothing: the server says
    so naming the model and exits with status 1 instead of handing out its noise as rewards."""
    collapsed = tmp_path / "collapsed"
    shutil.copytree(reward_dirs["phys"], collapsed)
    config = json.loads((collapsed / "solireward_config.json").read_text())
    (collapsed / "solireward_config.json").write_text(json.dumps({**config, "collapsed": True, "score_std": 0.012}))
    log = tmp_path / "server.log"
    args = [sys.executable, "-m", "solireward.cli", "serve", "--port", str(free_port()), "--video_root",
            str(video_root), "--model", f"phys={collapsed}", "--devices", "cpu"]
    with log.open("w") as out:
        proc = subprocess.run(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=out, stderr=subprocess.STDOUT,
                              timeout=180)
    text = log.read_text()
    assert proc.returncode == 1, text
    assert "model 'phys': its scores collapsed in training (score std 0.012" in text and str(collapsed) in text
