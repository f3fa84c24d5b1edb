"""Harmonisation across the 2022 processing-baseline change, per provider convention.

From baseline 04.00 (25 Jan 2022) ESA stores ``DN = reflectance * 10000 + 1000``.
Earth Search (flag ``earthsearch:boa_offset_applied: true``) removes the offset in
its COGs, Planetary Computer and CDSE serve ESA's DN. Here every provider item of
``tests/data/stac_items`` (before and after the change) gets assets that store one
known reflectance field the way THAT provider stores it (``STORES_OFFSET`` below,
from the providers' documentation, not from our code), and the whole chain
item -> SceneInfo -> download -> cloudmask -> composite must give back the same
reflectance from every scene: the composites are continuous across the boundary.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from jointseg.data.cloudmask import cloud_mask_tile
from jointseg.data.composite import composite_tile
from jointseg.data.download import download_tile
from jointseg.data.providers import BASELINE_04_DATE, find_band_assets, scene_info_from_item
from jointseg.grid import GeoBox, Tile
from tests.stackfactory import write_tif

ITEMS = Path(__file__).parent / "data" / "stac_items"
TILE = Tile.at(32650, 663000, 3543000, 240)
BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")

#: item file -> does the provider's asset store ESA's +1000 DN offset?
STORES_OFFSET = {
    "earth_search_v0_2020.json": False,   # baseline 02.14: no offset existed
    "earth_search_2021.json": False,      # baseline 03.00
    "planetary_computer_2021.json": False,
    "cdse_2021.json": False,
    "earth_search_2022.json": True,       # 04.00, Earth Search did not remove it (flag false)
    "earth_search_2023.json": False,      # Earth Search removed it (flag true)
    "planetary_computer_2023.json": True,  # PC serves ESA's DN unchanged
    "cdse_2023.json": True,               # CDSE serves ESA's DN (raster:offset -0.1)
    "pc_2021_reprocessed": True,          # Collection-1 reprocessing (05.00) of a 2021 date
}


def reflectance() -> dict[str, np.ndarray]:
    """The true surface: reflectance x 10000 per band on a grid larger than the tile."""
    rng = np.random.default_rng(2022)
    out = {}
    for band in (*BANDS_10M, *BANDS_20M):
        res = 10 if band in BANDS_10M else 20
        shape = ((240 + 240) // res,) * 2
        # dark pixels (< 1000 DN, e.g. water) are where a missed or doubled offset shows
        out[band] = rng.integers(1, 6000, shape, dtype=np.uint16)
    return out


def source_grid(res: int) -> GeoBox:
    return GeoBox.from_bounds("EPSG:32650", (TILE.xmin - 120, TILE.ymin - 120,
                                             TILE.xmin + 360, TILE.ymin + 360), res)


def provider_item(name: str, root: Path, truth: dict[str, np.ndarray]) -> dict:
    """The fixture item ``name`` with assets written as that provider stores them."""
    if name == "pc_2021_reprocessed":
        item = json.loads((ITEMS / "planetary_computer_2021.json").read_text())
        item["id"] += "_N0500"
        item["properties"]["s2:processing_baseline"] = "05.00"
    else:
        item = json.loads((ITEMS / name).read_text())
    item = copy.deepcopy(item)
    add = 1000 if STORES_OFFSET[name] else 0
    for band, (key, _) in find_band_assets(item["assets"]).items():
        if band == "SCL":
            data = np.full(source_grid(20).shape, 4, np.uint8)  # vegetation: all clear
            grid = source_grid(20)
        elif band in truth:
            data = (truth[band] + add).astype(np.uint16)
            grid = source_grid(10 if band in BANDS_10M else 20)
        else:
            continue
        path = write_tif(root / item["id"] / f"{band}.tif", data, grid, nodata=0)
        item["assets"][key]["href"] = str(path)
    return item


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read().astype(np.int32)


def test_composites_are_continuous_across_the_baseline_change(tmp_path: Path) -> None:
    truth = reflectance()
    expected10 = np.stack([truth[b][12:36, 12:36] for b in BANDS_10M]).astype(np.int32)
    expected20 = np.stack([truth[b][6:18, 6:18] for b in BANDS_20M]).astype(np.int32)
    before, after = [], []
    for name in STORES_OFFSET:
        scene = scene_info_from_item(provider_item(name, tmp_path / "assets", truth))
        (after if scene.date >= BASELINE_04_DATE else before).append(scene.provider)
        out = tmp_path / "stack" / name
        manifest = download_tile([scene], TILE, out)
        mask = cloud_mask_tile(manifest, out / "mask.tif")
        c10, c20 = composite_tile(manifest, mask, out / "c_10m.tif", out / "c_20m.tif")
        got10, got20 = read(c10), read(c20)
        assert np.abs(got10[:4] - expected10).max() <= 1, (name, scene.boa_offset_dn)
        assert np.abs(got20 - expected20).max() <= 1, (name, scene.boa_offset_dn)
        assert (got10[4] == 1).all()  # COUNT: the one clear scene everywhere
    # every provider convention was seen on both sides of 25 January 2022
    assert sorted(set(before)) == sorted(set(after)) == [
        "cdse", "earth-search", "planetary-computer"]


@pytest.mark.parametrize("name", ["earth_search_2022.json", "cdse_2023.json"])
def test_a_missed_offset_is_1000_dn_off(tmp_path: Path, name: str) -> None:
    # The chain with the offset decision forced to 0 is 1000 DN off everywhere: the
    # continuity check above is able to fail.
    truth = reflectance()
    scene = scene_info_from_item(provider_item(name, tmp_path / "assets", truth))
    assert scene.boa_offset_dn == -1000
    wrong = type(scene)(**{**scene.to_dict(), "boa_offset_dn": 0})
    out = tmp_path / "stack"
    manifest = download_tile([wrong], TILE, out)
    mask = cloud_mask_tile(manifest, out / "mask.tif")
    c10, _ = composite_tile(manifest, mask, out / "c_10m.tif", out / "c_20m.tif")
    diff = read(c10)[0] - truth["B02"][12:36, 12:36]
    assert (diff == 1000).all()
