#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests and for trying workflow/profiles/slurm.
#
#   bash scripts/slurm-local.sh start [DIR]   # install slurm-wlm + munge when missing (root + apt-get),
#                                             # write DIR/slurm.conf, start munged, slurmctld and slurmd,
#                                             # wait until the node is idle; prints SLURM_CONF=DIR/slurm.conf
#   export SLURM_CONF=DIR/slurm.conf          # then sbatch/squeue/scontrol/snakemake use this cluster
#   bash scripts/slurm-local.sh stop [DIR]    # cancel its jobs, stop exactly the daemons start started
#
# DIR (default: ${TMPDIR:-/tmp}/solireward-slurm) holds the configuration, the munge key and socket, the
# daemons' state, logs and pid files. One file outside it: while the cluster runs, /etc/slurm/slurm.conf
# is a link to DIR/slurm.conf (start refuses when that file exists otherwise), because the executor plugin
# drops SLURM_CONF from a job step's environment, so `srun` inside jobs reads only the default path. Two partitions, `debug` (the default)
# and `long`, hold this machine (`nproc` CPUs, 95% of its memory); no accounting storage (query jobs with squeue/scontrol;
# finished jobs stay visible to `scontrol show job` for an hour, MinJobAge). Runs as root: slurmd starts
# jobs as their submitting user. Exit status: 0 done, 2 usage, 3 SLURM cannot be installed here
# (not root or no apt-get), 1 anything else (the daemons' logs in DIR say why).
set -euo pipefail

usage() { echo "usage: $0 start|stop [DIR]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
action=$1
dir=${2:-${TMPDIR:-/tmp}/solireward-slurm}
partition=debug

die() { echo "slurm-local: $*" >&2; exit 1; }

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "slurm-local: slurm-wlm and munge are not installed and cannot be (needs root and apt-get)" >&2
    exit 3
  fi
  echo "slurm-local: installing slurm-wlm and munge with apt-get" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge; } >&2; then
    echo "slurm-local: apt-get could not install slurm-wlm and munge" >&2
    exit 3
  fi
}

# pid recorded in DIR/NAME.pid, if that process still runs
running_pid() {
  local file=$dir/$1.pid pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# the first TCP port from $1 on that nothing listens on (a daemon already using the default is left alone)
free_port() {
  local port=$1
  while command -v ss >/dev/null && [ -n "$(ss -ltnH "sport = :$port")" ]; do port=$((port + 1)); done
  echo "$port"
}

write_config() {
  local host cpus mem_mb ctld_port slurmd_port
  ctld_port=$(free_port 6817)
  slurmd_port=$(free_port $((ctld_port + 1)))
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  chmod 700 "$dir"
  cat > "$dir/slurm.conf" <<EOF
# written by scripts/slurm-local.sh: a one-node cluster ($cpus CPUs, $mem_mb MB) for tests
ClusterName=solireward-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldParameters=enable_configless
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=3600
KillWait=30
InactiveLimit=0
SchedulerParameters=bf_interval=1,sched_min_interval=100000
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$partition Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=$host MaxTime=INFINITE State=UP
EOF
}

default_conf=/etc/slurm/slurm.conf

start() {
  install_packages
  if running_pid slurmctld >/dev/null || running_pid slurmd >/dev/null || running_pid munged >/dev/null; then
    die "a cluster started from $dir is still running; run: $0 stop $dir"
  fi
  if [ -e "$default_conf" ] || [ -L "$default_conf" ]; then
    die "$default_conf exists ($(readlink "$default_conf" || echo 'a SLURM configuration')); stop that cluster first"
  fi
  write_config
  export SLURM_CONF=$dir/slurm.conf
  mkdir -p "$(dirname "$default_conf")"
  ln -s "$SLURM_CONF" "$default_conf"
  if [ ! -s "$dir/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge.key"
  fi
  munged --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed" || die "munged did not start (see $dir/log/munged.log)"
  rm -f "$dir/state/"*  # a fresh controller state: no jobs or node states from an earlier cluster
  slurmctld -f "$SLURM_CONF" || die "slurmctld did not start (see $dir/log/slurmctld.log)"
  slurmd -f "$SLURM_CONF" || die "slurmd did not start (see $dir/log/slurmd.log)"
  local state=""
  for _ in $(seq 120); do
    state=$(sinfo -h -p "$partition" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.5
  done
  [ "$state" = idle ] || die "the node is not idle after 60 s (state: '${state:-none}'; see $dir/log/)"
  echo "slurm-local: partition $partition is up ($(nproc) CPUs); export SLURM_CONF=$SLURM_CONF" >&2
  echo "SLURM_CONF=$SLURM_CONF"
}

stop() {
  export SLURM_CONF=$dir/slurm.conf
  if running_pid slurmctld >/dev/null; then
    scancel --full --quiet --partition "$partition" 2>/dev/null || true
    for _ in $(seq 60); do
      [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  local name pid
  for name in slurmd slurmctld munged; do
    pid=$(running_pid "$name") || continue
    kill -TERM "$pid"
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  done
  if [ "$(readlink "$default_conf" 2>/dev/null)" = "$dir/slurm.conf" ]; then rm -f "$default_conf"; fi
  echo "slurm-local: stopped the cluster of $dir" >&2
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
