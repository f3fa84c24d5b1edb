"""End-to-end runs through a real single-node SLURM cluster (profiles/slurm-test).

The session fixture starts munged + slurmctld + slurmd on localhost with
tests/slurm/start_cluster.sh (installing Debian's slurm-wlm + munge when missing) and
stops, by pid file, only the daemons it started. Every SLURM job costs ~15 s of status
polling, so the workflows here are shaped to need few jobs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = REPO / "tests" / "slurm"
TEST_PROFILE = REPO / "profiles" / "slurm-test"
RUN_DIR = Path(os.environ.get("JOINTSEG_SLURM_RUN_DIR", "/tmp/jointseg-slurm"))
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _skip_reason() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root: the test cluster installs slurm-wlm and writes /etc/slurm"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is unavailable to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Path]:
    """A running single-node cluster (partitions debug, gpu); yields its run dir."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    started_dir = RUN_DIR / "started"
    before = set(os.listdir(started_dir)) if started_dir.is_dir() else set()
    subprocess.run([str(SLURM_DIR / "start_cluster.sh"), str(RUN_DIR)], check=True, timeout=600)
    ours = sorted(set(os.listdir(started_dir)) - before)
    try:
        yield RUN_DIR
    finally:
        if ours:
            subprocess.run(
                [str(SLURM_DIR / "stop_cluster.sh"), str(RUN_DIR), *ours], check=True, timeout=120
            )


def _snakemake(args: list[str], workdir: Path, timeout: int = 600) -> str:
    """Run the venv's Snakemake in ``workdir``; return its combined output (asserts rc 0)."""
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [str(Path(venv_bin) / "snakemake"), *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"snakemake failed (rc {proc.returncode}):\n{proc.stdout[-6000:]}"
    return proc.stdout


def _squeue_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (partition, state) for jobs still known to slurmctld."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i %P %T"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {i: (p, s) for i, p, s in (line.split() for line in out.splitlines())}


def _fields(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def test_mini_workflow_runs_through_slurm(slurm_cluster: Path, tmp_path: Path) -> None:
    """Grouped per-tile CPU jobs run as one job on `debug`, the batch job on `gpu`."""
    out = _snakemake(
        [
            "-s",
            str(SLURM_DIR / "mini" / "Snakefile"),
            "--profile",
            str(TEST_PROFILE),
            "--group-components",
            "prep=2",
        ],
        tmp_path,
    )
    submitted = SUBMITTED.findall(out)
    assert len(submitted) == 2, f"expected 2 SLURM jobs (prep group, predict), got {submitted}"
    job_ids = [j for j, _ in submitted]
    for _, log in submitted:
        assert Path(log).is_file(), f"no SLURM log {log}"
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs"
    assert sorted(p.name for p in slurm_logs.iterdir()) == ["group_prep_prep", "rule_predict"]

    preps = [
        _fields((tmp_path / "prep" / f).read_text()) for f in sorted(os.listdir(tmp_path / "prep"))
    ]
    assert len(preps) == 2
    assert {p["job"] for p in preps} == {job_ids[0]}, "both tiles must run in the one grouped job"
    assert {p["partition"] for p in preps} == {"debug"}

    pred = _fields((tmp_path / "pred" / "batch0.txt").read_text().splitlines()[-1])
    assert pred == {"job": job_ids[1], "partition": "gpu", "gpus": "0"}

    states = _squeue_states(job_ids)
    assert states == {job_ids[0]: ("debug", "COMPLETED"), job_ids[1]: ("gpu", "COMPLETED")}


DEMO_TILES = [f"32650_{x}_{y}" for x in (663000, 663600) for y in (3543000, 3543600)]


def _reduced_demo_config(path: Path) -> None:
    """config.yaml with a 1.2 km x 1.2 km demo region: 4 tiles of 600 m, 4 dates."""
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["regions"] = {
        "demo": {"bbox": [663000, 3543000, 664200, 3544200], "bbox_crs": "EPSG:32650"}
    }
    cfg["grid"]["tile_size_m"] = 600
    cfg["demo"]["n_dates"] = 4
    # ports of their own, so a demo run of the repository on this machine does not clash
    cfg["stac"]["demo_server"].update(stac_port=18751, file_port=18752)
    path.write_text(yaml.safe_dump(cfg))


def test_demo_dag_to_composites_through_slurm(slurm_cluster: Path, tmp_path: Path) -> None:
    """The real Snakefile, simulate -> search -> download -> cloudmask -> composite.

    Two Snakemake runs, two SLURM jobs: `simulate_demo` first; then the tile stages as
    one group job (`--groups` + `--group-components`, capped by `--cores 1 --resources
    mem_mb=8000` to fit the test node). The split is needed because SLURM ends every
    process of a job step with the step, including demo servers that a `search_scenes`
    job starts detached; in the second run the Snakefile's `onstart` starts them on the
    submitting host, outside SLURM, and the jobs reuse them over 127.0.0.1.
    """
    _reduced_demo_config(tmp_path / "config.yaml")
    common = ["-s", str(REPO / "Snakefile"), "--profile", str(TEST_PROFILE),
              "--configfile", "config.yaml"]  # fmt: skip
    out_sim = _snakemake([*common, "--", "resources/demo/simulation.json"], tmp_path)
    assert len(SUBMITTED.findall(out_sim)) == 1, "simulate_demo did not run as one SLURM job"

    rules = ["search_scenes", "download", "cloudmask", "composite"]
    targets = [
        f"results/demo/2021/composite/{t}_{res}.tif" for t in DEMO_TILES for res in ("10m", "20m")
    ]
    out = _snakemake(
        [*common, "--groups", *(f"{r}=tiles" for r in rules),
         "--group-components", "tiles=100", "--cores", "1", "--resources", "mem_mb=8000",
         "--", *targets],
        tmp_path,
    )  # fmt: skip
    submitted = SUBMITTED.findall(out)
    assert len(submitted) == 1, f"expected one SLURM group job, got {submitted}"
    job_id, log = submitted[0]
    assert Path(log).is_file() and Path(log).parent.name.startswith("group_tiles")
    assert _squeue_states([job_id]) == {job_id: ("debug", "COMPLETED")}

    import rasterio

    for t in DEMO_TILES:
        with rasterio.open(tmp_path / f"results/demo/2021/composite/{t}_10m.tif") as src:
            assert src.count == 6 and src.width == 60 and src.height == 60
            assert src.descriptions == ("B02", "B03", "B04", "B08", "COUNT", "QA")
            count = src.read(5)
        assert count.max() > 0, f"{t}: no clear observation counted"
        assert count.max() <= 4, f"{t}: COUNT exceeds the 4 simulated dates"
