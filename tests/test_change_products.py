"""Change products on four small yearly maps with known growth: areas with CIs, growth,
year of first ISA, the consistency rule's measured effect, new-ISA accuracy against a
truth per year, the stratified change sample, the plots and the tables built from them.

Grid: 20 x 20 pixels of 1 m (1 pixel = 1e-6 km²). Truth ISA = rows 0..k-1 with
k = 2, 4, 6, 8 in 2017, 2019, 2021, 2023 (40, 80, 120, 160 px). The maps equal the
truth except: the 2019 map misses row 3; the 2023 map misses row 7.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import box

from jointseg.assess import tables
from jointseg.assess.change import ChangeError, biennial_change
from jointseg.assess.change.temporal import TemporalSettings
from jointseg.cli import main
from jointseg.grid import GeoBox
from jointseg.io import write_cog

X0, Y0 = 663000.0, 3549000.0
GRID = GeoBox("EPSG:32650", Affine(1, 0, X0, 0, -1, Y0), 20, 20)
PX = 1e-6
YEARS = (2017, 2019, 2021, 2023)
TRUTH_ROWS = {2017: 2, 2019: 4, 2021: 6, 2023: 8}


def _rows(rows) -> np.ndarray:
    a = np.zeros((20, 20), np.uint8)
    a[list(rows)] = 1
    return a


def _write(path, arr, *, simulated=True, geobox=GRID):
    write_cog(path, arr, geobox, nodata=255,
              tags={"JOINTSEG_SIMULATED": "true"} if simulated else None)
    return str(path)


@pytest.fixture
def series(tmp_path):
    truth = {y: _rows(range(k)) for y, k in TRUTH_ROWS.items()}
    maps = {y: t.copy() for y, t in truth.items()}
    maps[2019][3] = 0
    maps[2023][7] = 0
    # truth on a coarser-origin grid of its own (2 px larger): read with nearest
    big = GeoBox("EPSG:32650", Affine(1, 0, X0 - 1, 0, -1, Y0 + 1), 22, 22)
    tpaths = {}
    for y, t in truth.items():
        tb = np.zeros((22, 22), np.uint8)
        tb[1:21, 1:21] = t
        tpaths[y] = _write(tmp_path / f"truth_{y}.tif", tb, geobox=big)
    mpaths = {y: _write(tmp_path / f"map_{y}.tif", m) for y, m in maps.items()}
    districts = gpd.GeoDataFrame({"name": ["West", "East"]},
                                 geometry=[box(X0, Y0 - 20, X0 + 10, Y0),
                                           box(X0 + 10, Y0 - 20, X0 + 20, Y0)],
                                 crs="EPSG:32650")
    dpath = tmp_path / "districts.gpkg"
    districts.to_file(dpath)
    return mpaths, tpaths, str(dpath)


def test_areas_growth_first_year_and_accuracy(series, tmp_path):
    maps, truth, districts = series
    res = biennial_change(maps, tmp_path / "out", truth=truth, cities=districts,
                          region="demo", sample_floor=400)
    reg = res["groups"]["region"]["demo"]
    assert [reg["areas"][str(y)]["isa_km2"] for y in YEARS] == pytest.approx(
        [40 * PX, 60 * PX, 120 * PX, 140 * PX])
    assert reg["areas"]["2017"]["area_method"] == "pixel count (no reference sample)"
    assert res["groups"]["city"]["East"]["areas"]["2021"]["isa_km2"] == pytest.approx(60 * PX)
    g = {(s["from"], s["to"]): s for s in reg["growth"]}
    assert g[(2017, 2019)]["abs_km2"] == pytest.approx(20 * PX)
    assert g[(2017, 2019)]["annual_pct"] == pytest.approx((1.5 ** 0.5 - 1) * 100)
    assert g[(2017, 2023)]["annual_pct"] == pytest.approx((3.5 ** (1 / 6) - 1) * 100)
    with rasterio.open(tmp_path / "out" / "first_isa_year.tif") as ds:
        first = ds.read(1)
        assert ds.dtypes[0] == "uint16" and ds.nodata == 65535
        assert ds.tags()["JOINTSEG_SIMULATED"] == "true"
    assert [int(first[r, 0]) for r in range(9)] == [2017, 2017, 2019, 2021, 2021, 2021,
                                                    2023, 0, 0]
    acc = res["change_accuracy"]["periods"]
    # 2017-19: map new = row 2, truth rows 2-3 -> P 1, R 0.5; 2019-21: map rows 3-5,
    # truth rows 4-5 -> P 2/3, R 1; 2021-23: map row 6, truth rows 6-7 -> P 1, R 0.5
    assert (acc["2017-2019"]["precision"], acc["2017-2019"]["recall"]) == (1.0, 0.5)
    assert acc["2017-2019"]["f1"] == pytest.approx(2 / 3)
    assert acc["2019-2021"]["f1"] == pytest.approx(0.8)
    assert acc["2017-2023"]["f1"] == pytest.approx(2 * 100 / (2 * 100 + 20))
    assert acc["2017-2023"]["reference_new_isa_km2"] == pytest.approx(120 * PX)
    assert res["simulated"] is True


def test_change_sample_estimates_new_isa_area(series, tmp_path):
    """A census (floor >= stratum sizes): every period's estimate equals the truth's new
    ISA (40 px per period, 120 px 2017-2023); strata are the map's trajectories."""
    maps, truth, _ = series
    res = biennial_change(maps, tmp_path / "out", truth=truth, region="demo",
                          sample_floor=400)
    s = res["change_sample"]
    assert s["status"] == "ok" and s["years"] == list(YEARS)
    assert {t["label"]: t["pixels"] for t in s["design"]["strata"]} == {
        "stable non-ISA": 260, "stable ISA": 40, "new ISA 2017-2019": 20,
        "new ISA 2019-2021": 60, "new ISA 2021-2023": 20}
    assert s["n_labelled"] == 400
    per = s["periods"]
    assert set(per) == {"2017-2019", "2019-2021", "2021-2023", "2017-2023"}
    for p in ("2017-2019", "2019-2021", "2021-2023"):
        assert per[p]["new_isa_km2"] == pytest.approx(40 * PX)
        assert per[p]["net_growth_km2"] == pytest.approx(40 * PX)
        assert per[p]["new_isa_ci_km2"] > 0  # no finite-population correction
    assert per["2017-2023"]["new_isa_km2"] == pytest.approx(120 * PX)
    assert [per[p]["new_isa_map_km2"] for p in ("2017-2019", "2019-2021", "2021-2023")] == (
        pytest.approx([20 * PX, 60 * PX, 20 * PX]))
    assert per["2019-2021"]["new_isa_users_accuracy"] == pytest.approx(40 / 60)
    assert per["2017-2019"]["new_isa_producers_accuracy"] == pytest.approx(0.5)
    pts = gpd.read_file(tmp_path / "out" / "change_sample.gpkg")
    assert len(pts) == 400 and pts["reference_bits"].notna().all()
    np.testing.assert_allclose(pts["inclusion_probability"], 1.0)
    # a real sample: floor 20 -> rare strata get 20, estimates within their CIs
    res = biennial_change(maps, tmp_path / "small", truth=truth, region="demo",
                          sample_floor=20, sample_target_se=0.05, seed=3)
    s = res["change_sample"]
    assert all(t["n"] >= 20 or t["n"] == t["pixels"] for t in s["design"]["strata"])
    assert s["n_labelled"] < 400
    for p, e in s["periods"].items():
        true = (120 if p == "2017-2023" else 40) * PX
        assert abs(e["new_isa_km2"] - true) <= 3 * e["new_isa_ci_km2"] + 1e-12, p


