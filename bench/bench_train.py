"""Benchmark `solireward train` on CPU: pair efficiency of in-batch pairing, and the backends.

Builds (once, in ``--workdir``) a demo data set, its phy_deform pairs and a tiny Qwen2-VL, then runs
`solireward train` as a subprocess per setting and reads ``metrics.jsonl``. Times are the sums of
the per-step ``step_time`` after ``--skip`` warm-up steps (start-up, model loading and the final
evaluation excluded), so every setting is measured on the same kind of steady-state steps.

1. Pairs per second, ``--batching in_batch`` (``--videos`` videos scored per step, every Pass x Fail
   and Pass x Pass pair among them trained) vs ``--batching pairs_file`` (``--videos / 2`` pairs of the
   pair file per step, each distinct video scored once, so at most as many videos per step).
   Goal: in_batch >= ``TRAIN_MIN_PAIRS_RATIO`` x pairs_file (bench/goals.py).
2. Step time with ``--videos / 2`` videos per process: one process, 2-process DDP (torchrun, gloo)
   and 2-process DeepSpeed ZeRO-2 (torchrun, gloo). The 2-process runs train twice the videos
   per step; on a 2-core machine they also compete with each other for the cores.
3. Time to accuracy: wall-clock seconds (the eval rows' ``time``, since the process started) until
   the validation pair accuracy first reaches ``TRAIN_TARGET_ACCURACY``, ``--batching in_batch`` (16
   videos per step) vs ``pairs_file`` (8 pairs per step, so at most as many videos), on the demo
   recipe (config/demo_train.yaml: tiny Qwen2-VL, lr 1e-3, 16 frames at 56x56) and the demo data of
   its learnability test (140 prompts, split 0.6 0.2 0.2), evaluating every ``--tta_eval_steps``
   steps. The two runs train at the same time, one core each (so background load hits both alike),
   with the same schedule (``--tta_max_steps``), and each stops once it reaches the target;
   pairs_file is capped at ``--tta_cap`` x in_batch's time (not reaching the target is reported as
   "not reached within the cap", a ratio of at least the cap). The steps to the target are printed
   too (they do not depend on the load). Goal: in_batch reaches it >= ``TRAIN_MIN_TTA_RATIO`` x
   sooner (bench/goals.py).

    python bench/bench_train.py [--workdir DIR] [--steps 30] [--skip 3] [--videos 16] [--num_frames 8]
                                [--tta_eval_steps 25] [--tta_max_steps 1500] [--tta_cap 3] [--no_tta | --only_tta]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from goals import TRAIN_MIN_PAIRS_RATIO, TRAIN_MIN_TTA_RATIO, TRAIN_TARGET_ACCURACY

REPO = Path(__file__).resolve().parents[1]


def _command(*args: object, nproc: int = 1) -> tuple[list[str], dict[str, str]]:
    """The `solireward` command line (under torchrun when `nproc` > 1) and its environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] \
        if nproc > 1 else [sys.executable]
    return [*launcher, "-m", "solireward.cli", *map(str, args)], env


def _cli(*args: object, nproc: int = 1) -> None:
    cmd, env = _command(*args, nproc=nproc)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-4000:]}")


def prepare(workdir: Path) -> Path:
    """Demo data (30 prompts x 8 videos) and its pairs; reused when present."""
    pairs = workdir / "pairs"
    if not (pairs / "train.json").is_file():
        _cli("demo-data", "--output_dir", workdir / "demo", "--num_prompts", 30, "--videos_per_prompt", 8)
        _cli("labels", "--input", workdir / "demo" / "annotations.csv", "--output", workdir / "labels.jsonl")
        _cli("pairs", "--labels", workdir / "labels.jsonl", "--task", "phy_deform", "--output_dir", pairs)
    return pairs


def tiny_model(workdir: Path) -> Path:
    """A tiny Qwen2-VL (seed 0); reused when present."""
    model = workdir / "tiny"
    if not (model / "config.json").is_file():
        _cli("tiny-model", "--model_type", "Qwen2-VL", "--output_dir", model, "--seed", 0)
    return model


