#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: bash scripts/test.sh [pytest args]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh || exit 1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# --dist loadfile: the tests of one file share a worker, so module fixtures (one SLURM cluster, one server) start once
python -m pytest -n 2 --dist loadfile --durations=15 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests; treating that as a failure" >&2
fi
exit "$rc"
