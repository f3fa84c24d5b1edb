"""Who uses the demo servers: one lease file per user process, under one file lock.

Several runs may use one pair of demo servers (two Snakemake runs with different
targets in one directory). Each user holds a lease, ``<state_dir>/leases/<pid>.json``
(``{"pid", "start_ticks"}``): a Snakemake run takes one at ``onstart`` and exports its
pid as ``$JOINTSEG_DEMO_SERVERS_HOLDER``, so that its jobs, which start the servers
when the demo is simulated mid-run, lease them for the run rather than for the job.
The servers stop when the last live lease is released
(:func:`jointseg.simulate.servers.release_demo_servers`). A lease whose process has
exited, or whose pid now runs another process (another start time), no longer counts,
so a run killed with ``kill -9`` never keeps the servers up. All bookkeeping happens
under an exclusive ``fcntl`` lock on ``<state_dir>/servers.lock`` (:func:`locked`), the
same lock that starting and stopping the servers take.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from jointseg.simulate import process

#: the process a demo-server lease is held for (a Snakemake run exports its pid here, so
#: that its jobs' leases last as long as the run, not as long as the job)
HOLDER_ENV = "JOINTSEG_DEMO_SERVERS_HOLDER"
LEASES = "leases"


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``state_dir`` (created if missing)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "servers.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def lease_holder() -> int:
    """The pid a lease is taken for: ``$JOINTSEG_DEMO_SERVERS_HOLDER`` if it names a live
    process (the Snakemake run that started this job), else this process."""
    value = os.environ.get(HOLDER_ENV, "")
    if value.isdigit() and process.proc_stat(int(value)) is not None:
        return int(value)
    return os.getpid()


def write_lease(state_dir: Path, pid: int) -> None:
    """Record (or renew) the lease of ``pid``; the caller holds :func:`locked`."""
    from jointseg.io import atomic_path

    st = process.proc_stat(pid)
    if st is None:
        raise ValueError(f"demo server lease: no process {pid}")
    (Path(state_dir) / LEASES).mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(state_dir) / LEASES / f"{pid}.json") as tmp:
        tmp.write_text(json.dumps({"pid": pid, "start_ticks": st.start_ticks}) + "\n")


def lease_alive(path: Path) -> bool:
    """Whether the lease's process still runs (same pid and start time, not a zombie)."""
    try:
        record = json.loads(Path(path).read_text())
        pid, ticks = int(record["pid"]), int(record["start_ticks"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    st = process.proc_stat(pid)
    return st is not None and st.start_ticks == ticks and st.state not in "ZX"


def live_leases(state_dir: Path) -> list[int]:
    """Pids holding a live lease on the demo servers of ``state_dir`` (dead ones ignored)."""
    return sorted(int(p.stem) for p in (Path(state_dir) / LEASES).glob("*.json")
                  if p.stem.isdigit() and lease_alive(p))


def prune_dead_leases(state_dir: Path, drop: int | None = None) -> list[int]:
    """Remove ``drop``'s lease and every dead one; return the pids still holding one.
    The caller holds :func:`locked`."""
    for path in (Path(state_dir) / LEASES).glob("*.json"):
        if path.stem == str(drop) or not lease_alive(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return live_leases(state_dir)
