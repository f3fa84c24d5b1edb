"""Paper tables filled from two real report JSONs and one change JSON.

Two small maps (2020, 2021) of one region are built from the real WorldCover cut-out
with random flips; ``accuracy_report`` and ``biennial_change`` run on them, then
``jointseg paper-tables``. Every number in the CSVs must equal the one in the JSONs,
and every set of tables names the epochs (years) it holds.
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

from jointseg.assess.area_tables import growth_table
from jointseg.assess.change import biennial_change
from jointseg.assess.report.build import accuracy_report
from jointseg.assess.table import NO_DATA
from jointseg.assess.tables import (
    INDEX_SCHEMA,
    PAPER_TABLES,
    TableError,
    build_tables,
    sort_inputs,
)
from jointseg.assess.worldcover import read_worldcover
from jointseg.cli import main
from jointseg.grid import GeoBox
from jointseg.io import write_cog

from .test_compare import CUTOUT
from .test_rules import REPO

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


def _paper_tables(reports, out, change=None):
    args = ["paper-tables", "--reports", *map(str, reports), "--out", str(out)]
    return CliRunner().invoke(main, args + (["--change", str(change)] if change else []))


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_tables_name_their_epochs(run):
    d, reports, change_json = run
    out = d / "epochs" / "2020-2021"
    r = _paper_tables(reports, out, change_json)
    assert r.exit_code == 0, r.output
    assert "epochs 2020-2021" in r.output
    index = json.loads((out / "index.json").read_text())
    assert index["schema"] == INDEX_SCHEMA and index["epochs"] == [2020, 2021]
    assert index["regions"] == ["demo"] and index["simulated"] is True
    assert [x["name"] for x in index["tables"]] == [*PAPER_TABLES, "change_accuracy"]
    assert all(x["epochs"] == [2020, 2021] for x in index["tables"])
    assert (out / "index.md").read_text().startswith("# Paper tables: 2020-2021\n")
    for name in PAPER_TABLES:
        assert "**Epochs: 2020, 2021 " in (out / f"{name}.md").read_text()
        rows = _csv(out / f"{name}.csv")
        assert all(row["epochs"] == "2020 2021" for row in rows), name
    assert _csv(out / "table5_growth.csv")  # growth 2020 -> 2021 from the change file
    # an empty table names its epochs too
    only = d / "epochs" / "2020"
    assert _paper_tables(reports[:1], only).exit_code == 0
    assert "**Epochs: 2020 " in (only / "table2_baseline.md").read_text()
    assert json.loads((only / "index.json").read_text())["epochs"] == [2020]


def test_fewer_epochs_never_replace_a_fuller_set(run):
    d, reports, change_json = run
    full, fewer = d / "sets" / "2020-2021", d / "sets" / "2020"
    assert _paper_tables(reports, full, change_json).exit_code == 0
    before = _files(full)
    assert _paper_tables(reports[:1], fewer).exit_code == 0
    assert _files(full) == before  # two year-sets, two folders
    assert json.loads((fewer / "index.json").read_text())["epochs"] == [2020]
    # the fewer years into the fuller set's folder: refused in one line, nothing written
    r = _paper_tables(reports[:1], full)
    assert r.exit_code != 0
    msg = r.output.strip().splitlines()
    assert len(msg) == 1 and "holds the paper tables of 2020-2021" in msg[0]
    assert "inputs are of 2020" in msg[0] and str(d / "sets" / "2020") in msg[0]
    assert _files(full) == before
    # the same years again: rewritten in place
    assert _paper_tables(reports, full, change_json).exit_code == 0


def test_the_rule_names_the_library_tables():
    smk = (REPO / "rules" / "report.smk").read_text()
    assert all(f'"{name}"' in smk for name in PAPER_TABLES)


def test_two_year_sets_plan_two_folders(tmp_path):
    """snakemake paper_tables: each set of years has its own folder of tables."""
    from .test_dag_years import demo_config, dry_run

    demo_config(tmp_path)
    for years, folder in (("[2021,2023]", "2021-2023"),
                          ("[2017,2019,2021,2023]", "2017-2019-2021-2023")):
        out, jobs = dry_run(tmp_path, f"years={years}", target="paper_tables")
        assert jobs["paper_tables"] == 1
        made = next(ln for ln in out.splitlines() if "output: results/paper_tables/" in ln)
        paths = made.split("output: ", 1)[1].split(", ")
        assert f"results/paper_tables/{folder}/index.json" in paths
        assert all(p.startswith(f"results/paper_tables/{folder}/") for p in paths)


def test_growth_from_error_adjusted_areas_with_cis():
    """Table 5: the change sample's net growth ± CI for the region; without a change
    file, the difference of two reports' error-adjusted areas (CIs in quadrature)."""
    ch = {"region": "demo", "simulated": True, "_source": "change.json",
          "consistency": {"applied": True, "method": "monotone"},
          "change_sample": {"status": "ok", "periods": {"2017-2019": {
              "net_growth_km2": 0.4, "net_growth_ci_km2": 0.1, "new_isa_km2": 0.42,
              "new_isa_ci_km2": 0.09}}},
          "groups": {"region": {"demo": {
              "areas": {"2017": {"isa_km2_adjusted": 9.0, "isa_km2_adjusted_ci": 0.3},
                        "2019": {"isa_km2_adjusted": 9.5, "isa_km2_adjusted_ci": 0.4}},
              "growth": [{"from": 2017, "to": 2019, "years": 2, "isa_km2_from": 9.1,
                          "isa_km2_to": 9.6, "abs_km2": 0.5, "total_pct": 5.5,
                          "annual_pct": 2.7}]}},
              "city": {"West": {
                  "areas": {"2017": {"isa_km2_adjusted": 4.0, "isa_km2_adjusted_ci": 0.3},
                            "2019": {"isa_km2_adjusted": 4.2, "isa_km2_adjusted_ci": 0.4}},
                  "growth": [{"from": 2017, "to": 2019, "years": 2, "isa_km2_from": 4.1,
                              "isa_km2_to": 4.3, "abs_km2": 0.2, "total_pct": 4.9,
                              "annual_pct": 2.4}]}}}}
    rows = {r["group"]: r for r in growth_table([], [ch]).rows}
    reg = rows["demo"]
    assert (reg["abs_km2_adjusted"], reg["abs_km2_adjusted_ci"]) == (0.4, 0.1)
    assert reg["new_isa_km2_adjusted"] == 0.42 and reg["adjusted_method"] == "change sample"
    assert reg["method"] == "change (monotone)"
    west = rows["West"]
    assert west["abs_km2_adjusted"] == pytest.approx(0.2)
    assert west["abs_km2_adjusted_ci"] == pytest.approx(0.5)  # sqrt(0.3² + 0.4²)
    rep = {"region": "demo", "simulated": True, "_source": "r"}
    reps = [{**rep, "year": y, "isa_area": {"map_km2": m, "error_adjusted_km2": a,
                                            "error_adjusted_ci_km2": c}}
            for y, m, a, c in ((2017, 9.1, 9.0, 0.3), (2019, 9.6, 9.5, 0.4))]
    (row,) = growth_table(reps, []).rows
    assert row["abs_km2_adjusted"] == pytest.approx(0.5)
    assert row["abs_km2_adjusted_ci"] == pytest.approx(0.5)
