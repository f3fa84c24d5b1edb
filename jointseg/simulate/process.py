"""Detached server processes as process groups: start, identify, stop until gone (Linux).

A server started by :func:`start_detached` runs in its own session, so its process
group id is its pid and every process it runs as (a uvicorn worker tree, the ``rustac``
Python wrapper with its tokio threads, a shell wrapper and its child) shares that group.
:func:`stop_group` signals the whole group, waits until every thread of every member has
exited (SIGTERM, then SIGKILL), and reaps the leader when it is our own child.

"Gone" is read from ``/proc/<pid>/task/*/stat``, never from ``/proc/<pid>/cmdline``: the
kernel drops a process's memory (and with it its cmdline) early in its exit, before it
closes its files, and the other threads of a multi-threaded server keep its listening
socket open longer still. A stop that trusted an empty cmdline returned while the port
still answered.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
POLL_S = 0.02


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` used here."""

    state: str  # one letter: R, S, D, Z (zombie), X (dead), ...
    pgrp: int
    start_ticks: int  # start time after boot, in clock ticks


def proc_stat(pid: int, tid: int | None = None) -> ProcStat | None:
    """``/proc/<pid>[/task/<tid>]/stat``; ``None`` if no such process (or thread)."""
    path = PROC / str(pid) / ("stat" if tid is None else f"task/{tid}/stat")
    try:
        text = path.read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    return ProcStat(state=fields[0], pgrp=int(fields[2]), start_ticks=int(fields[19]))


def cmdline(pid: int) -> list[str]:
    """The argv of ``pid``; empty once it is gone or exiting (its memory is released)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def has_live_thread(pid: int) -> bool:
    """Whether any thread of process ``pid`` has not exited yet (zombies count as exited)."""
    try:
        tids = os.listdir(PROC / str(pid) / "task")
    except OSError:
        return False
    for tid in tids:
        st = proc_stat(pid, int(tid))
        if st is not None and st.state not in "ZX":
            return True
    return False


def group_members(pgid: int) -> list[int]:
    """Pids of the processes in process group ``pgid`` that still have a live thread."""
    members = []
    for entry in os.listdir(PROC):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st.pgrp == pgid and has_live_thread(int(entry)):
                members.append(int(entry))
    return members


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        return s.connect_ex((host, port)) == 0


def wait_port_closed(host: str, port: int, timeout_s: float) -> bool:
    """Poll until ``host:port`` refuses connections; ``False`` if it still answers at the end."""
    deadline = time.monotonic() + timeout_s
    while port_open(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


@dataclass(frozen=True)
class Started:
    """A detached process group: its leader pid (= group id) and the leader's start time."""

    pid: int
    start_ticks: int | None


def start_detached(cmd: Sequence[str], logfile: Path) -> Started:
    """Start ``cmd`` in a new session (its own process group), output appended to ``logfile``."""
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
    st = proc_stat(proc.pid)
    return Started(proc.pid, st.start_ticks if st is not None else None)


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child and has exited (no zombie left)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_group_gone(pgid: int, timeout_s: float) -> list[int]:
    """Wait until no member of group ``pgid`` has a live thread; the survivors at the end."""
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(pgid)
        alive = group_members(pgid)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(POLL_S)


def owns_group(
    pgid: int, is_ours: Callable[[list[str]], bool], start_ticks: int | None = None
) -> bool:
    """Whether group ``pgid`` is the one we started: a member runs one of our commands and,
    if ``start_ticks`` is known and the leader still runs, the leader started at that time
    (so a reused pid is never taken for ours). Group ids 0 and 1 are never ours."""
    if pgid <= 1:
        return False
    members = group_members(pgid)
    leader = proc_stat(pgid)
    if (start_ticks is not None and pgid in members and leader is not None
            and leader.start_ticks != start_ticks):
        return False
    return any(is_ours(cmdline(pid)) for pid in members)


def stop_group(pgid: int, term_timeout_s: float = 10.0, kill_timeout_s: float = 5.0) -> list[int]:
    """SIGTERM process group ``pgid``, SIGKILL it after ``term_timeout_s``, wait until gone.

    Returns:
        The pids still alive ``kill_timeout_s`` after SIGKILL (empty when the group is gone).
    """
    for sig, timeout_s in ((signal.SIGTERM, term_timeout_s), (signal.SIGKILL, kill_timeout_s)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        alive = wait_group_gone(pgid, timeout_s)
        if not alive:
            break
    _reap(pgid)
    return group_members(pgid)
