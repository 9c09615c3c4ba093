#!/usr/bin/env bash
# start_slurm.sh - install and start a single-node SLURM cluster on localhost
# (Debian 12, run as root, no systemd needed). Idempotent: a second run while
# the cluster is healthy is a no-op that exits 0. The cluster tests
# (tests/cluster/) call it and cluster/stop_slurm.sh; so can a developer who
# wants to try `snakemake --profile slurm` (after `monkeyflow slurm-profile`) on one machine.
#
#   SLURM_ACCOUNTING=1  also install MariaDB + slurmdbd so that `sacct` works
#                       (snakemake-executor-plugin-slurm's default status
#                       command); default 0 = accounting_storage/none, then run
#                       snakemake with `--slurm-status-command squeue`.
#   SLURM_WAIT_S=60     how long to wait for the node to become idle.
#   SLURM_PARTITION=debug  name of the one (default) partition.
#   SLURM_NODE_CPUS, SLURM_NODE_MEM_MB, SLURM_NODE_GPUS
#                       make the node advertise this many CPUs, MB of memory and
#                       GPUs (a `gpu` GRES without devices) instead of what it
#                       has (SlurmdParameters=config_overrides; nothing enforces
#                       memory here, TaskPlugin=task/none). For tests that check
#                       what a workflow asks SLURM for, at full size, on a small
#                       machine; jobs still run on the real cores. Unset: the
#                       real hardware (slurmd -C).
#
# Finished jobs stay visible to `squeue --states=all` for MinJobAge (300 s):
# that is the plugin's status source without accounting, and the job record
# the tests count submissions from.
set -euo pipefail

ACCT="${SLURM_ACCOUNTING:-0}"
WAIT_S="${SLURM_WAIT_S:-60}"
NODE="$(hostname -s)"
CLUSTER=localcluster
PARTITION="${SLURM_PARTITION:-debug}"
RUN=/run/slurm
CONF=/etc/slurm/slurm.conf
export DEBIAN_FRONTEND=noninteractive

T0=$EPOCHREALTIME
log() { awk -v t0="$T0" -v t1="$EPOCHREALTIME" -v m="$*" 'BEGIN{printf "[start_slurm +%.1fs] %s\n", t1-t0, m}'; }
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

