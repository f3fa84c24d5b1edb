import numpy as np
import pytest
from rasterio.windows import Window
from shapely.geometry import box

from jointseg.grid import GeoBox, Tile, is_utm, tiles_for_aoi, tiles_for_bbox, utm_epsg


def test_utm_epsg_nanjing_and_south():
    assert utm_epsg(118.78, 32.06) == 32650
    assert utm_epsg(-43.2, -22.9) == 32723
    assert utm_epsg(179.99, 10) == 32660


def test_child_grids_share_origin_and_nest():
    t = Tile.at(32650, 663000, 3543000, 3000)
    g10, g20, g1 = t.geobox(10), t.geobox(20), t.geobox(1)
    assert g10.shape == (300, 300) and g20.shape == (150, 150) and g1.shape == (3000, 3000)
    assert g10.transform.c == g1.transform.c == g20.transform.c == 663000
    assert g10.transform.f == g1.transform.f == 3546000
    # one 10 m pixel is exactly 10 x 10 one-metre pixels
    assert (g1.transform * (10, 10)) == (g10.transform * (1, 1))
    assert g10.with_res(1) == g1


def test_geobox_rejects_fractional_pixels():
    with pytest.raises(ValueError, match="whole number"):
        GeoBox.from_bounds("EPSG:32650", (0, 0, 105, 100), 10)


def test_tile_id_roundtrip_and_errors():
    t = Tile.from_id("32650_663000_3543000", 3000)
    assert (t.epsg, t.xmin, t.ymin) == (32650, 663000, 3543000)
    assert t.crs == "EPSG:32650"
    with pytest.raises(ValueError, match="malformed tile id"):
        Tile.from_id("nanjing", 3000)


def test_tiles_for_bbox_snaps_to_tile_multiples():
    tiles = tiles_for_bbox((663500, 3543100, 668900, 3548000), "EPSG:32650", 3000)
    assert sorted(t.tile_id for t in tiles) == [
        "32650_663000_3543000",
        "32650_663000_3546000",
        "32650_666000_3543000",
        "32650_666000_3546000",
    ]
    with pytest.raises(ValueError, match="multiple of 60"):
        tiles_for_bbox((0, 0, 10, 10), "EPSG:32650", 1000)
    with pytest.raises(ValueError, match="UTM"):
        tiles_for_bbox((0, 0, 10, 10), "EPSG:4326", 600)


def test_tiles_for_aoi_crossing_utm_zones():
    # 117-123 E straddles the zone 50/51 boundary at 120 E
    aoi = box(119.8, 31.0, 120.2, 31.2)
    tiles = tiles_for_aoi(aoi, 6000)
    zones = {t.epsg for t in tiles}
    assert zones == {32650, 32651}
    # every tile reaches into its own zone, and the union covers the AOI
    for t in tiles:
        west, _, east, _ = t.footprint_lonlat().bounds
        zone_west = -180 + (t.epsg - 32601) * 6
        assert west < zone_west + 6 and east > zone_west
    cover = tiles[0].footprint_lonlat()
    for t in tiles[1:]:
        cover = cover.union(t.footprint_lonlat())
    assert cover.buffer(1e-6).covers(aoi)


def test_tiles_for_aoi_rejects_invalid_polygon():
    from shapely.geometry import Polygon

    bowtie = Polygon([(118, 32), (119, 33), (119, 32), (118, 33)])
    with pytest.raises(ValueError, match="invalid"):
        tiles_for_aoi(bowtie, 600)
    with pytest.raises(ValueError, match="empty"):
        tiles_for_aoi(Polygon(), 600)


def test_is_utm():
    assert is_utm("EPSG:32650") and is_utm("EPSG:32735")
    assert not is_utm("EPSG:4326") and not is_utm("EPSG:3857")


def test_geobox_zoom_crop_and_areas() -> None:
    g10 = GeoBox.from_bounds("EPSG:32650", (600000, 3500000, 601200, 3501200), 10)
    g1 = g10.zoom_in(10)
    assert g1 == g10.with_res(1) and g1.shape == (1200, 1200)
    assert g1.zoom_out(10) == g10
    with pytest.raises(ValueError, match="whole number"):
        g1[0:15, 0:15].zoom_out(10)
    sub = g10[Window(3, 5, 20, 10)]
    assert sub.bounds == (600030, 3501200 - 150, 600230, 3501200 - 50)
    assert g10[5:15, 3:23] == sub
    assert g10.window_of(sub) == Window(3, 5, 20, 10)
    with pytest.raises(ValueError):
        g1.window_of(sub)
    assert g10.pixel_area_m2 == 100.0
    assert np.all(g10.pixel_area_m2_rows() == 100.0)
    w, s_, e, n = g10.lonlat_bounds()
    assert 117.9 < w < e < 118.1 and 31.6 < s_ < n < 31.7
    geo = GeoBox.from_bounds("EPSG:4326", (118.0, 31.0, 118.001, 31.001), 0.0001)
    rows = geo.pixel_area_m2_rows()
    assert rows.shape == (10,) and 100 < rows[0] < 110 and rows[0] < rows[-1]
    with pytest.raises(ValueError, match="not projected"):
        _ = geo.pixel_area_m2


def test_geobox_row_windows_cover_the_grid_once() -> None:
    g = GeoBox.from_bounds("EPSG:32650", (0, 0, 70, 250), 10)  # 7 x 25 px
    wins = list(g.row_windows(10))
    assert [(w.row_off, w.height) for w in wins] == [(0, 10), (10, 10), (20, 5)]
    assert all(w.col_off == 0 and w.width == 7 for w in wins)


def test_zoom_keeps_width_and_height_apart_on_non_square_grids() -> None:
    # 300 m wide x 200 m high at 10 m: 30 columns, 20 rows (a square grid hides a swap)
    g10 = GeoBox.from_bounds("EPSG:32650", (600000, 3500000, 600300, 3500200), 10)
    assert (g10.width, g10.height) == (30, 20)
    g1 = g10.zoom_in(10)
    assert (g1.width, g1.height) == (300, 200) and g1.shape == (200, 300)
    assert g1.bounds == g10.bounds == (600000, 3500000, 600300, 3500200)
    assert g1 == g10.with_res(1) and g1.zoom_out(10) == g10
    # the 1 m child of a window of the 10 m grid is that window's footprint at 1 m
    sub = g10[Window(col_off=4, row_off=2, width=7, height=3)]
    assert sub.zoom_in(10).shape == (30, 70) and sub.zoom_in(10).bounds == sub.bounds
    assert g1.window_of(sub.zoom_in(10)) == Window(40, 20, 70, 30)
    tall = GeoBox.from_bounds("EPSG:32650", (0, 0, 20, 50), 10)  # 2 columns, 5 rows
    assert tall.zoom_in(5).shape == (25, 10) and tall.zoom_in(5).zoom_out(5) == tall
    with pytest.raises(ValueError, match="whole number"):
        tall.zoom_in(10)[0:20, 0:15].zoom_out(10)
