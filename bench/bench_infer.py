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

Where the time goes: each repeat also runs one instrumented pass of infer's pieces (the dataset,
``loader`` and ``score_batches`` that ``score_videos`` composes), timed from the main process: starting
the workers, waiting for batches, the model, the drain (after the last batch arrived only the model
runs) and stopping the workers; and every figure's CPU seconds per video, of the main process and of
the workers (``getrusage``), which background load does not inflate. On CPU the ceiling is then
decode-only's CPU per video / infer's (on busy cores infer cannot run faster than its CPU work
allows), and the lost share of decode-only's rate is split into that CPU part, the drain and the
rest (background load, scheduling); a ``cause:`` line names the largest.

    python bench/bench_infer.py [--videos 96] [--unique 8] [--frames 96] [--size 256] [--num_frames 8]
                                [--batch_size 8] [--num_workers 2] [--torch_threads N] [--repeats 3]
                                [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from goals import INFER_MIN_OVERLAP


def synthetic_clip(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """(frames, size, size, 3) uint8: a bright square moving over a drifting textured background."""
    yy, xx = np.mgrid[0:size, 0:size]
    texture = rng.integers(0, 64, (size, 2 * size, 1)) + (xx[..., None] * 96 // size)[:, :1]
    colour = rng.integers(64, 256, 3)
    start, speed = rng.integers(0, size // 2, 2), rng.uniform(-3, 3, 2)
    clip = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        background = texture[:, t % size: t % size + size]
        y, x = (start + speed * t).astype(int) % (size - size // 4)
        box = (yy >= y) & (yy < y + size // 4) & (xx >= x) & (xx < x + size // 4)
        clip[t] = np.where(box[..., None], colour, background).astype(np.uint8)
    return clip


def make_videos(folder: Path, count: int, unique: int, frames: int, size: int, seed: int = 0) -> list[str]:
    """Write `unique` mp4 files of :func:`synthetic_clip`, then copy them to `count` files (decoding cost
    is per file; encoding many distinct clips is slow)."""
    from solireward.data.video import write_video

    rng = np.random.default_rng(seed)
    sources = []
    for v in range(min(unique, count)):
        path = folder / f"source_{v:03d}.mp4"
        write_video(path, synthetic_clip(rng, frames, size), fps=24.0, quality=23)
        sources.append(path)
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:03d}.mp4"
        shutil.copyfile(sources[i % len(sources)], path)
        paths.append(str(path))
    return paths


def rate(n_videos: int, seconds: float) -> float:
    return n_videos / seconds if seconds > 0 else float("inf")


def usage() -> tuple[float, float, float]:
    """Wall clock, CPU seconds of this process, and of its children that have exited (DataLoader workers)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


@dataclasses.dataclass
class Timeline:
    """One instrumented infer pass, as seen from the main process (seconds from its start)."""

    wall: float = 0.0
    cpu_main: float = 0.0
    cpu_workers: float = 0.0
    first_batch: float = 0.0      # until the first batch arrived (worker start-up + one batch decoded)
    waiting: float = 0.0          # blocked on the loader for the next batch
    model: float = 0.0            # inside the model's forward
    last_batch: float = 0.0       # when the last batch arrived; after it only the model runs (the tail)
    starting: float = 0.0         # creating the loader's iterator: forking the workers
    exhausted: float = 0.0        # when the main process asked for a batch past the last one
    shutdown: float = 0.0         # that last request: the workers are stopped and joined


class TimedModule:
    """A model wrapper for `score_batches` that adds the seconds of each forward to `timeline.model`."""

    def __init__(self, model: Any, timeline: Timeline) -> None:
        self.module, self.timeline = model, timeline

    @property
    def training(self) -> bool:
        return self.module.training

    def eval(self) -> "TimedModule":
        self.module.eval()
        return self

    def train(self, mode: bool = True) -> "TimedModule":
        self.module.train(mode)
        return self

    def __call__(self, **inputs: Any) -> Any:
        start = time.perf_counter()
        out = self.module(**inputs)
        self.timeline.model += time.perf_counter() - start
        return out


def timed_batches(batches: Iterable[Any], timeline: Timeline, start: float) -> Iterator[Any]:
    """`batches`, recording how long the consumer waited for each and when the first and last arrived."""
    before = time.perf_counter()
    iterator = iter(batches)
    timeline.starting = time.perf_counter() - before
    while True:
        before = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            timeline.exhausted, timeline.shutdown = before - start, time.perf_counter() - before
            return
        now = time.perf_counter()
        timeline.waiting += now - before
        timeline.first_batch = timeline.first_batch or now - start
        timeline.last_batch = now - start
        yield batch


def parse_cause(text: str) -> str | None:
    """The ``cause:`` line of this script's output without its label (for run_all.py's row), if printed."""
    match = re.search(r"^cause: (.+)$", text, re.M)
    return match[1] if match else None


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
    from solireward.scoring import ScoringDataset, VideoEncoder, loader, score_batches
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

        cpu: dict[str, list[tuple[float, float, float]]] = {}  # per figure and run: CPU main, CPU workers, wall

        def measured(name: str, run: Callable[[], None]) -> float:
            """Run once; record its CPU seconds; return its rate."""
            t0, main0, workers0 = usage()
            run()
            t1, main1, workers1 = usage()
            cpu.setdefault(name, []).append((main1 - main0, workers1 - workers0, t1 - t0))
            return rate(n, t1 - t0)

        def decode_only() -> None:
            for batch in pipeline(args.num_workers):
                assert not batch.failed

        batches = [{k: v.to(args.device) for k, v in batch.inputs.items()} for batch in pipeline(0)]

        def model_only() -> None:
            with torch.inference_mode():
                for batch in batches:
                    model(**batch).cpu()  # .cpu() waits for the GPU, as infer does

        def infer(workers: int) -> None:
            out = score_records(model, records, batch_size=args.batch_size, num_workers=workers)
            assert all("score" in r for r in out)

        def instrumented() -> Timeline:
            """infer's pieces (score_videos: dataset, loader, score_batches), timed from the main process."""
            timeline = Timeline()
            t0, main0, workers0 = usage()
            data = ScoringDataset([p for _, p, _ in items], [q for _, _, q in items],
                                  VideoEncoder(collator, sampling))
            timed = timed_batches(loader(data, collator, batch_size=args.batch_size, num_workers=args.num_workers),
                                  timeline, t0)
            scores, _ = score_batches(TimedModule(model, timeline), timed, torch.device(args.device))
            assert len(scores) == n
            t1, main1, workers1 = usage()
            timeline.wall, timeline.cpu_main, timeline.cpu_workers = t1 - t0, main1 - main0, workers1 - workers0
            return timeline

        decode_only(), model_only(), infer(args.num_workers)  # warm-up (caches, thread pools, page cache)
        decode_name, infer_name = f"decode-only ({args.num_workers} workers)", f"infer ({args.num_workers} workers)"
        runs: dict[str, list[float]] = {}
        timelines: list[Timeline] = []
        for _ in range(args.repeats):  # interleaved, so background load hits every figure alike
            for name, measure in ((decode_name, decode_only), ("model-only", model_only),
                                  (infer_name, lambda: infer(args.num_workers)),
                                  ("infer (0 workers, serial)", lambda: infer(0))):
                runs.setdefault(name, []).append(measured(name, measure))
            timelines.append(instrumented())
        figures = {name: max(values) for name, values in runs.items()}  # best of the repeats
    bottleneck = min(figures[decode_name], figures["model-only"])
    achieved = figures[infer_name] / bottleneck
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"device {args.device}, cores: {cores}, torch threads: {torch.get_num_threads()}, "
          f"batch size {args.batch_size}, "
          f"{args.num_frames} frames per video, {n} videos")
    for name, value in figures.items():
        print(f"  {name:<30} {value:8.2f} videos/s   (runs: {', '.join(f'{v:.2f}' for v in runs[name])})")
    print(f"infer / slower of (decode-only, model-only) = {achieved:.2f} (goal >= {INFER_MIN_OVERLAP:g}): "
          f"{'met' if achieved >= INFER_MIN_OVERLAP else 'NOT met'}")
    explain(figures[decode_name], figures["model-only"], figures[infer_name], cpu, decode_name, infer_name,
            min(timelines, key=lambda t: t.wall), n, cores, args)


def explain(decode: float, model: float, infer: float, cpu: dict[str, list[tuple[float, float, float]]],
            decode_name: str, infer_name: str, timeline: Timeline, n: int, cores: int, args: argparse.Namespace
            ) -> None:
    """Print where infer loses time against the slower of decode-only and model-only, and name the main cause."""
    def ms_per_video(name: str, part: int) -> float:
        """Mean CPU milliseconds per video of `name`'s runs: part 0 the main process, 1 the workers."""
        return 1000 * sum(c[part] for c in cpu[name]) / len(cpu[name]) / n

    print(f"where the time goes (instrumented infer pass, the fastest of {args.repeats}; seconds):")
    other = timeline.wall - timeline.starting - timeline.waiting - timeline.model - timeline.shutdown
    print(f"  main process: {timeline.wall:.3f} wall = starting the workers {timeline.starting:.3f} + waiting for "
          f"batches {timeline.waiting:.3f} (the first arrived at {timeline.first_batch:.3f}) + model "
          f"{timeline.model:.3f} + stopping the workers {timeline.shutdown:.3f} + other {other:.3f}")
    tail = timeline.exhausted - timeline.last_batch
    print(f"  after the last batch arrived (decoders done, the model alone on one core): {tail:.3f}")
    decode_cpu = ms_per_video(decode_name, 0) + ms_per_video(decode_name, 1)
    infer_cpu = ms_per_video(infer_name, 0) + ms_per_video(infer_name, 1)
    print(f"  CPU ms per video: decode-only {decode_cpu:.2f} (workers {ms_per_video(decode_name, 1):.2f}, main "
          f"{ms_per_video(decode_name, 0):.2f}), infer {infer_cpu:.2f} (workers {ms_per_video(infer_name, 1):.2f}, "
          f"main {ms_per_video(infer_name, 0):.2f}), model-only {ms_per_video('model-only', 0):.2f}")
    busy = {name: max((main + workers) / wall for main, workers, wall in cpu[name])
            for name in (decode_name, infer_name)}
    print(f"  cores kept busy (CPU seconds / wall, best run): decode-only {busy[decode_name]:.2f}, infer "
          f"{busy[infer_name]:.2f} of {cores} (fewer: background load took the rest, or the processes waited)")
    if args.device != "cpu" or model <= decode:
        print("cause: not analysed (the model, not decoding, is the slower side, or it runs on a GPU)")
        return
    # On CPU the decoders and the model share the cores: when decoding keeps them busy, infer can run at most
    # at decode-only's rate x decode-only's CPU per video / infer's (the docstring's ceiling, in CPU seconds).
    ceiling = decode_cpu / infer_cpu
    lost = 1.0 - infer / decode
    parts = {"CPU: the model's forward passes run on the cores the decoding workers need": 1.0 - ceiling,
             "drain: the last batches are scored after decoding has finished": tail / timeline.wall,
             "other: background load, scheduling, start-up": lost - (1.0 - ceiling) - tail / timeline.wall}
    print(f"  infer lost {lost:.3f} of decode-only's rate = " + " + ".join(
        f"{name.split(':')[0]} {value:.3f}" for name, value in parts.items()))
    if lost <= 0:
        print(f"cause: none: infer kept up with decode-only (CPU per video {infer_cpu:.1f} ms in infer vs "
              f"{decode_cpu:.1f} in decode-only)")
        return
    cause = max(parts, key=lambda k: parts[k])
    print(f"cause: {cause} ({parts[cause]:.3f} of the {lost:.3f} lost; CPU per video {infer_cpu:.1f} ms in infer vs "
          f"{decode_cpu:.1f} in decode-only, so on {cores} busy cores infer can reach at most {ceiling:.3f} x "
          f"decode-only)")

if __name__ == "__main__":
    main()
