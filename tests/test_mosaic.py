import json

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.windows import from_bounds
from rio_cogeo.cogeo import cog_validate

from jointseg.grid import Tile
from jointseg.io import write_cog
from jointseg.mosaic.catalog import product_item, write_item
from jointseg.mosaic.merge import MosaicError, dominant_crs, mosaic_tiles
from jointseg.mosaic.quicklook import quicklook_png
from jointseg.products import QA_FILLED, QA_NO_OBSERVATION


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
        # the written file's CRS is the China Albers equal-area conic (standard parallels
        # 25 and 47 N, central meridian 105 E, WGS84), whatever the module constant says
        params = ds.crs.to_dict()
        assert {k: params.get(k) for k in ("proj", "lat_0", "lon_0", "lat_1", "lat_2", "x_0",
                                           "y_0", "units")} == {
            "proj": "aea", "lat_0": 0, "lon_0": 105, "lat_1": 25, "lat_2": 47, "x_0": 0,
            "y_0": 0, "units": "m"}
        assert params.get("ellps") == "WGS84" or params.get("datum") == "WGS84"
        # and the tiles landed where that projection puts them (their centre, projected here)
        x, y = Transformer.from_crs("EPSG:32650", "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 "
                                    "+lat_2=47 +ellps=WGS84 +units=m", always_xy=True
                                    ).transform(801000, 3543300)
        b = ds.bounds
        assert b.left < x < b.right and b.bottom < y < b.top
        assert ds.read(1)[ds.index(x, y)] == 1


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


def _isa_qa_tile(tmp_path, tile):
    """A binary ISA tile as predict writes it: band 1 classes, band 2 QA flags."""
    gb = tile.geobox(1)
    isa = np.ones(gb.shape, np.uint8)
    qa = np.zeros(gb.shape, np.uint8)
    qa[:, :300] = QA_FILLED
    isa[:100, 300:], qa[:100, 300:] = 255, QA_NO_OBSERVATION
    return write_cog(tmp_path / f"{tile.tile_id}.tif", np.stack([isa, qa]), gb, nodata=255,
                     band_names=["isa_binary", "QA"], overview_resampling="mode")


def test_mosaic_carries_the_qa_band_across_zones(tmp_path):
    tiles = [Tile.at(32650, 800400, 3543000, 600), Tile.at(32650, 801000, 3543000, 600),
             Tile.at(32651, 229800, 3543000, 600)]
    paths = [_isa_qa_tile(tmp_path, t) for t in tiles]
    out = mosaic_tiles(paths, tmp_path / "m.tif", kind="binary")
    with rasterio.open(out) as ds:
        assert ds.count == 2 and ds.descriptions == ("isa_binary", "QA")
        isa, qa = ds.read(1), ds.read(2)
        for tile, path in zip(tiles[:2], paths[:2], strict=True):  # same zone: exact
            win = from_bounds(*tile.bounds, ds.transform).round_offsets().round_lengths()
            with rasterio.open(path) as src:
                np.testing.assert_array_equal(ds.read(window=win), src.read())
    # the warped zone-51 tile keeps its flags (nearest): no new values, about its area
    assert set(np.unique(qa)) == {0, QA_FILLED, QA_NO_OBSERVATION, 255}
    assert 0.95 < (qa == QA_FILLED).sum() / (3 * 600 * 300) < 1.05
    assert 0.95 < (qa == QA_NO_OBSERVATION).sum() / (3 * 100 * 300) < 1.05
    np.testing.assert_array_equal(isa == 255, (qa == QA_NO_OBSERVATION) | (qa == 255))
    png = quicklook_png(out, tmp_path / "q.png", kind="binary", max_size=128)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_mosaic_item_describes_both_bands(tmp_path):
    from click.testing import CliRunner

    from jointseg.cli import main

    paths = [_isa_qa_tile(tmp_path, Tile.at(32650, x, 3543000, 600)) for x in (663000, 663600)]
    res = CliRunner().invoke(main, [
        "mosaic", *map(str, paths), "--output", str(tmp_path / "isa_1m.tif"), "--kind",
        "binary", "--year", "2021", "--region", "demo", "--item", str(tmp_path / "i.json"),
        "--quicklook", str(tmp_path / "q.png")])
    assert res.exit_code == 0, res.output
    asset = json.loads((tmp_path / "i.json").read_text())["assets"]["isa"]
    band1, band2 = asset["raster:bands"]
    assert band1["name"] == "isa_binary" and band2["name"] == "QA"
    assert band1["nodata"] == band2["nodata"] == 255 and band2["data_type"] == "uint8"
    assert [c["value"] for c in band1["classification:classes"]] == [0, 1]
    assert [c["value"] for c in asset["classification:classes"]] == [0, 1]
    fields = {f["name"]: f for f in band2["classification:bitfields"]}
    assert fields["filled"]["offset"] == 0 and fields["no_observation"]["offset"] == 1
    assert 1 << fields["filled"]["offset"] == QA_FILLED
    assert 1 << fields["no_observation"]["offset"] == QA_NO_OBSERVATION
    assert all(f["length"] == 1 for f in fields.values())
