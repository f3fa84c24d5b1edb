"""Paper tables filled from two real report JSONs and one change JSON.

Two small maps (2020, 2021) of one region are built from the real WorldCover cut-out
with random flips; ``accuracy_report`` and ``biennial_change`` run on them, then
``jointseg paper-tables``. Every number in the CSVs must equal the one in the JSONs.
"""

from __future__ import annotations

import csv
import json

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import box

from jointseg.assess.change import biennial_change
from jointseg.assess.report.build import accuracy_report
from jointseg.assess.tables import NO_DATA, TableError, build_tables, sort_inputs
from jointseg.assess.worldcover import read_worldcover
from jointseg.cli import main
from jointseg.grid import GeoBox
from jointseg.io import write_cog

from .test_compare import CUTOUT

X0, Y1, SIZE = 246000.0, 37600.0, 300
GRID = GeoBox("EPSG:32632", Affine(1, 0, X0, 0, -1, Y1), SIZE, SIZE)


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    truth = (read_worldcover(CUTOUT, GRID, 2020) == 50).astype(np.uint8)
    rng = np.random.default_rng(7)
    sim = {"JOINTSEG_SIMULATED": "true"}
    write_cog(d / "truth.tif", truth, GRID, nodata=255, tags=sim)
    cities = gpd.GeoDataFrame({"name": ["West", "East"]}, geometry=[
        box(X0, Y1 - SIZE, X0 + 150, Y1), box(X0 + 150, Y1 - SIZE, X0 + SIZE, Y1)],
        crs="EPSG:32632")
    cities.to_file(d / "cities.gpkg")
    maps, reports = {}, []
    for year, p_flip in ((2020, 0.05), (2021, 0.10)):
        m = np.where(rng.random(truth.shape) < p_flip, 1 - truth, truth).astype(np.uint8)
        maps[year] = write_cog(d / f"isa_{year}.tif", m, GRID, nodata=255,
                               tags={"REGION": "demo", **sim})
        base = None
        if year == 2021:
            b = np.where(rng.random(truth.shape) < 0.2, 1 - truth, truth).astype(np.uint8)
            base = write_cog(d / "baseline_2021.tif", b, GRID, nodata=255, tags=sim)
        out = d / "demo" / str(year) / "accuracy"
        accuracy_report(maps[year], CUTOUT, year, out, worldcover_year=2020,
                        truth_path=d / "truth.tif", cities=d / "cities.gpkg",
                        baseline_path=base, min_distance_m=20, target_se=0.05, floor=5)
        reports.append(out / "report.json")
    biennial_change(maps, d / "change", cities=d / "cities.gpkg", region="demo")
    return d, reports, d / "change" / "change.json"