def train(workdir: Path, name: str, pairs: Path, model: Path, args: argparse.Namespace, *extra: object,
          nproc: int = 1) -> dict[str, float]:
    """One run; returns steady-state seconds per step, videos and pairs per step."""
    out = workdir / "runs" / name
    if out.exists():
        shutil.rmtree(out)
    _cli("train", "--model_name_or_path", model, "--train_data", pairs / "train.json", "--output_dir", out,
         "--max_steps", args.steps, "--learning_rate", 1e-3, "--warmup_ratio", 0, "--num_frames", args.num_frames,
         "--height", 56, "--width", 56, "--gradient_checkpointing", "false", "--dataloader_num_workers", 1,
         "--cache_frames", "true", "--save_steps", 0, "--eval_steps", 0, "--seed", 0, *extra, nproc=nproc)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["kind"] == "train"][args.skip:]
    seconds = sum(r["step_time"] for r in rows)
    return {"s_per_step": seconds / len(rows), "videos": sum(r["n_videos"] for r in rows) / len(rows),
            "pairs": sum(r["n_pairs"] for r in rows) / len(rows),
            "pairs_per_s": sum(r["n_pairs"] for r in rows) / seconds,
            "videos_per_s": sum(r["n_videos"] for r in rows) / seconds}


def prepare_demo(workdir: Path) -> Path:
    """The learnability test's demo data (140 prompts x 8 videos, pairs split 0.6 0.2 0.2); reused when present."""
    pairs = workdir / "pairs140"
    if not (pairs / "val.json").is_file():
        _cli("demo-data", "--output_dir", workdir / "demo140", "--num_prompts", 140, "--videos_per_prompt", 8,
             "--seed", 0)
        _cli("labels", "--input", workdir / "demo140" / "annotations.csv", "--output", workdir / "labels140.jsonl")
        _cli("pairs", "--labels", workdir / "labels140.jsonl", "--task", "phy_deform", "--output_dir", pairs,
             "--split", 0.6, 0.2, 0.2)
    return pairs


