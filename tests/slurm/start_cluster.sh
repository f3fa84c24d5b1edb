#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost for the end-to-end tests.
#
#   tests/slurm/start_cluster.sh [RUN_DIR]      # default RUN_DIR: /tmp/jointseg-slurm
#
# Installs Debian's slurm-wlm + munge when missing (apt-get, as root), writes
# /etc/slurm/slurm.conf from tests/slurm/slurm.conf.in (SLURM's job-step plugin needs the
# config at that path: see ../shared/INSTALL-NOTES.md), then starts munged, slurmctld and
# slurmd (no slurmdbd) and waits until `sinfo` shows the node idle. Partitions: `debug`
# (default) and `gpu` on the same node; the node advertises one counted GPU (no device).
#
# Idempotent: a daemon that already answers is left alone and not recorded, so
# stop_cluster.sh stops only what this script started (RUN_DIR/started/<daemon>).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_DIR="${1:-${JOINTSEG_SLURM_RUN_DIR:-/tmp/jointseg-slurm}}"
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
MARKER="JOINTSEG_TEST_CLUSTER=1"
WAIT_S=60

log() { echo "start_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, writes $CONF)"

# --- packages -------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "slurm-wlm/munge missing and no apt-get to install them"
    log "installing slurm-wlm + munge with apt-get (once)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$RUN_DIR"/{state,spool,started}
RUN_DIR="$(cd "$RUN_DIR" && pwd)"

# --- configuration --------------------------------------------------------------------
if [[ -e $CONF ]] && ! grep -q "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script: refusing to overwrite it"
fi
cpus="$(nproc)"
mem_mb="$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)"
mkdir -p /etc/slurm
new_conf="$(sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem_mb|g" \
    "$HERE/slurm.conf.in")"
if [[ ! -e $CONF ]] || [[ "$(cat "$CONF")" != "$new_conf" ]]; then
    if scontrol ping 2>/dev/null | grep -q "is UP"; then
        die "a cluster is running with another $CONF (other run dir?): stop it first"
    fi
    printf '%s\n' "$new_conf" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
    log "wrote $CONF (run dir $RUN_DIR, $cpus CPUs, $mem_mb MB)"
fi
printf '# %s\nNodeName=localhost Name=gpu File=/dev/null Count=1\n' "$MARKER" >"$GRES_CONF.tmp"
mv "$GRES_CONF.tmp" "$GRES_CONF"

# --- munged ---------------------------------------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 "$RUN_DIR/munge"
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    runuser -u munge -- /usr/sbin/munged --pid-file="$RUN_DIR/munge/munged.pid" \
        --log-file="$RUN_DIR/munge/munged.log"
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || die "munged did not start (see $RUN_DIR/munge/munged.log)"
    echo "$RUN_DIR/munge/munged.pid" >"$RUN_DIR/started/munged"
    log "munged started"
fi

# --- slurmctld + slurmd ---------------------------------------------------------------
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if alive "$RUN_DIR/slurmctld.pid" || scontrol ping 2>/dev/null | grep -q "is UP"; then
    log "slurmctld already running"
else
    # -c: clear the previous state (jobs, node states) of an earlier test run
    slurmctld -c -f "$CONF"
    echo "$RUN_DIR/slurmctld.pid" >"$RUN_DIR/started/slurmctld"
    log "slurmctld started"
fi

if alive "$RUN_DIR/slurmd.pid"; then
    log "slurmd already running"
else
    # NodeName=localhost is not this machine's hostname: name the node explicitly
    slurmd -f "$CONF" -N localhost
    echo "$RUN_DIR/slurmd.pid" >"$RUN_DIR/started/slurmd"
    log "slurmd started"
fi

# --- wait for the node ----------------------------------------------------------------
state=""
for _ in $(seq $((WAIT_S * 2))); do
    state="$(sinfo -h -N -n localhost -o %T 2>/dev/null | head -n 1 || true)"
    case "$state" in
        idle | mixed | allocated) break ;;
        down* | drain*) scontrol update NodeName=localhost State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle | mixed | allocated) ;;
    *) die "node localhost is '${state:-unknown}' after ${WAIT_S} s (see $RUN_DIR/*.log)" ;;
esac
log "cluster ready: node localhost $state; partitions $(sinfo -h -o %P | tr '\n' ' ')"
