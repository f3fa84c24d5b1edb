"""Stratified sampling design (Olofsson et al. 2014): random and spatially balanced draws
with known inclusion probabilities, labels read back."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from shapely.geometry import box

from jointseg.assess import sampling
from jointseg.assess.estimators import stratified_estimates
from jointseg.assess.labels import (
    assign_groups,
    estimate_from_labels,
    label_from_raster,
    read_labels,
)
from jointseg.assess.sampling import (
    SamplingError,
    allocate,
    design_sample,
    draw_sample,
    sample_size,
    write_sample,
)
from jointseg.grid import GeoBox
from jointseg.io import write_cog

X0, Y0 = 500_000, 30_000
GRID = GeoBox.from_bounds("EPSG:32632", (X0, Y0, X0 + 2000, Y0 + 1000), 1)


@pytest.fixture
def small_strips(monkeypatch):
    monkeypatch.setattr(sampling, "STRIP_ROWS", 128)  # exercise many strips


@pytest.fixture
def isa_map(tmp_path):
    """2 km x 1 km at 1 m: ISA in rows 0-199 (all columns), nodata in the last 100 rows."""
    m = np.zeros(GRID.shape, np.uint8)
    m[:200, :] = 1
    m[900:, :] = 255
    path = tmp_path / "isa_1m.tif"
    write_cog(path, m, GRID, nodata=255)
    return path, m


@pytest.fixture
def zones(tmp_path):
    gdf = gpd.GeoDataFrame(
        {"zone": ["upstream", "downstream"]},
        geometry=[box(X0, Y0, X0 + 500, Y0 + 1000), box(X0 + 500, Y0, X0 + 2000, Y0 + 1000)],
        crs="EPSG:32632")
    path = tmp_path / "zones.gpkg"
    gdf.to_file(path)
    return path


def test_sample_size_olofsson_2014_example():
    """Sect. 5.1: W = .02/.015/.32/.645, U = .7/.6/.9/.95, S(O) = 0.01 -> n = 641."""
    w = [0.02, 0.015, 0.32, 0.645]
    assert sample_size(w, [0.7, 0.6, 0.9, 0.95], 0.01) == 641
    # same by hand
    s = np.sqrt(np.array([0.21, 0.24, 0.09, 0.0475]))
    assert sample_size(w, [0.7, 0.6, 0.9, 0.95]) == int(np.ceil((np.dot(w, s) / 0.01) ** 2))
    # proportional allocation of the paper's table ("Prop" column: 13 / 10 / 205 / 413)
    assert allocate(641, w, floor=0).tolist() == [13, 10, 205, 413]
    with pytest.raises(SamplingError):
        sample_size(w, [0.7, 0.6, 1.2, 0.95])


def test_allocation_with_floor_and_cap():
    w = [0.02, 0.015, 0.32, 0.645]
    # two small strata get the floor; 541 left shared 0.32 : 0.645 (179.4 / 361.6)
    assert allocate(641, w, floor=50).tolist() == [50, 50, 179, 362]
    # a stratum with fewer pixels than the floor gets all its pixels
    assert allocate(100, [10, 1000], floor=50, caps=[10, 1000]).tolist() == [10, 90]
    # floors may push the total over n
    assert allocate(60, [5, 5, 90], floor=30).tolist() == [30, 30, 30]
    assert allocate(60, [1, 1, 98], floor=30, caps=[1, 1, 98]).tolist() == [1, 1, 58]


def test_design_counts_strata_and_allocates(isa_map, zones, small_strips):
    path, m = isa_map
    d = design_sample(path, expected_ua={1: 0.8, 0: 0.95}, floor=50)
    by = {s.label: s for s in d.strata}
    assert by["1"].pixels == 200 * 2000 and by["0"].pixels == 700 * 2000
    n = int(np.ceil(((0.2 / 0.9 * 0.4 + 0.7 / 0.9 * np.sqrt(0.95 * 0.05)) / 0.01) ** 2))
    assert d.n_target == n
    assert by["1"].n + by["0"].n == n
    dz = design_sample(path, zones=zones, expected_ua={1: 0.8, 0: 0.95}, floor=50)
    byz = {s.label: s for s in dz.strata}
    assert set(byz) == {"0|downstream", "1|downstream", "0|upstream", "1|upstream"}
    assert byz["1|upstream"].pixels == 200 * 500
    assert byz["0|downstream"].pixels == 700 * 1500
    assert dz.pixel_area_m2 == 1.0


@pytest.mark.parametrize("method", ["random", "spread"])
def test_draw_is_seeded_and_in_stratum(isa_map, zones, small_strips, method):
    path, m = isa_map
    d = design_sample(path, zones=zones, floor=20, n_total=80)
    a = draw_sample(path, d, method=method, min_distance_m=40, seed=7)
    b = draw_sample(path, d, method=method, min_distance_m=40, seed=7)
    c = draw_sample(path, d, method=method, min_distance_m=40, seed=8)
    pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                                  pd.DataFrame(b.drop(columns="geometry")))
    assert not np.array_equal(a[["x", "y"]].to_numpy(), c[["x", "y"]].to_numpy())
    xy = a[["x", "y"]].to_numpy()
    assert len(np.unique(xy, axis=0)) == len(xy)  # without replacement
    cols = ((xy[:, 0] - X0) - 0.5).astype(int)
    rows = ((Y0 + 1000 - xy[:, 1]) - 0.5).astype(int)
    np.testing.assert_array_equal(m[rows, cols], a["map_class"].to_numpy())
    upstream = xy[:, 0] < X0 + 500
    assert (a["zone"].to_numpy()[upstream] == "upstream").all()
    assert (a["zone"].to_numpy()[~upstream] == "downstream").all()
    got = a.groupby("stratum").size().to_dict()
    assert got == {s.label: s.n for s in d.strata}  # every stratum reaches its allocation
    assert (a["weight"] * a["stratum_n"] == a["stratum_pixels"]).all()
    np.testing.assert_allclose(a["inclusion_probability"], a["stratum_n"] / a["stratum_pixels"])
    assert (a["design"] == method).all()


def test_draw_is_uniform_within_a_stratum(isa_map, small_strips):
    """ISA pixels are 1/4 in columns < 500: about 1/4 of 400 ISA points fall there."""
    path, _ = isa_map
    d = design_sample(path, n_total=800, floor=400)
    pts = draw_sample(path, d, seed=1)
    isa = pts[pts["map_class"] == 1]
    assert len(isa) == 400
    share = (isa["x"] < X0 + 500).mean()
    assert 0.19 < share < 0.31  # binomial sd 0.022 around 0.25
    rows = (Y0 + 1000 - isa["y"]).to_numpy()
    assert 0.4 < (rows < 100).mean() < 0.6  # half of the ISA rows are the first 100


def test_spread_inclusion_probabilities_are_equal(tmp_path):
    """Every pixel of a stratum is drawn with probability n_h / N_h under ``spread``,
    also where the stratum is patchy and its cells hold few pixels."""
    g = GeoBox.from_bounds("EPSG:32632", (X0, Y0, X0 + 24, Y0 + 24), 1)
    m = np.zeros(g.shape, np.uint8)
    m[:4, :] = 1  # a band of ISA
    m[10:13, 18:21] = 1  # an isolated patch: 9 px
    m[20, 2] = 1  # a lone pixel
    write_cog(tmp_path / "m.tif", m, g, nodata=255)
    d = design_sample(tmp_path / "m.tif", n_total=20, floor=7)
    n_isa = {s.map_class: s for s in d.strata}[1]
    freq = np.zeros(g.shape)
    reps = 400
    for seed in range(reps):
        pts = draw_sample(tmp_path / "m.tif", d, method="spread", min_distance_m=5, seed=seed)
        isa = pts[pts["map_class"] == 1]
        freq[((Y0 + 24 - isa["y"]) - 0.5).astype(int),
             ((isa["x"] - X0) - 0.5).astype(int)] += 1
    pi = n_isa.n / n_isa.pixels
    got = freq[m == 1] / reps
    # binomial sd sqrt(pi (1 - pi) / reps) ~ 0.012 (n_h = 7 of 106 px): no pixel beyond
    # 5 sd; the patch and the lone pixel as often as the band
    assert np.abs(got - pi).max() < 5 * np.sqrt(pi * (1 - pi) / reps)
    assert freq[20, 2] / reps == pytest.approx(pi, abs=0.05)
    assert freq[10:13, 18:21].mean() / reps == pytest.approx(pi, abs=0.03)


def test_spread_spreads_points(isa_map):
    """Same-stratum points of the spread design are further apart than random ones."""
    path, _ = isa_map
    d = design_sample(path, n_total=60, floor=30)

    def nearest(pts):
        xy = pts.loc[pts["map_class"] == 0, ["x", "y"]].to_numpy()
        dd = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(xy)) * 1e9
        return dd.min(axis=1).mean()

    spread = np.mean([nearest(draw_sample(path, d, method="spread", min_distance_m=100,
                                          seed=s)) for s in range(5)])
    rand = np.mean([nearest(draw_sample(path, d, seed=s)) for s in range(5)])
    assert spread > 1.15 * rand  # measured 1.26 (random: ~0.5 x the grid spacing)


def test_draw_rejects_unknown_design(isa_map):
    path, _ = isa_map
    d = design_sample(path, n_total=100, floor=50)
    with pytest.raises(SamplingError, match="sampling design 'grid'"):
        draw_sample(path, d, method="grid")
    with pytest.raises(SamplingError, match="spread needs min_distance_m > 0"):
        draw_sample(path, d, method="spread", min_distance_m=0)
    # cells larger than the map: still the full allocation (one cell, uniform inside)
    pts = draw_sample(path, d, method="spread", min_distance_m=3000, seed=0)
    assert len(pts) == sum(s.n for s in d.strata)


def test_labels_roundtrip_and_estimates(isa_map, zones, tmp_path, small_strips):
    path, m = isa_map
    truth = m.copy()
    truth[150:200, :1000] = 0  # the map over-states ISA: 50 x 1000 px are not ISA
    truth[300:320, :] = 1  # and misses 20 x 2000 px
    write_cog(tmp_path / "truth.tif", truth, GRID, nodata=255)
    d = design_sample(path, zones=zones, floor=60, n_total=300)
    pts = draw_sample(path, d, seed=3)
    lab = label_from_raster(pts, tmp_path / "truth.tif")
    xy = lab[["x", "y"]].to_numpy()
    cols = ((xy[:, 0] - X0) - 0.5).astype(int)
    rows = ((Y0 + 1000 - xy[:, 1]) - 0.5).astype(int)
    np.testing.assert_array_equal(lab["reference"].to_numpy(dtype=int), truth[rows, cols])
    write_sample(tmp_path / "labels.gpkg", lab)
    back = read_labels(tmp_path / "labels.gpkg")
    est = estimate_from_labels(back, group_column="zone", area_unit="km2")
    assert set(est) == {"all", "upstream", "downstream"}
    e = est["all"]
    # mapped ISA 0.4 km2; true ISA 0.4 - 0.05 + 0.04 = 0.39 km2
    assert e.map_area[1] == pytest.approx(0.4)
    assert abs(e.area[1] - 0.39) < 3 * e.area_se[1] + 1e-9
    same = stratified_estimates(back["stratum"], back["map_class"], back["reference"],
                                back.groupby("stratum")["stratum_pixels"].first().to_dict(),
                                [0, 1], area_scale=1e-6, area_unit="km2")
    np.testing.assert_allclose(e.area, same.area)
    assert e.oa == pytest.approx(same.oa)
    np.testing.assert_allclose(est["upstream"].area + est["downstream"].area, e.area)
    js = e.to_dict()
    assert js["area_unit"] == "km2" and js["classes"]["1"]["map_area"] == pytest.approx(0.4)


def test_label_outside_reference_is_missing(isa_map, tmp_path):
    path, m = isa_map
    half = GeoBox.from_bounds("EPSG:32632", (X0, Y0, X0 + 1000, Y0 + 1000), 2)
    write_cog(tmp_path / "ref.tif", np.ones(half.shape, np.uint8), half, nodata=255)
    d = design_sample(path, n_total=100, floor=50)
    pts = draw_sample(path, d, seed=0)
    lab = label_from_raster(pts, tmp_path / "ref.tif")
    outside = (lab["x"] >= X0 + 1000).to_numpy()
    assert lab["reference"][outside].isna().all()
    assert (lab["reference"][~outside] == 1).all()
    est = estimate_from_labels(lab)
    assert any("without a reference label were dropped" in n for n in est["all"].notes)


def test_read_labels_names_missing_columns(tmp_path):
    p = tmp_path / "labels.csv"
    pd.DataFrame({"stratum": ["1"], "map_class": [1], "label": [1]}).to_csv(p, index=False)
    with pytest.raises(SamplingError) as err:
        read_labels(p)
    msg = str(err.value)
    assert "labels.csv" in msg and "['reference', 'stratum_pixels']" in msg
    assert "expected ['stratum', 'map_class', 'reference', 'stratum_pixels']" in msg
    pd.DataFrame({"stratum": ["1"], "map_class": [1], "reference": [2],
                  "stratum_pixels": [5]}).to_csv(p, index=False)
    with pytest.raises(SamplingError, match=r"reference holds \[2\]"):
        read_labels(p)


def test_assign_groups_by_city(tmp_path):
    df = pd.DataFrame({"x": [X0 + 10, X0 + 900, X0 + 5000], "y": [Y0 + 10] * 3})
    pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.x, df.y), crs="EPSG:32632")
    cities = gpd.GeoDataFrame({"name": ["A", "B"]}, geometry=[
        box(X0, Y0, X0 + 500, Y0 + 500), box(X0 + 500, Y0, X0 + 1000, Y0 + 500)],
        crs="EPSG:32632").to_crs("EPSG:4326")
    out = assign_groups(pts, cities, "name", column="city")
    assert out["city"].tolist()[:2] == ["A", "B"] and pd.isna(out["city"].iloc[2])
    with pytest.raises(SamplingError, match="no column 'city_name'"):
        assign_groups(pts, cities, "city_name")


def test_qa_band_ignored_and_geographic_areas_in_pixels(isa_map, tmp_path):
    path, m = isa_map
    qa = np.full(m.shape, 7, np.uint8)
    write_cog(tmp_path / "two.tif", np.stack([m, qa]), GRID, nodata=255)
    one, two = design_sample(path, floor=5), design_sample(tmp_path / "two.tif", floor=5)
    assert [(s.label, s.pixels, s.n) for s in two.strata] == [
        (s.label, s.pixels, s.n) for s in one.strata]
    # the same map on a geographic grid: no pixel area in m², estimates in pixels
    geo = GeoBox("EPSG:4326", Affine(1e-5, 0, 9.0, 0, -1e-5, 0.3), GRID.width, GRID.height)
    write_cog(tmp_path / "geo.tif", m, geo, nodata=255)
    d = design_sample(tmp_path / "geo.tif", floor=5, n_total=10)
    assert np.isnan(d.pixel_area_m2)
    pts = draw_sample(tmp_path / "geo.tif", d, seed=1)
    pts["reference"] = pts["map_class"]
    est = estimate_from_labels(pts)["all"]
    assert est.area_unit == "pixels"
    assert est.area[1] == pytest.approx(200 * 2000)


def test_allocation_line_says_in_one_line():
    from jointseg.assess.report.sample import allocation_line

    d = {"floor": 20, "strata": [{"label": "0", "pixels": 900, "n": 30, "n_drawn": 30},
                                 {"label": "1", "pixels": 12, "n": 12, "n_drawn": 12}]}
    assert allocation_line(d) == ("every stratum reached its allocation; stratum 1 holds "
                                  "only 12 pixels (< floor 20): all taken")
    d["strata"][1]["pixels"] = 400
    d["strata"][1]["n"] = 20
    assert allocation_line(d) == "allocation not reached: stratum 1 12 of 20"
    d["strata"][1]["n_drawn"] = 20
    assert allocation_line(d) == "every stratum reached its allocation"
