#!/usr/bin/env bash
# Stop the daemons that tests/slurm/start_cluster.sh started (and only those).
#
#   tests/slurm/stop_cluster.sh [RUN_DIR [DAEMON...]]   # default RUN_DIR: /tmp/jointseg-slurm
#
# DAEMON: any of slurmd slurmctld munged (default: all three, in that order).
# Each daemon start_cluster.sh launched is recorded as RUN_DIR/started/<daemon>, holding
# the path of its pid file; daemons that were already running are not recorded.
# Stopping slurmctld also removes the /etc/slurm configs start_cluster.sh wrote.
set -euo pipefail

RUN_DIR="${1:-${JOINTSEG_SLURM_RUN_DIR:-/tmp/jointseg-slurm}}"
shift || true
WANTED=" ${*:-slurmd slurmctld munged} "
STARTED="$RUN_DIR/started"

log() { echo "stop_cluster: $*" >&2; }

[[ -d $STARTED ]] || { log "nothing recorded under $STARTED"; exit 0; }

# slurmd first, munged last: slurmctld and slurmd need munge to shut down cleanly
for daemon in slurmd slurmctld munged; do
    [[ $WANTED == *" $daemon "* ]] || continue
    record="$STARTED/$daemon"
    [[ -f $record ]] || continue
    pid_file="$(cat "$record")"
    if [[ -s $pid_file ]] && pid="$(cat "$pid_file")" && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$daemon (pid $pid) ignored SIGTERM for 10 s: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $daemon (pid $pid)"
    else
        log "$daemon was not running (pid file $pid_file)"
    fi
    rm -f "$record"
    if [[ $daemon == slurmctld ]]; then
        # With SLURM installed, a config whose controller is down makes every `sacct` /
        # `scontrol` wait ~9 s, and snakemake-executor-plugin-slurm calls them at import,
        # i.e. at every snakemake start. Without a config they fail at once.
        for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
            if [[ -f $conf ]] && grep -q "JOINTSEG_TEST_CLUSTER=1" "$conf"; then
                rm -f "$conf"
                log "removed $conf"
            fi
        done
    fi
done
