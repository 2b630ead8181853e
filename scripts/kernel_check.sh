#!/usr/bin/env bash
# Does the demo reach the same conclusions on another CPU kernel path? bash scripts/kernel_check.sh [snakemake args]
#
# Runs the demo study twice: with this machine's default kernels (results/demo/, reused when already run) and
# with the kernels a machine without AVX-512 runs (PyTorch, oneDNN and MKL capped at AVX2; results/demo_avx2/),
# then `solireward compare-reports` lists the conclusions that contradict (a goal met in one and missed in the
# other, a difference higher in one and lower in the other). Exit 1 when any does. About twice the demo's time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
snakemake --cores all "$@"
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
  snakemake --cores all --config study=demo_avx2 "$@"
python -m solireward.cli compare-reports --first results/demo/report --second results/demo_avx2/report
