#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for `sweep submit` and its tests.
#
#   scripts/slurm-local.sh up     start munged, slurmctld and slurmd (as root, no systemd)
#   scripts/slurm-local.sh down   stop what `up` started and remove their pid files
#   scripts/slurm-local.sh status print the node's state
#
# Uses Debian's slurm-wlm and munge packages (scripts/setup.sh installs them). Everything the
# daemons write (config, saved state, spool, logs, pid files) lives under $MIXLAB_SLURM_DIR
# (default /tmp/mixlab-slurm); the client commands (sbatch, squeue, ...) read the config from
# /etc/slurm/slurm.conf, which `up` writes only when it is absent or was written by this script.
# Both commands are idempotent: `up` on a running cluster and `down` on a stopped one do nothing.
# `up` starts slurmctld with a clean job state (-c): jobs of an earlier `up` are forgotten.
# Never purge the slurm packages to "stop" the cluster: that also removes LibTorch (libgloo0).
set -euo pipefail

STATE=${MIXLAB_SLURM_DIR:-/tmp/mixlab-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by mixlab scripts/slurm-local.sh"
NODE=$(hostname -s)

die() {
  echo "slurm-local.sh: $*" >&2
  exit 2
}

alive() { # pid file
  [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_pidfile() { # pid file, name
  if alive "$1"; then
    local pid
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped $2 (pid $pid)"
  fi
  rm -f "$1"
}

write_conf() {
  local cpus mem_mb
  cpus=$(nproc)
  # Slurm drains a node that reports less memory than configured: stay under the real size.
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  install -d -o slurm -g slurm "$STATE" "$STATE/ctld" "$STATE/log"
  install -d "$STATE/spool"
  cat >"$STATE/slurm.conf" <<EOF
$MARK (state under $STATE)
ClusterName=mixlab
SlurmctldHost=$NODE
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default per-CPU memory every job asks for the whole node: arrays would run serially.
DefMemPerCPU=1000
ReturnToService=2
# Look at pending jobs every 2 s (default 60 and 30): a requeued task starts when it may.
SchedulerParameters=sched_interval=2,bf_interval=2
KillWait=15
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.log
NodeName=$NODE CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  if [[ -e $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not replacing it"
  fi
  install -d /etc/slurm
  cp "$STATE/slurm.conf" "$CONF"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
  # The package's init script refuses to run without systemd; munged needs /run/munge.
  install -d -o munge -g munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- munged
  touch "$STATE/munged.ours"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  die "munged did not start"
}

wait_idle() {
  local state=""
  for _ in $(seq 150); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
    case $state in
      idle | mixed | allocated) echo "slurm: node $NODE $state"; return ;;
      down* | drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.2
  done
  die "node $NODE did not become idle (state '$state'); see $STATE/log/"
}

up() {
  [[ $(id -u) -eq 0 ]] || die "up needs root (it starts the daemons by hand)"
  command -v slurmctld >/dev/null || die "slurmctld not found: install slurm-wlm (scripts/setup.sh)"
  install -d "$STATE"
  write_conf
  start_munge
  if ! alive "$STATE/slurmctld.pid"; then
    rm -f "$STATE/slurmctld.pid"
    slurmctld -c -f "$STATE/slurm.conf"
  fi
  if ! alive "$STATE/slurmd.pid"; then
    rm -f "$STATE/slurmd.pid"
    slurmd -f "$STATE/slurm.conf"
  fi
  for _ in $(seq 50); do alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" && break; sleep 0.1; done
  wait_idle
}

down() {
  [[ $(id -u) -eq 0 ]] || die "down needs root"
  stop_pidfile "$STATE/slurmd.pid" slurmd
  stop_pidfile "$STATE/slurmctld.pid" slurmctld
  if [[ -f $STATE/munged.ours ]]; then
    stop_pidfile /run/munge/munged.pid munged
    rm -f "$STATE/munged.ours"
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) sinfo -N -o "%N %T %C" ;;
  *) die "usage: slurm-local.sh up|down|status" ;;
esac
