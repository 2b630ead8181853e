"""Benchmark `solireward infer`: does decoding in DataLoader workers hide behind the model?

Generates ``--videos`` mp4 files (``--size`` pixels square, ``--frames`` frames, moving shapes plus
noise so the codec has real work) and a reward model on a tiny random backbone, then measures on
the same files, in one process, after one warm-up pass each, best of ``--repeats`` interleaved runs:

* decode-only: the input pipeline alone (``solireward.scoring.loader``: decode + collate in DataLoader
  workers), no model;
* model-only: the model's forward passes on batches collated beforehand and held in memory;
* infer: ``score_records`` (what ``solireward infer`` runs after loading), workers and model together;
* infer with ``num_workers=0``: decoding and the model one after the other, for reference.

Two worker counts, each with its own decode-only and infer:

* ``--num_workers`` (default: the cores less one) leaves the model a core of its own, as a GPU host
  leaves the main process free to drive the GPU. The stages then have separate resources, so this
  measures what the goal asks: infer >= ``INFER_MIN_OVERLAP`` (bench/goals.py) x the slower of
  decode-only and model-only, i.e. the pipeline costs little more than its bottleneck. With the model
  on a GPU (``--device cuda``) every core can decode; pass ``--num_workers`` accordingly.
* ``--shared_workers`` (default: every core; 0 skips it) is what infer does on a CPU-only machine:
  the decoders and the model share the cores, so infer cannot beat the sum of their CPU work. Its
  ceiling, ``cores / (infer's CPU seconds per video x decode-only's rate)``, is printed beside it: the
  most videos/s that ``cores`` can give at infer's CPU per video (its least of the repeats), as a share
  of decode-only's rate.

Rates are videos per second.

Where the time goes: each repeat also runs one instrumented pass of infer's pieces (the dataset,
``loader`` and ``score_batches`` that ``score_videos`` composes) with ``--num_workers``, timed from the
main process: starting the workers, waiting for batches, the model, the drain (after the last batch
arrived only the model runs) and stopping the workers; and every figure's CPU seconds per video, of
the main process and of the workers (``getrusage``), which background load does not inflate. The lost
share of decode-only's rate is split into the CPU part (the ceiling above), the drain and the rest
(background load, scheduling); a ``cause:`` line names the largest.

    python bench/bench_infer.py [--videos 96] [--unique 8] [--frames 96] [--size 256] [--num_frames 8]
                                [--batch_size 8] [--num_workers N] [--shared_workers N] [--torch_threads N]
                                [--repeats 3] [--device cpu]
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
    from solireward.data.video_write import write_video

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


def tiny_reward_model(folder: Path, num_frames: int, model_type: str = "Qwen2-VL") -> Any:
    """A reward model (eval mode) on a tiny random `model_type` backbone written under `folder`, reading
    `num_frames` frames per video; seeded, so every bench builds the same one."""
    import torch

    from solireward.cli import main as cli_main
    from solireward.data.video import FrameSampling
    from solireward.models import RewardModel, RewardModelConfig

    assert cli_main(["--log_level", "WARNING", "tiny-model", "--model_type", model_type,
                     "--output_dir", str(folder / "backbone"), "--seed", "0"]) == 0
    torch.manual_seed(0)
    config = RewardModelConfig(sampling=FrameSampling(num_frames=num_frames).to_dict())
    return RewardModel.from_backbone(folder / "backbone", config).eval()


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


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main() -> None:
    cores = available_cores()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=96, help="number of generated videos (default: 96)")
    parser.add_argument("--unique", type=int, default=8, help="distinct videos among them (default: 8)")
    parser.add_argument("--frames", type=int, default=96, help="frames per generated video (default: 96)")
    parser.add_argument("--size", type=int, default=256, help="width and height of the videos (default: 256)")
    parser.add_argument("--num_frames", type=int, default=8, help="frames the model reads per video (default: 8)")
    parser.add_argument("--batch_size", type=int, default=8, help="videos per forward pass (default: 8)")
    parser.add_argument("--num_workers", type=int, default=max(1, cores - 1),
                        help="decoding workers of the goal's figures: the model keeps a core of its own "
                             f"(default: the cores less one, here {max(1, cores - 1)})")
    parser.add_argument("--shared_workers", type=int, default=cores,
                        help="decoding workers of the reference figures where the model shares every core "
                             f"with them, as infer on a CPU-only machine (default: the cores, here {cores}; 0: skip)")
    parser.add_argument("--model_type", default="Qwen2-VL", help="tiny backbone family (default: Qwen2-VL)")
    parser.add_argument("--torch_threads", type=int, default=None,
                        help="intra-op threads of the model (default: what infer picks on CPU: one per core "
                             "left after one core per decoding worker, at least one)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements of each figure, interleaved; the best is reported (default: 3)")
    parser.add_argument("--device", default="cpu", help="device of the model: cpu or cuda (default: cpu)")
    args = parser.parse_args()
    if args.num_workers < 1 or args.shared_workers < 0:
        parser.error("--num_workers must be 1 or more and --shared_workers 0 or more")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from solireward.data.video import FrameSampling
    from solireward.inference import cpu_threads_for_model, score_records
    from solireward.scoring import ScoringDataset, VideoEncoder, loader, score_batches

    torch.set_num_threads(args.torch_threads or cpu_threads_for_model(args.num_workers))

    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        paths = make_videos(tmp_path, args.videos, args.unique, args.frames, args.size)
        print(f"generated {args.videos} videos ({args.unique} distinct) of {args.frames} frames at "
              f"{args.size}x{args.size} in {time.perf_counter() - t0:.1f} s")
        sampling = FrameSampling(num_frames=args.num_frames)
        model = tiny_reward_model(tmp_path, args.num_frames, args.model_type).to(args.device)
        collator = model.collator()
        items = [(i, p, f"prompt number {i}") for i, p in enumerate(paths)]
        records = [{"video_path": p, "prompt": q} for _, p, q in items]
        n = len(items)

        dataset = ScoringDataset([p for _, p, _ in items], [q for _, _, q in items], VideoEncoder(collator, sampling))

        cpu: dict[str, list[tuple[float, float, float]]] = {}  # per figure and run: CPU main, CPU workers, wall

        def measured(name: str, run: Callable[[], None]) -> float:
            """Run once; record its CPU seconds; return its rate."""
            t0, main0, workers0 = usage()
            run()
            t1, main1, workers1 = usage()
            cpu.setdefault(name, []).append((main1 - main0, workers1 - workers0, t1 - t0))
            return rate(n, t1 - t0)

        def decode_only(workers: int) -> None:
            """The scoring path's input side alone: decode + processor + pad in `workers` processes."""
            for batch in loader(dataset, collator, batch_size=args.batch_size, num_workers=workers):
                assert not batch.failed

        batches = [{k: v.to(args.device) for k, v in batch.inputs.items()}
                   for batch in loader(dataset, collator, batch_size=args.batch_size, num_workers=0)]

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

        own, shared = Config(args.num_workers), Config(args.shared_workers) if args.shared_workers else None
        figures: list[tuple[str, Callable[[], None]]] = [(own.decode, lambda: decode_only(args.num_workers)),
                                                         ("model-only", model_only),
                                                         (own.infer, lambda: infer(args.num_workers))]
        if shared and shared.workers != own.workers:
            figures += [(shared.decode, lambda: decode_only(args.shared_workers)),
                        (shared.infer, lambda: infer(args.shared_workers))]
        figures.append(("infer (0 workers, serial)", lambda: infer(0)))
        for _, measure in figures:  # warm-up (caches, thread pools, page cache)
            measure()
        runs: dict[str, list[float]] = {}
        timelines: list[Timeline] = []
        for _ in range(args.repeats):  # interleaved, so background load hits every figure alike
            for name, measure in figures:
                runs.setdefault(name, []).append(measured(name, measure))
            timelines.append(instrumented())
    best = {name: max(values) for name, values in runs.items()}  # best of the repeats
    print(f"device {args.device}, cores: {cores}, torch threads: {torch.get_num_threads()}, "
          f"batch size {args.batch_size}, {args.num_frames} frames per video, {n} videos")
    for name, value in best.items():
        print(f"  {name:<30} {value:8.2f} videos/s   (runs: {', '.join(f'{v:.2f}' for v in runs[name])})")
    achieved = best[own.infer] / min(best[own.decode], best["model-only"])
    print(f"infer / slower of (decode-only, model-only) = {achieved:.2f} with {own.workers} decoding "
          f"worker(s) and the model on the remaining core(s) (goal >= {INFER_MIN_OVERLAP:g}): "
          f"{'met' if achieved >= INFER_MIN_OVERLAP else 'NOT met'}")
    if shared and shared.workers != own.workers:
        ratio = best[shared.infer] / min(best[shared.decode], best["model-only"])
        ceiling = cpu_ceiling(cpu, shared, best[shared.decode], n, cores)
        print(f"all cores shared: infer / slower of (decode-only, model-only) = {ratio:.2f} with "
              f"{shared.workers} decoding workers and the model on the same {cores} cores; ceiling from CPU work "
              f"{ceiling:.2f}, so {ratio / ceiling:.2f} of it reached (reference, no goal)")
    explain(best[own.decode], best["model-only"], best[own.infer], cpu, own,
            min(timelines, key=lambda t: t.wall), n, cores, args)