def test_consistency_effect_is_measured(series, tmp_path):
    """A spurious 2021 loss at (0, 0) with p 0.5: the rule restores it; without the rule
    2021-23 gets one false new-ISA pixel."""
    maps, truth, _ = series
    m21 = _rows(range(6))
    m21[0, 0] = 0
    maps = {**maps, 2021: _write(tmp_path / "m21.tif", m21)}
    probs = {}
    for y in YEARS:
        with rasterio.open(maps[y]) as ds:
            p = np.where(ds.read(1) == 1, 230, 20).astype(np.uint8)
        if y == 2021:
            p[0, 0] = 127
        probs[y] = _write(tmp_path / f"p{y}.tif", p)
    res = biennial_change(maps, tmp_path / "out", probs=probs, truth=truth,
                          temporal=TemporalSettings("carry"), region="demo", plots=False)
    c = res["consistency"]
    assert c["changed_pixels_total"] == 1 and c["changed_pixels"]["2021"] == 1
    f1 = c["new_isa_f1"]["2021-2023"]
    assert f1["with_rule"] == pytest.approx(2 * 20 / (2 * 20 + 20))
    assert f1["without_rule"] == pytest.approx(2 * 20 / (2 * 20 + 21))
    assert res["groups"]["region"]["demo"]["areas"]["2021"]["isa_km2"] == pytest.approx(
        120 * PX)


