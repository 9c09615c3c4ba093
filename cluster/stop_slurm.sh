#!/usr/bin/env bash
# stop_slurm.sh - stop the daemons started by cluster/start_slurm.sh, by the PIDs
# in their pidfiles (never by name). Cancels remaining jobs first. Idempotent.
#
# It then moves /etc/slurm/slurm.conf aside (to slurm.conf.stopped): with
# slurm-client installed, a slurm.conf and no controller, every `snakemake`
# call (even --version) waits ~9 s while the SLURM plugin retries
# `scontrol show config`. Pass --keep-config to leave it in place.
set -uo pipefail
KEEP_CONFIG=0
[ "${1:-}" = "--keep-config" ] && KEEP_CONFIG=1
CONF=/etc/slurm/slurm.conf
command -v scancel >/dev/null && [ -s /run/slurm/slurmctld.pid ] && scancel --full -u "$(id -un)" 2>/dev/null
stop_pidfile() { # pidfile name
  local f=$1 p
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    echo "[stop_slurm] stopping $2 (pid $p)"
    kill "$p"
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && { echo "[stop_slurm] $2 did not stop, SIGKILL"; kill -9 "$p"; }
  fi
  rm -f "$f"
}
stop_pidfile /run/slurm/slurmd.pid slurmd
stop_pidfile /run/slurm/slurmctld.pid slurmctld
stop_pidfile /run/slurm/slurmdbd.pid slurmdbd
stop_pidfile /run/mysqld/mysqld.pid mariadbd
stop_pidfile /run/munge/munged.pid munged
if [ $KEEP_CONFIG = 0 ] && [ -f $CONF ]; then
  mv -f $CONF $CONF.stopped
  echo "[stop_slurm] moved $CONF to $CONF.stopped (start_slurm.sh writes a new one)"
fi
exit 0
