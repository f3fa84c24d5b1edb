"""Simulated training sources and their label noise (jointseg.simulate.sources, labelnoise):
the HR image is where, and as bright as, sources.json says; the labels are the truth at
`clean` and thinned / displaced as documented at `osm` and `heavy`."""

from __future__ import annotations

import datetime as dt
import json
import math

import geopandas as gpd
import numpy as np
import osmium
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject

from jointseg.config import schema_default
from jointseg.grid import GeoBox
from jointseg.simulate.hr import brightness, render_hr
from jointseg.simulate.labelnoise import (
    LEVELS,
    noise_level,
    noisy_layers,
    offset_field,
    rasterise_layers,
)
from jointseg.simulate.landcover import simulate_landscape
from jointseg.simulate.materials import ISA_CLASSES
from jointseg.simulate.sources import write_training_sources

WIDTHS = schema_default("training_data.chips.highway_widths")
SIZE = 900


@pytest.fixture(scope="module")
def scene():
    """A 900 m simulated landscape (town core in the middle) on a UTM 1 m grid."""
    grid = GeoBox.from_bounds("EPSG:32650", (640020, 3510000, 640020 + SIZE, 3510000 + SIZE), 1)
    ls = simulate_landscape((SIZE, SIZE), np.random.default_rng(5))
    return grid, ls


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / (a | b).sum())


def test_clean_sources_rasterise_to_the_truth(scene):
    grid, ls = scene
    layers = noisy_layers(ls.vectors, ls.landcover, ls.urbanness, grid, LEVELS["clean"],
                          np.random.default_rng(0))
    assert len(layers.buildings) == len(ls.vectors.buildings)
    assert iou(rasterise_layers(layers, grid, WIDTHS), ls.isa) > 0.99


def test_noise_levels_thin_and_displace_the_labels(scene):
    grid, ls = scene
    out = {}
    for name in ("osm", "heavy"):
        layers = noisy_layers(ls.vectors, ls.landcover, ls.urbanness, grid, LEVELS[name],
                              np.random.default_rng(1))
        out[name] = (len(layers.buildings), iou(rasterise_layers(layers, grid, WIDTHS), ls.isa),
                     layers)
    n_truth = len(ls.vectors.buildings)
    assert out["osm"][0] < n_truth and out["heavy"][0] < n_truth
    assert out["heavy"][1] < out["osm"][1] < 0.95
    roads = out["osm"][2].roads
    assert set(roads["highway"]) <= set(WIDTHS)
    assert roads["lanes"].notna().any()  # some roads carry lanes, most only a class
    assert roads["width"].notna().mean() < 0.5


def test_minor_roads_go_missing_first():
    p = LEVELS["osm"]
    assert p.road_keep["primary"] >= p.road_keep["residential"] > p.road_keep["track"]
    assert LEVELS["heavy"].offset_mean_m > p.offset_mean_m > 0


def test_offset_field_has_the_documented_mean_and_is_smooth():
    rng = np.random.default_rng(2)
    means, near = [], []
    for _ in range(40):
        f = offset_field(rng, 4.0, 300.0)
        x = rng.uniform(0, 3000, 200)
        y = rng.uniform(0, 3000, 200)
        dx, dy = f(x, y)
        means.append(np.hypot(dx, dy).mean())
        dx2, dy2 = f(x + 10, y)  # 10 m apart: nearly the same offset
        near.append(np.hypot(dx2 - dx, dy2 - dy).mean())
    assert 3.0 < np.mean(means) < 5.0
    assert np.mean(near) < 0.5


def test_unknown_noise_level_is_one_line_error():
    with pytest.raises(ValueError, match="expected one of clean, osm, heavy"):
        noise_level("medium")


@pytest.fixture(scope="module")
def sources(scene, tmp_path_factory):
    grid, ls = scene
    hr = render_hr(ls, brightness(ls, np.random.default_rng(4)), dt.date(2021, 7, 20))
    out = tmp_path_factory.mktemp("sources")
    info = write_training_sources(ls, grid, out, np.random.default_rng(3), year=2021, hr=hr)
    return grid, hr, info


