#!/usr/bin/env bash
# Set up (first run only) and run the demo study end to end: bash scripts/demo.sh [snakemake args]
set -euo pipefail
cd "$(dirname "$0")/.."
SOLIREWARD_EXTRAS=workflow source scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
snakemake --cores all "$@"
# the browsable, self-contained HTML report of the run (tables, figures, configs); open it in a browser
snakemake "$@" --report results/demo/report.html
