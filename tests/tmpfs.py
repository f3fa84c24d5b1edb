"""A small real tmpfs for disk-full tests (``mount -t tmpfs``; root only).

:func:`small_tmpfs` mounts one (20 MiB by default) on a folder and always unmounts it;
where mounting is refused (not root, no CAP_SYS_ADMIN, a container without it) the
test is skipped with the reason. :func:`fill` takes the space that is left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "20m") -> Iterator[Path]:
    """Mount a ``size`` tmpfs on ``path`` (created) for the block; skip when refused."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(path)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(directory: Path, leave: int = 0) -> Path:
    """Write ``directory/filler`` until at most ``leave`` bytes are free there."""
    filler = directory / "filler"
    with open(filler, "ab") as f:
        chunk = 1 << 20
        while chunk >= 4096:
            st = os.statvfs(directory)
            if st.f_bavail * st.f_frsize - chunk < leave:
                chunk //= 2
                continue
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    return filler


def listing(directory: Path) -> list[str]:
    """Every entry under ``directory`` (dot files too), relative, sorted."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))
