"""Run every benchmark under bench/ and write bench/RESULTS.md (machine, date, figure, goal, met).

Each benchmark runs as its own process (``python bench/bench_<name>.py ...``) one after the other;
its printed output is parsed for the figures and kept verbatim in RESULTS.md. Goals are ratios
measured side by side inside one benchmark run, so they hold up on a shared machine better than
absolute times do; the load average before and after each run is recorded beside it. Only what was
measured in the run is written: without a CUDA GPU, bench_gpu.py prints one line that says so, and
RESULTS.md holds that line instead of the GPU tables.

    python bench/run_all.py                      # every benchmark at the sizes below (~25 min on 2 cores)
    python bench/run_all.py --scale default      # each script's own default sizes (slower)
    python bench/run_all.py --only hpqa video    # some of them; RESULTS.md then holds only those
    python bench/run_all.py --output /tmp/R.md   # write elsewhere

A benchmark that fails is listed as failed with the tail of its output; the others still run and
the exit status is 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import goals

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


@dataclasses.dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    figure: str
    goal: str
    met: bool | None  # None: no goal (for regressions) or not measured
    result: str | None = None  # shown instead of met / not met when the measurement cannot decide


@dataclasses.dataclass
class Bench:
    """A benchmark script, its arguments at each scale and the parser of its output."""

    name: str
    script: str
    small: list[str]
    parse: Callable[[str], list[Row]]
    what: str
    section: Callable[[str], list[str]] | None = None  # Markdown placed under the table (the GPU tables)
    extra_args: Callable[[list["Outcome"]], list[str]] | None = None  # arguments from earlier runs' outcomes


@dataclasses.dataclass
class Outcome:
    """What one benchmark run produced."""

    bench: Bench
    command: list[str]
    rc: int
    seconds: float
    output: str
    load_before: float
    load_after: float
    rows: list[Row]
    problem: str | None = None


def _search(pattern: str, text: str, what: str) -> re.Match:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise ValueError(f"could not find {what} in the output (pattern {pattern!r})")
    return match


def parse_infer(out: str) -> list[Row]:
    """bench_infer.py: infer rate over the slower of decode-only and model-only, the model on a core of its own;
    and, for reference, the same with every core shared and its ceiling from CPU work."""
    goal = _search(r"^infer / slower of \(decode-only, model-only\) = ([\d.]+) with (\d+) decoding", out,
                   "the overlap ratio")
    ratio, workers = float(goal[1]), goal[2]
    rates = dict(re.findall(r"^\s+(decode-only \(\d+ workers\)|model-only|infer \(\d+ workers\))\s+([\d.]+) videos/s",
                            out, re.M))
    import bench_infer  # its parser of the 'cause:' line

    cause = bench_infer.parse_cause(out)
    own = ", ".join(f"{k} {float(v):.1f}" for k, v in rates.items() if f"({workers} workers)" in k or k == "model-only")
    rows = [Row(f"Inference pipeline overlap ({workers} decoding worker(s), the model on the other core)",
                f"{ratio:.2f} x the slower of decode-only / model-only (videos/s: {own})"
                + (f"; where the rest goes: {cause}" if cause else ""),
                f">= {goals.INFER_MIN_OVERLAP:g} x", ratio >= goals.INFER_MIN_OVERLAP)]
    shared = re.search(r"^all cores shared: infer / slower of \(decode-only, model-only\) = ([\d.]+) with (\d+) "
                       r"decoding workers and the model on the same (\d+) cores; ceiling from CPU work ([\d.]+), "
                       r"so ([\d.]+) of it", out, re.M)
    if shared:
        detail = ", ".join(f"{k} {float(v):.1f}" for k, v in rates.items() if f"({shared[2]} workers)" in k)
        rows.append(Row(f"Inference, all cores shared ({shared[2]} decoding workers and the model on {shared[3]} "
                        "cores: infer's CPU-only setting)",
                        f"{float(shared[1]):.2f} x the slower of decode-only / model-only (videos/s: {detail}); "
                        f"ceiling from CPU work {float(shared[4]):.2f}, {float(shared[5]):.2f} of it reached",
                        "none (reference)", None))
    return rows


def parse_frames(out: str) -> list[Row]:
    """bench_frames.py: RewardModel.score_frames on frames in memory vs writing an mp4 and scoring it."""
    import bench_frames

    return [Row(**row) for row in bench_frames.parse_results(out)]


def parse_video(out: str) -> list[Row]:
    """bench_video.py: our decord reader against a plain PyAV decode-all, at 8 frames and at fps 2."""
    rows = []
    base = float(_search(r"^baseline: plain PyAV[^\n]*?\s([\d.]+) videos/s", out, "the PyAV baseline")[1])
    for label, pattern in (("8 frames (segments)", r"^ours: decord, segments \(8 frames\)\s+([\d.]+) videos/s\s+([\d.]+)x"),
                           ("fps 2", r"^ours: decord, fps 2 \((\d+) frames\)\s+([\d.]+) videos/s\s+([\d.]+)x")):
        match = _search(pattern, out, f"the {label} reader")
        rate, speedup = (float(match[1]), float(match[2])) if label.startswith("8") else \
            (float(match[2]), float(match[3]))
        rows.append(Row(f"Frame reading, {label}", f"{speedup:.2f}x plain PyAV ({rate:.1f} vs {base:.1f} videos/s)",
                        f">= {goals.VIDEO_MIN_SPEEDUP:g}x", speedup >= goals.VIDEO_MIN_SPEEDUP))
    return rows


def parse_hpqa(out: str) -> list[Row]:
    """bench_hpqa.py: the HPQA head's share of an LM step, in counted FLOPs and in time (heads timed alone)."""
    overhead = float(_search(r"^HPQA overhead vs last-token \(median ratio - 1\): ([+-][\d.]+) %", out,
                             "the HPQA overhead")[1])
    ratios = _search(r"^per-pair CPU-time ratios: ([\d. ]+)$", out, "the per-pair ratios")[1].split()
    flops = float(_search(r"^FLOP overhead \(counted, noise-free\): ([+-][\d.]+) %", out, "the FLOP overhead")[1])
    shape = _search(r"^sequence: batch 1 x (\d+) tokens", out, "the sequence length")[1]
    dtype = _search(r"parameters, (\w+);", out, "the backbone dtype")[1]
    estimate = float(_search(r"head-time overhead estimate[^:]*: ([+-][\d.]+) %", out, "the head-time estimate")[1])
    context = f"InternVL3-1B-shaped LM, {shape} tokens, {dtype} backbone, float32 heads"
    flop_bound, time_bound = goals.HPQA_MAX_FLOP_SHARE * 100, goals.HPQA_MAX_TIME_SHARE * 100  # percent, as printed
    return [Row("HPQA head FLOPs, share of an LM step (fwd+bwd)", f"{flops:+.3f} % ({context})",
                f"<= {flop_bound:g} %", flops <= flop_bound),
            Row("HPQA head time, share of an LM step (heads timed alone, interleaved)",
                f"{estimate:+.2f} % (whole steps, median of {len(ratios)} interleaved pairs: {overhead:+.2f} %, "
                f"pair ratios {', '.join(ratios)})", f"<= {time_bound:g} %", estimate <= time_bound)]


