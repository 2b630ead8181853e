"""Training speed: the demo recipe's `solireward train`, plain and mitigated, this checkout vs an earlier revision.

The earlier code is a git revision (``--base``; default: the parent of the commit that added
``solireward/models/fast_ops.py``, i.e. the training path before it was made faster), checked out with
``git worktree add --detach`` into a temporary folder and run by the same interpreter on the same data,
tiny model and flags, so the ratio compares code and nothing else. The runs alternate (base, this,
base, this, ...) so that drifting load hits both alike.

Each run is one whole ``solireward train`` process as a demo job runs it: the demo recipe
(config/demo_train.yaml) with ``--eval_data``, on one thread (``OMP_NUM_THREADS=1``), on the demo data
of the learnability test (140 prompts, split 0.6 0.2 0.2) and a tiny Qwen2-VL. *plain* is the recipe;
*mitigated* adds the study's ``robust`` mitigation (config/config.yaml: frame-count and size jitter,
exposure, consistency twins). Reported per run: wall seconds, CPU seconds (user + system of the process;
less sensitive than wall time to other load on a shared machine), and the final validation pair accuracy
(the code changed how fast, not what is trained: the two should agree closely). Goal: this checkout
trains >= ``TRAIN_MIN_SPEEDUP`` x faster in CPU time than the base, plain and mitigated (bench/goals.py).

    python bench/bench_train_speed.py [--workdir DIR] [--steps 400] [--repeats 1] [--base REV]
                                      [--modes plain mitigated]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench_train import prepare_demo, tiny_model
from goals import TRAIN_MIN_SPEEDUP

REPO = Path(__file__).resolve().parents[1]
MARKER = "solireward/models/fast_ops.py"


def default_base() -> str:
    """The parent of the commit that added the speed-up module (the training path before it)."""
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", MARKER], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    if not added:
        sys.exit(f"{MARKER} is not committed in this checkout's history: pass --base REV")
    return f"{added[-1]}^"


def mitigation_flags(name: str = "robust") -> list[str]:
    """The study's mitigation `name` (config/config.yaml, key mitigations) as `solireward train` flags."""
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["mitigations"][name]
    flags: list[str] = []
    for key, value in settings.items():
        flags += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    return flags


def run(tree: Path, out: Path, pairs: Path, model: Path, steps: int, extra: list[str]) -> dict[str, Any]:
    """One `solireward train` process of the code in `tree`; its wall and CPU seconds and final eval accuracy."""
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "solireward.cli", "train", "--config", str(REPO / "config" / "demo_train.yaml"),
           "--model_name_or_path", str(model), "--train_data", str(pairs / "train.json"),
           "--eval_data", str(pairs / "val.json"), "--output_dir", str(out), "--max_steps", str(steps), *extra]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed ({tree}): {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    summary = json.loads((out / "train_summary.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "accuracy": summary["final_eval"]["eval_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="folder for data, model and runs (default: temp)")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps per training (the recipe's: 400)")
    parser.add_argument("--repeats", type=int, default=1, help="trainings per mode and code")
    parser.add_argument("--base", default=None, help="git revision to compare with (default: see the module doc)")
    parser.add_argument("--modes", nargs="+", choices=("plain", "mitigated"), default=["plain", "mitigated"])
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_train_speed."))
    workdir.mkdir(parents=True, exist_ok=True)
    base_rev = args.base or default_base()
    base_sha = subprocess.run(["git", "rev-parse", "--short", base_rev], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    head_sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    pairs, model = prepare_demo(workdir), tiny_model(workdir)
    base_tree = Path(tempfile.mkdtemp(prefix="bench_base.")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), base_rev], cwd=REPO, check=True,
                   capture_output=True)
    trees = {f"base {base_sha}": base_tree, f"this {head_sha}": REPO}
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for mode in args.modes:
            extra = mitigation_flags() if mode == "mitigated" else []
            for rep in range(args.repeats):
                for code, tree in trees.items():
                    result = run(tree, workdir / "runs" / f"{mode}_{code.split()[0]}_{rep}", pairs, model,
                                 args.steps, extra)
                    results.setdefault((mode, code), []).append(result)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=REPO, capture_output=True)
        shutil.rmtree(base_tree.parent, ignore_errors=True)
    report(results, args, trees)


def report(results: dict[tuple[str, str], list[dict[str, Any]]], args: argparse.Namespace,
           trees: dict[str, Path]) -> None:
    """The table of runs, then one ratio line per mode with its verdict."""
    print(f"\ntraining speed: demo recipe, {args.steps} steps, 1 thread, {args.repeats} training(s) per mode and code")
    print(f"{'mode':<10} {'code':<14} {'wall s':>8} {'CPU s':>8} {'eval acc':>9}")
    for (mode, code), runs in results.items():
        for r in runs:
            print(f"{mode:<10} {code:<14} {r['wall']:>8.1f} {r['cpu']:>8.1f} {r['accuracy']:>9.3f}")
    base, this = trees
    for mode in args.modes:
        cpu = {code: sum(r["cpu"] for r in results[(mode, code)]) for code in trees}
        wall = {code: sum(r["wall"] for r in results[(mode, code)]) for code in trees}
        ratio = cpu[base] / cpu[this]
        print(f"{mode}: base / this CPU time = {ratio:.2f}x, wall time {wall[base] / wall[this]:.2f}x "
              f"(per training {cpu[base] / args.repeats:.1f} -> {cpu[this] / args.repeats:.1f} CPU s, "
              f"{wall[base] / args.repeats:.1f} -> {wall[this] / args.repeats:.1f} wall s) "
              f"(goal >= {TRAIN_MIN_SPEEDUP:g}x: {'met' if ratio >= TRAIN_MIN_SPEEDUP else 'NOT met'})")
    print(f"(cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.1f})")


_LINE = re.compile(r"^(plain|mitigated): base / this CPU time = ([\d.]+)x, wall time ([\d.]+)x \(per training "
                   r"([\d.]+) -> ([\d.]+) CPU s, ([\d.]+) -> ([\d.]+) wall s\)", re.M)


def parse_results(text: str) -> list[dict[str, Any]]:
    """The ratio lines of this script's output as results-table rows (``run_all.Row(**row)``)."""
    rows = []
    for mode, ratio, wall, cpu_base, cpu_this, wall_base, wall_this in _LINE.findall(text):
        what = "the recipe" if mode == "plain" else "with the `robust` mitigation (consistency twins)"
        rows.append({"benchmark": f"Training speed, demo recipe {what}: this code vs before the speed-up (CPU, 1 thread)",
                     "figure": f"{float(ratio):.2f}x CPU time ({cpu_base} -> {cpu_this} s per training; wall "
                               f"{float(wall):.2f}x, {wall_base} -> {wall_this} s)",
                     "goal": f">= {TRAIN_MIN_SPEEDUP:g}x", "met": float(ratio) >= TRAIN_MIN_SPEEDUP})
    if not rows:
        raise ValueError("could not find a ratio line ('plain: base / this CPU time = ...')")
    return rows


if __name__ == "__main__":
    main()