def test_sources_files_and_json(sources):
    _, _, info = sources
    doc = json.loads(info.sources_json.read_text())
    assert doc["simulated"] is True
    assert doc["hr_shift_m"] == list(info.hr_shift_m)
    assert 2.0 <= math.hypot(*info.hr_shift_m) <= 6.0
    assert doc["label_noise"]["name"] == "osm"
    for rel in doc["files"].values():
        assert (info.out_dir / rel).is_file()
    with rasterio.open(info.hr) as ds:
        assert ds.crs.to_epsg() == 4326 and ds.count == 4 and ds.dtypes[0] == "uint8"
        res_m = ds.res[1] * 111_320
        assert 0.7 < res_m < 0.8
    b = gpd.read_file(info.buildings)
    r = gpd.read_file(info.roads)
    assert b.crs.to_epsg() == 4326 and len(b) == doc["counts"]["buildings"]
    assert {"highway", "name", "lanes", "width"} <= set(r.columns)


def test_osm_pbf_holds_the_same_features(sources):
    _, _, info = sources
    n_build = n_road = 0
    for obj in osmium.FileProcessor(str(info.osm_pbf), osmium.osm.WAY):
        n_build += "building" in obj.tags
        n_road += "highway" in obj.tags
    b = gpd.read_file(info.buildings)
    r = gpd.read_file(info.roads)
    assert n_build == len(b)
    assert n_road == sum(len(getattr(g, "geoms", [g])) for g in r.geometry)


def test_hr_is_displaced_by_the_recorded_shift_with_the_recorded_dn(sources):
    """Warped back onto the 1 m UTM grid moved by the recorded shift, the HR is the
    rendered image x gain + offset (per band); without the shift it is further off."""
    grid, hr, info = sources
    doc = json.loads(info.sources_json.read_text())
    with rasterio.open(info.hr) as ds:
        dn, src_t, src_crs = ds.read().astype(np.float32), ds.transform, ds.crs
    err = {}
    for label, shift in (("recorded", info.hr_shift_m), ("none", (0.0, 0.0))):
        diffs = []
        for b in range(4):
            dst = np.full((grid.height, grid.width), np.nan, np.float32)
            reproject(dn[b], dst, src_transform=src_t, src_crs=src_crs, src_nodata=0,
                      dst_transform=Affine.translation(*shift) @ grid.transform,
                      dst_crs=grid.crs, dst_nodata=np.nan, resampling=Resampling.bilinear)
            want = np.clip(hr[b] * doc["hr_dn"]["gain"][b] + doc["hr_dn"]["offset"][b], 1, 255)
            ok = np.isfinite(dst)
            ok[:10], ok[-10:], ok[:, :10], ok[:, -10:] = False, False, False, False
            diffs.append(np.abs(dst[ok] - want[ok]).mean())
        err[label] = float(np.mean(diffs))
    assert err["recorded"] < 4.0  # DN: resampling twice blurs edges a little
    assert err["none"] > 1.5 * err["recorded"]


def test_simulated_chips_label_noise_keeps_images_and_truth(tmp_path):
    """`clean` labels are the truth; `osm` labels differ while images and truth.tif stay
    byte-identical; landcover.tif holds the class codes."""
    from jointseg.simulate.chips import simulate_chips

    out = {}
    for level in ("clean", "osm"):
        simulate_chips(tmp_path / level, 7, 2, region_size_m=600, chip_size_m=300, n_dates=2,
                       progress=False, label_noise=level)
        out[level] = tmp_path / level
    chip = sorted(p.name for p in out["clean"].iterdir() if p.is_dir())[0]

    def read(level, name):
        with rasterio.open(out[level] / chip / name) as ds:
            return ds.read()

    assert np.array_equal(read("clean", "label.tif"), read("clean", "truth.tif"))
    assert np.array_equal(read("clean", "truth.tif"), read("osm", "truth.tif"))
    assert np.array_equal(read("clean", "s2_10m.tif"), read("osm", "s2_10m.tif"))
    assert np.array_equal(read("clean", "hr.tif"), read("osm", "hr.tif"))
    assert not np.array_equal(read("osm", "label.tif"), read("osm", "truth.tif"))
    lc = read("clean", "landcover.tif")
    assert np.array_equal(np.isin(lc, ISA_CLASSES).astype(np.uint8), read("clean", "truth.tif"))
