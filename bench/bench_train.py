"""Benchmark `solireward train` on CPU: pair efficiency of in-batch pairing, and the backends.

Builds (once, in ``--workdir``) a demo data set, its phy_deform pairs and a tiny Qwen2-VL, then runs
`solireward train` as a subprocess per setting and reads ``metrics.jsonl``. Times are the sums of
the per-step ``step_time`` after ``--skip`` warm-up steps (start-up, model loading and the final
evaluation excluded), so every setting is measured on the same kind of steady-state steps.

1. Pairs per second, ``--pairing in_batch`` (``--videos`` videos scored per step, every Pass x Fail
   and Pass x Pass pair among them trained) vs ``--pairing explicit`` (``--videos / 2`` pairs of the
   pair file per step, each distinct video scored once, so at most as many videos per step).
   Goal: in_batch >= ``TRAIN_MIN_PAIRS_RATIO`` x explicit (bench/goals.py).
2. Step time with ``--videos / 2`` videos per process: one process, 2-process DDP (torchrun, gloo)
   and 2-process DeepSpeed ZeRO-2 (torchrun, gloo). The 2-process runs train twice the videos
   per step; on a 2-core machine they also compete with each other for the cores.

    python bench/bench_train.py [--workdir DIR] [--steps 30] [--skip 3] [--videos 16] [--num_frames 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from goals import TRAIN_MIN_PAIRS_RATIO

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: object, nproc: int = 1) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] \
        if nproc > 1 else [sys.executable]
    cmd = [*launcher, "-m", "solireward.cli", *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-4000:]}")


def prepare(workdir: Path) -> tuple[Path, Path]:
    """Demo data (30 prompts x 8 videos), its pairs and a tiny Qwen2-VL; reused when present."""
    pairs, model = workdir / "pairs", workdir / "tiny"
    if not (pairs / "train.json").is_file():
        _cli("demo-data", "--output_dir", workdir / "demo", "--num_prompts", 30, "--videos_per_prompt", 8)
        _cli("labels", "--input", workdir / "demo" / "annotations.csv", "--output", workdir / "labels.jsonl")
        _cli("pairs", "--labels", workdir / "labels.jsonl", "--task", "phy_deform", "--output_dir", pairs)
    if not (model / "config.json").is_file():
        _cli("tiny-model", "--model_type", "Qwen2-VL", "--output_dir", model, "--seed", 0)
    return pairs, model


def train(workdir: Path, name: str, pairs: Path, model: Path, args: argparse.Namespace, *extra: object,
          nproc: int = 1) -> dict[str, float]:
    """One run; returns steady-state seconds per step, videos and pairs per step."""
    out = workdir / "runs" / name
    if out.exists():
        import shutil

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="folder for data, model and runs (default: temp)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--skip", type=int, default=3, help="warm-up steps left out of the timing")
    parser.add_argument("--videos", type=int, default=16, help="videos per step of the in_batch run")
    parser.add_argument("--num_frames", type=int, default=8, help="frames per video")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_train."))
    workdir.mkdir(parents=True, exist_ok=True)
    pairs, model = prepare(workdir)

    half = args.videos // 2
    in_batch = train(workdir, "in_batch", pairs, model, args, "--per_device_train_batch_size", args.videos)
    explicit = train(workdir, "explicit", pairs, model, args, "--pairing", "explicit",
                     "--per_device_train_batch_size", half)
    print(f"\n1. pair efficiency ({args.num_frames} frames, 56x56, tiny Qwen2-VL, 1 process)")
    print(f"{'pairing':<10} {'videos/step':>11} {'pairs/step':>10} {'s/step':>7} {'pairs/s':>8}")
    for name, r in (("in_batch", in_batch), ("explicit", explicit)):
        print(f"{name:<10} {r['videos']:>11.1f} {r['pairs']:>10.1f} {r['s_per_step']:>7.3f} {r['pairs_per_s']:>8.1f}")
    ratio = in_batch["pairs_per_s"] / explicit["pairs_per_s"]
    print(f"in_batch / explicit pairs per second: {ratio:.2f}x (goal >= {TRAIN_MIN_PAIRS_RATIO:g}x: "
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
    print(f"(cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
