"""Benchmark `solireward labels` and `solireward pairs` on 1 M annotation rows.

Generates 250k videos x 4 annotators x one dimension (default) in a temporary folder, then runs
each stage in a fresh Python process and reports its wall time and peak resident memory
(``VmHWM`` of that process). Goals per stage: ``PAIRING_MAX_CPU_SECONDS`` and
``PAIRING_MAX_MEMORY_MIB`` (bench/goals.py).

    python bench/bench_pairing.py [--videos 250000] [--annotators 4] [--input_format csv]

CPU s (user + system time of the stage's process) is the figure to compare on a busy machine,
where wall time also counts waiting for a core; the time goal is checked on it. Video files are
not created (250k files would dominate the run), so `labels` runs with ``--check_videos false``;
the existence check costs one ``stat`` per distinct video.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from goals import PAIRING_MAX_CPU_SECONDS, PAIRING_MAX_MEMORY_MIB

# Runs one CLI command in this fresh process and prints its in-process time and peak RSS. VmHWM
# (Linux) is the peak of this process image only; ru_maxrss would also count the parent's memory
# at fork time.
_RUNNER = """
import json, resource, sys, time
start = time.perf_counter()
from solireward.cli import main
rc = main(sys.argv[1:])
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
try:
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except OSError:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rc": rc, "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "max_rss_mib": peak_kib / 1024}))
"""


def generate(folder: Path, n_videos: int, n_annotators: int, fmt: str, seed: int = 0) -> Path:
    """Write n_videos x n_annotators annotation rows (one dimension, 50 videos per prompt)."""
    rng = np.random.default_rng(seed)
    n_prompts = max(n_videos // 50, 1)
    video = np.repeat(np.arange(n_videos), n_annotators)
    truth = rng.random(n_videos) < 0.45
    flip = rng.random(len(video)) < 0.15
    label = np.where(truth[video] ^ flip, "pass", "fail")
    frame = pd.DataFrame({
        "video_path": pd.Series([f"/bench/videos/v{i:07d}.mp4" for i in range(n_videos)]).to_numpy()[video],
        "prompt": pd.Series([f"prompt number {i}" for i in range(n_prompts)]).to_numpy()[video % n_prompts],
        "dimension": "physics",
        "label": label,
        "annotator": np.char.add("ann", np.tile(np.arange(n_annotators), n_videos).astype(str)),
    })
    path = folder / f"annotations.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def run_stage(args: list[str]) -> dict:
    """Run `solireward <args>` in a fresh interpreter; wall time, in-process time and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"stage failed: {' '.join(args)}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        sys.exit(f"stage returned {result['rc']}: {' '.join(args)}\n{proc.stderr}")
    result["wall"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=250_000, help="number of videos (default: 250000)")
    parser.add_argument("--annotators", type=int, default=4, help="annotators per video (default: 4)")
    parser.add_argument("--input_format", choices=["csv", "jsonl"], default="csv",
                        help="annotation file format (default: csv)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_pairing_") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        source = generate(folder, opts.videos, opts.annotators, opts.input_format)
        rows = opts.videos * opts.annotators
        print(f"generated {rows:,} rows ({source.stat().st_size / 2**20:.0f} MiB {opts.input_format}) "
              f"in {time.perf_counter() - start:.1f} s")
        table = folder / "labels.jsonl"
        labels = run_stage(["--log_level", "WARNING", "labels", "--input", str(source), "--output", str(table),
                            "--check_videos", "false"])
        pairs = run_stage(["--log_level", "WARNING", "pairs", "--labels", str(table), "--task", "physics",
                           "--dimensions", "physics", "--output_dir", str(folder / "pairs")])
        summary = json.loads((folder / "pairs" / "summary.json").read_text())
        n_pairs = sum(s["pairs"] for s in summary["splits"].values())
        per_split = ", ".join(f"{k} {v['pairs']:,}" for k, v in summary["splits"].items())
        print(f"labels: {sum(1 for _ in table.open()):,} video labels; pairs: {n_pairs:,} pairs ({per_split})")
        print()
        print("| stage  | wall s | in-process s | CPU s | goal s | peak RSS MiB | goal MiB | ok |")
        print("|--------|-------:|-------------:|------:|-------:|-------------:|---------:|----|")
        for name, r in (("labels", labels), ("pairs", pairs)):
            ok = r["cpu_seconds"] < PAIRING_MAX_CPU_SECONDS and r["max_rss_mib"] < PAIRING_MAX_MEMORY_MIB
            print(f"| {name:<6} | {r['wall']:6.2f} | {r['seconds']:12.2f} | {r['cpu_seconds']:5.2f} | {PAIRING_MAX_CPU_SECONDS:6.0f} | "
                  f"{r['max_rss_mib']:12.0f} | {PAIRING_MAX_MEMORY_MIB:8.0f} | {'yes' if ok else 'NO'} |")


if __name__ == "__main__":
    main()