class Run:
    """One `solireward train` run of section 3, in the background: the demo recipe plus `extra` options."""

    def __init__(self, workdir: Path, name: str, pairs: Path, model: Path, args: argparse.Namespace,
                 *extra: object) -> None:
        self.out = workdir / "runs" / f"tta_{name}"
        if self.out.exists():
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True)
        self.cmd, env = _command("train", "--config", REPO / "config" / "demo_train.yaml", "--model_name_or_path",
                                 model, "--train_data", pairs / "train.json", "--eval_data", pairs / "val.json",
                                 "--output_dir", self.out / "model", "--max_steps", args.tta_max_steps,
                                 "--eval_steps", args.tta_eval_steps, "--save_steps", 0, *extra)
        self.log = (self.out / "stderr.txt").open("w")
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.stopped = False

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The complete rows of its metrics.jsonl so far (a line being written is left for the next read)."""
        path = self.out / "model" / "metrics.jsonl"
        rows = []
        for line in path.read_text().splitlines() if path.is_file() else []:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows

    @property
    def clock(self) -> float:
        """Seconds since the run started, by its own rows."""
        return max([r["time"] for r in self.rows], default=0.0)

    @property
    def reached(self) -> dict[str, Any] | None:
        """The first eval row at or above the target accuracy."""
        return next((r for r in self.rows if r["kind"] == "eval" and r["eval_accuracy"] >= TRAIN_TARGET_ACCURACY),
                    None)

    def running(self) -> bool:
        """Whether the run is still going; exits the benchmark if it failed (rather than being stopped)."""
        if self.proc.poll() is None:
            return True
        self.log.close()
        if self.proc.returncode != 0 and not self.stopped:
            sys.exit(f"failed: {' '.join(map(str, self.cmd))}\n{(self.out / 'stderr.txt').read_text()[-4000:]}")
        return False

    def stop(self) -> None:
        """Terminate the run (it reached the target or its cap)."""
        self.stopped = True
        self.proc.terminate()
        self.proc.wait()

    def result(self) -> dict[str, Any]:
        """The eval curve, when the target was reached, the steps and seconds run and the mean step time."""
        rows = self.rows
        train = [r for r in rows if r["kind"] == "train"]
        return {"reached": self.reached, "evals": [r for r in rows if r["kind"] == "eval"],
                "steps": train[-1]["step"] if train else 0, "seconds": self.clock,
                "s_per_step": sum(r["step_time"] for r in train) / max(len(train), 1)}


def time_to_accuracy(workdir: Path, pairs: Path, model: Path, args: argparse.Namespace
                     ) -> tuple[dict[str, Any], dict[str, Any], float | None]:
    """Run in_batch and pairs_file at the same time (one core each, so background load hits both alike) until
    each reaches the target; pairs_file is stopped at ``--tta_cap`` x in_batch's time. Returns both results
    and the cap in seconds (None when in_batch never reached the target)."""
    in_batch = Run(workdir, "in_batch", pairs, model, args)
    pairs_file = Run(workdir, "pairs_file", pairs, model, args, "--batching", "pairs_file",
                   "--per_device_train_batch_size", 8)
    cap_s = None
    try:
        while any([run.running() for run in (in_batch, pairs_file)]):
            time.sleep(1.0)
            for run in (in_batch, pairs_file):
                if run.proc.poll() is None and run.reached is not None:
                    run.stop()
            if in_batch.reached is not None:
                cap_s = args.tta_cap * in_batch.reached["time"]
                if pairs_file.proc.poll() is None and pairs_file.clock > cap_s:
                    pairs_file.stop()
            elif in_batch.proc.poll() is not None and pairs_file.proc.poll() is None:
                pairs_file.stop()  # in_batch ran its steps without reaching the target: nothing to compare with
    finally:
        for run in (in_batch, pairs_file):
            if run.proc.poll() is None:
                run.stop()
    return in_batch.result(), pairs_file.result(), cap_s


def report_time_to_accuracy(in_batch: dict[str, Any], pairs_file: dict[str, Any], cap_s: float | None,
                            args: argparse.Namespace) -> None:
    """Print section 3: each run's eval curve and when it reached the target, then the ratio and the verdict."""
    target = f"{TRAIN_TARGET_ACCURACY:.2f}"
    print(f"\n3. time to validation pair accuracy {target} (demo recipe: tiny Qwen2-VL, lr 1e-3, 16 frames at 56x56; "
          f"140 prompts; eval every {args.tta_eval_steps} steps; schedule of {args.tta_max_steps} steps)")
    print(f"{'batching':<10} {'reached':>7} {'step':>5} {'seconds':>8} {'s/step':>7}  eval accuracy by step")
    for name, r in (("in_batch", in_batch), ("pairs_file", pairs_file)):
        hit = r["reached"]
        curve = " ".join(f"{e['step']}:{e['eval_accuracy']:.2f}" for e in r["evals"])
        step, seconds = (str(hit["step"]), f"{hit['time']:.1f}") if hit else ("-", f">{r['seconds']:.1f}")
        print(f"{name:<10} {'yes' if hit else 'no':>7} {step:>5} {seconds:>8} {r['s_per_step']:>7.3f}  {curve}")
    goal = f"goal >= {TRAIN_MIN_TTA_RATIO:g}x"
    if in_batch["reached"] is None:
        print(f"time to {target}: pairs_file / in_batch = undecided: in_batch not reached within "
              f"{in_batch['steps']} steps ({goal}: not measured)")
    elif pairs_file["reached"] is None:
        bound = pairs_file["seconds"] / in_batch["reached"]["time"]
        print(f"time to {target}: pairs_file / in_batch = not reached within the cap (>= {bound:.2f}x; pairs_file stopped "
              f"after {pairs_file['seconds']:.0f} s, cap {cap_s:.0f} s) ({goal}: "
              f"{'met' if bound >= TRAIN_MIN_TTA_RATIO else 'NOT met'})")
    else:
        ratio = pairs_file["reached"]["time"] / in_batch["reached"]["time"]
        steps = pairs_file["reached"]["step"] / in_batch["reached"]["step"]
        print(f"time to {target}: pairs_file / in_batch = {ratio:.2f}x (steps {steps:.2f}x) ({goal}: "
              f"{'met' if ratio >= TRAIN_MIN_TTA_RATIO else 'NOT met'})")


_TTA_LINE = (r"^time to ([\d.]+): pairs_file / in_batch = (?:([\d.]+)x \(steps ([\d.]+)x\)|not reached within the "
             r"cap \(>= ([\d.]+)x[^)]*\)|(undecided)[^(]*)")