def test_tables_equal_json(run):
    d, reports, change_json = run
    out = d / "tables"
    r = CliRunner().invoke(main, ["paper-tables", "--reports", str(reports[0]), str(reports[1]),
                                  "--change", str(change_json), "--out", str(out)])
    assert r.exit_code == 0, r.output
    j = {y: json.loads(p.read_text()) for y, p in zip((2020, 2021), reports, strict=True)}
    t1 = _csv(out / "table1_products.csv")
    for year in (2020, 2021):
        comp = {c["id"]: c for c in j[year]["comparisons"]}
        row = next(x for x in t1 if x["year"] == str(year) and x["reference"] == "simulated truth"
                   and x["grid"] == "map 1 m grid")
        assert float(row["precision"]) == comp["map_vs_truth_1m"]["precision"]
        assert float(row["f1"]) == comp["map_vs_truth_1m"]["f1"]
        assert row["source"] == str(reports[0] if year == 2020 else reports[1])
        assert row["simulated"] == "True"
        est = next(x for x in t1 if x["year"] == str(year) and "sample" in x["reference"])
        ua = j[year]["estimates"]["all"]["classes"]["1"]
        assert float(est["precision"]) == ua["users_accuracy"]
        assert float(est["precision_ci"]) == ua["users_accuracy_ci"]
    assert not any(x["product"] == "bilinear baseline" for x in t1)
    # table 2 only for 2021 (the year with a baseline); gain in points
    t2 = _csv(out / "table2_baseline.csv")
    assert {x["year"] for x in t2} == {"2021"}
    comp = {c["id"]: c for c in j[2021]["comparisons"]}
    js = next(x for x in t2 if x["method"].startswith("JointSeg") and "1 m" in x["grid"])
    assert float(js["f1_gain_points"]) == pytest.approx(
        100 * (comp["map_vs_truth_1m"]["f1"] - comp["baseline_vs_truth_1m"]["f1"]))
    bl = next(x for x in t2 if x["method"] == "bilinear baseline" and "1 m" in x["grid"])
    assert float(bl["iou"]) == comp["baseline_vs_truth_1m"]["iou"]
    # table 3 per city
    t3 = _csv(out / "table3_cities.csv")
    east = j[2020]["groups"]["city"]["East"]["map_vs_worldcover"]
    row = next(x for x in t3 if x["year"] == "2020" and x["city"] == "East"
               and x["reference"].startswith("ESA WorldCover") and x["product"].startswith("ISA"))
    assert float(row["recall"]) == east["recall"]
    assert float(row["reference_isa_km2"]) == east["ref_isa_km2"]
    # table 4: areas from reports and from the change file
    t4 = _csv(out / "table4_isa_area.csv")
    ch = json.loads(change_json.read_text())
    row = next(x for x in t4 if x["method"] == "change" and x["city"] == "West"
               and x["year"] == "2021")
    assert float(row["isa1_km2"]) == ch["groups"]["city"]["West"]["areas"]["2021"]["isa_km2"]
    row = next(x for x in t4 if x["method"] == "map pixel count" and x["year"] == "2021"
               and x["city"] == "(whole region)")
    assert float(row["isa1_km2"]) == j[2021]["isa_area"]["map_km2"]
    assert float(row["truth_km2"]) == j[2021]["isa_area"]["truth_km2"]
    # both ways of measuring the 2021 area agree (same map, same pixels)
    assert float(row["isa1_km2"]) == pytest.approx(
        ch["groups"]["region"]["demo"]["areas"]["2021"]["isa_km2"])
    t5 = _csv(out / "table5_growth.csv")
    g = ch["groups"]["region"]["demo"]["growth"][0]
    row = next(x for x in t5 if x["group_kind"] == "region")
    assert float(row["annual_pct"]) == g["annual_pct"] and row["from"] == "2020"
    md = (out / "table1_products.md").read_text()
    assert "simulated data" in md and str(reports[0]) in md
    index = (out / "index.md").read_text()
    assert "table5_growth.md" in index and str(change_json) in index


def test_empty_tables_and_growth_from_reports(run):
    d, reports, _ = run
    reps, changes = sort_inputs([reports[0]])
    tables = {t.name: t for t in build_tables(reps, changes)}
    assert tables["table2_baseline"].rows == [] and tables["table5_growth"].rows == []
    out = d / "only2020"
    r = CliRunner().invoke(main, ["paper-tables", "--reports", str(reports[0]), "--out",
                                  str(out)])
    assert r.exit_code == 0, r.output
    assert NO_DATA in (out / "table2_baseline.md").read_text()
    assert _csv(out / "table2_baseline.csv") == []
    # growth from two reports when there is no change file
    reps, _ = sort_inputs(reports)
    growth = {t.name: t for t in build_tables(reps, [])}["table5_growth"].rows
    reg = next(x for x in growth if x["group_kind"] == "region")
    a0, a1 = (reps[i]["isa_area"]["map_km2"] for i in (0, 1))
    assert reg["annual_pct"] == pytest.approx((a1 / a0 - 1) * 100)
    assert {x["group"] for x in growth if x["group_kind"] == "city"} == {"West", "East"}


def test_rejects_other_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"precision": 1}')
    with pytest.raises(TableError, match="x.json: schema"):
        sort_inputs([p])