def _report(tmp_path, year, area, ci):
    rep = {"schema": "jointseg.accuracy_report/1", "region": "demo", "year": year,
           "simulated": True,
           "isa_area": {"map_km2": area, "error_adjusted_km2": area,
                        "error_adjusted_ci_km2": ci},
           "estimates": {"status": "ok", "reference": "truth", "simulated": True,
                         "all": {"n_samples": 50, "classes": {"1": {
                             "area": area, "area_ci": ci, "users_accuracy": 1.0,
                             "users_accuracy_ci": 0.0, "producers_accuracy": 1.0,
                             "producers_accuracy_ci": 0.0, "f1": 1.0}}}}}
    p = tmp_path / f"report_{year}.json"
    p.write_text(json.dumps(rep))
    return str(p)


def test_cli_reports_plots_and_tables(series, tmp_path):
    maps, truth, districts = series
    reps = {y: _report(tmp_path, y, (40 + 20 * k) * PX, 5 * PX) for k, y in enumerate(YEARS)}
    out = tmp_path / "cli"
    args = ["change", *[a for y in YEARS for a in ("--maps", f"{y}={maps[y]}")],
            *[a for y in YEARS for a in ("--truth", f"{y}={truth[y]}")],
            *[a for y in YEARS for a in ("--reports", f"{y}={reps[y]}")],
            "--cities", districts, "--region", "demo", "--out", str(out), "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "new-ISA F1" in r.output and "SIMULATED" in r.output
    res = json.loads((out / "change.json").read_text())
    a = res["groups"]["region"]["demo"]["areas"]["2021"]
    assert (a["isa_km2_adjusted"], a["isa_km2_adjusted_ci"]) == pytest.approx((80 * PX, 5 * PX))
    for name in ("area_per_year.png", "growth_map.png", "change.md", "change_2021_2023.tif"):
        assert (out / name).stat().st_size > 0
    md = (out / "change.md").read_text()
    assert "SIMULATED" in md and "Stratified change sample" in md and "0.8000" in md
    reps_in, changes = tables.sort_inputs([out / "change.json"])
    built = {t.name: t for t in tables.build_tables(reps_in, changes)}
    t4 = [r for r in built["table4_isa_area"].rows if r["city"] == "(whole region)"]
    assert sorted(r["year"] for r in t4) == list(YEARS)
    assert all(r["isa1_error_adjusted_ci_km2"] == pytest.approx(5 * PX) for r in t4)
    assert {r["group"] for r in built["table5_growth"].rows} == {"demo", "West", "East"}
    ca = {r["period"]: r for r in built["change_accuracy"].rows}
    assert ca["2019-2021"]["f1"] == pytest.approx(0.8)
    assert ca["2017-2023"]["sample_new_isa_km2"] is not None
    assert all(r["simulated"] for t in built.values() for r in t.rows)
    r = CliRunner().invoke(main, ["paper-tables", "--change", str(out / "change.json"),
                                  "--reports", reps[2017], "--out", str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    index = (tmp_path / "t" / "index.md").read_text()
    assert "../cli/growth_map.png" in index and "../cli/change.md" in index
    assert (tmp_path / "t" / "change_accuracy.csv").exists()
    bad = CliRunner().invoke(main, [*args[:9], "--truth", f"2017={truth[2017]}", "--out",
                                    str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "one --truth per map year" in bad.output


def test_bad_reference_raises(series, tmp_path):
    maps, truth, _ = series
    bad = _write(tmp_path / "bad.tif", _rows(range(3)) * 3)
    with pytest.raises(ChangeError, match=r"bad.tif: map holds values \[3\]"):
        biennial_change(maps, tmp_path / "x", truth={**truth, 2019: bad})
