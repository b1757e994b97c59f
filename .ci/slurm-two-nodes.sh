#!/usr/bin/env bash
# A real two-node Slurm on this one machine, for tests/test_slurm_two_nodes.py and for trying
# multi-node jobs by hand. Debian 12, as root, no systemd needed.
#
#   .ci/slurm-two-nodes.sh up      configure and start the cluster; no-op if it is up
#   .ci/slurm-two-nodes.sh down    cancel its jobs, stop its daemons, remove its namespaces and links
#   .ci/slurm-two-nodes.sh status  exit 0 when both nodes answer idle/mixed/allocated
#   .ci/slurm-two-nodes.sh env     print the SLURM_CONF line that points sbatch/squeue at this cluster
#
# Each node is a Linux network namespace with its own UTS hostname (esmpi-n1, esmpi-n2), an
# address on a private bridge and one slurmd (`slurmd -N NAME`); slurmctld runs outside, on the
# bridge's address. A job's processes live in their node's namespaces, so Open MPI sees two hosts
# and its ranks on different nodes talk over TCP across the bridge.
#
# It stands beside the one-node cluster of .ci/slurm.sh without touching it: its own slurm.conf
# (in $SLURM2_CI_DIR; clients need SLURM_CONF, see `env`), its own slurmctld port, its own munged
# and socket, its own state directory. Everything it creates carries the esmpi-n*/esmpi-br names or
# lives in $SLURM2_CI_DIR (default /tmp/es-mpi-slurm2) and /etc/netns/esmpi-n*; `down` removes
# only those, and stops only the daemons named in its PID files.
set -euo pipefail

SLURM2_CI_DIR=${SLURM2_CI_DIR:-/tmp/es-mpi-slurm2}
SLURM2_CI_CPUS=${SLURM2_CI_CPUS:-4}        # CPUs each node advertises (more than the machine has)
NODES="esmpi-n1 esmpi-n2"
BRIDGE=esmpi-br
SUBNET=10.231.0                             # bridge .1 (slurmctld), nodes .11 and .12
CTLD_PORT=6827                              # the one-node cluster's slurmctld keeps 6817
CONF=$SLURM2_CI_DIR/slurm.conf
MUNGE_SOCKET=$SLURM2_CI_DIR/munge/munge.socket
NETNS_UNDO=$SLURM2_CI_DIR/run/netns-undo
export SLURM_CONF=$CONF

log() { echo "slurm-two-nodes.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=.ci/slurm-lib.sh
source "$(dirname "$0")/slurm-lib.sh"
PACKAGES="$PACKAGES iproute2"  # ip netns, ip link, ss

node_address() { echo "$SUBNET.$((10 + ${1#esmpi-n}))"; }

# sinfo waits ~10 s per try for a controller that does not answer: bound it
states() { timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null || true; }
answers() {
  local up=0 node state
  while read -r node state; do
    case "$state" in idle*|mixed*|allocated*|completing*) up=$((up + 1));; esac
  done < <(states)
  [ "$up" = 2 ]
}


make_network() {
  # `ip netns add` makes /run/netns (a directory, mounted on itself) when there is none: note what to undo
  if ! mountpoint -q /run/netns 2>/dev/null; then
    if [ -d /run/netns ]; then echo umount; else echo umount rmdir; fi >"$NETNS_UNDO"
  fi
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local node
  for node in $NODES; do
    ip netns add "$node"
    # host side named after the node, node side eth0
    ip link add "$node" type veth peer name eth0 netns "$node"
    ip link set "$node" master "$BRIDGE" up
    ip -n "$node" addr add "$(node_address "$node")/24" dev eth0
    ip -n "$node" link set lo up
    ip -n "$node" link set eth0 up
  done
}