def parse_results(text: str) -> list[dict[str, Any]]:
    """Section 3 of this script's output as results-table rows (``run_all.Row(**row)``): the time-to-accuracy
    ratio against its goal, or "not reached within the cap"."""
    match = re.search(_TTA_LINE, text, re.M)
    if match is None:
        raise ValueError("could not find the time-to-accuracy line ('time to ...: pairs_file / in_batch = ...')")
    target, ratio, steps, bound, undecided = match.groups()
    times = dict(re.findall(r"^(in_batch|pairs_file)\s+(?:yes|no)\s+\S+\s+(>?[\d.]+)\s", text, re.M))
    detail = f"in_batch {times.get('in_batch', '?')} s, pairs_file {times.get('pairs_file', '?')} s"
    row: dict[str, Any] = {"benchmark": f"Time to validation pair accuracy {target}: `--batching in_batch` vs "
                                        "`pairs_file` (demo recipe, CPU)",
                           "goal": f">= {TRAIN_MIN_TTA_RATIO:g}x sooner"}
    if undecided:
        return [{**row, "figure": f"in_batch did not reach {target} ({detail})", "met": None,
                 "result": "not measured: in_batch not reached within the cap"}]
    if ratio is None:
        return [{**row, "figure": f"pairs_file not reached within the cap (>= {float(bound):.2f}x; {detail})",
                 "met": float(bound) >= TRAIN_MIN_TTA_RATIO}]
    return [{**row, "figure": f"{float(ratio):.2f}x ({detail}; {float(steps):.2f}x the steps)",
             "met": float(ratio) >= TRAIN_MIN_TTA_RATIO}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="folder for data, model and runs (default: temp)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--skip", type=int, default=3, help="warm-up steps left out of the timing")
    parser.add_argument("--videos", type=int, default=16, help="videos per step of the in_batch run")
    parser.add_argument("--num_frames", type=int, default=8, help="frames per video (sections 1 and 2)")
    parser.add_argument("--tta_eval_steps", type=int, default=25, help="section 3: evaluate every N steps")
    parser.add_argument("--tta_max_steps", type=int, default=1500,
                        help="section 3: steps of both runs' learning-rate schedule, and their cap")
    parser.add_argument("--tta_cap", type=float, default=3.0,
                        help="section 3: stop pairs_file after this many times in_batch's time to the target")
    parser.add_argument("--no_tta", action="store_true", help="skip section 3 (time to accuracy)")
    parser.add_argument("--only_tta", action="store_true", help="run section 3 alone")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_train."))
    workdir.mkdir(parents=True, exist_ok=True)
    model = tiny_model(workdir)
    if not args.only_tta:
        pair_efficiency_and_backends(workdir, prepare(workdir), model, args)
    if not args.no_tta:
        report_time_to_accuracy(*time_to_accuracy(workdir, prepare_demo(workdir), model, args), args)
    print(f"(cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.1f})")


def pair_efficiency_and_backends(workdir: Path, pairs: Path, model: Path, args: argparse.Namespace) -> None:
    """Sections 1 and 2: pairs per second of the two batchings, and the step time of the backends."""
    half = args.videos // 2
    in_batch = train(workdir, "in_batch", pairs, model, args, "--per_device_train_batch_size", args.videos)
    pairs_file = train(workdir, "pairs_file", pairs, model, args, "--batching", "pairs_file",
                     "--per_device_train_batch_size", half)
    print(f"\n1. pair efficiency ({args.num_frames} frames, 56x56, tiny Qwen2-VL, 1 process)")
    print(f"{'batching':<10} {'videos/step':>11} {'pairs/step':>10} {'s/step':>7} {'pairs/s':>8}")
    for name, r in (("in_batch", in_batch), ("pairs_file", pairs_file)):
        print(f"{name:<10} {r['videos']:>11.1f} {r['pairs']:>10.1f} {r['s_per_step']:>7.3f} {r['pairs_per_s']:>8.1f}")
    ratio = in_batch["pairs_per_s"] / pairs_file["pairs_per_s"]
    print(f"in_batch / pairs_file pairs per second: {ratio:.2f}x (goal >= {TRAIN_MIN_PAIRS_RATIO:g}x: "
          f"{'met' if ratio >= TRAIN_MIN_PAIRS_RATIO else 'NOT met'})")

    single = train(workdir, "single", pairs, model, args, "--per_device_train_batch_size", half)
    ddp = train(workdir, "ddp", pairs, model, args, "--per_device_train_batch_size", half, nproc=2)
    zero2 = train(workdir, "zero2", pairs, model, args, "--per_device_train_batch_size", half,
                  "--deepspeed", REPO / "config" / "deepspeed" / "zero2.json", nproc=2)
    print(f"\n2. backends ({half} videos per process and step, in_batch)")
    print(f"{'backend':<22} {'videos/step':>11} {'s/step':>7} {'videos/s':>9} {'step time vs 1 proc':>20}")
    for name, r in (("1 process", single), ("2-process DDP (gloo)", ddp), ("2-process ZeRO-2", zero2)):
        print(f"{name:<22} {r['videos']:>11.1f} {r['s_per_step']:>7.3f} {r['videos_per_s']:>9.1f} "
              f"{r['s_per_step'] / single['s_per_step']:>19.2f}x")


if __name__ == "__main__":
    main()
