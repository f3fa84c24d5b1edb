"""WorldCover: tile names, windowed reads of the real tile, UTM reprojection, missing tiles."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from jointseg.assess.worldcover import (
    DEFAULT_URL_TEMPLATE,
    MissingTileWarning,
    WorldCoverError,
    builtup_mask,
    read_worldcover,
    read_worldcover_builtup,
    tile_href,
    worldcover_geobox,
    worldcover_tile_ids,
    worldcover_tile_names,
)
from jointseg.grid import GeoBox

DATA = Path(__file__).parent / "data" / "worldcover"
CUTOUT = DATA / "ESA_WorldCover_10m_2020_v100_N00E006_cutout_r31680_c8400_600px.tif"
TILE_NAME = "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif"
REAL_TILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "worldcover" / TILE_NAME
needs_real_tile = pytest.mark.skipif(
    not REAL_TILE.exists(), reason=f"real WorldCover tile not found at {REAL_TILE} "
    "(the shared sample data sits beside the repository in CI)")

# São Tomé city, inside the cut-out (lon 6.70-6.75, lat 0.31-0.36)
SAO_TOME = (6.71, 0.32, 6.74, 0.35)


def test_tile_names_follow_lower_left_corner():
    assert worldcover_tile_names((117.2, 30.5, 117.4, 30.7), 2021) == [
        "ESA_WorldCover_10m_2021_v200_N30E117_Map.tif"]
    assert worldcover_tile_names((6.6, 0.3, 6.8, 0.4), 2020) == [TILE_NAME]
    # a bbox across the corner at (117 E, 30 N) needs four tiles, north first
    assert worldcover_tile_ids((116.9, 29.9, 117.1, 30.1)) == [
        "N30E114", "N30E117", "N27E114", "N27E117"]
    # across the equator and the prime meridian
    assert worldcover_tile_ids((-0.5, -0.5, 0.5, 0.5)) == [
        "N00W003", "N00E000", "S03W003", "S03E000"]
    # exact tile edges do not pull in neighbours
    assert worldcover_tile_ids((6.0, 0.0, 9.0, 3.0)) == ["N00E006"]
    assert worldcover_tile_ids((-63.0, -36.0, -60.0, -33.0)) == ["S36W063"]


def test_unknown_year_is_an_error():
    with pytest.raises(WorldCoverError, match="no ESA WorldCover for year 2019"):
        worldcover_tile_names((6.6, 0.3, 6.8, 0.4), 2019)


def test_tile_hrefs_for_folder_url_and_template(tmp_path):
    assert tile_href(tmp_path, "N00E006", 2020) == str(tmp_path / TILE_NAME)
    assert tile_href("http://127.0.0.1:9/wc/", "N30E117", 2021) == (
        "/vsicurl/http://127.0.0.1:9/wc/ESA_WorldCover_10m_2021_v200_N30E117_Map.tif")
    assert tile_href(DEFAULT_URL_TEMPLATE, "N30E117", 2021) == (
        "/vsicurl/https://esa-worldcover.s3.eu-central-1.amazonaws.com/v200/2021/map/"
        "ESA_WorldCover_10m_2021_v200_N30E117_Map.tif")


def test_worldcover_geobox_snaps_to_native_pixels():
    gb = worldcover_geobox((6.70001, 0.31, 6.75, 0.35999))
    assert gb.transform.c == pytest.approx(6.70) and gb.transform.f == pytest.approx(0.36)
    assert (gb.width, gb.height) == (600, 600)


def test_cutout_read_on_its_own_grid_is_unchanged():
    with rasterio.open(CUTOUT) as ds:
        want = ds.read(1)
        gb = GeoBox("EPSG:4326", ds.transform, ds.width, ds.height)
    got = read_worldcover(CUTOUT, gb, 2020)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    assert 0.15 < (got == 50).mean() < 0.25  # São Tomé city: ~20 % built-up


@needs_real_tile
def test_real_tile_window_matches_cutout(tmp_path):
    """A windowed read of the real 36000 x 36000 tile from a folder = the committed cut-out."""
    with rasterio.open(CUTOUT) as ds:
        want = ds.read(1)
        gb = GeoBox("EPSG:4326", ds.transform, ds.width, ds.height)
    got = read_worldcover(REAL_TILE.parent, gb, 2020)
    np.testing.assert_array_equal(got, want)


@needs_real_tile
def test_builtup_extraction_on_real_tile():
    ref = read_worldcover_builtup(REAL_TILE.parent, 2020, SAO_TOME)
    with rasterio.open(REAL_TILE) as ds:
        win = rasterio.windows.from_bounds(*SAO_TOME, transform=ds.transform).round_offsets()
        win = rasterio.windows.Window(win.col_off, win.row_off, ref.geobox.width,
                                      ref.geobox.height)
        classes = ds.read(1, window=win)
    assert ref.isa.shape == (360, 360)
    np.testing.assert_array_equal(ref.isa, (classes == 50).astype(np.uint8))
    assert set(np.unique(ref.isa)) <= {0, 1}
    assert builtup_mask(np.array([0, 10, 50, 80], np.uint8)).tolist() == [255, 0, 1, 0]


def _utm_geobox(res_m: float = 10.0) -> GeoBox:
    """A 2 km x 2 km EPSG:32632 grid over São Tomé city."""
    tr = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
    x, y = tr.transform(6.725, 0.335)
    x0, y0 = round(x / 100) * 100 - 1000, round(y / 100) * 100 - 1000
    return GeoBox.from_bounds("EPSG:32632", (x0, y0, x0 + 2000, y0 + 2000), res_m)


def test_reprojection_into_utm_is_nearest_neighbour():
    """Each UTM pixel gets the class of the WorldCover pixel under its centre."""
    gb = _utm_geobox()
    got = read_worldcover(CUTOUT, gb, 2020)
    assert got.shape == (200, 200)
    with rasterio.open(CUTOUT) as ds:
        classes = ds.read(1)
        inv = ~ds.transform
    cols, rows = np.meshgrid(np.arange(gb.width) + 0.5, np.arange(gb.height) + 0.5)
    xs, ys = gb.transform @ (cols, rows)
    lon, lat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True).transform(xs, ys)
    c, r = inv @ (lon, lat)
    want = classes[np.floor(r).astype(int), np.floor(c).astype(int)]
    agree = (got == want).mean()
    assert agree > 0.999, agree  # pixel-centre ties may go either way
    assert (got == 0).sum() == 0
    assert abs((got == 50).mean() - (want == 50).mean()) < 0.002


@needs_real_tile
def test_missing_tile_is_named_or_filled(tmp_path):
    """A grid across 6 E needs N00E003 too: an error names it; allow_missing fills 0."""
    (tmp_path / TILE_NAME).symlink_to(REAL_TILE)
    gb = GeoBox.from_bounds("EPSG:4326", (5.99, 0.30, 6.74, 0.32), 0.0005)
    with pytest.raises(WorldCoverError,
                       match="ESA_WorldCover_10m_2020_v100_N00E003_Map.tif"):
        read_worldcover(tmp_path, gb, 2020)
    with pytest.warns(MissingTileWarning, match="N00E003"):
        got = read_worldcover(tmp_path, gb, 2020, allow_missing=True)
    assert (got[:, :20] == 0).all()  # west of 6 E: no tile -> no data
    # east of 6 E: the real tile's pixels (ocean is 0 there too; São Tomé city is built-up)
    np.testing.assert_array_equal(got[:, 20:], read_worldcover(REAL_TILE, gb, 2020)[:, 20:])
    assert (got[:, 20:] == 50).any()


def test_reads_over_loopback_http(tmp_path, file_server_factory):
    """Folder-URL source via /vsicurl/ (official name served from a loopback server)."""
    shutil.copy(CUTOUT, tmp_path / TILE_NAME)  # the cut-out served under the tile's name
    server = file_server_factory(tmp_path)
    gb = _utm_geobox(20.0)
    over_http = read_worldcover(server.url, gb, 2020)
    local = read_worldcover(CUTOUT, gb, 2020)
    np.testing.assert_array_equal(over_http, local)
    assert (over_http == 50).any()
    template = server.url + "/ESA_WorldCover_10m_{year}_{version}_{tile}_Map.tif"
    np.testing.assert_array_equal(read_worldcover(template, gb, 2020), local)
    with pytest.raises(WorldCoverError, match="N00E006 missing"):
        read_worldcover(server.url, gb, 2021)  # v200 file is not there
