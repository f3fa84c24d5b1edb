"""STAC: provider harmonisation, BOA offset rule, signing, search against a real loopback API."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from rasterio.windows import Window
from shapely.geometry import box, shape

from jointseg.cli import main
from jointseg.data.errors import ItemError, NoScenesError, StacError
from jointseg.data.providers import (
    SceneInfo,
    decide_boa_offset_dn,
    map_href,
    scene_info_from_item,
)
from jointseg.data.secrets import redact_url
from jointseg.data.signing import sign_href
from jointseg.data.stac import read_scene_list, search_scenes, select_scenes, write_scene_list
from jointseg.simulate.servers import free_port, stop_demo_servers

from .conftest import BIGEARTHNET_DIR, bigearthnet_items, s2_collection

ITEMS_DIR = Path(__file__).parent / "data" / "stac_items"
AUSTRIA = "S2A_MSIL2A_20170613T101031_87_48"


def load_item(name: str) -> dict:
    return json.loads((ITEMS_DIR / f"{name}.json").read_text())


# name -> (provider, baseline, boa_offset_dn, B02 href tail, B05 href tail, SCL href tail)
EXPECTED = {
    "earth_search_v0_2020": ("earth-search", "02.14", 0, "S2A_50SPA_20200418_0_L2A/B02.tif",
                             "/B05.tif", "/SCL.tif"),
    "earth_search_2021": ("earth-search", "03.00", 0, "S2B_50SPA_20210912_0_L2A/B02.tif",
                          "/B05.tif", "/SCL.tif"),
    "earth_search_2022": ("earth-search", "04.00", -1000, "S2B_50SPA_20220126_0_L2A/B02.tif",
                          "/B05.tif", "/SCL.tif"),
    "earth_search_2023": ("earth-search", "05.09", 0, "S2A_50SPA_20230504_0_L2A/B02.tif",
                          "/B05.tif", "/SCL.tif"),
    "planetary_computer_2021": ("planetary-computer", "03.00", 0, "_B02_10m.tif",
                                "R20m/T50SPA_20211017T025541_B05_20m.tif", "_SCL_20m.tif"),
    "planetary_computer_2023": ("planetary-computer", "05.09", -1000, "_B02_10m.tif",
                                "R20m/T50SPA_20230309T025539_B05_20m.tif", "_SCL_20m.tif"),
    "cdse_2021": ("cdse", "03.01", 0, "R10m/T50SPA_20211106T025759_B02_10m.jp2",
                  "R20m/T50SPA_20211106T025759_B05_20m.jp2", "_SCL_20m.jp2"),
    "cdse_2023": ("cdse", "05.09", -1000, "R10m/T50SPA_20230821T025549_B02_10m.jp2",
                  "R20m/T50SPA_20230821T025549_B05_20m.jp2", "_SCL_20m.jp2"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scene_info_per_provider(name: str) -> None:
    provider, baseline, offset, b02, b05, scl = EXPECTED[name]
    info = scene_info_from_item(load_item(name))
    assert info.provider == provider
    assert info.processing_baseline == baseline
    assert info.boa_offset_dn == offset
    assert info.scale == 1e-4 and info.epsg == 32650
    assert set(info.bands) >= {"B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A",
                               "B11", "B12", "SCL"}
    assert info.bands["B02"].endswith(b02)
    assert info.bands["B05"].endswith(b05)
    assert info.bands["SCL"].endswith(scl)
    # every band href names its own band (no key mixed up between conventions)
    for band, href in info.bands.items():
        assert band in href.rsplit("/", 1)[-1], (band, href)
    # an explicit provider gives the same answer as detection
    assert scene_info_from_item(load_item(name), provider) == info


def test_scene_info_accepts_pystac_item() -> None:
    d = load_item("planetary_computer_2023")
    assert scene_info_from_item(pystac.Item.from_dict(d)) == scene_info_from_item(d)


def test_cdse_keeps_native_resolution_and_s3_hrefs() -> None:
    info = scene_info_from_item(load_item("cdse_2023"))
    assert info.bands["B02"].startswith("s3://eodata/Sentinel-2/MSI/L2A/2023/08/21/")
    assert info.bands["B02"].endswith("_B02_10m.jp2")   # not the 20 m or 60 m copy
    assert info.bands["B8A"].endswith("_B8A_20m.jp2")
    assert info.bands["B01"].endswith("_B01_60m.jp2")
    assert "TCI" not in json.dumps(info.bands) and "AOT" not in json.dumps(info.bands)


def test_earth_search_ignores_jp2_duplicates_and_maps_s3() -> None:
    info = scene_info_from_item(load_item("earth_search_2023"))
    assert all(h.startswith("https://sentinel-cogs.s3.us-west-2.amazonaws.com/")
               for h in info.bands.values())
    assert map_href("s3://sentinel-cogs/sentinel-s2-l2a-cogs/50/S/PA/x/B02.tif", "earth-search") \
        == "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/50/S/PA/x/B02.tif"
    assert map_href("s3://eodata/a/b.jp2", "cdse") == "s3://eodata/a/b.jp2"


def test_boa_offset_never_applied_twice() -> None:
    """Earth Search 2023: flag true; raster:bands -0.1, baseline 05.09 and date say -1000."""
    item = load_item("earth_search_2023")
    assert item["assets"]["red"]["raster:bands"][0]["offset"] == -0.1
    assert decide_boa_offset_dn(item) == (0, "earthsearch:boa_offset_applied")
    # without the flag the same pixels would need the offset, decided by raster:bands
    item["properties"]["earthsearch:boa_offset_applied"] = False
    assert decide_boa_offset_dn(item) == (-1000, "raster:bands")
    # and a SceneInfo round trip does not change it
    info = scene_info_from_item(load_item("earth_search_2023"))
    assert SceneInfo.from_dict(json.loads(json.dumps(info.to_dict()))).boa_offset_dn == 0


def test_boa_offset_evidence_order() -> None:
    item = load_item("cdse_2021")  # no raster offsets, processing:version 03.01
    assert decide_boa_offset_dn(item) == (0, "processing baseline")
    item["properties"]["processing:version"] = "04.00"
    assert decide_boa_offset_dn(item) == (-1000, "processing baseline")
    # raster offset 0 outranks a baseline >= 04.00
    for key, asset in item["assets"].items():
        if key.startswith("B"):
            asset["raster:scale"], asset["raster:offset"] = 0.0001, 0.0
    assert decide_boa_offset_dn(item) == (0, "raster:bands")
    # nothing but the date
    bare = {"id": "x", "properties": {"datetime": "2022-01-25T03:00:00Z"}, "assets": {}}
    assert decide_boa_offset_dn(bare) == (-1000, "acquisition date")
    bare["properties"]["datetime"] = "2022-01-24T23:59:59Z"
    assert decide_boa_offset_dn(bare) == (0, "acquisition date")


def test_conflicting_offsets_are_an_error() -> None:
    item = load_item("earth_search_2022")
    item["assets"]["red"]["raster:bands"][0]["offset"] = 0.0
    with pytest.raises(ItemError, match="different offsets"):
        scene_info_from_item(item)


def test_item_without_bands_is_an_error() -> None:
    item = load_item("planetary_computer_2021")
    del item["assets"]["B08"]
    with pytest.raises(ItemError, match=r"no asset for band\(s\) B08"):
        scene_info_from_item(item)


def test_scene_list_round_trip(tmp_path: Path) -> None:
    scenes = [scene_info_from_item(load_item(n)) for n in ("cdse_2023", "earth_search_2021")]
    out = write_scene_list(tmp_path / "scenes" / "32650_663000_3543000.json",
                           "32650_663000_3543000", "demo", 2021, scenes)
    doc = json.loads(out.read_text())
    assert set(doc) == {"tile_id", "region", "year", "scenes"}
    assert doc["scenes"][0]["boa_offset_dn"] == -1000
    assert read_scene_list(out) == ("32650_663000_3543000", "demo", 2021, scenes)
    assert not list(out.parent.glob(".*.part"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"tile_id": "x"}')
    with pytest.raises(ItemError, match="bad.json: not a scene list"):
        read_scene_list(bad)


def test_select_scenes_least_cloudy_then_by_time() -> None:
    base = scene_info_from_item(load_item("earth_search_2021")).to_dict()
    scenes = [SceneInfo.from_dict({**base, "id": i, "datetime": t, "cloud_cover": c})
              for i, t, c in [("a", "2021-05-01T00:00:00Z", 5.0),
                              ("b", "2021-03-01T00:00:00Z", 5.0),
                              ("c", "2021-01-01T00:00:00Z", 40.0),
                              ("d", "2021-07-01T00:00:00Z", 1.0)]]
    assert [s.id for s in select_scenes(scenes, 3)] == ["b", "a", "d"]
    assert [s.id for s in select_scenes(scenes + scenes, 10)] == ["c", "b", "a", "d"]


# --------------------------------------------------------------------------------------
# Signing


def test_redact_url() -> None:
    url = ("https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/a/B02.tif"
           "?st=2026-01-01&se=2026-01-02&sp=rl&sv=2021-06-08&sr=c&sig=AbC%2Bsecret%3D")
    red = redact_url(url)
    assert "secret" not in red and "AbC" not in red
    assert red.startswith("https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/a/B02.tif?")
    assert "sig=***" in red
    assert redact_url("http://x/y?token=abc&page=2") == "http://x/y?token=***&page=2"
    assert redact_url("http://x/y.tif") == "http://x/y.tif"


class _SasHandler(BaseHTTPRequestHandler):
    calls: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        type(self).calls.append(self.path)
        body = json.dumps({"msft:expiry": "2099-01-01T00:00:00Z",
                           "token": "st=2026-01-01&se=2099-01-01&sp=rl&sr=c&sig=TOPSECRET"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_sign_href_with_loopback_sas_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SasHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _SasHandler.calls = []
    cfg = {"sign_planetary_computer": True,
           "sas_url": f"http://127.0.0.1:{server.server_port}/api/sas/v1/token"}
    caplog.set_level("DEBUG", logger="jointseg")
    try:
        scene = scene_info_from_item(load_item("planetary_computer_2023"))
        signed = [sign_href(h, scene.provider, cfg) for h in scene.bands.values()]
        assert all(s.endswith("&sig=TOPSECRET") and "?st=" in s for s in signed)
        assert signed[0].split("?")[0] == next(iter(scene.bands.values()))
        assert _SasHandler.calls == ["/api/sas/v1/token/sentinel2l2a01/sentinel2-l2"]  # cached
        assert "TOPSECRET" not in caplog.text and "sig=***" in caplog.text
        # not configured, not PC, or already signed: unchanged
        href = scene.bands["B02"]
        assert sign_href(href, "planetary-computer", {}) == href
        assert sign_href(href, "earth-search", cfg) == href
        assert sign_href(signed[0], "planetary-computer", cfg) == signed[0]
    finally:
        server.shutdown()
        server.server_close()


def test_sign_href_unreachable_endpoint_names_url_not_token() -> None:
    port = free_port()
    cfg = {"sign_planetary_computer": True, "timeout_s": 2,
           "sas_url": f"http://127.0.0.1:{port}/sas"}
    href = "https://sentinel2l2a01.blob.core.windows.net/other-container/B02.tif"
    with pytest.raises(StacError, match=f"127.0.0.1:{port}/sas/sentinel2l2a01/other-container"):
        sign_href(href, "planetary-computer", cfg)


# --------------------------------------------------------------------------------------
# Search against the loopback STAC API over real Sentinel-2 patches


def _patch_footprint(stac, item_id: str = "S2A_33UUP_20170613_0_L2A"):
    item = next(i for i in stac.items if i["id"] == item_id)
    return shape(item["geometry"]).buffer(-0.002)  # well inside the patch


def test_search_least_cloudy_and_read_through_vsicurl(bigearthnet_stac) -> None:
    aoi = _patch_footprint(bigearthnet_stac)
    scenes = search_scenes(bigearthnet_stac.stac_url, "sentinel-2-l2a", aoi,
                           "2017-05-01", "2017-09-30", max_cloud_cover=60, max_scenes=2,
                           timeout_s=10)
    # candidates over this patch: 05-04 (55 %), 06-13 (3.2 %), 07-23 (12.5 %), 08-12 (80 %)
    assert [s.id for s in scenes] == ["S2A_33UUP_20170613_0_L2A", "S2A_33UUP_20170723_0_L2A"]
    first = scenes[0]
    assert first.provider == "earth-search" and first.boa_offset_dn == 0
    assert first.processing_baseline == "02.05" and first.epsg == 32633
    assert first.cloud_cover == pytest.approx(3.2)
    assert first.datetime == "2017-06-13T10:10:31Z"
    assert first.bands["B04"] == f"{bigearthnet_stac.file_url}/{AUSTRIA}/{AUSTRIA}_B04.tif"

    window = Window(10, 20, 64, 48)
    with rasterio.open(f"/vsicurl/{first.bands['B04']}") as remote:
        got = remote.read(1, window=window)
    with rasterio.open(BIGEARTHNET_DIR / AUSTRIA / f"{AUSTRIA}_B04.tif") as local:
        expected = local.read(1, window=window)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint16 and 0 < got.mean() < 10000


def test_search_cloud_and_date_filters(bigearthnet_stac) -> None:
    aoi = _patch_footprint(bigearthnet_stac)
    ids = [s.id for s in search_scenes(bigearthnet_stac.stac_url, "sentinel-2-l2a", aoi,
                                       "2017-01-01", "2017-12-31", 10, 10)]
    assert ids == ["S2A_33UUP_20170613_0_L2A"]
    ids = [s.id for s in search_scenes(bigearthnet_stac.stac_url, "sentinel-2-l2a", aoi,
                                       "2017-07-01", "2017-08-31", 100, 10, page_size=1)]
    assert ids == ["S2A_33UUP_20170723_0_L2A", "S2A_33UUP_20170812_0_L2A"]


def test_search_only_items_over_the_footprint(bigearthnet_stac) -> None:
    irish = next(i for i in bigearthnet_stac.items if i["id"].startswith("S2A_29UPU_20170617"))
    aoi = shape(irish["geometry"]).centroid.buffer(0.001)
    scenes = search_scenes(bigearthnet_stac.stac_url, "sentinel-2-l2a", aoi,
                           "2017-01-01", "2017-12-31", 100, 10)
    assert {s.id[:9] for s in scenes} == {"S2A_29UPU"} and len(scenes) == 4
    assert all(s.epsg == 32629 for s in scenes)


def test_search_unreachable_api_names_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(StacError, match=f"cannot reach STAC API {url}: ") as err:
        # one quick retry: the message, not the back-off (test_faults times the retries)
        search_scenes(url, "sentinel-2-l2a", box(0, 0, 1, 1), "2021-01-01", "2021-12-31",
                      50, 5, timeout_s=2, retries=1, backoff_s=0.05)
    assert "\n" not in str(err.value)


def test_search_no_scenes_names_bounds_dates_cloud(bigearthnet_stac) -> None:
    ocean = box(-30.0, 40.0, -29.99, 40.01)
    with pytest.raises(NoScenesError) as err:
        search_scenes(bigearthnet_stac.stac_url, "sentinel-2-l2a", ocean, "2017-01-01",
                      "2017-12-31", 30, 5)
    msg = str(err.value)
    assert "[-30.00000, 40.00000, -29.99000, 40.01000]" in msg
    assert "2017-01-01 and 2017-12-31" in msg and "<= 30%" in msg and "\n" not in msg
    # over the patch but all too cloudy
    with pytest.raises(NoScenesError, match=r"<= 1%"):
        search_scenes(bigearthnet_stac.stac_url, "sentinel-2-l2a",
                      _patch_footprint(bigearthnet_stac), "2017-01-01", "2017-12-31", 1, 5)


# --------------------------------------------------------------------------------------
# CLI


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_scene_info(name: str) -> None:
    result = CliRunner().invoke(main, ["scene-info", str(ITEMS_DIR / f"{name}.json")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) == {"id", "datetime", "cloud_cover", "processing_baseline",
                        "boa_offset_dn", "bands"}
    assert out["boa_offset_dn"] == EXPECTED[name][2]
    assert out["processing_baseline"] == EXPECTED[name][1]
    assert out["bands"]["B02"].endswith(EXPECTED[name][3])


def test_cli_scene_info_bad_item(tmp_path: Path) -> None:
    bad = tmp_path / "item.json"
    bad.write_text(json.dumps({"id": "x", "properties": {"datetime": "2021-01-01T00:00:00Z",
                                                          "eo:cloud_cover": 1}, "assets": {}}))
    result = CliRunner().invoke(main, ["scene-info", str(bad)])
    assert result.exit_code == 1
    assert "item.json: item 'x': no asset for band(s) B02, B03, B04, B08" in result.output


def test_cli_search_explicit_options(bigearthnet_stac, tmp_path: Path) -> None:
    out = tmp_path / "scenes" / "32633_404400_5341200.json"
    result = CliRunner().invoke(main, [
        "search", "--api-url", bigearthnet_stac.stac_url, "--tile", "32633_404400_5341200",
        "--tile-size-m", "1200", "--year", "2017", "--max-cloud-cover", "50",
        "--max-scenes", "5", "--region", "austria", "--out", str(out)])
    assert result.exit_code == 0, result.output
    tile_id, region, year, scenes = read_scene_list(out)
    assert (tile_id, region, year) == ("32633_404400_5341200", "austria", 2017)
    assert [s.id for s in scenes] == ["S2A_33UUP_20170613_0_L2A", "S2A_33UUP_20170723_0_L2A"]


def test_cli_search_errors(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, [
        "search", "--api-url", url, "--bbox-lonlat", "10,40,10.1,40.1", "--year", "2021",
        "--timeout-s", "2", "--retries", "1", "--backoff-s", "0.05",
        "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 1 and f"cannot reach STAC API {url}" in result.output
    assert not (tmp_path / "s.json").exists()
    result = CliRunner().invoke(main, ["search", "--api-url", url, "--year", "2021",
                                       "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 2 and "--tile or --bbox-lonlat" in result.output


def test_cli_search_with_config_starts_demo_servers(tmp_path: Path) -> None:
    """--config with stac.demo_server.enabled: servers come up, the tile's scenes are found."""
    sim = tmp_path / "sim"
    shutil.copytree(BIGEARTHNET_DIR / AUSTRIA, sim / "s2" / AUSTRIA)
    stac_port, file_port = free_port(), free_port()
    items = [i for i in bigearthnet_items(f"http://127.0.0.1:{file_port}/s2")
             if i["id"].startswith("S2A_33UUP")]
    (sim / "stac" / "items").mkdir(parents=True)
    (sim / "stac" / "collection.json").write_text(json.dumps(s2_collection()))
    for item in items:
        (sim / "stac" / "items" / f"{item['id']}.json").write_text(json.dumps(item))
    state = tmp_path / "state"
    config = {
        "year": 2017,
        "regions": {"austria": {"bbox": [404400, 5341200, 405600, 5342400],
                                "bbox_crs": "EPSG:32633"}},
        "stac": {"api_url": f"http://127.0.0.1:{stac_port}", "max_cloud_cover": 20,
                 "max_scenes": 4, "date_window": {"start": "06-01", "end": "08-31"},
                 "demo_server": {"enabled": True, "sim_dir": str(sim), "stac_port": stac_port,
                                 "file_port": file_port, "state_dir": str(state)}},
        "grid": {"tile_size_m": 1200},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "scenes.json"
    try:
        result = CliRunner().invoke(main, [
            "search", "--config", str(tmp_path / "config.yaml"), "--region", "austria",
            "--tile", "32633_404400_5341200", "--out", str(out)])
        assert result.exit_code == 0, result.output
        _, _, year, scenes = read_scene_list(out)
        assert year == 2017
        assert [s.id for s in scenes] == ["S2A_33UUP_20170613_0_L2A", "S2A_33UUP_20170723_0_L2A"]
        with rasterio.open(f"/vsicurl/{scenes[0].bands['B8A']}") as ds:
            assert ds.shape == (60, 60) and ds.read(1).max() > 0
        assert {p.name for p in state.glob("*.pid")} == {"stac.pid", "files.pid"}
    finally:
        stop_demo_servers(state)