def parse_pairing(out: str) -> list[Row]:
    """bench_pairing.py: CPU seconds and peak memory of `labels` and `pairs` on 1 M rows."""
    n_rows = _search(r"^generated ([\d,]+) rows", out, "the row count")[1]
    rows = []
    for stage in ("labels", "pairs"):
        cells = [c.strip() for c in _search(rf"^\| {stage}\s*\|(.*)\|\s*$", out, f"the {stage} row")[1].split("|")]
        wall, _, cpu, _, peak = (float(c) for c in cells[:5])
        rows.append(Row(f"Pairing scale: `{stage}` on {n_rows} rows",
                        f"{cpu:.1f} CPU s ({wall:.1f} s wall), peak {peak:.0f} MiB",
                        f"< {goals.PAIRING_MAX_CPU_SECONDS:g} s and < {goals.PAIRING_MAX_MEMORY_MIB / 1024:g} GiB",
                        cpu < goals.PAIRING_MAX_CPU_SECONDS and peak < goals.PAIRING_MAX_MEMORY_MIB))
    return rows


def parse_train(out: str) -> list[Row]:
    """bench_train.py: in_batch over pairs_file pairs/s, and the step time of the backends."""
    ratio = float(_search(r"^in_batch / pairs_file pairs per second: ([\d.]+)x", out, "the pairs/s ratio")[1])
    pairs = dict(re.findall(r"^(in_batch|pairs_file)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s*$", out, re.M))
    rows = [Row("Pairs per second: `--batching in_batch` vs `pairs_file`",
                f"{ratio:.2f}x ({pairs.get('in_batch', '?')} vs {pairs.get('pairs_file', '?')} pairs/s)",
                f">= {goals.TRAIN_MIN_PAIRS_RATIO:g}x", ratio >= goals.TRAIN_MIN_PAIRS_RATIO)]
    steps = re.findall(r"^(1 process|2-process DDP \(gloo\)|2-process ZeRO-2)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+"
                       r"([\d.]+)x\s*$", out, re.M)
    if len(steps) != 3:
        raise ValueError("could not find the three backend rows (1 process, DDP, ZeRO-2) in the output")
    figure = "; ".join(f"{name}: {float(s):.3f} s/step ({float(videos):.0f} videos)"
                       for name, videos, s, _, _ in steps)
    rows.append(Row("Training step on CPU: 1 process / DDP / ZeRO-2", figure, "none (regressions)", None))
    import bench_train  # its own parser for the time-to-accuracy section

    return rows + [Row(**row) for row in bench_train.parse_results(out)]


