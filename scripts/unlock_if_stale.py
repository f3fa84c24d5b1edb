#!/usr/bin/env python3
"""Unlock a Snakemake working directory left locked by a killed run; leave a live run alone.

    python scripts/unlock_if_stale.py [--directory DIR] -- SNAKEMAKE [OPTIONS...]

If ``DIR/.snakemake/locks`` holds lock files and no live Snakemake process works in
``DIR`` (its ``/proc/<pid>/cwd`` is ``DIR`` and its argv runs ``snakemake``), the locks
are stale: run ``SNAKEMAKE OPTIONS... --unlock`` in ``DIR`` and print one line. With a
live run (or none of its locks) nothing is changed, so the following Snakemake call
fails with its normal LockException message while another run is going. Linux only
(reads ``/proc``). Exit status: 0, or that of a failed ``--unlock``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

PROC = Path("/proc")


def lock_files(workdir: Path) -> list[Path]:
    """Snakemake's lock files under ``workdir/.snakemake/locks`` (``0.input.lock``, ...)."""
    return sorted((workdir / ".snakemake" / "locks").glob("*.lock"))


def runs_snakemake(argv: list[str]) -> bool:
    """Whether ``argv`` is a Snakemake run: ``snakemake ...``, ``python .../snakemake ...``
    or ``python -m snakemake ...``."""
    if any(Path(arg).name == "snakemake" for arg in argv[:2]):
        return True
    return any(argv[i:i + 2] == ["-m", "snakemake"] for i in range(min(len(argv), 3)))


def _ancestors(pid: int) -> set[int]:
    """``pid`` and its parents (the ``make`` and shell that started this script)."""
    seen = set()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        try:
            stat = (PROC / str(pid) / "stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    return seen


def live_snakemake_pids(workdir: Path) -> list[int]:
    """Pids of running Snakemake processes whose working directory is ``workdir``.

    A Snakemake process whose working directory cannot be read (another user's) counts
    as live: it may hold the lock, so it is never unlocked from under it.
    """
    workdir = workdir.resolve()
    skip = _ancestors(os.getpid())
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            argv = [a.decode("utf-8", "replace")
                    for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if not runs_snakemake(argv):
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except FileNotFoundError:
            continue  # exited meanwhile
        except OSError:
            pids.append(int(entry.name))
            continue
        if cwd == workdir:
            pids.append(int(entry.name))
    return sorted(pids)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, unlock if the lock is stale; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", type=Path, default=Path.cwd(),
                        help="Snakemake working directory (default: the current one)")
    parser.add_argument("snakemake", nargs=argparse.REMAINDER,
                        help="-- then the Snakemake command and options of the run")
    args = parser.parse_args(argv)
    cmd = args.snakemake[1:] if args.snakemake[:1] == ["--"] else args.snakemake
    if not cmd:
        parser.error("give the Snakemake command after --")
    workdir = args.directory.resolve()
    if not lock_files(workdir):
        return 0
    live = live_snakemake_pids(workdir)
    if live:
        print(f"Snakemake lock in {workdir} is held by a live run (pid "
              f"{', '.join(map(str, live))}): not unlocking", file=sys.stderr)
        return 0
    done = subprocess.run([*cmd, "--unlock"], cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        print(f"stale Snakemake lock in {workdir}: `{' '.join(cmd)} --unlock` failed",
              file=sys.stderr)
        return done.returncode
    print("stale Snakemake lock from a killed run: unlocked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
