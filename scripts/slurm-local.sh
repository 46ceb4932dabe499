#!/usr/bin/env bash
# A single-node Slurm on localhost, for tests and for trying `autoloss launch slurm` on one machine.
#
#   bash scripts/slurm-local.sh start    # install slurm-wlm + munge if missing, configure, start, wait for idle
#   bash scripts/slurm-local.sh status   # exit 0 when the node answers and is usable
#   bash scripts/slurm-local.sh stop     # cancel our jobs, stop slurmd, slurmctld, munged
#
# Needs root (apt-get, daemons) and Debian/Ubuntu. Works without systemd (containers): the daemons are
# started directly and found again through their pid files. `start` is idempotent; it refuses to
# touch an /etc/slurm/slurm.conf that it did not write (a real cluster's), see docs/slurm.md.
# Tunables: AUTOLOSS_SLURM_STATE (state, logs, pid files; default /var/tmp/autoloss-slurm),
# AUTOLOSS_SLURM_WAIT_S (seconds to wait for the node to become idle; default 60).
set -euo pipefail

STATE=${AUTOLOSS_SLURM_STATE:-/var/tmp/autoloss-slurm}
WAIT_S=${AUTOLOSS_SLURM_WAIT_S:-60}
CONF=/etc/slurm/slurm.conf
MARKER="# Written by autoloss scripts/slurm-local.sh (single-node test cluster); safe to overwrite."
MUNGE_RUN=/run/munge
NODE=$(hostname -s)

say() { printf 'slurm-local: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

pid_alive() { # pid file → 0 when its process runs
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

ours_or_absent() {
  [[ ! -e $CONF ]] || grep -qxF "$MARKER" "$CONF"
}

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  say "installing slurm-wlm munge (missing: ${missing[*]})"
  # policy-rc.d in containers stops the packages' own service start; we start the daemons below.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_conf() {
  local cpus
  cpus=$(nproc)
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d"
  local next="$STATE/slurm.conf.next"
  # Plugins chosen to need neither cgroups nor systemd: linuxproc tracks job processes by
  # parent pid, task/none binds nothing. cons_tres + CR_CPU hands out single CPUs, memory untracked.
  # config_overrides: the node is what this file says even where slurmd detects other hardware,
  # so a cgroup-limited container is never drained for a "low CPU count".
  cat >"$next" <<EOF
$MARKER
ClusterName=autoloss-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
KillWait=10
InactiveLimit=0
MinJobAge=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  if [[ -e $CONF ]] && cmp -s "$next" "$CONF"; then
    rm -f "$next"
    return 1 # unchanged
  fi
  mv "$next" "$CONF"
  chmod 644 "$CONF"
  return 0
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  mkdir -p "$MUNGE_RUN" /var/lib/munge /var/log/munge
  chown munge:munge "$MUNGE_RUN" /var/lib/munge /var/log/munge
  chmod 0755 "$MUNGE_RUN"
  if [[ ! -s /etc/munge/munge.key ]]; then
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  fi
  # munged refuses to run as root with a key owned by munge; run it as the munge user, as systemd would.
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged did not answer; see /var/log/munge/munged.log"
}

stop_slurm_daemons() {
  local f pid
  for f in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
    pid_alive "$f" || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

node_state() { # empty when slurmctld does not answer
  sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1 || true
}

cmd_start() {
  [[ $(id -u) == 0 ]] || die "needs root (installs packages and starts slurmctld/slurmd as root)"
  ours_or_absent || die "$CONF exists and was not written by this script: this machine has its own Slurm, use it directly"
  install_packages
  if write_conf; then
    say "wrote $CONF (node $NODE, $(nproc) CPUs)"
    stop_slurm_daemons # started with an older configuration
  fi
  start_munge
  pid_alive "$STATE/slurmctld.pid" || slurmctld || die "slurmctld failed to start; see $STATE/slurmctld.log"
  pid_alive "$STATE/slurmd.pid" || slurmd || die "slurmd failed to start; see $STATE/slurmd.log"
  local state=""
  for _ in $(seq $((WAIT_S * 5))); do
    state=$(node_state)
    case $state in
      idle*|mixed*|allocated*|completing*)
        say "node $NODE is $state"
        return 0 ;;
      down*|drain*)
        # e.g. state left from an earlier, uncleanly stopped run
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
  done
  die "node $NODE not idle after ${WAIT_S}s (state '${state:-unknown}'); see $STATE/slurmctld.log and $STATE/slurmd.log"
}

cmd_status() {
  ours_or_absent || die "$CONF is not ours"
  pid_alive "$STATE/slurmctld.pid" || die "slurmctld is not running"
  pid_alive "$STATE/slurmd.pid" || die "slurmd is not running"
  local state
  state=$(node_state)
  [[ -n $state ]] || die "no answer from slurmctld"
  say "node $NODE is $state"
  case $state in idle*|mixed*|allocated*|completing*) return 0 ;; *) return 1 ;; esac
}

cmd_stop() {
  [[ $(id -u) == 0 ]] || die "needs root"
  ours_or_absent || die "$CONF was not written by this script; not stopping someone else's Slurm"
  if pid_alive "$STATE/slurmctld.pid"; then
    # Every job on this private cluster is ours; without this, job steps (slurmstepd) outlive slurmd.
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    for _ in $(seq 50); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.2; done
  fi
  stop_slurm_daemons
  local pid
  pid=$(cat "$MUNGE_RUN/munged.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  say "stopped"
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: bash scripts/slurm-local.sh start|status|stop" >&2; exit 2 ;;
esac