def parse_train_speed(out: str) -> list[Row]:
    """bench_train_speed.py: a demo training's CPU time, this code vs before the speed-up, plain and mitigated."""
    import bench_train_speed

    return [Row(**row) for row in bench_train_speed.parse_results(out)]


def parse_gpu(out: str) -> list[Row]:
    """bench_gpu.py: the best training MFU against its goal, and inference videos/s; no rows without a GPU."""
    if re.search(r"^no CUDA GPU available", out, re.M):
        return []
    device = _search(r"^device: ([^;]+);", out, "the device")[1]
    fastest = _search(r"^fastest training step: ([\d.]+) s for (\d+) videos = ([\d.]+) videos/s \((.*)\)$", out,
                      "the fastest training step")
    step = f"fastest step {float(fastest[1]):.3f} s for {fastest[2]} videos ({fastest[3]} videos/s; {fastest[4]})"
    name, goal = f"GPU training step, InternVL3-1B-shaped, bf16 ({device})", f">= {goals.GPU_MIN_MFU * 100:g} % MFU"
    best = re.search(r"^best training MFU: ([\d.]+) % \((.*)\) \(goal", out, re.M)
    rows = [Row(name, f"best MFU {best[1]} % ({best[2]}); {step}", goal, float(best[1]) >= goals.GPU_MIN_MFU * 100)
            if best else Row(name, step, goal, None, "no MFU: the device's peak rate is not in bench_gpu.py's table")]
    infer = re.findall(r"^\| (\S+) \| (\d+) \| [\d.]+ \| ([\d.]+) \|", out, re.M)
    if infer:
        rows.append(Row(f"GPU inference, model only ({device}, {infer[0][0]})",
                        "videos/s at batch " + " / ".join(b for _, b, _ in infer) + ": "
                        + " / ".join(v for _, _, v in infer), "none (reference)", None))
    return rows


def gpu_section(out: str) -> list[str]:
    """RESULTS.md's GPU part: bench_gpu.py's set-up lines and tables, or the line that no GPU was present."""
    if re.search(r"^no CUDA GPU available", out, re.M):
        return ["No GPU was present in this run: `bench_gpu.py` measured nothing (training step, MFU and inference "
                "on a GPU are not in this file)."]
    lines: list[str] = []
    for line in out.splitlines():
        if line.startswith(("device:", "model:", "sequence:", "FLOPs per video:")):
            lines.append(f"- {line}")
        elif line.startswith("|"):
            lines += [""] if lines and not lines[-1].startswith("|") else []
            lines.append(line)
    return lines


