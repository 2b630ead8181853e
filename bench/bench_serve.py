"""Load-test `solireward serve` on loopback against in-process batched scoring of the same videos.

Generates ``--videos`` mp4 files and a reward model on a tiny random backbone, then measures, one
after the other so that they never share the cores:

* in-process: :func:`solireward.scoring.score_videos` over ``--requests`` x ``--items`` videos (batches
  of ``--batch_size``, decoding in ``--num_workers`` DataLoader workers), what `solireward infer` runs;
* the server (a subprocess on 127.0.0.1: ``--max_batch_size`` = ``--batch_size``, ``--num_workers``
  decoding processes), loaded by 1, 4 and 16 concurrent clients, each sending requests of
  ``--items`` videos (paths under ``--video_root``) one after another, until ``--requests`` requests
  in all or ``--seconds`` per level: requests/s, items/s, latency p50/p95/p99 and the mean batch fill
  (videos per forward pass / max_batch_size, from /metrics).

Goal: at saturation (16 clients) the server's items/s >= ``SERVE_MIN_RATIO`` (bench/goals.py) x the
in-process items/s: HTTP, JSON and the queue cost little next to decoding and the model. The two
sides of the goal run interleaved ``--repeats`` times (best of each), as the machine's load drifts.

Real size (``--ff_requests`` > 0): Flow-Factory-shaped ``/compute`` requests (``--ff_items`` videos of 81
PNG frames of 832x480 each, base64, as its client sends them; the client's encoding is done beforehand
and not timed) from ``--ff_clients`` clients, against in-process ``RewardModel.score_frames`` on the same
uint8 frames. Goal: ``SERVE_REAL_SIZE_MIN_RATIO`` x: the JSON, base64 and PNG decoding of the 8 sampled
frames cost little next to the model's processor and forward pass. Beside them, interleaved: in-process
from the same PNG frames (the sampled frames decoded from their PNG bytes, then ``score_frames``), which
splits the gap into transport (HTTP, JSON, base64, queueing) and PNG decoding; then each stage's ms per
video in this process, one core: the server's parse (and pydantic's whole-body parse it replaced), the
frame headers, base64 and PNG decoding of the sampled frames, and ``score_frames``.

    python bench/bench_serve.py [--videos 48] [--unique 8] [--frames 48] [--size 128] [--num_frames 8]
                                [--batch_size 8] [--num_workers 1] [--items 4] [--requests 64]
                                [--seconds 60] [--max_wait_ms MS] [--repeats 2] [--device cpu]
                                [--ff_requests 8] [--ff_items 2] [--ff_clients 2] [--ff_unique 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench_infer import make_videos, tiny_reward_model
from goals import SERVE_MIN_RATIO, SERVE_REAL_SIZE_MIN_RATIO

LEVELS = (1, 4, 16)
FF_FRAMES, FF_HEIGHT, FF_WIDTH = 81, 480, 832  # a Flow-Factory video (e.g. Wan 2.1 at 480p)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, path: str, body: dict | None = None, timeout: float = 300) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if body is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def batch_totals(port: int) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram."""
    text = post(port, "/metrics")[1]
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith(("solireward_batch_size_sum", "solireward_batch_size_count"))}
    return values["solireward_batch_size_sum"], values["solireward_batch_size_count"]


def load(port: int, names: list[str], clients: int, items: int, requests: int, seconds: float) -> dict:
    """Drive the server with `clients` threads; latency per request and rates over the whole level."""
    latencies: list[float] = []
    failures: list[str] = []
    issued = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(c: int) -> None:
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= requests:
                    return
                r = issued[0]
                issued[0] += 1
            chosen = [names[(r * items + k) % len(names)] for k in range(items)]
            start = time.perf_counter()
            status, text = post(port, "/v1/score", {"items": [{"video_path": n, "id": f"{r}-{k}"}
                                                              for k, n in enumerate(chosen)]})
            took = time.perf_counter() - start
            body = json.loads(text) if status == 200 else {}
            ok = status == 200 and all("reward" in x for x in body["results"])
            with lock:
                (latencies.append(took) if ok else failures.append(f"{status}: {text[:200]}"))

    before = batch_totals(port)
    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = batch_totals(port)
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    n = len(latencies)
    batches = after[1] - before[1]
    return {"clients": clients, "requests": n, "wall": wall, "req_s": n / wall, "items_s": n * items / wall,
            "p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95)),
            "p99": float(np.percentile(latencies, 99)),
            "videos_per_batch": (after[0] - before[0]) / batches if batches else float("nan")}


