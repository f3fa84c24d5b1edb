"""SIMULATED stand-ins are written in each product's published format, and
assess_products compares them with a map on the same pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from jointseg.assess.otherproducts.assess import assess_products
from jointseg.assess.otherproducts.formats import FORMATS
from jointseg.assess.otherproducts.load import ProductSpec
from jointseg.grid import GeoBox
from jointseg.simulate.otherproducts import simulate_products, stand_in_files, stand_in_specs

GRID_1M = GeoBox.from_bounds("EPSG:32650", (663000, 3548400, 663600, 3549000), 1.0)


def truth(path, seed: int, share: float):
    """A 600 m x 600 m 1 m truth: random 20 m blocks of ISA plus a 6 m road."""
    rng = np.random.default_rng(seed)
    blocks = rng.random((30, 30)) < share
    isa = np.kron(blocks, np.ones((20, 20), np.uint8)).astype(np.uint8)
    isa[297:303, :] = 1
    with rasterio.open(path, "w", driver="GTiff", dtype="uint8", count=1,
                       **GRID_1M.profile(), tags=None) as ds:
        ds.write(isa, 1)
        ds.update_tags(JOINTSEG_SIMULATED="true")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("products")
    truths = {2017: truth(d / "t2017.tif", 0, 0.3), 2021: truth(d / "t2021.tif", 0, 0.4)}
    written = simulate_products(truths, d / "products", seed=3)
    return d, truths, written


def test_stand_ins_have_the_published_formats(demo):
    d, _, written = demo
    assert sorted(str(f) for fs in written.values() for f in fs) == sorted(
        stand_in_files(d / "products", [2017, 2021]))
    for kind, files in written.items():
        fmt = FORMATS[kind]
        for f in files:
            with rasterio.open(f) as ds:
                assert ds.tags()["JOINTSEG_SIMULATED"] == "true", f
                assert ds.dtypes[0] == fmt.dtype, f
                assert ds.nodata == fmt.nodata, f
                want = CRS.from_user_input("EPSG:32650" if fmt.crs == "UTM" else fmt.crs)
                assert ds.crs == want, f
                assert ds.res[0] == pytest.approx(fmt.res), f
                values = set(np.unique(ds.read(1)).tolist())
                legal = set(fmt.valid_values) if fmt.valid_values else set(range(10001))
                assert values <= legal | {fmt.nodata}, (f, values)


def test_gaia_stand_in_is_year_of_change(demo):
    d, _, written = demo
    with rasterio.open(written["gaia"][0]) as ds:
        codes = ds.read(1)
    assert codes.max() <= 34 and set(np.unique(codes)) >= {0, 2}  # 2 = 2017 (new ISA)
    assert (codes > 2).any()  # ISA of the first truth year got earlier years


def test_assess_products_same_pixels_and_gain(demo):
    d, truths, _ = demo
    specs = [ProductSpec.from_dict(s) for s in stand_in_specs(d / "products")]
    out = assess_products(truths[2021], specs, 2021, truth=truths[2021])
    rows = {r["name"]: r for r in out["rows"]}
    assert rows["ISA-1 (JointSeg)"]["f1"] == 1.0  # the truth as the map
    assert out["simulated"] and all(r["simulated"] for r in out["rows"])
    assert {r["n_pixels"] for r in out["rows"]} == {out["n_common"]}
    for name in ("GAIA", "GISA-10m", "WSF 2019", "ESRI 10 m Land Cover", "Dynamic World",
                 "GHS-BUILT-S R2023A"):
        r = rows[name]
        assert 0 < r["f1"] < 1, name
        assert r["f1_gain_points"] == pytest.approx(100 * (1 - r["f1"])), name
    assert rows["GAIA"]["product_year"] == 2021 and rows["WSF 2019"]["product_year"] == 2019
    json.dumps(out)


def test_utm_product_rows_match_counts_made_here(demo):
    """The rows of the two UTM stand-ins (10 m, on the map's own 10 m lattice) against
    counts computed here from the files: block shares of the 1 m rasters and the
    products' class codes, all binarised at the threshold (>= 0.5, then >= 0.3)."""
    d, truths, written = demo
    specs = [ProductSpec.from_dict(s) for s in stand_in_specs(d / "products")
             if s["kind"] in ("esri_lc", "dynamic_world")]
    built = {"esri_lc": 7, "dynamic_world": 6}  # the published legends' built class

    def share(path):  # ISA share of each 10 m block of a 1 m raster
        with rasterio.open(path) as ds:
            return ds.read(1).reshape(60, 10, 60, 10).mean(axis=(1, 3))

    for threshold in (0.5, 0.3):
        # the 2017 truth stands in for the map of 2021: it differs from the reference
        out = assess_products(truths[2017], specs, 2021, truth=truths[2021],
                              threshold=threshold)
        ref = share(truths[2021]) >= threshold
        layers = {"ISA-1 (JointSeg)": share(truths[2017]) >= threshold}
        for spec in specs:
            (f,) = spec.hrefs(2021)
            with rasterio.open(f) as ds:
                assert ds.shape == (60, 60) and ds.transform.c == GRID_1M.transform.c
                layers[spec.name] = ds.read(1) == built[spec.kind]
        f1 = {}
        rows = {r["name"]: r for r in out["rows"]}
        assert set(rows) == set(layers) and out["n_common"] == 3600
        for name, isa in layers.items():
            tp, fp = int((isa & ref).sum()), int((isa & ~ref).sum())
            fn, tn = int((~isa & ref).sum()), int((~isa & ~ref).sum())
            r = rows[name]
            assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (tp, fp, fn, tn), (name, threshold)
            f1[name] = 2 * tp / (2 * tp + fp + fn)
            assert r["f1"] == pytest.approx(f1[name]), name
        assert 0 < f1["ISA-1 (JointSeg)"] < 1
        for name, r in rows.items():
            assert r["f1_gain_points"] == pytest.approx(
                100 * (f1["ISA-1 (JointSeg)"] - f1[name])), name


def test_assess_needs_one_reference(demo):
    d, truths, _ = demo
    with pytest.raises(ValueError, match="exactly one reference"):
        assess_products(truths[2021], [], 2021)
