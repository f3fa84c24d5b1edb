import json

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from jointseg.grid import Tile
from jointseg.io import write_cog
from jointseg.mosaic.catalog import product_item, write_item
from jointseg.mosaic.merge import CHINA_ALBERS, MosaicError, dominant_crs, mosaic_tiles
from jointseg.mosaic.quicklook import quicklook_png


def _tile(tmp_path, tile, value, nodata=255, dtype="uint8"):
    gb = tile.geobox(1)
    a = np.full(gb.shape, value, dtype)
    a[:5, :5] = nodata
    return write_cog(tmp_path / f"{tile.tile_id}.tif", a, gb, nodata=nodata,
                     band_names=["isa"], tags={"MODEL_SHA256": "abc"})


def test_mosaic_same_zone_is_exact(tmp_path):
    a = _tile(tmp_path, Tile.at(32650, 663000, 3543000, 600), 1)
    b = _tile(tmp_path, Tile.at(32650, 663600, 3543000, 600), 0)
    out = mosaic_tiles([a, b], tmp_path / "m.tif", kind="binary", extra_tags={"YEAR": "2021"})
    assert cog_validate(str(out), quiet=True)[0]
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32650 and ds.res == (1.0, 1.0)
        assert ds.bounds.left == 663000 and ds.bounds.right == 664200
        arr = ds.read(1)
        assert (arr[10:, :600] == 1).all() and (arr[10:, 600:] == 0).all()
        assert arr[0, 0] == 255 and ds.nodata == 255
        assert ds.tags()["YEAR"] == "2021" and ds.tags()["MODEL_SHA256"] == "abc"
        assert ds.descriptions == ("isa",)


def test_mosaic_reprojects_other_zone_to_dominant(tmp_path):
    tiles = [Tile.at(32650, 800400, 3543000, 600), Tile.at(32650, 801000, 3543000, 600),
             Tile.at(32651, 229800, 3543000, 600)]
    paths = [_tile(tmp_path, t, 1) for t in tiles]
    assert dominant_crs(paths) == "EPSG:32650"
    out = mosaic_tiles(paths, tmp_path / "m.tif", kind="binary")
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32650
        assert set(np.unique(ds.read(1))) <= {1, 255}  # nearest keeps classes
    albers = mosaic_tiles(paths, tmp_path / "a.tif", kind="binary", output_crs="china_albers")
    with rasterio.open(albers) as ds:
        assert ds.crs.to_proj4().startswith("+proj=aea") and "lat_1=25" in CHINA_ALBERS


def test_mosaic_rejects_inconsistent_tiles(tmp_path):
    a = _tile(tmp_path, Tile.at(32650, 663000, 3543000, 600), 1)
    b = _tile(tmp_path, Tile.at(32650, 663600, 3543000, 600), 0, nodata=0, dtype="uint16")
    with pytest.raises(MosaicError, match="differ from the first tile"):
        mosaic_tiles([a, b], tmp_path / "m.tif", kind="binary")
    with pytest.raises(MosaicError, match="missing tiles"):
        mosaic_tiles([a, tmp_path / "gone.tif"], tmp_path / "m.tif", kind="binary")


def test_product_item_and_quicklook(tmp_path):
    a = _tile(tmp_path, Tile.at(32650, 663000, 3543000, 600), 1)
    item = product_item(a, item_id="isa-demo-2021", year=2021, product="isa",
                        description="ISA", classes={0: "not impervious", 1: "impervious"})
    p = write_item(item, tmp_path / "isa.json")
    d = json.loads(p.read_text())
    assert d["properties"]["proj:code"] == "EPSG:32650" or d["properties"].get("proj:epsg")
    asset = d["assets"]["isa"]
    assert asset["href"] == a.name and asset["raster:bands"][0]["nodata"] == 255
    assert asset["file:checksum"].startswith("1220")
    assert [c["value"] for c in asset["classification:classes"]] == [0, 1]
    assert 118 < d["bbox"][0] < 119 and 31.9 < d["bbox"][1] < 32.1
    png = quicklook_png(a, tmp_path / "q.png", kind="binary", max_size=256)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
