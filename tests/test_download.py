"""Tests for jointseg.data.download: window reads, reprojection, HTTP, retries, resume."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.windows import from_bounds

from jointseg.data.assets import gdal_path
from jointseg.data.download import download_tile
from jointseg.data.errors import DownloadError
from jointseg.data.providers import SceneInfo
from jointseg.data.secrets import redact_url
from jointseg.grid import GeoBox, Tile
from jointseg.io import sha256_file
from jointseg.simulate.servers import FileServer
from tests.stackfactory import write_tif

BEN = Path(__file__).parents[1].parent / "shared" / "data" / "bigearthnet"
PATCH = "S2A_MSIL2A_20170613T101031_87_48"  # UTM 33N, x 404400-405600, y 5341200-5342400

TILE = Tile.at(32633, 500040, 5000040, 240)  # 24 x 24 px at 10 m, 12 x 12 at 20 m


def scene(sid: str, bands: dict[str, str], dt: str = "2021-06-01T10:00:00Z") -> SceneInfo:
    return SceneInfo.from_dict({
        "id": sid, "datetime": dt, "cloud_cover": 5.0, "processing_baseline": "03.00",
        "boa_offset_dn": 0, "scale": 1e-4, "bands": bands, "epsg": 32633, "provider": "unknown"})


def read(path: Path) -> tuple[np.ndarray, rasterio.Affine, str]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs.to_string()


def test_gdal_path_and_redact_url() -> None:
    assert gdal_path("https://x.org/a/B02.tif") == "/vsicurl/https://x.org/a/B02.tif"
    assert gdal_path("s3://bucket/k/B02.tif") == "/vsis3/bucket/k/B02.tif"
    assert gdal_path("/data/B02.tif") == "/data/B02.tif"
    assert redact_url("https://x.org/B02.tif?sig=SECRET&se=1") == "https://x.org/B02.tif?sig=***&se=***"


def test_aligned_window_read_is_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # Source grids larger than the tile, origins a whole number of pixels away.
    src10 = GeoBox.from_bounds("EPSG:32633", (499800, 4999800, 500400, 5000400), 10)
    src20 = GeoBox.from_bounds("EPSG:32633", (499800, 4999800, 500400, 5000400), 20)
    a10 = rng.integers(1, 10000, src10.shape, dtype=np.uint16)
    a20 = rng.integers(1, 10000, src20.shape, dtype=np.uint16)
    scl = rng.integers(0, 12, src20.shape, dtype=np.uint8)
    hrefs = {"B02": str(write_tif(tmp_path / "src/B02.tif", a10, src10)),
             "B05": str(write_tif(tmp_path / "src/B05.tif", a20, src20)),
             "SCL": str(write_tif(tmp_path / "src/SCL.tif", scl, src20))}
    out = tmp_path / "stack"
    # The SceneInfo dict form (as in the search JSON) is accepted too.
    manifest = download_tile([scene("S1", hrefs).to_dict()], TILE, out, ["B02", "B05", "SCL"])
    m = json.loads(manifest.read_text())
    assert m["tile_id"] == TILE.tile_id and [s["id"] for s in m["scenes"]] == ["S1"]
    got, tr, crs = read(out / m["scenes"][0]["files"]["B02"])
    # Tile x 500040..500280 -> source cols 24..48; y top 5000280 -> source row 12.
    np.testing.assert_array_equal(got, a10[12:36, 24:48])
    assert tr == TILE.geobox(10).transform and crs == "EPSG:32633"
    got20, tr20, _ = read(out / "S1/B05.tif")
    np.testing.assert_array_equal(got20, a20[6:18, 12:24])
    assert tr20 == TILE.geobox(20).transform
    gots, _, _ = read(out / "S1/SCL.tif")
    np.testing.assert_array_equal(gots, scl[6:18, 12:24])
    assert m["scenes"][0]["sha256"]["B02"] == sha256_file(out / "S1/B02.tif")
    assert not (out / "manifest.partial.json").exists()


def test_partial_footprint_is_zero_outside_and_empty_scene_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Source covers only the west half of the tile.
    src = GeoBox.from_bounds("EPSG:32633", (499900, 5000000, 500160, 5000400), 10)
    a = np.full(src.shape, 777, np.uint16)
    far = GeoBox.from_bounds("EPSG:32633", (600000, 6000000, 600240, 6000240), 10)
    s_part = scene("PART", {"B02": str(write_tif(tmp_path / "p.tif", a, src))})
    s_none = scene("NONE", {"B02": str(write_tif(tmp_path / "n.tif", a[:24, :24], far))})
    with caplog.at_level(logging.WARNING, logger="jointseg.data.download"):
        manifest = download_tile([s_none, s_part], TILE, tmp_path / "out", ["B02"])
    ids = [s["id"] for s in json.loads(manifest.read_text())["scenes"]]
    assert ids == ["PART"]
    assert any("NONE" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
    got, _, _ = read(tmp_path / "out/PART/B02.tif")
    assert (got[:, :12] == 777).all() and (got[:, 12:] == 0).all()


def test_subpixel_shift_is_reprojected_bilinear(tmp_path: Path) -> None:
    # A linear ramp is reproduced exactly by bilinear interpolation (up to rounding).
    src = GeoBox.from_bounds("EPSG:32633", (499905, 4999905, 500405, 5000405), 10)  # 5 m off
    xs = src.transform.c + 10 * (np.arange(src.width) + 0.5)
    ys = src.transform.f - 10 * (np.arange(src.height) + 0.5)
    ramp = lambda x, y: 1000 + 2.0 * (x - 499900) + 1.0 * (y - 4999900)  # noqa: E731
    a = np.round(ramp(xs[None, :], ys[:, None])).astype(np.uint16)
    hrefs = {"B03": str(write_tif(tmp_path / "B03.tif", a, src))}
    download_tile([scene("S", hrefs)], TILE, tmp_path / "out", ["B03"])
    got, tr, _ = read(tmp_path / "out/S/B03.tif")
    g = TILE.geobox(10)
    assert tr == g.transform and got.shape == g.shape
    cx = g.transform.c + 10 * (np.arange(g.width) + 0.5)
    cy = g.transform.f - 10 * (np.arange(g.height) + 0.5)
    expected = ramp(cx[None, :], cy[:, None])
    assert np.abs(got.astype(float) - expected).max() <= 1.0
    # An exact (unshifted) read would be 5 m * slope away: make sure we did not do that.
    assert np.abs(got.astype(float) - ramp(cx[None, :] - 5, cy[:, None] - 5)).mean() > 5


def test_neighbouring_utm_zone_is_reprojected(tmp_path: Path) -> None:
    # A tile in zone 33 at 12.01 E (zone 33 starts at 12 E), source in zone 32.
    to33 = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)
    x, y = to33.transform(12.01, 47.0)
    tile = Tile.at(32633, int(x // 60 * 60), int(y // 60 * 60), 240)
    to32 = Transformer.from_crs("EPSG:32633", "EPSG:32632", always_xy=True)
    corners = [to32.transform(px, py) for px in (tile.xmin, tile.xmin + 240)
               for py in (tile.ymin, tile.ymin + 240)]
    left = int(min(c[0] for c in corners) // 20 * 20) - 200
    bottom = int(min(c[1] for c in corners) // 20 * 20) - 200
    src = GeoBox.from_bounds("EPSG:32632", (left, bottom, left + 800, bottom + 800), 10)
    src20 = src.with_res(20)
    xs = src.transform.c + 10 * (np.arange(src.width) + 0.5)
    ys = src.transform.f - 10 * (np.arange(src.height) + 0.5)
    a = np.round(3000 + 1.5 * (xs[None, :] - left) - 1.0 * (ys[:, None] - bottom))
    scl = np.where((np.arange(src20.width)[None, :] // 5 + np.arange(src20.height)[:, None] // 5)
                   % 2, 8, 4).astype(np.uint8)
    hrefs = {"B04": str(write_tif(tmp_path / "B04.tif", a.astype(np.uint16), src)),
             "SCL": str(write_tif(tmp_path / "SCL.tif", scl, src20))}
    download_tile([scene("Z32", hrefs)], tile, tmp_path / "out", ["B04", "SCL"])
    got, tr, crs = read(tmp_path / "out/Z32/B04.tif")
    g = tile.geobox(10)
    assert crs == "EPSG:32633" and tr == g.transform and got.shape == g.shape
    cx = g.transform.c + 10 * (np.arange(g.width) + 0.5)
    cy = g.transform.f - 10 * (np.arange(g.height) + 0.5)
    px, py = to32.transform(*np.meshgrid(cx, cy))
    expected = 3000 + 1.5 * (px - left) - 1.0 * (py - bottom)
    # GDAL warps with an approximate transformer (max error 0.125 px = ~2.3 DN here).
    assert np.abs(got - expected).max() <= 3.0 and np.abs(got - expected).mean() < 1.0
    got_scl, _, _ = read(tmp_path / "out/Z32/SCL.tif")
    assert set(np.unique(got_scl)) == {4, 8}  # nearest: only source classes, both present


def test_missing_local_asset_fails_at_once(tmp_path: Path) -> None:
    bad = scene("S", {"B02": str(tmp_path / "nope.tif")})
    with pytest.raises(DownloadError, match=r"^32633_500040_5000040: asset B02 of S not found"):
        download_tile([bad], TILE, tmp_path / "out", ["B02"], retries=3, backoff_s=5.0)
    with pytest.raises(DownloadError, match="asset B03 of S is not in the scene's assets"):
        download_tile([bad], TILE, tmp_path / "out", ["B03"])


# ------------------------------------------------------------------ over real HTTP


def ben_tile() -> Tile:
    # 600 m tile inside the patch, offset (240 m, 360 m) from its lower-left corner.
    return Tile.at(32633, 404400 + 240, 5341200 + 360, 600)


def test_bigearthnet_over_http_is_bit_exact_and_resumable(tmp_path: Path) -> None:
    if not BEN.is_dir():
        pytest.skip(f"{BEN} not present")
    tile = ben_tile()
    with FileServer(BEN) as fs:
        hrefs = {b: f"{fs.url}/{PATCH}/{PATCH}_{b}.tif" for b in ("B02", "B08", "B05", "B11")}
        out = tmp_path / "stack"
        manifest = download_tile([scene(PATCH, hrefs, "2017-06-13T10:10:31Z")], tile, out,
                                 list(hrefs), retries=1, backoff_s=0.01)
        m1 = json.loads(manifest.read_text())
        for band in hrefs:
            with rasterio.open(BEN / PATCH / f"{PATCH}_{band}.tif") as ds:
                local = ds.read(1, window=from_bounds(*tile.bounds, transform=ds.transform))
            got, tr, crs = read(out / m1["scenes"][0]["files"][band])
            assert local.shape == got.shape == tile.geobox(10 if band in ("B02", "B08")
                                                           else 20).shape
            np.testing.assert_array_equal(got, local)
            assert crs == "EPSG:32633" and tr.c == tile.xmin

        # Rerun: nothing fetched (files untouched), same manifest.
        mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")}
        download_tile([scene(PATCH, hrefs, "2017-06-13T10:10:31Z")], tile, out, list(hrefs))
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")} == mtimes
        assert json.loads(manifest.read_text()) == m1

        # Interrupted run: manifest gone, one band lost, one corrupted -> refetched, same bytes.
        manifest.unlink()
        write_partial = {"tile_id": tile.tile_id, "scenes": m1["scenes"]}
        (out / "manifest.partial.json").write_text(json.dumps(write_partial))
        (out / PATCH / "B05.tif").unlink()
        (out / PATCH / "B08.tif").write_bytes(b"garbage")
        download_tile([scene(PATCH, hrefs, "2017-06-13T10:10:31Z")], tile, out, list(hrefs))
        assert json.loads(manifest.read_text()) == m1
        assert sha256_file(out / PATCH / "B08.tif") == m1["scenes"][0]["sha256"]["B08"]


def test_http_404_raises_download_error_naming_tile_band_url(tmp_path: Path) -> None:
    if not BEN.is_dir():
        pytest.skip(f"{BEN} not present")
    with FileServer(BEN) as fs:
        url = f"{fs.url}/{PATCH}/missing_B02.tif"
        with pytest.raises(DownloadError) as err:
            download_tile([scene("S9", {"B02": url})], ben_tile(), tmp_path, ["B02"],
                          retries=4, backoff_s=10.0)  # a retry would take > 10 s
    assert str(err.value) == f"{ben_tile().tile_id}: asset B02 of S9 not found: {url}"
    assert not (tmp_path / "manifest.json").exists()


class _FlakyHandler(BaseHTTPRequestHandler):
    """Serves one file with Range support; the first ``fail`` requests get HTTP 503."""

    data = b""
    fail = 0
    seen = 0
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:  # silence
        pass

    def _answer(self, body: bool) -> None:
        cls = type(self)
        with cls.lock:
            cls.seen += 1
            failing = cls.seen <= cls.fail
        if failing:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = len(cls.data)
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            a, b = int(m[1]), min(int(m[2] or size - 1), size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {a}-{b}/{size}")
        else:
            a, b = 0, size - 1
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(b - a + 1))
        self.end_headers()
        if body:
            self.wfile.write(cls.data[a:b + 1])

    def do_GET(self) -> None:  # noqa: N802
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)


@pytest.fixture
def flaky(tmp_path: Path):
    src = GeoBox.from_bounds("EPSG:32633", TILE.bounds, 10)
    arr = np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) + 1
    path = write_tif(tmp_path / "asset.tif", arr, src)
    handler = type("H", (_FlakyHandler,), {"data": path.read_bytes(), "fail": 0, "seen": 0,
                                           "lock": threading.Lock()})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield handler, f"http://127.0.0.1:{srv.server_address[1]}/asset.tif", arr
    finally:
        srv.shutdown()
        srv.server_close()


def test_transient_503_is_retried_with_backoff(
    tmp_path: Path, flaky, caplog: pytest.LogCaptureFixture
) -> None:
    handler, url, arr = flaky
    handler.fail = 3  # more than GDAL's own retries (retries=1 -> 2 requests)
    with caplog.at_level(logging.WARNING, logger="jointseg.data.assets"):
        download_tile([scene("F", {"B02": url + "?token=abc"})], TILE, tmp_path / "out",
                      ["B02"], retries=2, backoff_s=0.01)
    got, _, _ = read(tmp_path / "out/F/B02.tif")
    np.testing.assert_array_equal(got, arr)
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries and all(f"{url}?token=***" in r and "abc" not in r for r in retries)


def test_persistent_503_gives_up(tmp_path: Path, flaky) -> None:
    handler, url, _ = flaky
    handler.fail = 10**6
    with pytest.raises(DownloadError, match=r"asset B02 of F failed after 2 attempts"):
        download_tile([scene("F", {"B02": url})], TILE, tmp_path / "out", ["B02"],
                      retries=1, backoff_s=0.01)
    # one request per attempt: our loop retries, GDAL does not retry inside it
    assert handler.seen == 2 and not os.path.exists(tmp_path / "out/F/B02.tif")
