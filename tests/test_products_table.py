"""Table 1 rows from products.json beside each report, and assess_products in the demo DAG."""

from __future__ import annotations

import json

import pytest
import yaml

from jointseg.assess.otherproducts.assess import SCHEMA
from jointseg.assess.otherproducts.table import ProductsFileError
from jointseg.assess.product_tables import products_table
from tests.test_dag_training import job_counts
from tests.test_rules import REPO, run_snakemake


def _row(name, kind, f1, gain, sim=True):
    """A products.json row whose scores all differ, so a swapped column shows."""
    return {"name": name, "kind": kind, "path": "x.tif", "simulated": sim, "product_year": 2018,
            "precision": f1 - 0.05, "recall": f1 + 0.05, "f1": f1, "oa": 0.9, "iou": f1 / 2,
            "n_pixels": 100, "f1_gain_points": gain}


def test_products_table_rows(tmp_path):
    acc = tmp_path / "demo" / "2021" / "accuracy"
    acc.mkdir(parents=True)
    (acc / "products.json").write_text(json.dumps({
        "schema": SCHEMA, "year": 2021, "threshold": 0.5, "n_common": 100,
        "reference": {"kind": "raster", "path": "truth.tif", "simulated": True},
        "rows": [_row("ISA-1 (JointSeg)", "jointseg", 0.9, 0.0),
                 _row("bilinear baseline", "baseline", 0.8, 10.0),
                 _row("GAIA", "gaia", 0.6, 30.0)]}))
    rep = {"region": "demo", "year": 2021, "_source": str(acc / "report.json")}
    t = products_table([rep])
    names = [r["product"] for r in t.rows]
    assert names == ["ISA-1 (JointSeg)", "GAIA 2018 (simulated stand-in)"]
    gaia = t.rows[1]
    assert gaia["f1_gain_points"] == 30.0 and gaia["oa"] == 0.9 and gaia["simulated"]
    assert (gaia["precision"], gaia["recall"], gaia["f1"], gaia["iou"], gaia["n"]) == (
        pytest.approx(0.55), pytest.approx(0.65), 0.6, 0.3, 100)
    assert gaia["reference"] == "simulated raster truth.tif (10 m cells >= 0.5 ISA)"
    assert t.rows[0]["f1"] == 0.9 and t.rows[0]["f1_gain_points"] == 0.0
    assert gaia["region"] == "demo" and gaia["year"] == 2021
    assert {"oa", "f1_gain_points"} <= set(t.columns)
    (acc / "products.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(ProductsFileError, match="products.json: expected schema"):
        products_table([rep])


def test_demo_paper_tables_plans_assess_products(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["results_dir"], cfg["resources_dir"] = "results", "resources"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = run_snakemake(tmp_path, "-n", "paper_tables", timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    jobs = job_counts(out)
    assert jobs.get("assess_products", 0) >= 1  # one per demo year
    assert jobs.get("simulate_products") == 1
