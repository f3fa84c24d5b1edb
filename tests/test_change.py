"""Biennial change on tiny hand-made maps: areas, growth, consistency flips, change maps.

Maps are 6 x 10 pixels of 10 m (one pixel = 100 m² = 1e-4 km²) in UTM 50N; city A
covers columns 0-4, city B columns 5-9. Every expected number below is counted by
hand from the arrays, not from the code under test.
"""

from __future__ import annotations

import csv
import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import box

from jointseg.assess.change import (
    ChangeError,
    annual_growth_pct,
    biennial_change,
    check_same_grid,
    parse_year_paths,
    scan,
)
from jointseg.assess.change.maps import change_codes
from jointseg.assess.change.temporal import TemporalSettings
from jointseg.assess.consistency import consistent_step
from jointseg.cli import main
from jointseg.grid import GeoBox
from jointseg.io import write_cog

X0, Y0 = 663000.0, 3549000.0
GRID = GeoBox("EPSG:32650", Affine(10, 0, X0, 0, -10, Y0), 10, 6)
PX_KM2 = 1e-4


def _map(ones: list[tuple[int, int]], nodata: list[tuple[int, int]] = ()) -> np.ndarray:
    a = np.zeros((6, 10), np.uint8)
    for r, c in ones:
        a[r, c] = 1
    for r, c in nodata:
        a[r, c] = 255
    return a


def _write(path, arr, geobox=GRID, simulated=False, scale=None):
    tags = {"JOINTSEG_SIMULATED": "true"} if simulated else None
    write_cog(path, arr, geobox, nodata=255, tags=tags,
              scales=None if scale is None else [scale])
    return path


@pytest.fixture
def three_years(tmp_path):
    """2017: 10 ISA px (row 0 and row 1 cols 0-4... see below); 2019 and 2021 grow."""
    # 2017: row 0 all ISA (10 px: 5 in A, 5 in B)
    m17 = _map([(0, c) for c in range(10)])
    # 2019: row 0 except col 0 and col 1 (lost), col 2 nodata; row 1 all ISA (+10)
    #   ISA = 7 (row 0 cols 3-9) + 10 = 17; A: cols 3,4 + row1 0-4 = 7; B: 5 + 5 = 10
    m19 = _map([(0, c) for c in range(3, 10)] + [(1, c) for c in range(10)], nodata=[(0, 2)])
    # 2021: row 0 cols 3-9 and row 1 and row 2 cols 5-9 ISA; col 1 and col 2 of row 0 are 0
    #   ISA = 7 + 10 + 5 = 22; A: 2 + 5 = 7; B: 5 + 5 + 5 = 15
    m21 = _map([(0, c) for c in range(3, 10)] + [(1, c) for c in range(10)]
               + [(2, c) for c in range(5, 10)])
    # probabilities (DN, p = DN / 254): confident losses at (0, 0) in 2019 (DN 25, p 0.098)
    # and (0, 1) in 2021 (DN 10); unconfident loss at (0, 1) in 2019 (DN 127, p 0.5) and
    # at (0, 2) in 2021 (DN 200), the latter after a nodata year.
    p19 = np.where(m19 == 1, 230, 20).astype(np.uint8)
    p19[0, 0], p19[0, 1], p19[0, 2] = 25, 127, 255
    p21 = np.where(m21 == 1, 230, 20).astype(np.uint8)
    p21[0, 1], p21[0, 2] = 10, 200
    paths = {y: _write(tmp_path / f"isa_{y}.tif", m, simulated=(y == 2019))
             for y, m in ((2017, m17), (2019, m19), (2021, m21))}
    probs = {y: _write(tmp_path / f"prob_{y}.tif", p, scale=1 / 254)
             for y, p in ((2019, p19), (2021, p21))}
    cities = gpd.GeoDataFrame(
        {"name": ["A", "B"]},
        geometry=[box(X0, Y0 - 60, X0 + 50, Y0), box(X0 + 50, Y0 - 60, X0 + 100, Y0)],
        crs="EPSG:32650")
    cities_path = tmp_path / "cities.gpkg"
    cities.to_file(cities_path)
    return paths, probs, cities_path


