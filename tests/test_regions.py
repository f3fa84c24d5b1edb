import json

import pytest

from jointseg.regions import RegionError, read_aoi, region_tiles


def test_utm_bbox_region():
    tiles = region_tiles({"bbox": [663000, 3543000, 669000, 3549000],
                          "bbox_crs": "EPSG:32650"}, 3000)
    assert len(tiles) == 4 and {t.epsg for t in tiles} == {32650}


def test_lonlat_bbox_region_is_tiled_in_utm():
    tiles = region_tiles({"bbox": [118.70, 32.00, 118.76, 32.04], "bbox_crs": "EPSG:4326"}, 3000)
    assert tiles and {t.epsg for t in tiles} == {32650}


def _geojson(tmp_path, coords, crs=True):
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon",
                                                            "coordinates": [coords]}}]}
    p = tmp_path / "aoi.geojson"
    p.write_text(json.dumps(fc))
    return p


def test_aoi_file_region(tmp_path):
    p = _geojson(tmp_path, [[119.9, 31.0], [120.1, 31.0], [120.1, 31.1], [119.9, 31.1],
                            [119.9, 31.0]])
    tiles = region_tiles({"aoi": str(p)}, 6000)
    assert {t.epsg for t in tiles} == {32650, 32651}


def test_self_intersecting_aoi_is_rejected_with_file_name(tmp_path):
    p = _geojson(tmp_path, [[118, 32], [119, 33], [119, 32], [118, 33], [118, 32]])
    with pytest.raises(RegionError, match=r"aoi.geojson: AOI feature 0 is invalid: Self-inter"):
        read_aoi(p)


def test_missing_aoi_file(tmp_path):
    with pytest.raises(RegionError, match="AOI file not found"):
        region_tiles({"aoi": str(tmp_path / "none.gpkg")}, 600)