def ff_clip(rng: np.random.Generator) -> np.ndarray:
    """(81, 480, 832, 3) uint8: a box moving over a drifting grainy gradient, whose PNG frames are ~0.7 MiB
    (~57 MiB a video, the size of a generated video's PNG frames)."""
    gradient = np.linspace(0, 150, 2 * FF_WIDTH).astype(np.uint8)[None, :, None]
    texture = rng.integers(0, 16, (FF_HEIGHT, 2 * FF_WIDTH, 3), dtype=np.uint8) + gradient
    clip = np.empty((FF_FRAMES, FF_HEIGHT, FF_WIDTH, 3), np.uint8)
    for t in range(FF_FRAMES):
        clip[t] = texture[:, 4 * t: 4 * t + FF_WIDTH]
        clip[t, 100:220, 50 + 6 * t: 170 + 6 * t] = (230, 60, 40)
    return clip


def png_b64(frame: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def best_ms(run: Callable[[], object], per: int, repeats: int) -> float:
    """The fastest of `repeats` runs of `run`, in ms per one of its `per` videos."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1000 / per


def stage_costs(model: Any, bodies: list[bytes], encoded: list[list[str]], kept: list[int], videos_per_body: int,
                repeats: int) -> dict[str, float]:
    """ms per video of each stage of the server's /compute path, run here one after the other on one core."""
    import base64

    from solireward.data.video import FrameSampling
    from solireward.serving.decode import decode_image
    from solireward.serving.body import parse_body
    from solireward.serving.frames import frames_item
    from solireward.serving.protocols import ComputeRequest

    sampling = FrameSampling.from_dict(dict(model.config.sampling))
    parsed = [parse_body(body, ComputeRequest) for body in bodies]
    frames = [video for request in parsed for video in request.videos]
    kept_b64 = [[video[t] for t in kept] for video in encoded]
    kept_png = [[base64.b64decode(text) for text in video] for video in kept_b64]
    n_bodies, n_videos = len(bodies), len(encoded)
    return {
        "parse": best_ms(lambda: [parse_body(b, ComputeRequest) for b in bodies], n_bodies * videos_per_body, repeats),
        "parse_pydantic": best_ms(lambda: [ComputeRequest.model_validate_json(b) for b in bodies],
                                  n_bodies * videos_per_body, repeats),
        "headers": best_ms(lambda: [frames_item(f, None, None, [sampling], 1 << 20, 1 << 40, 1 << 40) for f in frames],
                           len(frames), repeats),
        "base64": best_ms(lambda: [[base64.b64decode(t, validate=True) for t in v] for v in kept_b64], n_videos,
                          repeats),
        "png": best_ms(lambda: [[decode_image(d, t) for d, t in zip(v, kept)] for v in kept_png], n_videos, repeats),
    }


def real_size(port: int, model: Any, args: argparse.Namespace) -> dict:
    """Flow-Factory-shaped /compute requests vs in-process score_frames on the same frames and on their PNG
    bytes, interleaved; then the stages' costs per video."""
    import base64

    from solireward.data.video import FrameSampling, VideoInfo, frame_indices
    from solireward.serving.decode import decode_image

    rng = np.random.default_rng(1)
    clips = [ff_clip(rng) for _ in range(args.ff_unique)]
    encoded = [[png_b64(frame) for frame in clip] for clip in clips]
    pngs = [[base64.b64decode(text) for text in video] for video in encoded]
    sampling = FrameSampling.from_dict(dict(model.config.sampling))
    kept = frame_indices(VideoInfo(FF_FRAMES, 0.0, FF_HEIGHT, FF_WIDTH), sampling)
    video_mib = sum(len(f) for f in encoded[0]) / 2 ** 20  # base64; the PNG bytes are 3/4 of it
    bodies = [json.dumps({"prompt": ["a red box moves right"] * args.ff_items, "image": None,
                          "video": [encoded[(r + k) % len(encoded)] for k in range(args.ff_items)],
                          "condition_images": None, "condition_videos": None}).encode()
              for r in range(len(encoded))]
    n_videos = args.ff_requests * args.ff_items
    videos = [clips[(r + k) % len(clips)] for r in range(args.ff_requests) for k in range(args.ff_items)]

    def server_rate() -> float:
        issued, lock, failures = [0], threading.Lock(), []

        def client() -> None:
            while True:
                with lock:
                    if issued[0] >= args.ff_requests:
                        return
                    r = issued[0]
                    issued[0] += 1
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                try:
                    conn.request("POST", "/compute", bodies[r % len(bodies)], {"Content-Type": "application/json"})
                    response = conn.getresponse()
                    body = json.loads(response.read())
                finally:
                    conn.close()
                if response.status != 200 or "rewards" not in body or body.get("failed"):
                    failures.append(f"{response.status}: {str(body)[:200]}")

        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.ff_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise SystemExit(f"{len(failures)} real-size requests failed, e.g. {failures[0]}")
        return n_videos / (time.perf_counter() - start)

    prompts = ["a red box moves right"] * n_videos

    def in_process_rate() -> float:
        start = time.perf_counter()
        scores = model.score_frames(videos, prompts, batch_size=args.batch_size)
        assert len(scores) == n_videos
        return n_videos / (time.perf_counter() - start)

    def in_process_png_rate() -> float:
        """The sampled frames decoded from their PNG bytes (as the server's workers do), then score_frames on
        them: the same work as on the whole video (score_frames samples 8 of the 8 again: the same cost; its
        segment rule repeats one of them, so the scores differ slightly)."""
        start = time.perf_counter()
        sampled = [np.stack([decode_image(pngs[(r + k) % len(pngs)][t], t) for t in kept])
                   for r in range(args.ff_requests) for k in range(args.ff_items)]
        scores = model.score_frames(sampled, prompts, batch_size=args.batch_size)
        assert len(scores) == n_videos
        return n_videos / (time.perf_counter() - start)

    server_rates, inproc_rates, png_rates = [], [], []
    for _ in range(args.repeats):
        inproc_rates.append(in_process_rate())
        png_rates.append(in_process_png_rate())
        server_rates.append(server_rate())
    stages = stage_costs(model, bodies, encoded, kept, args.ff_items, args.repeats)
    return {"video_mib": video_mib, "body_mib": len(bodies[0]) / 2 ** 20, "videos": n_videos, "kept": len(kept),
            "server": max(server_rates), "inproc": max(inproc_rates), "png": max(png_rates), "stages": stages,
            "all": (server_rates, inproc_rates, png_rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=48, help="generated videos (default: 48)")
    parser.add_argument("--unique", type=int, default=8, help="distinct videos among them (default: 8)")
    parser.add_argument("--frames", type=int, default=48, help="frames per generated video (default: 48)")
    parser.add_argument("--size", type=int, default=128, help="width and height of the videos (default: 128)")
    parser.add_argument("--num_frames", type=int, default=8, help="frames the model reads per video (default: 8)")
    parser.add_argument("--batch_size", type=int, default=8, help="videos per forward pass, both ways (default: 8)")
    parser.add_argument("--num_workers", type=int, default=1, help="decoding processes, both ways (default: 1)")
    parser.add_argument("--items", type=int, default=4, help="videos per request (default: 4)")
    parser.add_argument("--requests", type=int, default=64, help="requests per client level, at most (default: 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per client level, at most (default: 60)")
    parser.add_argument("--max_wait_ms", type=float, default=None,
                        help="the server's --max_wait_ms (default: the server's own)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="interleaved runs of in-process and of the server at 16 clients (default: 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--ff_requests", type=int, default=8,
                        help="real-size Flow-Factory /compute requests per repeat; 0 skips them (default: 8)")
    parser.add_argument("--ff_items", type=int, default=2, help="videos per real-size request (default: 2)")
    parser.add_argument("--ff_clients", type=int, default=2, help="concurrent real-size clients (default: 2)")
    parser.add_argument("--ff_unique", type=int, default=2, help="distinct real-size videos (default: 2)")
    args = parser.parse_args()

    import torch

    from solireward.inference import cpu_threads_for_model
    from solireward.models import RewardModel
    from solireward.scoring import score_videos

    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        folder = Path(tmp)
        (folder / "videos").mkdir()
        paths = make_videos(folder / "videos", args.videos, args.unique, args.frames, args.size)
        names = [Path(p).name for p in paths]
        tiny_reward_model(folder, args.num_frames).save_pretrained(folder / "model")
        device = torch.device(args.device)
        print(f"{args.videos} videos ({args.unique} distinct), {args.frames} frames of {args.size}x{args.size}; "
              f"model reads {args.num_frames}; batch {args.batch_size}; {args.num_workers} decoding workers; "
              f"{args.items} videos per request; device {device}")

        # in-process: what `infer` runs, on as many videos as one saturated server run scores
        if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(cpu_threads_for_model(args.num_workers))
        model = RewardModel.from_pretrained(folder / "model", device=device)
        score_videos(model, paths[: args.batch_size], batch_size=args.batch_size, num_workers=0)  # warm-up
        n_inproc = args.requests * args.items
        sources = [paths[i % len(paths)] for i in range(n_inproc)]

        def in_process() -> float:
            start = time.perf_counter()
            scores, errors = score_videos(model, sources, batch_size=args.batch_size, num_workers=args.num_workers)
            assert not errors and len(scores) == n_inproc
            return n_inproc / (time.perf_counter() - start)

        port = free_port()
        command = [sys.executable, "-m", "solireward.cli", "serve", "--model", f"bench={folder / 'model'}",
                   "--port", str(port), "--video_root", str(folder / "videos"), "--max_batch_size",
                   str(args.batch_size), "--num_workers", str(args.num_workers),
                   *(["--max_wait_ms", str(args.max_wait_ms)] if args.max_wait_ms is not None else []),
                   "--devices", "cpu" if device.type == "cpu" else str(device.index or 0)]
        log = (folder / "server.log").open("w")
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start:\n{(folder / 'server.log').read_text()}")
                try:
                    if post(port, "/health", timeout=5)[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            load(port, names, 2, args.items, 4, args.seconds)  # warm-up
            results = {c: load(port, names, c, args.items, args.requests, args.seconds) for c in LEVELS[:-1]}
            # the goal's two sides interleaved (the idle server holds no core), best of --repeats each
            inproc_rates, saturated = [], []
            for _ in range(args.repeats):
                inproc_rates.append(in_process())
                saturated.append(load(port, names, LEVELS[-1], args.items, args.requests, args.seconds))
            results[LEVELS[-1]] = max(saturated, key=lambda r: r["items_s"])
            real = real_size(port, model, args) if args.ff_requests > 0 else None
        finally:
            server.terminate()
            server.wait(60)
            log.close()
    inproc = max(inproc_rates)
    print(f"in-process score_videos ({n_inproc} videos): " + ", ".join(f"{r:.1f}" for r in inproc_rates) + " items/s; "
          f"server at {LEVELS[-1]} clients: " + ", ".join(f"{r['items_s']:.1f}" for r in saturated) + " items/s "
          "(interleaved; best of each below)")
    results = [results[c] for c in LEVELS]

    print("\n| clients | requests | requests/s | items/s | p50 ms | p95 ms | p99 ms | mean batch fill |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['clients']} | {r['requests']} | {r['req_s']:.2f} | {r['items_s']:.1f} | {r['p50'] * 1000:.0f} | "
              f"{r['p95'] * 1000:.0f} | {r['p99'] * 1000:.0f} | {r['videos_per_batch'] / args.batch_size:.2f} |")
    print(f"| in-process | {n_inproc} videos | | {inproc:.1f} | | | | |")
    ratio = results[-1]["items_s"] / inproc
    verdict = "met" if ratio >= SERVE_MIN_RATIO else "NOT met"
    print(f"\nserver items/s at {LEVELS[-1]} clients / in-process items/s = {ratio:.2f} "
          f"(goal >= {SERVE_MIN_RATIO:g}: {verdict})")
    if real is not None:
        server_rates, inproc_rates, png_rates = real["all"]
        print(f"\nreal size: {real['videos']} videos per run, {FF_FRAMES} PNG frames of {FF_WIDTH}x{FF_HEIGHT} "
              f"({real['video_mib'] * 3 / 4:.1f} MiB of PNG, {real['video_mib']:.1f} MiB as base64 per video, "
              f"{real['body_mib']:.0f} MiB per request of "
              f"{args.ff_items}), {args.ff_clients} clients; server /compute: "
              + ", ".join(f"{r:.2f}" for r in server_rates) + " items/s; in-process score_frames: "
              + ", ".join(f"{r:.2f}" for r in inproc_rates) + " items/s; in-process from the PNG frames: "
              + ", ".join(f"{r:.2f}" for r in png_rates) + " items/s (interleaved; best of each)")
        st = real["stages"]
        model_ms = 1000 / real["inproc"]
        outside = st["parse"] + st["headers"] + st["base64"] + st["png"]
        print(f"real-size ms per video (this process, one core, best of {args.repeats}): parse {st['parse']:.1f} "
              f"(pydantic on the whole body: {st['parse_pydantic']:.1f}), frame headers {st['headers']:.1f}, "
              f"base64 of the {real['kept']} sampled frames {st['base64']:.1f}, their PNG decoding {st['png']:.1f}, "
              f"score_frames {model_ms:.1f}; these stages outside score_frames: {outside:.1f}; the server: "
              f"{1000 / real['server']:.1f} ms per video")
        print(f"real-size server items/s / in-process from the PNG frames items/s = {real['server'] / real['png']:.2f} "
              f"({real['server']:.2f} vs {real['png']:.2f}; what transport costs: HTTP, JSON, base64, queueing); "
              f"in-process from PNG / in-process score_frames = {real['png'] / real['inproc']:.2f} "
              f"(what decoding the {real['kept']} PNG frames costs)")
        real_ratio = real["server"] / real["inproc"]
        verdict = "met" if real_ratio >= SERVE_REAL_SIZE_MIN_RATIO else "NOT met"
        print(f"real-size server items/s / in-process score_frames items/s = {real_ratio:.2f} "
              f"({real['server']:.2f} vs {real['inproc']:.2f}; goal >= {SERVE_REAL_SIZE_MIN_RATIO:g}: {verdict})")


if __name__ == "__main__":
    main()