def test_rules_by_hand():
    state = np.array([1, 1, 1, 0, 255], np.uint8)
    isa = np.array([0, 0, 255, 1, 0], np.uint8)
    prob = np.array([50, 51, 255, 200, 10], np.uint8)  # 1 - 0.8 = 0.2 -> DN 50.8
    out, new_state, n = consistent_step(state, isa, prob, 0.8)
    assert out.tolist() == [0, 1, 255, 1, 0]
    assert new_state.tolist() == [0, 1, 1, 1, 0]
    assert n == 1
    out, _, n = consistent_step(state, isa, None, 0.8)  # no probabilities: strict
    assert out.tolist() == [1, 1, 255, 1, 0] and n == 2
    codes = change_codes(np.array([0, 1, 0, 1, 255, 0], np.uint8),
                         np.array([0, 1, 1, 0, 1, 255], np.uint8))
    assert codes.tolist() == [0, 1, 2, 3, 255, 255]
    assert annual_growth_pct(10.0, 12.1, 2) == pytest.approx(10.0)
    assert annual_growth_pct(0.0, 5.0, 2) is None


def test_areas_growth_and_maps_without_consistency(three_years, tmp_path, monkeypatch):
    paths, _, cities = three_years
    monkeypatch.setattr(scan, "BLOCK_ROWS", 4)  # two blocks: rows 0-3, 4-5
    res = biennial_change(paths, tmp_path / "out", cities=cities, city_field="name",
                          region="demo")
    reg = res["groups"]["region"]["demo"]
    assert [reg["areas"][y]["isa_km2"] for y in ("2017", "2019", "2021")] == pytest.approx(
        [10 * PX_KM2, 17 * PX_KM2, 22 * PX_KM2])
    assert reg["areas"]["2019"]["valid_km2"] == pytest.approx(59 * PX_KM2)
    a = res["groups"]["city"]["A"]["areas"]
    b = res["groups"]["city"]["B"]["areas"]
    assert [a[y]["isa_km2"] for y in ("2017", "2019", "2021")] == pytest.approx(
        [5 * PX_KM2, 7 * PX_KM2, 7 * PX_KM2])
    assert [b[y]["isa_km2"] for y in ("2017", "2019", "2021")] == pytest.approx(
        [5 * PX_KM2, 10 * PX_KM2, 15 * PX_KM2])
    g = {(s["from"], s["to"]): s for s in reg["growth"]}
    assert g[(2017, 2019)]["abs_km2"] == pytest.approx(7 * PX_KM2)
    assert g[(2017, 2019)]["annual_pct"] == pytest.approx((1.7 ** 0.5 - 1) * 100)
    assert g[(2017, 2021)]["annual_pct"] == pytest.approx((2.2 ** 0.25 - 1) * 100)
    gb = {(s["from"], s["to"]): s for s in res["groups"]["city"]["B"]["growth"]}
    assert gb[(2019, 2021)]["total_pct"] == pytest.approx(50.0)
    assert res["simulated"] is True  # the 2019 map is tagged
    # change map 2017 -> 2019: lost (0,0) (0,1); nodata (0,2); new row 1
    with rasterio.open(tmp_path / "out" / "change_2017_2019.tif") as ds:
        c = ds.read(1)
        assert ds.tags()["JOINTSEG_PRODUCT"] == "isa_change"
        assert ds.tags()["JOINTSEG_SIMULATED"] == "true"
        assert ds.descriptions == ("isa_change_2017_2019",)
        assert ds.tags(1)["CLASS_2"] == "new ISA"
    assert c[0, :3].tolist() == [3, 3, 255] and (c[0, 3:] == 1).all()
    assert (c[1] == 2).all() and (c[2:] == 0).all()
    t = reg["transitions"]["2017-2019"]
    assert t["lost_isa_km2"] == pytest.approx(2 * PX_KM2)
    assert t["new_isa_km2"] == pytest.approx(10 * PX_KM2)
    # CSV values equal the JSON's
    rows = list(csv.DictReader(open(tmp_path / "out" / "change.csv")))
    row = next(r for r in rows if r["group"] == "B" and r["year"] == "2021")
    assert float(row["isa_km2"]) == b["2021"]["isa_km2"]
    assert float(row["growth_km2_from_prev"]) == pytest.approx(5 * PX_KM2)
    assert json.loads((tmp_path / "out" / "change.json").read_text())["years"] == [
        2017, 2019, 2021]


