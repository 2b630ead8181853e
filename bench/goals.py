"""The benchmarks' goals, in one place: each bench script prints its verdict against them and
run_all.py writes them into RESULTS.md. Every goal is a ratio or a bound measured side by side in one
run of its script (see README.md)."""

HPQA_MAX_OVERHEAD = 0.03         # bench_hpqa.py: HPQA fwd+bwd time / last-token head's, minus one
INFER_MIN_OVERLAP = 0.9          # bench_infer.py: infer videos/s / the slower of decode-only and model-only
VIDEO_MIN_SPEEDUP = 1.5          # bench_video.py: our reader's videos/s / plain PyAV decoding every frame
PAIRING_MAX_CPU_SECONDS = 10.0   # bench_pairing.py: CPU seconds of `labels`, and of `pairs`, on 1 M rows
PAIRING_MAX_MEMORY_MIB = 2048.0  # bench_pairing.py: peak resident memory of each of those stages
TRAIN_MIN_PAIRS_RATIO = 4.0      # bench_train.py: pairs/s of `--pairing in_batch` / `--pairing explicit`
GPU_MIN_MFU = 0.40               # GPU only (not run on CPU): model FLOP utilisation of a 1B training step
