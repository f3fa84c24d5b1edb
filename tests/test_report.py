"""The accuracy report on a small simulated-like input around São Tomé.

The 1 m "truth" is the real WorldCover cut-out's built-up class read onto an 800 x 800 m
UTM 32N grid; the map is the truth with known perturbations (random flips, a nodata
strip), the baseline a coarser version. Precision/recall/F1 against the truth are
checked against numpy counts made here from the arrays, per city and for the whole map.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import box

from jointseg.assess.report.build import accuracy_report
from jointseg.assess.report.markdown import SIMULATED_BANNER
from jointseg.assess.worldcover import read_worldcover
from jointseg.cli import main
from jointseg.grid import GeoBox
from jointseg.io import write_cog

from .test_compare import CUTOUT

X0, Y1, SIZE = 246000.0, 37600.0, 800
GRID = GeoBox("EPSG:32632", Affine(1, 0, X0, 0, -1, Y1), SIZE, SIZE)


def _counts(m: np.ndarray, r: np.ndarray) -> tuple[int, int, int, int]:
    ok = (m != 255) & (r != 255)
    m, r = m[ok], r[ok]
    return (int(((m == 0) & (r == 0)).sum()), int(((m == 1) & (r == 0)).sum()),
            int(((m == 0) & (r == 1)).sum()), int(((m == 1) & (r == 1)).sum()))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    truth = (read_worldcover(CUTOUT, GRID, 2020) == 50).astype(np.uint8)
    rng = np.random.default_rng(1)
    flip = rng.random(truth.shape) < 0.08
    m = np.where(flip, 1 - truth, truth).astype(np.uint8)
    m[780:, :] = 255  # nodata strip
    base = np.kron(truth[::4, ::4], np.ones((4, 4), np.uint8))  # blockier baseline
    base = np.where(rng.random(truth.shape) < 0.15, 1 - base, base).astype(np.uint8)
    prob = np.where(m == 1, 200, 40).astype(np.uint8)
    prob[m == 255] = 255
    sim = {"JOINTSEG_SIMULATED": "true"}
    write_cog(d / "truth.tif", truth, GRID, nodata=255, tags=sim)
    write_cog(d / "isa_1m.tif", m, GRID, nodata=255, tags={"REGION": "saotome", **sim})
    write_cog(d / "plain_isa_1m.tif", m, GRID, nodata=255)
    write_cog(d / "baseline.tif", base, GRID, nodata=255, tags=sim)
    write_cog(d / "prob.tif", prob, GRID, nodata=255, scales=[1 / 254], tags=sim)
    cities = gpd.GeoDataFrame({"name": ["West", "East"]}, geometry=[
        box(X0, Y1 - SIZE, X0 + 400, Y1), box(X0 + 400, Y1 - SIZE, X0 + SIZE, Y1)],
        crs="EPSG:32632")
    cities.to_file(d / "cities.gpkg")
    zones = gpd.GeoDataFrame({"zone": ["upstream", "downstream"]}, geometry=[
        box(X0, Y1 - 400, X0 + SIZE, Y1), box(X0, Y1 - SIZE, X0 + SIZE, Y1 - 400)],
        crs="EPSG:32632").to_crs("EPSG:4326")
    zones.to_file(d / "zones.gpkg")
    return d, truth, m, base


def test_report_with_truth(scene):
    d, truth, m, base = scene
    out = d / "out"
    rep = accuracy_report(d / "isa_1m.tif", CUTOUT, 2020, out, prob_path=d / "prob.tif",
                          truth_path=d / "truth.tif", cities=d / "cities.gpkg",
                          city_field="name", zones=d / "zones.gpkg", zone_field="zone",
                          baseline_path=d / "baseline.tif", min_distance_m=30, target_se=0.05,
                          floor=5, seed=3)
    for name in ("report.md", "report.json", "confusion.csv", "samples.gpkg", "confusion.png",
                 "cities.png", "agreement.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "report.json").read_text())
    assert saved["region"] == "saotome" and saved["simulated"] is True
    assert saved["comparisons"] == rep["comparisons"]
    by_id = {c["id"]: c for c in saved["comparisons"]}
    tn, fp, fn, tp = _counts(m, truth)
    c = by_id["map_vs_truth_1m"]
    assert (c["tn"], c["fp"], c["fn"], c["tp"]) == (tn, fp, fn, tp)
    assert c["precision"] == pytest.approx(tp / (tp + fp), abs=1e-12)
    assert c["recall"] == pytest.approx(tp / (tp + fn), abs=1e-12)
    assert c["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
    assert c["reference"] == "simulated truth" and c["simulated"] is True
    btn, bfp, bfn, btp = _counts(base, truth)
    assert by_id["baseline_vs_truth_1m"]["iou"] == pytest.approx(btp / (btp + bfp + bfn))
    assert {"map_vs_worldcover", "baseline_vs_worldcover", "map_vs_truth_10m",
            "worldcover_vs_truth_10m"} <= set(by_id)
    w = by_id["map_vs_worldcover"]
    assert w["n_pixels"] == w["tn"] + w["fp"] + w["fn"] + w["tp"] > 5000
    # per city, 1 m: West = columns 0-399
    west = saved["groups"]["city"]["West"]
    wtn, wfp, wfn, wtp = _counts(m[:, :400], truth[:, :400])
    assert (west["map_vs_truth_1m"]["tp"], west["map_vs_truth_1m"]["fp"]) == (wtp, wfp)
    assert west["map_vs_truth_1m"]["recall"] == pytest.approx(wtp / (wtp + wfn))
    assert west["map_isa_km2"] == pytest.approx((m[:, :400] == 1).sum() / 1e6)
    assert west["truth_isa_km2"] == pytest.approx(truth[:, :400].sum() / 1e6)
    assert saved["isa_area"]["map_km2"] == pytest.approx((m == 1).sum() / 1e6)
    assert set(saved["groups"]["zone"]) == {"upstream", "downstream"}
    # threshold sweep on the probability map: p = 200/254 >= t for t <= 0.7, 40/254 < 0.2
    sweep = {r["threshold"]: r for r in saved["threshold_sweep"]["rows"]}
    assert sweep[0.5]["tp"] == tp and sweep[0.5]["fp"] == fp
    assert sweep[0.1]["fp"] + sweep[0.1]["tn"] == tn + fp and sweep[0.1]["tn"] == 0
    # sample labelled from the truth at the points, estimates made
    pts = gpd.read_file(out / "samples.gpkg")
    assert len(pts) == saved["sample"]["n_points"] > 0
    rows, cols = rasterio.transform.rowcol(GRID.transform, pts.geometry.x, pts.geometry.y)
    assert pts["reference"].astype(int).tolist() == truth[rows, cols].tolist()
    assert (pts["map_class"].astype(int).to_numpy() == m[rows, cols]).all()
    assert set(pts["city"].dropna()) <= {"West", "East"}
    est = saved["estimates"]
    assert est["status"] == "ok" and est["simulated"] is True
    assert est["reference"] == "simulated truth"
    assert saved["isa_area"]["error_adjusted_km2"] == est["all"]["classes"]["1"]["area"]
    assert set(est["zone"]) == {"upstream", "downstream"}
    # the sample estimate of overall accuracy is consistent with the flip rate (8 %)
    assert est["all"]["overall_accuracy"] == pytest.approx(0.92, abs=0.15)
    md = (out / "report.md").read_text()
    assert md.startswith(SIMULATED_BANNER)
    assert "not** a real-world accuracy" in md
    csv_rows = (out / "confusion.csv").read_text().splitlines()
    assert any(r.startswith("map_vs_truth_1m,") and f",{tn},{fp},{fn},{tp}," in r
               for r in csv_rows)


def test_report_without_truth_is_not_simulated(scene):
    d, _, m, _ = scene
    out = d / "plain"
    rep = accuracy_report(d / "plain_isa_1m.tif", CUTOUT, 2020, out, min_distance_m=30,
                          target_se=0.05, floor=5)
    assert rep["simulated"] is False  # plain map, real WorldCover
    assert rep["estimates"]["status"] == "awaiting reference labels"
    assert rep["isa_area"]["error_adjusted_km2"] is None
    assert [c["id"] for c in rep["comparisons"]] == ["map_vs_worldcover"]
    assert rep["inputs"]["map"]["sha256"] and rep["inputs"]["worldcover"]["files"][0]["sha256"]
    md = (out / "report.md").read_text()
    assert not md.startswith(">") and "awaiting reference labels" in md
    pts = gpd.read_file(out / "samples.gpkg")
    assert "reference" not in pts.columns and len(pts) > 0
    # label the sample by hand (here: from the map itself) and estimate from the labels
    rows, cols = rasterio.transform.rowcol(GRID.transform, pts.geometry.x, pts.geometry.y)
    pts["reference"] = m[rows, cols].astype(int)
    pts.to_file(d / "labelled.gpkg", layer="samples")
    r = CliRunner().invoke(main, [
        "accuracy-report", "--map", str(d / "plain_isa_1m.tif"), "--worldcover", str(CUTOUT),
        "--year", "2020", "--labels", str(d / "labelled.gpkg"), "--out", str(d / "lab"),
        "--no-progress"])
    assert r.exit_code == 0, r.output
    lab = json.loads((d / "lab" / "report.json").read_text())
    assert lab["estimates"]["status"] == "ok"
    assert lab["estimates"]["all"]["overall_accuracy"] == pytest.approx(1.0)  # labels = map
    n1 = int((m == 1).sum())
    assert lab["isa_area"]["error_adjusted_km2"] == pytest.approx(n1 / 1e6)


def test_geodesic_pixel_area():
    g = GeoBox("EPSG:4326", Affine(1 / 12000, 0, 6.7, 0, -1 / 12000, 0.36), 10, 2)
    a = g.pixel_area_m2_rows() / 1e6  # km²
    # at the equator a 1/12000 degree pixel is about 9.28 m x 9.21 m
    assert a[0] == pytest.approx(111.32 * 110.57 / 12000**2, rel=2e-3)


def test_estimates_refused_when_a_stratum_has_no_point(scene):
    """A stratum of positive size with no labelled point: the estimates are refused (its
    area would be dropped silently), and the report says so."""
    d, *_ = scene
    out = d / "sparse"
    first = accuracy_report(d / "isa_1m.tif", CUTOUT, 2020, out, truth_path=d / "truth.tif",
                            target_se=0.05, floor=5)
    assert first["estimates"]["status"] == "ok"
    # unlabel every point of map class 1: that stratum keeps its pixels but no label
    pts = gpd.read_file(out / "samples.gpkg")
    isa = pts["map_class"].astype(int).to_numpy() == 1
    assert isa.any() and not isa.all()
    pts["reference"] = pts["reference"].astype("Int64")
    pts.loc[isa, "reference"] = pd.NA
    pts.to_file(out / "samples.gpkg", layer="samples")
    rep = accuracy_report(d / "isa_1m.tif", CUTOUT, 2020, d / "sparse_labels",
                          labels_path=out / "samples.gpkg", target_se=0.05, floor=5)
    assert rep["sample"]["source"] == "labels"
    assert rep["sample"]["n_labelled"] == int((~isa).sum())
    assert rep["estimates"]["status"].startswith("not estimable: strata")
    assert rep["isa_area"]["error_adjusted_km2"] is None
    assert "not estimable" in (d / "sparse_labels" / "report.md").read_text()
