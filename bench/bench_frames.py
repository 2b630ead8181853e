"""Benchmark scoring videos held in memory: ``RewardModel.score_frames`` vs writing an mp4 and scoring the file.

An RL trainer holds each generated video as frames. This measures, for the same ``--videos``
synthetic clips (``--frames`` uint8 frames at ``--size`` pixels square, moving shapes over a textured
background) and a reward model on a tiny random backbone, in one process, after one warm-up pass
each, best of ``--repeats`` interleaved runs:

* in-memory: ``model.score_frames(frames, prompts, fps=...)`` on the ``(T, H, W, 3)`` uint8 arrays;
* mp4: ``write_video`` of every clip (libx264 at ``write_video``'s default quality) then
  ``model.score(paths, prompts)``: encoding, decoding and the same model work.

Both score in the calling process (no DataLoader workers), with the checkpoint's frame sampling
(``--num_frames`` frames) and ``--batch_size`` videos per forward pass. Rates are videos per second;
no goal, the ratio is reported. It also prints how far the scores of the two paths differ (the mp4
is lossy, so its pixels and scores are not the generator's).

    python bench/bench_frames.py [--videos 32] [--frames 48] [--size 256] [--num_frames 8] [--batch_size 8]
                                 [--repeats 3] [--torch_threads N]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_infer import synthetic_clip, tiny_reward_model

FPS = 24.0


def parse_results(text: str) -> list[dict[str, Any]]:
    """This script's output as results-table rows (``run_all.Row(**row)``): the in-memory / mp4 rate ratio."""
    rates = dict(re.findall(r"^\s+(in-memory|mp4)\b[^\n]*?\s([\d.]+) videos/s", text, re.M))
    match = re.search(r"^in-memory / mp4 videos/s = ([\d.]+)x", text, re.M)
    if match is None or len(rates) != 2:
        raise ValueError("could not find the in-memory and mp4 rates ('in-memory / mp4 videos/s = ...')")
    setting = re.search(r"^(\d+) videos of (\d+) frames at (\d+)x\d+", text, re.M)
    size = f"; {setting[1]} videos of {setting[2]} frames at {setting[3]}²" if setting else ""
    return [{"benchmark": "In-memory frames (`score_frames`) vs write mp4 + `score`",
             "figure": f"{float(match[1]):.2f}x ({float(rates['in-memory']):.1f} vs {float(rates['mp4']):.1f} "
                       f"videos/s{size})",
             "goal": "none (reported)", "met": None}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=32, help="videos scored per run (default: 32)")
    parser.add_argument("--frames", type=int, default=48, help="frames per generated video (default: 48)")
    parser.add_argument("--size", type=int, default=256, help="width and height of the videos (default: 256)")
    parser.add_argument("--num_frames", type=int, default=8, help="frames the model reads per video (default: 8)")
    parser.add_argument("--batch_size", type=int, default=8, help="videos per forward pass (default: 8)")
    parser.add_argument("--model_type", default="Qwen2-VL", help="tiny backbone family (default: Qwen2-VL)")
    parser.add_argument("--torch_threads", type=int, default=1, help="intra-op threads of the model (default: 1)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements of each figure, interleaved; the best is reported (default: 3)")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from solireward.data.video_write import write_video

    torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(0)
    clips = [synthetic_clip(rng, args.frames, args.size) for _ in range(args.videos)]
    prompts = [f"prompt number {i}" for i in range(args.videos)]
    with tempfile.TemporaryDirectory(prefix="bench_frames_") as tmp:
        tmp_path = Path(tmp)
        model = tiny_reward_model(tmp_path, args.num_frames, args.model_type)
        scores: dict[str, list[float]] = {}
        encode_s: list[float] = []  # per mp4 run: seconds spent writing the files

        def in_memory() -> float:
            start = time.perf_counter()
            scores["in-memory"] = model.score_frames(clips, prompts, fps=FPS, batch_size=args.batch_size)
            return args.videos / (time.perf_counter() - start)

        def via_mp4() -> float:
            folder = Path(tempfile.mkdtemp(dir=tmp_path))
            start = time.perf_counter()
            paths = [folder / f"clip_{i:03d}.mp4" for i in range(args.videos)]
            for path, clip in zip(paths, clips):
                write_video(path, clip, fps=FPS)
            encode_s.append(time.perf_counter() - start)
            scores["mp4"] = model.score(paths, prompts, batch_size=args.batch_size)
            return args.videos / (time.perf_counter() - start)

        in_memory(), via_mp4()  # warm-up
        encode_s.clear()
        runs: dict[str, list[float]] = {}
        for _ in range(args.repeats):  # interleaved, so background load hits both alike
            runs.setdefault("in-memory", []).append(in_memory())
            runs.setdefault("mp4", []).append(via_mp4())
    best = {name: max(values) for name, values in runs.items()}
    diff = np.abs(np.asarray(scores["in-memory"]) - np.asarray(scores["mp4"]))
    print(f"{args.videos} videos of {args.frames} frames at {args.size}x{args.size}, {args.num_frames} frames read per "
          f"video, batch size {args.batch_size}, torch threads {torch.get_num_threads()}, cores {os.cpu_count()}")
    labels = {"in-memory": "in-memory (score_frames, uint8)", "mp4": "mp4 (write_video + score)"}
    for name, value in best.items():
        print(f"  {labels[name]:<34} {value:8.2f} videos/s   (runs: {', '.join(f'{v:.2f}' for v in runs[name])})")
    best_mp4 = max(range(len(runs["mp4"])), key=lambda i: runs["mp4"][i])
    per_video = 1000 / best["mp4"]
    encoding = 1000 * encode_s[best_mp4] / args.videos
    print(f"  mp4 per video (best run): {per_video:.1f} ms = encoding {encoding:.1f} + reading and scoring the file "
          f"{per_video - encoding:.1f}; in memory: {1000 / best['in-memory']:.1f} ms")
    print(f"in-memory / mp4 videos/s = {best['in-memory'] / best['mp4']:.2f}x (no goal: reported)")
    print(f"scores, in-memory vs mp4 (lossy re-encoding): max |difference| {diff.max():.2e}, "
          f"mean {diff.mean():.2e}, score spread {np.std(scores['mp4']):.2e}")


if __name__ == "__main__":
    main()