@dataclasses.dataclass(frozen=True)
class Config:
    """A decoding worker count and the names of its decode-only and infer figures."""

    workers: int

    @property
    def decode(self) -> str:
        return f"decode-only ({self.workers} workers)"

    @property
    def infer(self) -> str:
        return f"infer ({self.workers} workers)"


def ms_per_video(cpu: dict[str, list[tuple[float, float, float]]], name: str, part: int, n: int) -> float:
    """Mean CPU milliseconds per video of `name`'s runs: part 0 the main process, 1 the workers."""
    return 1000 * sum(c[part] for c in cpu[name]) / len(cpu[name]) / n


def cpu_ceiling(cpu: dict[str, list[tuple[float, float, float]]], config: Config, decode: float, n: int,
                cores: int) -> float:
    """The most of decode-only's rate that `cores` allow at infer's CPU seconds per video (at most 1), taking
    the run that used the least CPU: sharing cores inflates CPU time (caches, switches), so runs differ."""
    infer_cpu = min(main + workers for main, workers, _ in cpu[config.infer]) / n
    return min(1.0, cores / (infer_cpu * decode))


def explain(decode: float, model: float, infer: float, cpu: dict[str, list[tuple[float, float, float]]],
            config: Config, timeline: Timeline, n: int, cores: int, args: argparse.Namespace) -> None:
    """Print where infer loses time against the slower of decode-only and model-only, and name the main cause."""
    print(f"where the time goes (instrumented infer pass with {config.workers} worker(s), the fastest of "
          f"{args.repeats}; seconds):")
    other = timeline.wall - timeline.starting - timeline.waiting - timeline.model - timeline.shutdown
    print(f"  main process: {timeline.wall:.3f} wall = starting the workers {timeline.starting:.3f} + waiting for "
          f"batches {timeline.waiting:.3f} (the first arrived at {timeline.first_batch:.3f}) + model "
          f"{timeline.model:.3f} + stopping the workers {timeline.shutdown:.3f} + other {other:.3f}")
    tail = timeline.exhausted - timeline.last_batch
    print(f"  after the last batch arrived (decoders done, the model alone): {tail:.3f}")
    lines = []
    for name in (config.decode, config.infer, "model-only"):
        main, workers = ms_per_video(cpu, name, 0, n), ms_per_video(cpu, name, 1, n)
        lines.append(f"{name} {main + workers:.2f}" + (f" (workers {workers:.2f}, main {main:.2f})" if workers else ""))
    print("  CPU ms per video: " + ", ".join(lines))
    busy = {name: max((main + workers) / wall for main, workers, wall in cpu[name])
            for name in (config.decode, config.infer)}
    print(f"  cores kept busy (CPU seconds / wall, best run): decode-only {busy[config.decode]:.2f}, infer "
          f"{busy[config.infer]:.2f} of {cores}")
    if args.device != "cpu" or model <= decode:
        print("cause: not analysed (the model, not decoding, is the slower side, or it runs on a GPU)")
        return
    ceiling = cpu_ceiling(cpu, config, decode, n, cores)
    lost = 1.0 - infer / decode
    parts = {"CPU: the cores cannot supply infer's CPU work per video at decode-only's rate": 1.0 - ceiling,
             "drain: the last batch is scored after decoding has finished": tail / timeline.wall,
             "other: background load, scheduling, start-up": lost - (1.0 - ceiling) - tail / timeline.wall}
    print(f"  infer lost {lost:.3f} of decode-only's rate = " + " + ".join(
        f"{name.split(':')[0]} {value:.3f}" for name, value in parts.items()))
    if lost <= 0:
        print("cause: none: infer kept up with decode-only")
        return
    cause = max(parts, key=lambda k: parts[k])
    print(f"cause: {cause} ({parts[cause]:.3f} of the {lost:.3f} lost)")


if __name__ == "__main__":
    main()
