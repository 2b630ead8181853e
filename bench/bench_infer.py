"""Benchmark `solireward infer`: does decoding in DataLoader workers hide behind the model?

Generates ``--videos`` mp4 files (``--size`` pixels square, ``--frames`` frames, moving shapes plus
noise so the codec has real work) and a reward model on a tiny random backbone, then measures on
the same files, in one process, after one warm-up pass each, best of ``--repeats`` interleaved runs:

* decode-only: the input pipeline alone (``solireward.scoring.loader``: decode + collate in ``--num_workers``
  DataLoader workers), no model;
* model-only: the model's forward passes on batches collated beforehand and held in memory;
* infer: ``score_records`` (what ``solireward infer`` runs after loading), workers and model together;
* infer with ``num_workers=0``: decoding and the model one after the other, for reference.

Goal: infer >= ``INFER_MIN_OVERLAP`` (bench/goals.py) x the slower of decode-only and model-only (the
pipeline costs little more than its bottleneck). Rates are videos per second. On CPU the decoding
workers and the model share the cores, so overlap cannot beat the sum of their CPU work: with W
workers on W cores decoding at rate d and a model needing 1/m core-seconds per video, the ceiling is
about 1 / (1/d + 1/(W m)).
With the model on a GPU (``--device cuda``) the ceiling is the slower of the two rates.

    python bench/bench_infer.py [--videos 96] [--unique 8] [--frames 96] [--size 256] [--num_frames 8]
                                [--batch_size 8] [--num_workers 2] [--torch_threads N] [--repeats 3]
                                [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import Any
from pathlib import Path

import numpy as np

from goals import INFER_MIN_OVERLAP


def make_videos(folder: Path, count: int, unique: int, frames: int, size: int, seed: int = 0) -> list[str]:
    """Write `unique` mp4 files of a bright square moving over a drifting textured background, then
    copy them to `count` files (decoding cost is per file; encoding many distinct clips is slow)."""
    from solireward.data.video import write_video

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    sources = []
    for v in range(min(unique, count)):
        texture = rng.integers(0, 64, (size, 2 * size, 1)) + (xx[..., None] * 96 // size)[:, :1]
        colour = rng.integers(64, 256, 3)
        start, speed = rng.integers(0, size // 2, 2), rng.uniform(-3, 3, 2)
        clip = np.empty((frames, size, size, 3), np.uint8)
        for t in range(frames):
            background = texture[:, t % size: t % size + size]
            y, x = (start + speed * t).astype(int) % (size - size // 4)
            box = (yy >= y) & (yy < y + size // 4) & (xx >= x) & (xx < x + size // 4)
            clip[t] = np.where(box[..., None], colour, background).astype(np.uint8)
        path = folder / f"source_{v:03d}.mp4"
        write_video(path, clip, fps=24.0, quality=23)
        sources.append(path)
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:03d}.mp4"
        shutil.copyfile(sources[i % len(sources)], path)
        paths.append(str(path))
    return paths


def rate(n_videos: int, seconds: float) -> float:
    return n_videos / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=96, help="number of generated videos (default: 96)")
    parser.add_argument("--unique", type=int, default=8, help="distinct videos among them (default: 8)")
    parser.add_argument("--frames", type=int, default=96, help="frames per generated video (default: 96)")
    parser.add_argument("--size", type=int, default=256, help="width and height of the videos (default: 256)")
    parser.add_argument("--num_frames", type=int, default=8, help="frames the model reads per video (default: 8)")
    parser.add_argument("--batch_size", type=int, default=8, help="videos per forward pass (default: 8)")
    parser.add_argument("--num_workers", type=int, default=2, help="decoding workers (default: 2)")
    parser.add_argument("--model_type", default="Qwen2-VL", help="tiny backbone family (default: Qwen2-VL)")
    parser.add_argument("--torch_threads", type=int, default=None,
                        help="intra-op threads of the model (default: what infer picks on CPU: one per core "
                             "left after one core per decoding worker)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements of each figure, interleaved; the best is reported (default: 3)")
    parser.add_argument("--device", default="cpu", help="device of the model: cpu or cuda (default: cpu)")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from solireward.cli import main as cli_main
    from solireward.data.video import FrameSampling
    from solireward.inference import cpu_threads_for_model, score_records
    from solireward.scoring import ScoringDataset, VideoEncoder, loader
    from solireward.models import RewardModel, RewardModelConfig

    torch.set_num_threads(args.torch_threads or cpu_threads_for_model(args.num_workers))

    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        paths = make_videos(tmp_path, args.videos, args.unique, args.frames, args.size)
        print(f"generated {args.videos} videos ({args.unique} distinct) of {args.frames} frames at "
              f"{args.size}x{args.size} in {time.perf_counter() - t0:.1f} s")
        assert cli_main(["--log_level", "WARNING", "tiny-model", "--model_type", args.model_type,
                         "--output_dir", str(tmp_path / "backbone"), "--seed", "0"]) == 0
        torch.manual_seed(0)
        sampling = FrameSampling(num_frames=args.num_frames)
        model = RewardModel.from_backbone(tmp_path / "backbone",
                                          RewardModelConfig(sampling=sampling.to_dict())).eval().to(args.device)
        collator = model.collator()
        items = [(i, p, f"prompt number {i}") for i, p in enumerate(paths)]
        records = [{"video_path": p, "prompt": q} for _, p, q in items]
        n = len(items)

        dataset = ScoringDataset([p for _, p, _ in items], [q for _, _, q in items], VideoEncoder(collator, sampling))

        def pipeline(workers: int) -> Any:
            """The scoring path's input side alone: decode + processor + pad in `workers` processes."""
            return loader(dataset, collator, batch_size=args.batch_size, num_workers=workers)

        def decode_only() -> float:
            start = time.perf_counter()
            for batch in pipeline(args.num_workers):
                assert not batch.failed
            return rate(n, time.perf_counter() - start)

        batches = [{k: v.to(args.device) for k, v in batch.inputs.items()} for batch in pipeline(0)]

        def model_only() -> float:
            start = time.perf_counter()
            with torch.inference_mode():
                for batch in batches:
                    model(**batch).cpu()  # .cpu() waits for the GPU, as infer does
            return rate(n, time.perf_counter() - start)

        def infer(workers: int) -> float:
            start = time.perf_counter()
            out = score_records(model, records, batch_size=args.batch_size, num_workers=workers)
            assert all("score" in r for r in out)
            return rate(n, time.perf_counter() - start)

        decode_only(), model_only(), infer(args.num_workers)  # warm-up (caches, thread pools, page cache)
        runs: dict[str, list[float]] = {}
        for _ in range(args.repeats):  # interleaved, so background load hits every figure alike
            for name, measure in ((f"decode-only ({args.num_workers} workers)", decode_only),
                                  ("model-only", model_only),
                                  (f"infer ({args.num_workers} workers)", lambda: infer(args.num_workers)),
                                  ("infer (0 workers, serial)", lambda: infer(0))):
                runs.setdefault(name, []).append(measure())
        figures = {name: max(values) for name, values in runs.items()}  # best of the repeats
    bottleneck = min(figures[f"decode-only ({args.num_workers} workers)"], figures["model-only"])
    achieved = figures[f"infer ({args.num_workers} workers)"] / bottleneck
    print(f"device {args.device}, cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"batch size {args.batch_size}, "
          f"{args.num_frames} frames per video, {n} videos")
    for name, value in figures.items():
        print(f"  {name:<30} {value:8.2f} videos/s   (runs: {', '.join(f'{v:.2f}' for v in runs[name])})")
    print(f"infer / slower of (decode-only, model-only) = {achieved:.2f} (goal >= {INFER_MIN_OVERLAP:g}): "
          f"{'met' if achieved >= INFER_MIN_OVERLAP else 'NOT met'}")


if __name__ == "__main__":
    main()
