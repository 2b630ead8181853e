"""Processor cost at real size: InternVL3's video processor on 8 frames of 448x448 beside the model's step.

Three measurements, on the CPU, in one process:

1. Data cost per video, one thread, CPU time (a busy machine inflates wall time), median of
   ``--repeats``: the processor alone (the scoring path's
   ``RewardCollator.encode``: chat prompt, tokenizer and InternVLVideoProcessor on 8 uint8 frames of
   448x448, i.e. 8 tiles of 256 tokens), and decode + processor (``VideoEncoder`` on an mp4 of
   ``--source_frames`` frames at ``--source_size``: our reader samples 8 segments and resizes them to
   448x448, as config/internvl3_1b.yaml does). This is the work of one DataLoader worker per video,
   so 1 / cost is the videos/s one worker sustains.
2. The model's training step per video (forward + backward, one video, bfloat16 weights) on the
   InternVL3-1B-shaped backbone of bench_gpu.py. A whole step takes minutes on a CPU, so it is timed
   with 1 vision + 1 decoder layer and with 2 + 2 (both towers have 24), and extrapolated per layer:
   t(24) = t(1) + 23 x (t(2) - t(1)). The FLOPs per video are counted the same way (exact: the layers
   are equal). From them: the step time a GPU would take at the GPU goal (``GPU_MIN_MFU`` of a
   989 TFLOP/s H100/H200; bench_gpu.py measures the real figure), and how many workers it takes to
   keep such a GPU fed (``--gpu_videos_per_s`` replaces the goal-based rate by a measured one).
3. A training loop as `solireward train` runs it: ``training.data.VideoBatches`` (decode + processor
   per video) in a DataLoader built like the trainer's, and the trainer's backend taking a step with
   the in-batch reward loss, with ``--workers`` 0 (everything in the main process) and 2. The model
   has InternVL's 448x448 input and 256 tokens per frame but tiny widths, so that the data work is a
   visible share of a step (on a CPU the 1B model would take minutes per step and hide it; the
   sequence lengths still make this step cost more than the data). Printed: videos/s, and the main
   process's CPU seconds per step, whose drop with workers is the decode + processor work that left
   the main process.

    OMP_NUM_THREADS=1 python bench/bench_processor.py [--repeats 10] [--model_repeats 2] [--steps 6]
    python bench/bench_processor.py --tiny       # seconds: tiny sizes throughout (the test's smoke run)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import bench_gpu
from goals import GPU_MIN_MFU

GOAL_PEAK_TFLOPS = 989.0  # H100 SXM / H200 dense bf16, the GPUs of config/internvl3_1b.yaml's recipe


def median_seconds(fn: Callable[[], Any], repeats: int, clock: Callable[[], float] = time.perf_counter,
                   warmup: bool = True) -> float:
    """Median seconds of `repeats` calls of `fn`, after one warm-up call unless `warmup` is False."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def write_videos(folder: Path, count: int, unique: int, frames: int, height: int, width: int) -> list[str]:
    """`unique` mp4 files of a square moving over a gradient, copied to `count` files (decoding is per file)."""
    import shutil

    from solireward.data.video_write import write_video

    yy, xx = np.mgrid[0:height, 0:width]
    sources = []
    for v in range(min(unique, count)):
        clip = np.empty((frames, height, width, 3), np.uint8)
        for t in range(frames):
            background = ((xx + 7 * t + 50 * v) % 256)[..., None] * np.array([1, 0.6, 0.3])
            y, x = (20 + 9 * t) % (height - height // 4), (30 + 13 * t + 40 * v) % (width - width // 4)
            box = (yy >= y) & (yy < y + height // 4) & (xx >= x) & (xx < x + width // 4)
            clip[t] = np.where(box[..., None], np.array([240, 40, 40]), background).astype(np.uint8)
        path = folder / f"source_{v}.mp4"
        write_video(path, clip, fps=16.0, quality=23)
        sources.append(path)
    paths = []
    for i in range(count):
        paths.append(str(folder / f"clip_{i:03d}.mp4"))
        shutil.copyfile(sources[i % len(sources)], paths[-1])
    return paths


def sampling_for(shape: bench_gpu.Shape) -> Any:
    """The release's InternVL sampling: `frames` segments resized to the tile size."""
    from solireward.data.video import FrameSampling

    return FrameSampling(mode="segments", num_frames=shape.frames, height=shape.image_size, width=shape.image_size)


def model_step_seconds(shape: bench_gpu.Shape, processor: Any, layers: int, repeats: int) -> tuple[float, int]:
    """(median CPU-time seconds, counted FLOPs) of one training forward + backward of one video with
    `layers` vision and decoder layers, bfloat16 weights."""
    model = bench_gpu.build_model(shape.with_layers(layers, layers), processor, "sdpa", torch.bfloat16,
                                  torch.device("cpu"))
    inputs = bench_gpu.video_inputs(shape, processor)
    inputs = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()}

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(**inputs).sum().backward()

    flops = bench_gpu.count_flops(model, inputs, torch.device("cpu"), contextlib.nullcontext,
                                  forward=False).train  # also the warm-up step
    return median_seconds(step, repeats, time.process_time, warmup=False), flops


def training_loop(shape: bench_gpu.Shape, processor: Any, paths: list[str], workers: int, batch: int, steps: int
                  ) -> tuple[float, float]:
    """(videos/s, main-process CPU seconds per step) of `steps` training steps fed by VideoBatches through a
    DataLoader with `workers` workers (after one warm-up step, which also starts the workers)."""
    from solireward import distributed as D
    from solireward.losses import LossConfig, in_batch_pairs, reward_loss
    from solireward.scoring import VideoEncoder
    from solireward.training.backend import make_backend
    from solireward.training.data import VideoBatches, raise_if_error
    from solireward.training.optimization import parameter_groups

    device = torch.device("cpu")
    model = bench_gpu.build_model(shape, processor, "sdpa", torch.float32, device)
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    backend = make_backend(model, optimizer, scheduler, D.DistEnv(0, 1, 0, device, None), bf16=False,
                           max_grad_norm=1.0, accumulation=1)
    n = len(paths)
    plan = [np.arange(i * batch, (i + 1) * batch) % n for i in range(steps + 1)]
    qualities = np.tile([1.0, 0.0], n // 2 + 1)[:n]
    encoder = VideoEncoder(model.collator(), sampling_for(shape), backend="auto")
    dataset = VideoBatches(plan, paths, ["a red square moves over a gradient"] * n, qualities, np.arange(n), encoder)
    # built as Trainer._loader builds it
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=2 if workers else None, persistent_workers=False,
                                         generator=torch.Generator().manual_seed(0))
    loss_config = LossConfig()
    wall = cpu = 0.0
    for i, item in enumerate(loader):
        if i == 1:
            wall, cpu = time.perf_counter(), time.process_time()
        item = raise_if_error(item)
        scores = backend.forward(item["inputs"])
        win, lose, tie = in_batch_pairs(item["qualities"])
        loss, _ = reward_loss(scores, win, lose, tie, item["qualities"], loss_config)
        backend.backward(loss)
        backend.step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return steps * batch / wall, cpu / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of the processor (default: 10)")
    parser.add_argument("--model_repeats", type=int, default=2, help="timed model steps per layer count (default: 2)")
    parser.add_argument("--steps", type=int, default=6, help="timed training-loop steps per worker count (default: 6)")
    parser.add_argument("--batch_size", type=int, default=4, help="videos per training-loop step (default: 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader worker counts of the training loop (default: 0 2)")
    parser.add_argument("--source_size", default="480x832", help="HEIGHTxWIDTH of the mp4 files (default: 480x832)")
    parser.add_argument("--source_frames", type=int, default=32, help="frames per mp4 file (default: 32)")
    parser.add_argument("--gpu_videos_per_s", type=float, default=None,
                        help="a measured GPU training rate (bench_gpu.py) to size the workers against "
                             "(default: the rate at the GPU goal, from the counted FLOPs)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes throughout (smoke test)")
    args = parser.parse_args(argv)
    if min(args.repeats, args.model_repeats, args.steps) < 1 or args.batch_size < 2:
        parser.error("--repeats, --model_repeats and --steps must be at least 1, --batch_size at least 2")
    try:
        height, width = (int(v) for v in args.source_size.lower().split("x"))
    except ValueError:
        parser.error(f"--source_size must be HEIGHTxWIDTH, got {args.source_size!r}")
    torch.set_num_threads(1)
    shape = bench_gpu.TINY if args.tiny else bench_gpu.INTERNVL3_1B
    if args.tiny:
        height, width = 64, 96
    processor = bench_gpu.build_processor(shape)
    size = f"{shape.frames} frames of {shape.image_size}x{shape.image_size}"

    from solireward.models.prompts import DEFAULT_SYSTEM_PROMPT, default_question
    from solireward.models.reward_model import RewardCollator
    from solireward.scoring import VideoEncoder

    collator = RewardCollator(processor, DEFAULT_SYSTEM_PROMPT, default_question("phy_deform"))
    frames = np.random.default_rng(0).integers(0, 256, (shape.frames, shape.image_size, shape.image_size, 3),
                                               dtype=np.uint8)
    prompt = "a red square moves over a gradient"
    processor_s = median_seconds(lambda: collator.encode(frames, prompt), args.repeats, time.process_time)
    encoded = collator.encode(frames, prompt)
    kind = type(processor.video_processor).__name__
    print(f"processor (RewardCollator.encode: prompt, tokenizer, {kind}) on {size}, 1 thread: "
          f"{processor_s * 1e3:.1f} CPU ms per video (median of {args.repeats}) -> one worker sustains "
          f"{1 / processor_s:.1f} videos/s; {encoded['input_ids'].shape[1]} tokens, pixel values "
          f"{tuple(encoded['pixel_values'].shape)}")

    with tempfile.TemporaryDirectory(prefix="bench-processor-") as tmp:
        loop_videos = max(args.batch_size * 2, 8)
        paths = write_videos(Path(tmp), loop_videos, 4, 8 if args.tiny else args.source_frames, height, width)
        encoder = VideoEncoder(collator, sampling_for(shape), backend="auto")
        data_s = median_seconds(lambda: encoder(paths[0], prompt), args.repeats, time.process_time)
        print(f"decode + processor (VideoEncoder on an mp4 of {8 if args.tiny else args.source_frames} frames at "
              f"{height}x{width} -> {size}), 1 thread: {data_s * 1e3:.1f} CPU ms per video (median of {args.repeats}) "
              f"-> one worker sustains {1 / data_s:.1f} videos/s")

        t1, f1 = model_step_seconds(shape, processor, 1, args.model_repeats)
        t2, f2 = model_step_seconds(shape, processor, 2, args.model_repeats)
        layers = shape.text["num_hidden_layers"]
        if shape.vision["num_hidden_layers"] != layers:
            raise SystemExit("the per-layer extrapolation needs equal vision and decoder layer counts")
        step_s, flops = t1 + (layers - 1) * (t2 - t1), f1 + (layers - 1) * (f2 - f1)
        print(f"model training step on the CPU (forward + backward, 1 video, bfloat16, 1 thread, CPU time, median "
              f"of {args.model_repeats}): {t1:.2f} s with 1 vision + 1 decoder layer, {t2:.2f} s with 2 + 2 -> "
              f"extrapolated per layer to {layers} + {layers}: {step_s:.2f} s per video; the processor is "
              f"{processor_s / step_s * 100:.2g} % of it, decode + processor {data_s / step_s * 100:.2g} %")
        goal_rate = GPU_MIN_MFU * GOAL_PEAK_TFLOPS * 1e12 / flops
        gpu_rate = args.gpu_videos_per_s or goal_rate
        where = (f"the measured GPU rate {gpu_rate:.1f} videos/s" if args.gpu_videos_per_s else
                 f"the GPU goal ({GPU_MIN_MFU * 100:g} % MFU of {GOAL_PEAK_TFLOPS:g} TFLOP/s): "
                 f"{1 / goal_rate:.3f} s per video = {goal_rate:.1f} videos/s")
        print(f"FLOPs per video (training step, counted on 1 + 1 and 2 + 2 layers, extrapolated): "
              f"{flops / 1e9:,.2f} GFLOP; at {where}")
        print(f"workers needed to feed it: {math.ceil(gpu_rate * processor_s)} for the processor alone, "
              f"{math.ceil(gpu_rate * data_s)} for decode + processor (at 1 core each)")

        loop_shape = bench_gpu.Shape(text=dict(bench_gpu.TINY.text), vision=dict(bench_gpu.TINY.vision),
                                     image_size=shape.image_size, frames=shape.frames)
        print(f"training loop (VideoBatches in the trainer's DataLoader, trainer backend, in-batch loss; tiny widths, "
              f"{size}), {args.steps} steps x {args.batch_size} videos after 1 warm-up step:")
        rates = {}
        for workers in args.workers:
            rates[workers], cpu = training_loop(loop_shape, processor, paths, workers, args.batch_size, args.steps)
            print(f"  workers {workers}: {rates[workers]:6.2f} videos/s   main-process CPU {cpu:.3f} s per step")
    if 0 in rates and len(rates) > 1:
        most = max(rates)
        print(f"training loop with {most} workers / 0 workers: {rates[most] / rates[0]:.2f}x videos/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
