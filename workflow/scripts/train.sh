#!/usr/bin/env bash
# The train rule's job: resume-or-start `solireward train` in MODEL.partial, launched as one process,
# torchrun on this machine, or under SLURM one torchrun per node (srun) meeting at a c10d rendezvous;
# when training ends, MODEL.partial becomes MODEL.
#
#   bash workflow/scripts/train.sh MODEL LOG THREADS PROCS_PER_NODE NODES GPUS_PER_NODE [solireward train flags]
#
# Resume: the trainer always runs with --resume, so a job that was stopped (SLURM time limit or
# preemption: the trainer checkpoints on SIGTERM/SIGUSR1 and exits 75) continues from the newest
# checkpoint in MODEL.partial when Snakemake retries it. MODEL.partial/job_inputs.txt records the flags
# and the size and time of every file they name: a folder left by a run with other inputs is started
# afresh. A resumed run's log starts with the earlier attempts' logs. Exit status: the trainer's
# (75 = stopped by a signal after a checkpoint; also when a signal stopped torchrun).
set -uo pipefail
[ $# -ge 6 ] || { echo "usage: $0 MODEL LOG THREADS PROCS_PER_NODE NODES GPUS_PER_NODE [train flags]" >&2; exit 2; }
model=$1 log=$2 threads=$3 procs=$4 nodes=$5 gpus=$6
shift 6
work=$model.partial

stamp=$(printf '%s\n' "$@"; for arg in "$@"; do [ -e "$arg" ] && stat -L -c '%n %s %Y' "$arg"; done)
exec >"$log" 2>&1
if [ -d "$work" ] && [ "$(cat "$work/job_inputs.txt" 2>/dev/null)" = "$stamp" ]; then
  cat "$work/earlier_attempts.log" 2>/dev/null  # Snakemake deletes a job's log before each attempt
  echo "train.sh: resuming in $work"
else
  rm -rf "$work"
fi
mkdir -p "$work"
printf '%s\n' "$stamp" >"$work/job_inputs.txt"
echo "train.sh: $(date -u +%FT%TZ) on $(hostname), SLURM job ${SLURM_JOB_ID:-none}, $nodes node(s) x $procs process(es)"

# the job's threads shared by its processes; Snakemake sets every one of these variables to the job's threads
per_proc=$(( threads / procs > 0 ? threads / procs : 1 ))
export OMP_NUM_THREADS=$per_proc MKL_NUM_THREADS=$per_proc OPENBLAS_NUM_THREADS=$per_proc GOTO_NUM_THREADS=$per_proc \
  VECLIB_MAXIMUM_THREADS=$per_proc NUMEXPR_NUM_THREADS=$per_proc
source "$(dirname "$0")/launch.sh" "$procs" "$nodes" "$gpus"

stopped=""
# runs once the trainer has exited (bash waits for its foreground command), so this shell outlives the signal
trap 'stopped=yes; echo "train.sh: stop signal received"' TERM USR1
echo "train.sh: ${launch[*]} -m solireward.cli train ..."
"${launch[@]}" -m solireward.cli train "$@" --output_dir "$work" --resume true
status=$?
if [ "$status" -eq 0 ]; then
  rm -f "$work/job_inputs.txt" "$work/earlier_attempts.log"
  rm -rf "$model"
  mv "$work" "$model"
  exit 0
fi
if [ -n "$stopped" ]; then
  echo "train.sh: stopped by a signal (status $status); a retry resumes from the newest checkpoint in $work"
  status=75
fi
cp "$log" "$work/earlier_attempts.log"
exit "$status"