remove_network() {
  local node
  for node in $NODES; do
    # the veth pair goes with either end; the namespace goes when its last process has
    ip link del "$node" 2>/dev/null || true
    ip netns del "$node" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  if [ -f "$NETNS_UNDO" ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
    umount /run/netns 2>/dev/null || true
    grep -qw rmdir "$NETNS_UNDO" && rmdir /run/netns
    rm -f "$NETNS_UNDO"
  fi
}

configure() {
  local host hw mem node nodes_line=""
  rm -rf "$SLURM2_CI_DIR"
  mkdir -p "$SLURM2_CI_DIR"/{ctld,run,log} "$SLURM2_CI_DIR"/spool/{${NODES// /,}}
  # the nodes' /etc/hosts (bind-mounted in their mount namespaces): both node names and the controller
  {
    echo "127.0.0.1 localhost"
    for node in $NODES; do echo "$(node_address "$node") $node"; done
    echo "$SUBNET.1 $(hostname -s)"
  } >"$SLURM2_CI_DIR/hosts"
  install -d -o munge -g munge -m 0755 "$SLURM2_CI_DIR/munge"
  if [ ! -s /etc/munge/munge.key ]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  fi
  host=$(hostname -s)
  hw=$(slurmd -C | head -1)
  mem=$(( ($(field RealMemory "$hw") - 256) / 2 ))
  for node in $NODES; do
    nodes_line+="NodeName=$node NodeAddr=$(node_address "$node") CPUs=$SLURM2_CI_CPUS RealMemory=$mem State=UNKNOWN
"
  done
  cat >"$CONF" <<CONFIG
# es-mpi two-node test cluster (written by .ci/slurm-two-nodes.sh)
ClusterName=esmpi2
SlurmctldHost=$host($SUBNET.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
ReturnToService=2
MinJobAge=3600
SlurmdParameters=config_overrides
StateSaveLocation=$SLURM2_CI_DIR/ctld
SlurmdSpoolDir=$SLURM2_CI_DIR/spool/%n
SlurmctldPidFile=$SLURM2_CI_DIR/run/slurmctld.pid
SlurmdPidFile=$SLURM2_CI_DIR/run/slurmd-%n.pid
SlurmctldLogFile=$SLURM2_CI_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM2_CI_DIR/log/slurmd-%n.log
${nodes_line}PartitionName=two Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFIG
}

munge_answers() { munge -S "$MUNGE_SOCKET" -n 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

start() {
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --pid-file="$SLURM2_CI_DIR/munge/munged.pid" \
    --log-file="$SLURM2_CI_DIR/munge/munged.log" --seed-file="$SLURM2_CI_DIR/munge/munged.seed"
  for _ in $(seq 50); do munge_answers && break; sleep 0.1; done
  cp "$SLURM2_CI_DIR/munge/munged.pid" "$SLURM2_CI_DIR/run/munged.pid"
  slurmctld -f "$CONF"
  local node
  for node in $NODES; do
    # its own network (the namespace made above), hostname (UTS) and /etc/hosts (a mount namespace
    # that sees every other mount of the machine: /sys, cgroups and /dev/shm stay shared)
    nsenter --net="/run/netns/$node" unshare --uts --mount --propagation slave -- sh -c \
      "mount --bind '$SLURM2_CI_DIR/hosts' /etc/hosts && hostname $node && exec slurmd -f '$CONF' -N $node"
  done
  local deadline=$((SECONDS + 60))
  until answers; do
    # (it writes its PID file just after it forks into the background)
    if [ -f "$SLURM2_CI_DIR/run/slurmctld.pid" ] || [ "$SECONDS" -gt $((deadline - 55)) ]; then
      running slurmctld "$SLURM2_CI_DIR/run/slurmctld.pid" || die "slurmctld stopped (see its log below)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "the nodes did not come up in 60 s: $(states | tr '\n' ' ')"
    sleep 0.5
  done
  log "up: $(states | tr '\n' ' '); use $(print_env)"
}

# "name pidfile" of each daemon this script starts, in the order to stop them
daemons() {
  local node
  for node in $NODES; do echo "slurmd $SLURM2_CI_DIR/run/slurmd-$node.pid"; done
  echo "slurmctld $SLURM2_CI_DIR/run/slurmctld.pid"
  echo "munged $SLURM2_CI_DIR/run/munged.pid"
}

running() {  # name pidfile
  [ -f "$2" ] && [ "$(cat /proc/"$(cat "$2")"/comm 2>/dev/null)" = "$1" ]
}

any_running() {
  local name file
  while read -r name file; do running "$name" "$file" && return 0; done < <(daemons)
  return 1
}

any_network() {
  ip link show "$BRIDGE" >/dev/null 2>&1 && return 0
  local node
  for node in $NODES; do ip netns list | grep -qw "$node" && return 0; done
  return 1
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, daemons)"
  install_packages
  command -v ip >/dev/null && command -v unshare >/dev/null || die "needs ip (iproute2) and unshare (util-linux)"
  if any_running && answers; then log "already up; use $(print_env)"; return 0; fi
  if any_running || any_network; then down; fi
  # a start that fails part-way shows the logs and takes down what it had started
  trap 'tail -n 20 "$SLURM2_CI_DIR"/log/*.log >&2 || true; down' EXIT
  trap 'exit 1' INT TERM
  configure
  make_network
  start
  trap - EXIT INT TERM
}

down() {
  if running slurmctld "$SLURM2_CI_DIR/run/slurmctld.pid"; then
    scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 1; done
  fi
  local name file pid
  while read -r name file; do
    if running "$name" "$file"; then
      pid=$(cat "$file")
      kill -TERM "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      log "stopped $name ($pid)"
    fi
    rm -f "$file"
  done < <(daemons)
  remove_network
}

print_env() { echo "export SLURM_CONF=$CONF"; }

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) answers ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
