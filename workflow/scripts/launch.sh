# Sourced by the rules that may run on several processes (train.sh, infer): sets the array `launch` to the
# command that starts `-m solireward.cli ...`: plain python for one process, torchrun for several on this
# machine, and under SLURM one srun task per node, each a torchrun agent meeting at a c10d rendezvous on
# the allocation's first node.
#
#   source workflow/scripts/launch.sh PROCS_PER_NODE NODES GPUS_PER_NODE; "${launch[@]}" -m solireward.cli ...
procs=$1 nodes=$2 gpus=$3
if [ -n "${SLURM_JOB_ID:-}" ] && [ $(( nodes * procs )) -gt 1 ]; then
  # one srun task per node, each a torchrun agent; the first node of the allocation hosts the rendezvous
  host=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
  port=$(( 20000 + SLURM_JOB_ID % 20000 ))
  gpu_flags=()
  [ "$gpus" -gt 0 ] && gpu_flags=(--gpus-per-node="$gpus")
  launch=(srun --overlap --kill-on-bad-exit=1 --nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1
          "${gpu_flags[@]}" python -m torch.distributed.run --nnodes="$nodes" --nproc_per_node="$procs"
          --rdzv_backend=c10d --rdzv_endpoint="$host:$port" --rdzv_id="$SLURM_JOB_ID")
elif [ "$procs" -gt 1 ]; then
  launch=(python -m torch.distributed.run --standalone --nproc_per_node="$procs")
else
  launch=(python)
fi