def parse_processor(out: str) -> list[Row]:
    """bench_processor.py: the processor's cost per video against the model's step, and the training loop's
    videos/s with and without DataLoader workers."""
    proc = _search(r"^processor \(.*?\) on (.*?), 1 thread: ([\d.]+) CPU ms per video .*?sustains ([\d.]+) videos/s",
                   out, "the processor cost")
    data = _search(r"^decode \+ processor .*?: ([\d.]+) CPU ms per video .*?sustains ([\d.]+) videos/s", out,
                   "the decode + processor cost")
    step = _search(r"extrapolated per layer to (\d+) \+ \d+: ([\d.]+) s per video; the processor is ([\d.e+-]+) % of it, "
                   r"decode \+ processor ([\d.e+-]+) %", out, "the model step")
    feed = _search(r"^FLOPs per video .*?; at (.*)$", out, "the GPU rate")[1]
    workers = _search(r"^workers needed to feed it: (\d+) for the processor alone, (\d+) for decode \+ processor", out,
                      "the worker count")
    rows = [Row(f"Processor cost per video, InternVL3, {proc[1]} (CPU, 1 thread)",
                f"processor {float(proc[2]):.1f} CPU ms ({proc[3]} videos/s per worker), decode + processor "
                f"{float(data[1]):.1f} CPU ms ({data[2]} videos/s per worker) = {step[3]} % / {step[4]} % of the "
                f"model's CPU step ({float(step[2]):.1f} s per "
                f"video, extrapolated from 1 and 2 layers to {step[1]}); workers to feed {feed}: {workers[1]} "
                f"(processor) / {workers[2]} (decode + processor)", "none (reference)", None)]
    loop = re.findall(r"^  workers (\d+):\s+([\d.]+) videos/s\s+main-process CPU ([\d.]+) s per step", out, re.M)
    if loop:
        rows.append(Row("Training loop: processor in DataLoader workers (tiny-width model, real-size videos, CPU)",
                        "; ".join(f"{w} workers: {float(v):.2f} videos/s, main-process CPU {float(c):.3f} s/step"
                                  for w, v, c in loop), "none (reference)", None))
    return rows


def processor_args(done: list[Outcome]) -> list[str]:
    """Size bench_processor.py's worker count against the GPU rate measured earlier in this run, if any."""
    for outcome in done:
        if outcome.bench.name == "gpu" and not outcome.problem:
            match = re.search(r"^fastest training step: .*? = ([\d.]+) videos/s", outcome.output, re.M)
            if match:
                return ["--gpu_videos_per_s", match[1]]
    return []


def parse_serve(out: str) -> list[Row]:
    """bench_serve.py: the server's items/s at 16 clients over in-process batched scoring's."""
    ratio = float(_search(r"^server items/s at \d+ clients / in-process items/s = ([\d.]+)", out, "the ratio")[1])
    levels = re.findall(r"^\| (\d+) \| \d+ \| ([\d.]+) \| ([\d.]+) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \|$",
                        out, re.M)
    inproc = _search(r"^\| in-process \| .*? \| \| ([\d.]+) \|", out, "the in-process rate")[1]
    detail = "; ".join(f"{c} clients: {i} items/s, {r} req/s, p50/p95/p99 {p50}/{p95}/{p99} ms, batch fill {f}"
                       for c, r, i, p50, p95, p99, f in levels)
    rows = [Row("Reward server vs in-process scoring", f"{ratio:.2f} x in-process ({inproc} items/s); {detail}",
                f">= {goals.SERVE_MIN_RATIO:g} x", ratio >= goals.SERVE_MIN_RATIO)]
    real = re.search(r"^real-size server items/s / in-process score_frames items/s = ([\d.]+) \(([\d.]+) vs "
                     r"([\d.]+);", out, re.M)
    if real:
        size = _search(r"^real size: .*?\((.*?)\)", out, "the real-size payload")[1]
        png = re.search(r"^real-size server items/s / in-process from the PNG frames items/s = ([\d.]+) \([\d.]+ vs "
                        r"([\d.]+);", out, re.M)
        from_png = f"; in-process from the PNG frames {png[2]} items/s, server {png[1]} x of it" if png else ""
        rows.append(Row("Reward server at real size (Flow-Factory /compute, 81 PNG frames of 832x480) vs in-process "
                        "score_frames", f"{float(real[1]):.2f} x ({real[2]} vs {real[3]} items/s{from_png}; {size})",
                        f">= {goals.SERVE_REAL_SIZE_MIN_RATIO:g} x", float(real[1]) >= goals.SERVE_REAL_SIZE_MIN_RATIO))
    return rows