pid_alive() { # pidfile -> 0 if the process in it is alive
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}
# %T prints e.g. "idle", or "idle*" while slurmd is not responding
node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1; }
healthy() {
  pid_alive /run/munge/munged.pid && pid_alive $RUN/slurmctld.pid &&
    pid_alive $RUN/slurmd.pid || return 1
  if [ "$ACCT" = 1 ]; then
    pid_alive $RUN/slurmdbd.pid && grep -q '^AccountingStorageType=accounting_storage/slurmdbd' $CONF || return 1
  else
    grep -q '^AccountingStorageType=accounting_storage/none' $CONF || return 1
  fi
  # the node advertises what SLURM_NODE_* ask for (or its real hardware when they are unset)
  if [ -n "${SLURM_NODE_CPUS:-}${SLURM_NODE_MEM_MB:-}${SLURM_NODE_GPUS:-}" ]; then
    grep -q '^SlurmdParameters=config_overrides' $CONF || return 1
    [ -z "${SLURM_NODE_CPUS:-}" ] || [ "$(sinfo -h -n "$NODE" -o %c | head -1)" = "$SLURM_NODE_CPUS" ] || return 1
    [ -z "${SLURM_NODE_MEM_MB:-}" ] || [ "$(sinfo -h -n "$NODE" -o %m | head -1)" = "$SLURM_NODE_MEM_MB" ] || return 1
    local gres="(null)"
    [ "${SLURM_NODE_GPUS:-0}" = 0 ] || gres="gpu:$SLURM_NODE_GPUS"
    [ "$(sinfo -h -n "$NODE" -o %G | head -1)" = "$gres" ] || return 1
  else
    grep -q '^SlurmdParameters=config_overrides' $CONF && return 1
  fi
  case "$(node_state)" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

if [ -f $CONF ] && command -v sinfo >/dev/null && healthy; then
  log "cluster already running, node $NODE is $(node_state): nothing to do"
  exit 0
fi

# ---- 1. packages -----------------------------------------------------------
PKGS="munge slurmctld slurmd slurm-client"
[ "$ACCT" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
fi

# ---- 2. config ---------------------------------------------------------------
mkdir -p /etc/slurm $RUN /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
# Hardware line straight from slurmd -C; leave ~10% of RAM (min 512 MB) free.
HW="$(slurmd -C | head -1)"
MEM="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")"
RESERVE=$(( MEM / 10 > 512 ? MEM / 10 : 512 ))
HW="$(sed "s/RealMemory=[0-9]*/RealMemory=$(( MEM - RESERVE ))/; s/^NodeName=[^ ]*/NodeName=$NODE/" <<<"$HW")"
OVERRIDES=""
GRES_LINES=""
if [ -n "${SLURM_NODE_CPUS:-}${SLURM_NODE_MEM_MB:-}${SLURM_NODE_GPUS:-}" ]; then
  OVERRIDES="SlurmdParameters=config_overrides"
  if [ -n "${SLURM_NODE_CPUS:-}" ]; then
    HW="$(sed -E "s/CPUs=[0-9]+ Boards=[0-9]+ SocketsPerBoard=[0-9]+ CoresPerSocket=[0-9]+ ThreadsPerCore=[0-9]+/CPUs=$SLURM_NODE_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$SLURM_NODE_CPUS ThreadsPerCore=1/" <<<"$HW")"
  fi
  [ -n "${SLURM_NODE_MEM_MB:-}" ] && HW="$(sed "s/RealMemory=[0-9]*/RealMemory=$SLURM_NODE_MEM_MB/" <<<"$HW")"
  if [ -n "${SLURM_NODE_GPUS:-}" ] && [ "$SLURM_NODE_GPUS" != 0 ]; then
    HW="$HW Gres=gpu:$SLURM_NODE_GPUS"
    GRES_LINES="GresTypes=gpu"
  fi
fi
# The gpu GRES needs a device file per GPU; stand-ins that exist everywhere (nothing is bound to
# them: TaskPlugin=task/none, no cgroup device constraint). A job with --gpus=N gets
# CUDA_VISIBLE_DEVICES set as on a real GPU node.
NEWGRES=""
if [ -n "$GRES_LINES" ]; then
  FAKE_DEVICES=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom)
  [ "$SLURM_NODE_GPUS" -le ${#FAKE_DEVICES[@]} ] || { echo "SLURM_NODE_GPUS: at most ${#FAKE_DEVICES[@]}" >&2; exit 1; }
  for (( i = 0; i < SLURM_NODE_GPUS; i++ )); do
    NEWGRES+="NodeName=$NODE Name=gpu File=${FAKE_DEVICES[$i]}"$'\n'
  done
fi
if [ "$ACCT" = 1 ]; then
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
else
  ACCT_LINES="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
NEWCONF="$(cat <<EOF
# generated by start_slurm.sh - single-node local SLURM
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCT_LINES
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# keep finished jobs visible to squeue for 5 min (plugin's squeue status mode needs >=120 s)
MinJobAge=300
$OVERRIDES
$GRES_LINES
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$HW NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)"
CONF_CHANGED=0
if [ "$(cat $CONF 2>/dev/null)" != "$NEWCONF" ]; then
  printf '%s\n' "$NEWCONF" > $CONF
  CONF_CHANGED=1
  log "wrote $CONF"
fi
if [ -n "$NEWGRES" ]; then
  if [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" != "$(printf '%s' "$NEWGRES")" ]; then
    printf '%s' "$NEWGRES" > /etc/slurm/gres.conf
    CONF_CHANGED=1
  fi
elif [ -f /etc/slurm/gres.conf ]; then
  rm -f /etc/slurm/gres.conf
  CONF_CHANGED=1
fi

# ---- 3. munge --------------------------------------------------------------
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || create-munge-key -f; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
if ! pid_alive /run/munge/munged.pid; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.2; done
fi
munge -n </dev/null | unmunge >/dev/null

# ---- 4. optional accounting: MariaDB + slurmdbd ----------------------------
if [ "$ACCT" = 1 ]; then
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! pid_alive /run/mysqld/mysqld.pid; then
    log "starting mariadbd"
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 >/var/log/slurm/mariadb.log 2>&1 < /dev/null &
    for _ in $(seq 100); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
DebugLevel=info
LogFile=/var/log/slurm/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
  chmod 600 /etc/slurm/slurmdbd.conf
  if ! pid_alive $RUN/slurmdbd.pid; then
    log "starting slurmdbd"
    /usr/sbin/slurmdbd
  fi
  for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
  sacctmgr -n list cluster format=cluster | grep -qw $CLUSTER || sacctmgr -i add cluster $CLUSTER >/dev/null
fi

# ---- 5. slurmctld + slurmd ------------------------------------------------
if pid_alive $RUN/slurmctld.pid && [ $CONF_CHANGED = 1 ]; then
  log "config changed: restarting slurmctld/slurmd"
  for f in $RUN/slurmd.pid $RUN/slurmctld.pid; do
    if pid_alive $f; then p=$(cat $f); kill "$p"; for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done; fi
  done
fi
if ! pid_alive $RUN/slurmctld.pid; then log "starting slurmctld"; /usr/sbin/slurmctld -i; fi
for _ in $(seq 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
if ! pid_alive $RUN/slurmd.pid; then log "starting slurmd"; /usr/sbin/slurmd; fi

if [ "$ACCT" = 1 ]; then
  sacctmgr -n list account format=account | grep -qw testacct ||
    sacctmgr -i add account testacct Cluster=$CLUSTER Description=test Organization=test >/dev/null
  sacctmgr -n -P list assoc where user="$(id -un)" account=testacct format=account | grep -qw testacct ||
    sacctmgr -i add user "$(id -un)" Account=testacct DefaultAccount=testacct >/dev/null
fi

# ---- 6. wait for the node --------------------------------------------------
deadline=$(( $(date +%s) + WAIT_S ))
while :; do
  st="$(node_state)"
  case "$st" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
  esac
  if [ "$(date +%s)" -ge $deadline ]; then
    echo "node $NODE not ready (state '$st'); see /var/log/slurm/*.log" >&2
    sinfo >&2 || true
    exit 1
  fi
  sleep 0.5
done
# end-to-end smoke test: munge + slurmctld + slurmd can run a job step
timeout "$WAIT_S" srun -N1 -n1 -t 1 -p $PARTITION true || { echo "srun smoke test failed" >&2; exit 1; }
log "cluster up: node $NODE is $(node_state) (accounting=$ACCT)"
sinfo
