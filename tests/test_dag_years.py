"""Years side by side in the demo DAG (snakemake -n): simulate_demo simulates every year of
demo.years once, so mapping another year (or several) neither re-simulates nor retrains,
and four years plan the change step."""

from __future__ import annotations

import pytest
import yaml

from tests.test_dag_training import job_counts
from tests.test_rules import REPO, run_snakemake, shell_commands

FOUR = "years=[2017,2019,2021,2023]"
#: rules whose jobs must not depend on the mapped year
YEAR_FREE = ("simulate region", "jointseg -v chips", "jointseg -v train", "jointseg -v export")


def demo_config(tmp_path) -> None:
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["results_dir"], cfg["resources_dir"] = "results", "resources"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))


def dry_run(tmp_path, *config: str, target: str = "all") -> tuple[str, dict[str, int]]:
    r = run_snakemake(tmp_path, "-n", "-p", target, "--config", *config, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    return out, job_counts(out)


def year_free_commands(out: str) -> list[str]:
    return sorted(c for c in shell_commands(out) if any(k in c for k in YEAR_FREE))


@pytest.fixture
def workdir(tmp_path):
    demo_config(tmp_path)
    return tmp_path


def test_simulation_and_training_do_not_follow_the_mapped_year(workdir):
    out19, jobs19 = dry_run(workdir, "year=2019")
    out21, _ = dry_run(workdir, "year=2021")
    out4, jobs4 = dry_run(workdir, FOUR)
    cmds = year_free_commands(out19)
    assert len(cmds) == 6  # simulate, chips, train + export of the model and the baseline
    assert cmds == year_free_commands(out21) == year_free_commands(out4)
    sim = next(c for c in cmds if "simulate region" in c)
    for y in (2017, 2019, 2021, 2023):
        assert f"--year {y}" in sim
    assert "--training-year 2021" in sim
    assert jobs19["simulate_demo"] == jobs4["simulate_demo"] == 1
    assert jobs19["train_model"] == jobs4["train_model"] == 1
    # the training composites are 2021's whatever is mapped
    assert "results/training/2021/composite" in out19
    assert "results/demo/2019/isa_1m.tif" in out19 and "results/demo/2021/" not in out19
    assert jobs4["assess_accuracy"] == 4


def test_four_years_plan_the_change_step(workdir):
    _, jobs = dry_run(workdir, FOUR, target="results/demo/change/2017-2019-2021-2023/change.json")
    assert jobs["change"] == 1 and jobs["simulate_demo"] == 1 and jobs["train_model"] == 1
    assert jobs["mosaic"] == 4


def test_another_year_reuses_simulation_and_model(workdir):
    """Once the demo is simulated and the model trained, mapping 2019 plans neither
    simulate_demo nor training (their outputs exist; the 2019 data lie beside 2021's)."""
    out, _ = dry_run(workdir, "year=2021")
    made = [ln.split("output: ", 1)[1] for ln in out.splitlines() if "output: " in ln]
    keep = ("resources/demo/", "results/training/", "results/models/")
    for line in made:
        for path in line.split(", "):
            if path.startswith(keep):
                (workdir / path).parent.mkdir(parents=True, exist_ok=True)
                (workdir / path).touch()
    _, jobs = dry_run(workdir, "year=2019")
    assert not {"simulate_demo", "make_chips", "train_model", "train_baseline",
                "export_onnx"} & set(jobs), jobs
    assert jobs["search_scenes"] >= 1 and jobs["assess_accuracy"] == 1


def test_a_year_the_demo_did_not_simulate_is_refused(workdir):
    r = run_snakemake(workdir, "-n", "all", "--config", "year=2018", timeout=300)
    assert r.returncode != 0
    assert "not simulated" in r.stdout + r.stderr and "demo.years" in r.stdout + r.stderr
