"""scripts/unlock_if_stale.py: a killed run's Snakemake lock is removed, a live run's is not."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
SCRIPT = REPO / "scripts" / "unlock_if_stale.py"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

SNAKEFILE = """
rule all:
    output:
        "done.txt",
    shell:
        "touch {output}"
"""


@pytest.fixture
def locked_dir(tmp_path: Path) -> Path:
    """A Snakemake working directory with the locks a run killed with -9 leaves behind."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("\n")
    (locks / "0.output.lock").write_text("done.txt\n")
    return tmp_path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, "--cores", "1", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=120)


def unlock_if_stale(workdir: Path, *cmd: str) -> subprocess.CompletedProcess:
    """Run the script in ``workdir`` for ``cmd`` (default: this venv's snakemake --cores 1)."""
    cmd = cmd or (SNAKEMAKE, "--cores", "1")
    return subprocess.run([sys.executable, str(SCRIPT), "--", *cmd], cwd=workdir,
                          capture_output=True, text=True, timeout=120)


def test_stale_lock_is_unlocked_and_the_rerun_works(locked_dir: Path) -> None:
    blocked = snakemake(locked_dir)
    assert blocked.returncode != 0 and "LockException" in blocked.stderr + blocked.stdout
    done = unlock_if_stale(locked_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stale Snakemake lock from a killed run: unlocked"
    assert not list((locked_dir / ".snakemake" / "locks").glob("*.lock"))
    rerun = snakemake(locked_dir)
    assert rerun.returncode == 0, rerun.stderr
    assert (locked_dir / "done.txt").exists()


def test_live_run_in_the_directory_is_not_unlocked(locked_dir: Path, tmp_path_factory) -> None:
    # stands in for a running `snakemake` (argv[0] == "snakemake") working in locked_dir
    live = subprocess.Popen(["snakemake", "60"], executable="sleep", cwd=locked_dir)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    other = subprocess.Popen(["snakemake", "60"], executable="sleep", cwd=elsewhere)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{live.pid}/cmdline").read_bytes()[:9] != b"snakemake":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        done = unlock_if_stale(locked_dir)
        assert done.returncode == 0, done.stderr
        assert f"held by a live run (pid {live.pid})" in done.stderr
        assert str(other.pid) not in done.stderr  # a run in another directory does not count
        assert "unlocked" not in done.stdout
        assert len(list((locked_dir / ".snakemake" / "locks").glob("*.lock"))) == 2
    finally:
        for proc in (live, other):
            proc.kill()
            proc.wait()


def test_no_lock_runs_nothing(tmp_path: Path) -> None:
    done = unlock_if_stale(tmp_path, "false")  # would fail if it were run
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_failed_unlock_is_reported(locked_dir: Path) -> None:
    done = unlock_if_stale(locked_dir, "false")
    assert done.returncode == 1
    assert "`false --unlock` failed" in done.stderr
