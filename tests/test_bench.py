"""Smoke tests of the benchmark scripts that must work first time on a machine this suite never sees
(bench_gpu.py on a GPU), at tiny sizes on the CPU, and of run_all.py's parsing and report of them."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import bench_gpu  # noqa: E402
import bench_processor  # noqa: E402
import bench_twins  # noqa: E402
import run_all  # noqa: E402


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0), ("NVIDIA H200", 989.0),
    ("NVIDIA GH200 480GB", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA L40S", 362.0), ("NVIDIA L4", 121.0),
    ("NVIDIA GeForce RTX 4090", 165.0), ("Tesla T4", None)])
def test_peak_rate_by_device_name(name: str, peak: float | None) -> None:
    assert bench_gpu.peak_tflops(name) == peak


def test_real_shape_is_internvl3_1b() -> None:
    shape = bench_gpu.INTERNVL3_1B
    assert (shape.frames, shape.image_size, shape.tokens_per_frame) == (8, 448, 256)
    assert (shape.text["num_hidden_layers"], shape.text["hidden_size"], shape.vision["hidden_size"]) == (24, 896, 1024)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the bench would measure it")
def test_gpu_bench_without_gpu_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_gpu.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("no CUDA GPU available")
    assert run_all.parse_gpu(out) == []
    assert run_all.gpu_section(out)[0].startswith("No GPU was present in this run")


@pytest.mark.slow
def test_gpu_bench_tiny_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--device", "cpu", "--tiny", "--steps", "1", "--warmup", "0", "--infer_batches", "1", "2",
            "--backends", "single", "--peak_tflops", "1"]
    assert bench_gpu.main(args) == 0
    out = capsys.readouterr().out
    section = run_all.gpu_section(out)
    assert sum(line.startswith("| sdpa | o") for line in section) == 2  # checkpointing off and on
    assert sum(line.startswith("| sdpa | ") and "| - |" in line for line in section) == 4  # no CUDA peak memory
    assert any(line.startswith("- FLOPs per video:") for line in section)
    mfu_row, infer_row = run_all.parse_gpu(out)
    assert mfu_row.goal == f">= {run_all.goals.GPU_MIN_MFU * 100:g} % MFU" and mfu_row.met is False
    assert "best MFU" in mfu_row.figure and "cpu" in mfu_row.benchmark
    assert infer_row.figure.startswith("videos/s at batch 1 / 2: ")


@pytest.mark.slow
def test_gpu_bench_zero2_on_cpu() -> None:
    """The ZeRO-2 rows: DeepSpeed's engine in a single-process group, built by the trainer's backend code.

    In its own process: DeepSpeed's process group must not outlive the test in a shared pytest worker."""
    pytest.importorskip("deepspeed")
    args = ["--device", "cpu", "--tiny", "--steps", "1", "--warmup", "0", "--infer_batches", "2",
            "--backends", "zero2"]
    run = subprocess.run([sys.executable, str(BENCH / "bench_gpu.py"), *args], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines()
            if line.startswith("| sdpa |") and "ZeRO-2 (DeepSpeed, 1 process)" in line]
    assert len(rows) == 2 and not any("not measured" in row for row in rows)


def test_flop_count_is_linear_in_layers() -> None:
    """The processor bench extrapolates FLOPs (and time) per layer: counts must grow by equal steps."""
    shape = bench_gpu.TINY
    processor = bench_gpu.build_processor(shape)
    inputs = bench_gpu.video_inputs(shape, processor)
    counts = []
    for layers in (1, 2, 3):
        model = bench_gpu.build_model(shape.with_layers(layers, layers), processor, "sdpa", torch.float32,
                                      torch.device("cpu"))
        flops = bench_gpu.count_flops(model, inputs, torch.device("cpu"), bench_processor.contextlib.nullcontext)
        assert 0 < flops.forward < flops.train and flops.attention_share > 0
        counts.append(flops.train)
    assert counts[2] - counts[1] == counts[1] - counts[0] > 0


