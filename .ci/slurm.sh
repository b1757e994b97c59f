#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the tests (tests/test_slurm.py) and for trying
# slurm/*.sbatch by hand. Debian 12, as root, no systemd needed.
#
#   .ci/slurm.sh up      install (apt, once), configure, start munged/slurmctld/slurmd; no-op if up
#   .ci/slurm.sh down    cancel jobs, stop the daemons this script started (by PID file)
#   .ci/slurm.sh status  exit 0 when the node answers idle/mixed/allocated
#
# State, logs and pid files live in $SLURM_CI_DIR (default /tmp/es-mpi-slurm). The node
# advertises $SLURM_CI_CPUS CPUs (default 8, more than the machine has) so that several
# small test jobs run at once; jobs then need "mpiexec --bind-to none".
set -euo pipefail

SLURM_CI_DIR=${SLURM_CI_DIR:-/tmp/es-mpi-slurm}
SLURM_CI_CPUS=${SLURM_CI_CPUS:-8}
CONF=/etc/slurm/slurm.conf
MARK="# es-mpi one-node test cluster"

log() { echo "slurm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=.ci/slurm-lib.sh
source "$(dirname "$0")/slurm-lib.sh"

node_state() { sinfo -h -N -o %T 2>/dev/null | head -1 || true; }
answers() { case "$(node_state)" in idle*|mixed*|allocated*|completing*) return 0;; esac; return 1; }

configure() {
  rm -rf "$SLURM_CI_DIR"
  mkdir -p "$SLURM_CI_DIR"/{ctld,spool,run,log}
  if [ ! -s /etc/munge/munge.key ]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  local host hw cpus mem
  host=$(hostname -s)
  getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts
  hw=$(slurmd -C | head -1)
  cpus=$(field CPUs "$hw"); mem=$(( $(field RealMemory "$hw") - 256 ))
  [ "$SLURM_CI_CPUS" -gt "$cpus" ] && cpus=$SLURM_CI_CPUS
  mkdir -p /etc/slurm
  if [ -f $CONF ] && ! grep -q "^$MARK" $CONF; then cp $CONF "$CONF.before-es-mpi"; fi
  cat >$CONF <<CONFIG
$MARK (written by .ci/slurm.sh; a previous file is kept as slurm.conf.before-es-mpi)
ClusterName=esmpi
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# short credential life: a requeued job may start again after ~15 s instead of ~2 min
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_CI_DIR/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
ReturnToService=2
# finished jobs stay visible to "scontrol show job" (there is no slurmdbd for sacct)
MinJobAge=3600
KillWait=30
# advertise more CPUs than there are cores, so that small test jobs run side by side
SlurmdParameters=config_overrides
StateSaveLocation=$SLURM_CI_DIR/ctld
SlurmdSpoolDir=$SLURM_CI_DIR/spool
SlurmctldPidFile=$SLURM_CI_DIR/run/slurmctld.pid
SlurmdPidFile=$SLURM_CI_DIR/run/slurmd.pid
SlurmctldLogFile=$SLURM_CI_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_CI_DIR/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFIG
}

start() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "using the munged that already answers"
  else
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$SLURM_CI_DIR/run/munged.pid"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  slurmctld
  slurmd
  for _ in $(seq 120); do answers && break; sleep 0.5; done
  answers || { tail -n 20 "$SLURM_CI_DIR"/log/*.log >&2; die "the node did not come up (state '$(node_state)')"; }
  log "up: node $(hostname -s), $(sinfo -h -N -o %c) CPUs, state $(node_state)"
}

ours_running() {
  local f=$SLURM_CI_DIR/run/slurmctld.pid
  [ -f "$f" ] && [ "$(cat /proc/"$(cat "$f")"/comm 2>/dev/null)" = slurmctld ]
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (installs packages, writes $CONF)"
  if ours_running && answers; then log "already up"; return 0; fi
  ours_running && down
  install_packages
  configure
  start
}

down() {
  if ours_running; then
    scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 1; done
  fi
  local name pid
  for name in slurmd slurmctld munged; do
    [ -f "$SLURM_CI_DIR/run/$name.pid" ] || continue
    pid=$(cat "$SLURM_CI_DIR/run/$name.pid")
    if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; then
      kill -TERM "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      log "stopped $name ($pid)"
    fi
    rm -f "$SLURM_CI_DIR/run/$name.pid"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) answers ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
