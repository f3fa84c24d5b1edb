"""The SLURM profile sends every GPU job to the GPU partition: every rule of the DAG that
declares a `gpu` resource — the per-tile and batch rules, and those made with `use rule`
(predict_baseline, train_baseline) — gets the profile's GPU partition, and no CPU job
asks for one (snakemake -n with the profile prints each job's resources)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.test_rules import REPO, run_snakemake

PROFILE = REPO / "profiles" / "slurm"


def job_resources(output: str) -> dict[str, list[dict[str, str]]]:
    """rule -> the resources of each of its jobs, from a dry run's job listing."""
    out: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            rule = m[1]
        elif rule and line.strip().startswith("resources: "):
            pairs = line.strip()[len("resources: "):].split(", ")
            out.setdefault(rule, []).append(dict(p.split("=", 1) for p in pairs if "=" in p))
            rule = None
    return out


@pytest.mark.parametrize("batch_block", [0, 2])
def test_every_gpu_rule_gets_the_gpu_partition(tmp_path, batch_block):
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    cpu_partition = profile["default-resources"]["slurm_partition"]
    gpu_partitions = {r["slurm_partition"] for r in profile["set-resources"].values()
                      if r.get("gpu")}
    assert len(gpu_partitions) == 1 and cpu_partition not in gpu_partitions
    # the demo config plans every GPU rule: predict, training and the baseline's twins
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["grid"]["batch_block"] = batch_block
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = run_snakemake(tmp_path, "-n", "--profile", str(PROFILE), "all", timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    jobs = job_resources(r.stdout + r.stderr)
    gpu_rules = {rule for rule, res in jobs.items() if any(int(j.get("gpu", 0)) for j in res)}
    assert {"predict", "predict_baseline", "train_model", "train_baseline"} <= gpu_rules
    for rule, res in jobs.items():
        for j in res:
            if rule in gpu_rules:
                assert j["slurm_partition"] in gpu_partitions, (rule, j)
                assert int(j["gpu"]) >= 1, (rule, j)
            elif "slurm_partition" in j:
                assert j["slurm_partition"] == cpu_partition, (rule, j)