BENCHES = [
    Bench("pairing", "bench_pairing.py", [], parse_pairing,
          "1 M annotation rows (250k videos x 4 annotators) through `labels` and `pairs`, each in a fresh process"),
    Bench("video", "bench_video.py", ["--videos", "30", "--repeats", "3"], parse_video,
          "our reader (decord) vs PyAV decoding every frame, on generated demo videos (120 frames, 128x128)"),
    Bench("infer", "bench_infer.py", ["--repeats", "3"], parse_infer,
          "`solireward infer` (decoding workers + tiny model) vs decode-only and model-only on the same files"),
    Bench("frames", "bench_frames.py", ["--videos", "16", "--frames", "32", "--size", "192", "--repeats", "2"],
          parse_frames, "RewardModel.score_frames on uint8 frames in memory vs write_video + score of the same videos"),
    Bench("train", "bench_train.py", ["--steps", "15", "--skip", "3", "--tta_eval_steps", "50"], parse_train,
          "`solireward train` on the demo data with a tiny Qwen2-VL, as subprocesses (torchrun for DDP/ZeRO-2)"),
    Bench("train_speed", "bench_train_speed.py", ["--steps", "100"], parse_train_speed,
          "whole `solireward train` processes of the demo recipe, plain and with the `robust` mitigation, this "
          "checkout vs the revision before the training speed-up (a git worktree), alternating, 1 thread"),
    Bench("hpqa", "bench_hpqa.py", ["--repeats", "1"], parse_hpqa,
          "HPQA vs last-token head, forward + backward on a random 24-layer InternVL3-1B-shaped language model"),
    Bench("gpu", "bench_gpu.py", [], parse_gpu,
          "training step (sdpa / flash-attn, checkpointing off / on, 1 process / ZeRO-2) and inference of the "
          "InternVL3-1B-shaped reward model on a CUDA GPU: step time, videos/s, tokens/s, peak memory, MFU",
          section=gpu_section),
    Bench("processor", "bench_processor.py", ["--repeats", "5", "--model_repeats", "1", "--steps", "4"],
          parse_processor, "InternVL3's video processor on 8 frames of 448x448 beside the model's step, and a "
          "training loop with the processor in the main process (0 workers) and in 2 DataLoader workers",
          extra_args=processor_args),
    Bench("serve", "bench_serve.py", ["--videos", "32", "--requests", "48", "--seconds", "45", "--repeats", "3"],
          parse_serve,
          "`solireward serve` on loopback (tiny model, decoding workers) at 1, 4 and 16 clients vs in-process "
          "batched scoring of the same videos; then Flow-Factory-shaped /compute requests of real-size videos "
          "(81 PNG frames of 832x480) vs in-process score_frames on the same frames"),
]


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and torch versions, git commit."""
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = "unknown"
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True)
    return {"CPU": cpu, "cores available": str(cores), "memory": memory,
            "OS": f"{platform.system()} {platform.release()}", "Python": platform.python_version(),
            "torch": torch.__version__,
            "git commit": (commit.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty.stdout.strip()
                                                                   else "")}


def run_bench(bench: Bench, scale: str, timeout: float, done: list[Outcome]) -> Outcome:
    """Run one benchmark script and parse its figures (`done`: the outcomes of the scripts run before it)."""
    command = [sys.executable, str(BENCH / bench.script), *(bench.small if scale == "small" else []),
               *(bench.extra_args(done) if bench.extra_args else [])]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    print(f"[run_all] {bench.name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        rc, output = proc.returncode, proc.stdout + (f"\n[stderr]\n{proc.stderr[-3000:]}" if proc.returncode else "")
    except subprocess.TimeoutExpired as exc:
        rc, output = -1, f"{exc.stdout or ''}\n[timed out after {timeout:g} s]"
        output = output if isinstance(output, str) else output.decode(errors="replace")
    outcome = Outcome(bench, command, rc, time.perf_counter() - start, output, load_before, os.getloadavg()[0], [])
    if rc != 0:
        outcome.problem = f"exit status {rc}" if rc != -1 else f"timed out after {timeout:g} s"
    else:
        try:
            outcome.rows = bench.parse(output)
        except ValueError as exc:
            outcome.problem = str(exc)
    print(f"[run_all] {bench.name}: {outcome.problem or 'ok'} in {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
    return outcome


def _met(row: Row) -> str:
    if row.result is not None:
        return row.result
    return "—" if row.met is None else ("met" if row.met else "**not met**")


def render(info: dict[str, str], outcomes: list[Outcome], scale: str, started: datetime.datetime) -> str:
    """The Markdown of RESULTS.md."""
    lines = ["# Benchmark results", "",
             f"Written by `python bench/run_all.py{'' if scale == 'small' else ' --scale ' + scale}` on "
             f"{started:%Y-%m-%d %H:%M} UTC. Every goal is a ratio (or a bound) measured side by side in one run of "
             "its script; see [README.md](README.md) for what each benchmark does and how to run it alone.", "",
             "**Machine**", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += ["", "This machine is shared with other jobs and noisy: the load average (1 min) before and after each "
              "benchmark is listed below; absolute times vary from run to run, ratios much less.", "",
              "| benchmark | measured | goal | result |", "|---|---|---|---|"]
    for outcome in outcomes:
        if outcome.problem:
            lines.append(f"| {outcome.bench.name} | failed: {outcome.problem} | | **not measured** |")
        for row in outcome.rows:
            lines.append(f"| {row.benchmark} | {row.figure} | {row.goal} | {_met(row)} |")
    for outcome in outcomes:
        if outcome.bench.section is not None and not outcome.problem:
            lines += ["", f"**{outcome.bench.name}** (`{outcome.bench.script}`)", "",
                      *outcome.bench.section(outcome.output)]
    lines += ["", "## Runs", ""]
    for outcome in outcomes:
        lines += [f"### {outcome.bench.name}", "", outcome.bench.what + ".", "",
                  f"`python {' '.join(os.path.relpath(c, REPO) if c.startswith(str(REPO)) else c for c in outcome.command[1:])}`"
                  f" — {outcome.seconds:.0f} s, load average {outcome.load_before:.1f} before, "
                  f"{outcome.load_after:.1f} after.", "", "```", outcome.output.rstrip(), "```", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], default=None,
                        help="run only these benchmarks (default: all)")
    parser.add_argument("--scale", choices=("small", "default"), default="small",
                        help="small: the reduced sizes listed in this script; default: each script's own "
                             "defaults (default: small)")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md",
                        help="Markdown file to write (default: bench/RESULTS.md)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per benchmark (default: 1800)")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from solireward.io import write_text

    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine()
    outcomes: list[Outcome] = []
    for bench in BENCHES:
        if args.only is None or bench.name in args.only:
            outcomes.append(run_bench(bench, args.scale, args.timeout, outcomes))
    write_text(args.output, render(info, outcomes, args.scale, started))
    print(f"[run_all] wrote {args.output}", file=sys.stderr)
    failed = [o.bench.name for o in outcomes if o.problem]
    if failed:
        print(f"[run_all] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
