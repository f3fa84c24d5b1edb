"""Tests for jointseg.data.cloudmask: SCL classes, dilation, nodata, s2cloudless combination."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from jointseg.data.cloudmask import (
    CloudMaskError,
    cloud_mask_tile,
    dilate,
    ndsi_snow_mask,
    s2cloudless_mask,
    scl_clear_mask,
    scl_fill_rank,
)
from jointseg.grid import Tile
from tests.stackfactory import constant_bands, make_stack

TILE = Tile.at(32633, 500040, 5000040, 240)  # 24 x 24 at 10 m, 12 x 12 at 20 m
VEG = {"B02": 300, "B03": 500, "B04": 300, "B08": 3000, "B05": 700, "B06": 2000, "B07": 2600,
       "B8A": 3200, "B11": 1500, "B12": 700}
CLOUD = {"B02": 6000, "B03": 6000, "B04": 6000, "B08": 6500, "B05": 6000, "B06": 6200,
         "B07": 6400, "B8A": 6500, "B11": 4000, "B12": 3000}
#: Old snow (simulator's "snow" spectrum, USGS splib07 melting-snow series), DN.
SNOW = {"B02": 8000, "B03": 8000, "B04": 7800, "B08": 6700, "B05": 7600, "B06": 7300,
        "B07": 7000, "B8A": 6400, "B11": 1200, "B12": 900}
#: A humic lake: NDSI > 0.4 is possible for water, the NIR test keeps it out.
LAKE = {"B02": 140, "B03": 300, "B04": 90, "B08": 60, "B05": 100, "B06": 80, "B07": 70,
        "B8A": 60, "B11": 40, "B12": 30}


def within(seed: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels whose centre lies within ``radius_px`` of a seed pixel centre (independent check)."""
    return ndimage.distance_transform_edt(~seed) <= radius_px


def spectra(cloud_10m: np.ndarray) -> dict[str, np.ndarray]:
    """Band arrays: vegetation everywhere, a bright cloud where ``cloud_10m``."""
    out = {}
    for b, v in VEG.items():
        a = np.where(cloud_10m, CLOUD[b], v).astype(np.uint16)
        out[b] = a if b in ("B02", "B03", "B04", "B08") else a[::2, ::2]
    return out


def test_scl_clear_mask_classes() -> None:
    scl = np.arange(12, dtype=np.uint8).reshape(3, 4)
    clear = scl_clear_mask(scl)
    assert clear.tolist() == [[False, False, True, False], [True, True, True, True],
                              [False, False, False, False]]  # 11 snow masked by default
    assert scl_clear_mask(scl, (9,)).sum() == 11


def test_scl_fill_rank_orders_observations_by_cloudiness() -> None:
    scl = np.arange(12, dtype=np.uint8)
    # 0 no data, 1 saturated, 2 dark, 3 shadow, 4 veg, 5 bare, 6 water, 7 unclassified,
    # 8 cloud medium, 9 cloud high, 10 cirrus, 11 snow
    assert scl_fill_rank(scl).tolist() == [255, 6, 1, 3, 1, 1, 1, 1, 2, 5, 2, 4]
    assert scl_fill_rank(scl.reshape(3, 4)).shape == (3, 4)


def test_dilate_is_a_disk_in_metres() -> None:
    m = np.zeros((15, 15), bool)
    m[7, 7] = True
    d = dilate(m, dilation_m=30, res_m=10)  # 3 px
    np.testing.assert_array_equal(d, within(m, 3))
    assert d.sum() == 29  # lattice points in a radius-3 disk
    np.testing.assert_array_equal(dilate(m, 0, 10), m)
    assert dilate(m, 60, 20).sum() == 29


def test_cloud_mask_tile_scl_dilation_and_nodata(tmp_path: Path) -> None:
    scl = np.full((12, 12), 4, np.uint8)
    scl[5, 5] = 9     # cloud high  -> 10 m rows/cols 10-11, dilated
    scl[10, 2] = 3    # shadow      -> 10 m rows 20-21, cols 4-5, dilated
    scl[0, 11] = 0    # no data     -> 10 m rows 0-1, cols 22-23, not dilated
    scl[8, 0] = 10    # cirrus, not in the configured classes below -> clear
    bands_a = constant_bands(TILE, np.full((24, 24), 1000), scl)
    bands_a["B04"] = bands_a["B04"].copy()
    bands_a["B04"][15, 15] = 0  # one 10 m nodata pixel, not dilated
    bands_b = constant_bands(TILE, np.full((24, 24), 1000), np.full((12, 12), 4, np.uint8))
    manifest = make_stack(tmp_path / "stack", TILE, [
        {"id": "A", "datetime": "2021-05-01T10:00:00Z", "bands": bands_a},
        {"id": "B", "datetime": "2021-06-01T10:00:00Z", "bands": bands_b},
    ])
    out = cloud_mask_tile(manifest, tmp_path / "mask.tif", scl_classes=(0, 1, 3, 8, 9),
                          dilation_m=20, combine="scl")
    with rasterio.open(out) as ds:
        assert ds.count == 2 and ds.dtypes == ("uint8", "uint8")
        assert list(ds.descriptions) == ["A", "B"]
        assert ds.transform == TILE.geobox(10).transform and ds.crs.to_epsg() == 32633
        mask = ds.read()
    seed = np.zeros((24, 24), bool)
    seed[10:12, 10:12] = True
    seed[20:22, 4:6] = True
    expected_masked = within(seed, 2)
    expected_masked[0:2, 22:24] = True
    expected_masked[15, 15] = True
    np.testing.assert_array_equal(mask[0] == 0, expected_masked)
    assert set(np.unique(mask)) <= {0, 1}
    assert (mask[1] == 1).all()