def test_processor_bench_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--tiny", "--repeats", "1", "--model_repeats", "1", "--steps", "1", "--batch_size", "2"]
    assert bench_processor.main(args) == 0
    cost, loop = run_all.parse_processor(capsys.readouterr().out)
    assert "ms (" in cost.figure and "workers to feed" in cost.figure
    assert "0 workers:" in loop.figure and "2 workers:" in loop.figure


def test_twins_bench_tiny(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """bench_twins.py at a tiny size builds the batches as training does and prints both comparisons."""
    assert bench_twins.main(["--tiny", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "batch preparation: plain (cached)" in out and "ms a twin)" in out
    assert "forward + backward: originals" in out and "padded length: originals" in out
    assert "of which the twins' pass" in out


def test_report_writes_only_measured_rows() -> None:
    bench = next(b for b in run_all.BENCHES if b.name == "gpu")
    out = "no CUDA GPU available: bench_gpu.py measured nothing\n"
    outcome = run_all.Outcome(bench, ["python", "bench_gpu.py"], 0, 1.0, out, 0.5, 0.5, run_all.parse_gpu(out))
    text = run_all.render({"CPU": "test"}, [outcome], "small", datetime.datetime(2026, 1, 1))
    assert "not measured" not in text and "HPQA: on this virtual machine" not in text
    assert "No GPU was present in this run" in text


@pytest.mark.slow
def test_infer_bench_tiny_rows() -> None:
    """bench_infer.py at a tiny size: both worker settings are measured and run_all turns them into its rows."""
    args = ["--videos", "8", "--unique", "2", "--frames", "16", "--size", "64", "--batch_size", "4",
            "--num_workers", "1", "--shared_workers", "2", "--repeats", "1"]
    run = subprocess.run([sys.executable, str(BENCH / "bench_infer.py"), *args], capture_output=True, text=True,
                         timeout=600, cwd=BENCH, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    goal_row, shared_row = run_all.parse_infer(run.stdout)
    assert goal_row.benchmark.startswith("Inference pipeline overlap (1 decoding worker(s)")
    assert goal_row.met is (float(goal_row.figure.split(" x ")[0]) >= run_all.goals.INFER_MIN_OVERLAP)
    assert "decode-only (1 workers)" in goal_row.figure and "infer (1 workers)" in goal_row.figure
    assert "decode-only (2 workers)" in shared_row.figure and "ceiling from CPU work" in shared_row.figure
    assert shared_row.met is None
    assert run.stdout.count("\ncause: ") == 1


def test_train_speed_report_parses_into_rows(capsys: pytest.CaptureFixture[str]) -> None:
    """bench_train_speed.py: what `report` prints, run_all parses (ratio of CPU times, verdict per mode)."""
    import argparse

    import bench_train_speed

    assert "--consistency_loss_coeff" in bench_train_speed.mitigation_flags()  # the study's twins are on
    trees = {"base abc": Path("a"), "this def": Path("b")}
    results = {("plain", "base abc"): [{"wall": 60.0, "cpu": 58.0, "accuracy": 0.7}],
               ("plain", "this def"): [{"wall": 30.0, "cpu": 29.0, "accuracy": 0.7}],
               ("mitigated", "base abc"): [{"wall": 150.0, "cpu": 140.0, "accuracy": 0.7}],
               ("mitigated", "this def"): [{"wall": 120.0, "cpu": 112.0, "accuracy": 0.7}]}
    bench_train_speed.report(results, argparse.Namespace(steps=400, repeats=1, modes=["plain", "mitigated"]), trees)
    plain, mitigated = run_all.parse_train_speed(capsys.readouterr().out)
    assert plain.figure.startswith("2.00x CPU time (58.0 -> 29.0 s per training") and plain.met is True
    assert mitigated.figure.startswith("1.25x CPU time") and mitigated.met is False