def test_consistency_rule(three_years, tmp_path, monkeypatch):
    paths, probs, _ = three_years
    monkeypatch.setattr(scan, "BLOCK_ROWS", 4)
    res = biennial_change(paths, tmp_path / "out", probs=probs,
                          temporal=TemporalSettings("carry", confident=0.8), region="demo")
    reg = res["groups"]["region"]["demo"]
    # 2019: (0,1) loss suppressed (p 0.5) -> 18; (0,0) confident loss kept; (0,2) nodata
    # 2021: (0,1) confident loss kept; (0,2) state 1 carried through nodata, p 200/254
    #       -> suppressed -> 22 + 1 = 23; raw stays 22
    assert reg["areas"]["2019"]["isa_km2"] == pytest.approx(18 * PX_KM2)
    assert reg["areas"]["2019"]["isa_km2_raw"] == pytest.approx(17 * PX_KM2)
    assert reg["areas"]["2021"]["isa_km2"] == pytest.approx(23 * PX_KM2)
    assert res["consistency"]["changed_pixels"] == {"2017": 0, "2019": 1, "2021": 1}
    assert res["consistency"]["method"] == "carry"
    with rasterio.open(tmp_path / "out" / "change_2019_2021.tif") as ds:
        c = ds.read(1)
    assert c[0, :3].tolist() == [0, 3, 255]  # (0,1): consistent 1 in 2019 -> lost in 2021


def test_grid_mismatch_and_parse(three_years, tmp_path):
    paths, _, _ = three_years
    shifted = GeoBox("EPSG:32650", Affine(10, 0, X0 + 10, 0, -10, Y0), 10, 6)
    other = _write(tmp_path / "shifted.tif", np.zeros((6, 10), np.uint8), shifted)
    with pytest.raises(ChangeError, match="shifted.tif.*transform"):
        check_same_grid({"2017 map": paths[2017], "2019 map": other})
    with pytest.raises(ChangeError, match="two years"):
        biennial_change({2017: paths[2017]}, tmp_path / "x")
    with pytest.raises(ChangeError, match="YEAR=PATH"):
        parse_year_paths(["a.tif"])
    assert parse_year_paths(["2017=a.tif", "2019=b.tif"]) == {2017: "a.tif", 2019: "b.tif"}


def test_cli(three_years, tmp_path):
    paths, probs, cities = three_years
    out = tmp_path / "cli"
    r = CliRunner().invoke(main, [
        "change", "--maps", f"2017={paths[2017]}", "--maps", f"2019={paths[2019]}",
        "--maps", f"2021={paths[2021]}", "--probs", f"2019={probs[2019]}",
        "--probs", f"2021={probs[2021]}", "--cities", str(cities), "--city-field", "name",
        "--method", "carry", "--confident", "0.8", "--region", "demo", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "change.json").read_text())
    assert res["groups"]["region"]["demo"]["areas"]["2021"]["isa_km2"] == pytest.approx(
        23 * PX_KM2)
    assert (out / "change_2017_2019.tif").exists() and (out / "change_2019_2021.tif").exists()
    bad = CliRunner().invoke(main, ["change", "--maps", f"2017={paths[2017]}", "--out",
                                    str(out)])
    assert bad.exit_code != 0 and "two years" in bad.output


def test_reads_band_1_of_maps_with_a_qa_band(three_years, tmp_path, monkeypatch):
    """A QA band (flags 0..7) after the map changes nothing: only band 1 is read."""
    paths, probs, cities = three_years
    monkeypatch.setattr(scan, "BLOCK_ROWS", 4)
    qa = np.arange(60, dtype=np.uint8).reshape(6, 10) % 8
    two = {}
    for y, p in paths.items():
        with rasterio.open(p) as ds:
            two[y] = _write(tmp_path / f"qa_{y}.tif", np.stack([ds.read(1), qa]))
    carry = TemporalSettings("carry")
    one = biennial_change(paths, tmp_path / "one", probs=probs, cities=cities,
                          temporal=carry, region="demo")
    res = biennial_change(two, tmp_path / "two", probs=probs, cities=cities,
                          temporal=carry, region="demo")
    assert res["groups"] == one["groups"]
    assert res["consistency"] == one["consistency"]


def test_geographic_grid_and_bad_polygons_raise_change_error(three_years, tmp_path):
    paths, _, cities = three_years
    geo = GeoBox("EPSG:4326", Affine(1e-4, 0, 117.0, 0, -1e-4, 31.0), 10, 6)
    maps = {y: _write(tmp_path / f"geo_{y}.tif", _map([(0, 0)]), geo) for y in (2017, 2019)}
    with pytest.raises(ChangeError, match="not projected"):
        biennial_change(maps, tmp_path / "geo")
    with pytest.raises(ChangeError, match="no column 'nope'"):
        biennial_change(paths, tmp_path / "x", cities=cities, city_field="nope")
    bad = _write(tmp_path / "bad.tif", _map([(0, 0)]) + 2)
    with pytest.raises(ChangeError, match=r"bad.tif: map holds values \[2, 3\]"):
        biennial_change({2017: paths[2017], 2019: bad}, tmp_path / "y")