def test_s2cloudless_sees_a_bright_cloud_not_vegetation() -> None:
    cloud = np.zeros((24, 24), bool)
    cloud[4:12, 4:12] = True
    b = {k: (v if v.shape == (24, 24) else np.repeat(np.repeat(v, 2, 0), 2, 1))
         for k, v in spectra(cloud).items()}
    m = s2cloudless_mask(b, 0, average_over=0, dilation_size=0)
    np.testing.assert_array_equal(m, cloud)
    # Baseline 04.00 stored DN (+1000) with its offset gives the same answer.
    b_new = {k: (v + 1000).astype(np.uint16) for k, v in b.items()}
    np.testing.assert_array_equal(s2cloudless_mask(b_new, -1000, average_over=0,
                                                   dilation_size=0), cloud)
    with pytest.raises(CloudMaskError, match="B11"):
        s2cloudless_mask({k: v for k, v in b.items() if k != "B11"})


@pytest.mark.parametrize("combine", ["s2cloudless", "union", "intersection", "scl"])
def test_combine_rules(tmp_path: Path, combine: str) -> None:
    bright = np.zeros((24, 24), bool)
    bright[4:12, 4:12] = True          # what s2cloudless sees
    scl = np.full((12, 12), 4, np.uint8)
    scl[4:8, 4:8] = 8                  # what SCL says: 10 m rows/cols 8-15
    scl_cloud = np.zeros((24, 24), bool)
    scl_cloud[8:16, 8:16] = True
    bands = spectra(bright)
    bands["SCL"] = scl
    manifest = make_stack(tmp_path / "stack", TILE, [
        {"id": "S", "datetime": "2021-05-01T10:00:00Z", "bands": bands}])
    out = cloud_mask_tile(manifest, tmp_path / "m.tif", dilation_m=0, combine=combine,
                          s2cloudless={"average_over": 0, "dilation_size": 0})
    with rasterio.open(out) as ds:
        masked = ds.read(1) == 0
    expected = {"s2cloudless": bright, "scl": scl_cloud, "union": bright | scl_cloud,
                "intersection": bright & scl_cloud}[combine]
    np.testing.assert_array_equal(masked, expected)


def test_missing_scl_needs_s2cloudless(tmp_path: Path) -> None:
    bands = spectra(np.zeros((24, 24), bool))
    manifest = make_stack(tmp_path / "stack", TILE, [
        {"id": "NOSCL", "datetime": "2017-06-13T10:00:00Z", "bands": bands}])
    with pytest.raises(CloudMaskError, match="scene NOSCL has no SCL"):
        cloud_mask_tile(manifest, tmp_path / "m.tif", combine="scl")
    out = cloud_mask_tile(manifest, tmp_path / "m.tif", combine="s2cloudless",
                          s2cloudless={"average_over": 0, "dilation_size": 0})
    with rasterio.open(out) as ds:
        assert (ds.read(1) == 1).all()


def test_ndsi_snow_mask_snow_not_cloud_water_or_vegetation() -> None:
    cases = {"snow": SNOW, "cloud": CLOUD, "lake": LAKE, "veg": VEG}
    got = {k: bool(ndsi_snow_mask(np.array([v["B03"]]), np.array([v["B11"]]),
                                  np.array([v["B08"]]))[0]) for k, v in cases.items()}
    assert got == {"snow": True, "cloud": False, "lake": False, "veg": False}
    # water's NDSI is high: (300 - 40) / 340 = 0.76; only the NIR > 0.11 test excludes it
    assert (LAKE["B03"] - LAKE["B11"]) / (LAKE["B03"] + LAKE["B11"]) > 0.4
    # the BOA offset is removed before the test; stored 0 is nodata, never snow
    assert ndsi_snow_mask(np.array([9000]), np.array([2200]), np.array([7700]), -1000)[0]
    assert not ndsi_snow_mask(np.array([0]), np.array([0]), np.array([0]))[0]


def test_snow_masked_by_scl_11_default_and_by_ndsi_without_scl(tmp_path: Path) -> None:
    snow = np.zeros((24, 24), bool)
    snow[0:8, 0:8] = True  # 20 m rows/cols 0-3
    bands = {}
    for b, v in VEG.items():
        a = np.where(snow, SNOW[b], v).astype(np.uint16)
        bands[b] = a if b in ("B02", "B03", "B04", "B08") else a[::2, ::2]
    scl = np.full((12, 12), 4, np.uint8)
    scl[0:4, 0:4] = 11
    with_scl = make_stack(tmp_path / "a", TILE, [
        {"id": "S", "datetime": "2021-02-01T10:00:00Z", "bands": {**bands, "SCL": scl}}])
    out = cloud_mask_tile(with_scl, tmp_path / "a.tif", dilation_m=40)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1) == 0, snow)  # masked, not dilated
    no_scl = make_stack(tmp_path / "b", TILE, [
        {"id": "N", "datetime": "2017-02-01T10:00:00Z", "bands": bands}])
    kw = {"combine": "s2cloudless", "s2cloudless": {"average_over": 0, "dilation_size": 0}}
    out = cloud_mask_tile(no_scl, tmp_path / "b.tif", **kw)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1) == 0, snow)
    out = cloud_mask_tile(no_scl, tmp_path / "c.tif", snow=None, **kw)
    with rasterio.open(out) as ds:
        assert (ds.read(1) == 1).all()  # s2cloudless alone does not call snow cloud
