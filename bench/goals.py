"""The benchmarks' goals, in one place: each bench script prints its verdict against them and
run_all.py writes them into RESULTS.md. Every goal is a ratio or a bound measured side by side in one
run of its script (see README.md)."""

HPQA_MAX_FLOP_SHARE = 0.001      # bench_hpqa.py: HPQA head's counted fwd+bwd FLOPs / the LM step's (last-token head)
HPQA_MAX_TIME_SHARE = 0.01       # bench_hpqa.py: HPQA head's time (heads timed alone) / the LM step's
INFER_MIN_OVERLAP = 0.95         # bench_infer.py: infer videos/s / the slower of decode-only and model-only
VIDEO_MIN_SPEEDUP = 1.5          # bench_video.py: our reader's videos/s / plain PyAV decoding every frame
PAIRING_MAX_CPU_SECONDS = 10.0   # bench_pairing.py: CPU seconds of `labels`, and of `pairs`, on 1 M rows
PAIRING_MAX_MEMORY_MIB = 2048.0  # bench_pairing.py: peak resident memory of each of those stages
TRAIN_MIN_PAIRS_RATIO = 4.0      # bench_train.py: pairs/s of `--batching in_batch` / `--batching pairs_file`
TRAIN_TARGET_ACCURACY = 0.70     # bench_train.py: the validation pair accuracy timed to (demo recipe)
TRAIN_MIN_TTA_RATIO = 3.0        # bench_train.py: seconds to that accuracy, pairs_file / in_batch
TRAIN_MIN_SPEEDUP = 1.5          # bench_train_speed.py: CPU seconds of a demo training, before the speed-up / now
GPU_MIN_MFU = 0.40               # bench_gpu.py (CUDA only): best model FLOP utilisation of a training step
SERVE_MIN_RATIO = 0.9            # bench_serve.py: server items/s at 16 clients / in-process batched items/s
SERVE_REAL_SIZE_MIN_RATIO = 0.9  # bench_serve.py: /compute items/s on Flow-Factory payloads (81 PNG frames of
#                                  832x480) / in-process score_frames items/s on the same frames
