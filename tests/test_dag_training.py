"""Which training and baseline rules a config puts in the DAG (snakemake -n): a production
config (demo server off) trains from its training_data via make_chips, or uses model.onnx,
and holds no simulated chips and no baseline unless it asks for them."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.test_rules import REPO, run_snakemake

BASELINE_RULES = {"train_baseline", "export_baseline", "predict_baseline", "mosaic_baseline"}


def job_counts(output: str) -> dict[str, int]:
    """rule -> jobs of the last 'Job stats' table of a dry run."""
    table = output.rsplit("Job stats:", 1)[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)
            if m[1] != "total"}


def production_config(tmp_path, **model) -> dict:
    """The repository's config as a real region would have it: demo server off, a https
    STAC API, the demo's simulated training region removed."""
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["stac"]["api_url"] = "https://stac.invalid/v1"
    cfg["stac"]["demo_server"]["enabled"] = False
    cfg.pop("training_data")
    cfg["model"].pop("baseline")
    cfg["model"].update(model)
    cfg["results_dir"], cfg["resources_dir"] = "results", "resources"
    return cfg


def user_training(tmp_path) -> dict:
    """A user's training region with (placeholder) HR and label files."""
    for name in ("hr.tif", "osm.gpkg"):
        (tmp_path / name).touch()
    return {"bbox": [654000, 3543000, 657000, 3546000], "bbox_crs": "EPSG:32650",
            "hr": [str(tmp_path / "hr.tif")], "labels": [str(tmp_path / "osm.gpkg")]}


def dry_run(tmp_path, cfg: dict) -> tuple[int, str, dict[str, int]]:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = run_snakemake(tmp_path, "-n", "-p", "all", timeout=300)
    out = r.stdout + r.stderr
    return r.returncode, out, job_counts(out) if r.returncode == 0 else {}


@pytest.mark.parametrize("batch_block", [0, 2])
def test_production_with_training_data_makes_chips_and_no_baseline(tmp_path, batch_block):
    cfg = production_config(tmp_path)
    cfg["grid"]["batch_block"] = batch_block
    cfg["training_data"] = user_training(tmp_path)
    rc, out, jobs = dry_run(tmp_path, cfg)
    assert rc == 0, out[-3000:]
    assert jobs["make_chips"] == 1 and jobs["train_model"] == 1
    assert "simulate_chips" not in jobs and "simulate_demo" not in jobs
    assert not BASELINE_RULES & set(jobs)
    # the training region's composite comes from the usual rules
    assert "results/training/2021/composite" in out
    chips_cmd = next(ln for ln in out.splitlines() if "jointseg -v chips" in ln)
    assert str(tmp_path / "hr.tif") in chips_cmd and "--composite" in chips_cmd


def test_production_with_model_onnx_trains_nothing(tmp_path):
    onnx = tmp_path / "mine.onnx"
    onnx.touch()
    rc, out, jobs = dry_run(tmp_path, production_config(tmp_path, onnx=str(onnx)))
    assert rc == 0, out[-3000:]
    assert not {"train_model", "export_onnx", "make_chips", "simulate_chips"} & set(jobs)
    assert not BASELINE_RULES & set(jobs)
    assert jobs["predict"] >= 1


def test_production_without_training_data_says_what_to_set(tmp_path):
    rc, out, _ = dry_run(tmp_path, production_config(tmp_path))
    assert rc != 0
    # one line, whatever files lie around (a demo model in the directory changes nothing)
    assert out.strip().splitlines() == [
        "config: no model and no training data: set model.onnx (a trained JointSeg ONNX"
        " model) or training_data (README 'Train on your own region')"]


def test_production_asks_for_baseline_and_simulated_chips(tmp_path):
    cfg = production_config(tmp_path, baseline=True)
    cfg["model"]["chips"]["source"] = "simulated"
    rc, out, jobs = dry_run(tmp_path, cfg)
    assert rc == 0, out[-3000:]
    assert jobs["simulate_chips"] == 1
    assert BASELINE_RULES <= set(jobs)


def test_demo_trains_from_make_chips_on_simulated_sources(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["results_dir"], cfg["resources_dir"] = "results", "resources"
    rc, out, jobs = dry_run(tmp_path, cfg)
    assert rc == 0, out[-3000:]
    assert jobs["make_chips"] == 1 and jobs["simulate_demo"] == 1
    assert "simulate_chips" not in jobs
    assert BASELINE_RULES <= set(jobs)
    assert "--training-bbox" in out


def test_simulated_training_region_needs_the_demo_server(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["stac"]["demo_server"]["enabled"] = False
    cfg["stac"]["api_url"] = "https://stac.invalid/v1"
    rc, out, _ = dry_run(tmp_path, cfg)
    assert rc != 0 and "training_data.simulated" in out
