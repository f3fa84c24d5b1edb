"""Shared pytest fixtures: loopback servers and a real-data STAC catalogue.

* ``file_server_factory(root)`` / ``stac_server_factory(hrefs)``: start a
  :class:`~jointseg.simulate.servers.FileServer` / :class:`~jointseg.simulate.servers.StacServer`
  on a free loopback port; stopped at the end of the test.
* ``bigearthnet_stac``: one STAC API + file server pair for the whole session,
  serving Earth-Search-style Items whose assets are the real Sentinel-2 L2A
  patches in ``tests/data/bigearthnet`` (see its README).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from pyproj import Transformer

from jointseg.simulate.servers import FileServer, StacServer

DATA_DIR = Path(__file__).parent / "data"
BIGEARTHNET_DIR = DATA_DIR / "bigearthnet"
COLLECTION_ID = "sentinel-2-l2a"

# Earth Search v1 asset key -> (band id, resolution m, common name)
EARTH_SEARCH_BANDS = {
    "blue": ("B02", 10, "blue"),
    "green": ("B03", 10, "green"),
    "red": ("B04", 10, "red"),
    "nir": ("B08", 10, "nir"),
    "rededge1": ("B05", 20, "rededge"),
    "rededge2": ("B06", 20, "rededge"),
    "rededge3": ("B07", 20, "rededge"),
    "nir08": ("B8A", 20, "nir08"),
    "swir16": ("B11", 20, "swir16"),
    "swir22": ("B12", 20, "swir22"),
}

# Per patch: extra (date, cloud cover %) items beside the real acquisition (made up).
EXTRA_ACQUISITIONS = [("2017-05-04", 55.0), ("2017-07-23", 12.5), ("2017-08-12", 80.0)]
REAL_CLOUD_COVER = 3.2  # made up too: the example patches carry no scene cloud cover


@pytest.fixture(autouse=True, scope="session")
def _gdal_http_env() -> Iterator[None]:
    """GDAL /vsicurl/ settings for reading COGs from the loopback file server."""
    env = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
        "GDAL_HTTP_MAX_RETRY": "0",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def file_server_factory() -> Iterator[Callable[[Path], FileServer]]:
    """Start a FileServer for a directory on a free loopback port; stopped after the test."""
    started: list[FileServer] = []

    def start(root: Path) -> FileServer:
        server = FileServer(root).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def stac_server_factory() -> Iterator[Callable[[list[Path]], StacServer]]:
    """Start a StacServer (rustac serve) for JSON files; stopped after the test."""
    started: list[StacServer] = []

    def start(hrefs: list[Path]) -> StacServer:
        server = StacServer(hrefs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def s2_collection(collection_id: str = COLLECTION_ID) -> dict:
    """A minimal valid STAC Collection for Sentinel-2 L2A."""
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection_id,
        "description": "Sentinel-2 L2A (test catalogue)",
        "license": "proprietary",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [["2015-06-27T00:00:00Z", None]]},
        },
    }


def write_catalogue(root: Path, item_dicts: list[dict]) -> list[Path]:
    """Collection + Item files under ``root`` for ``jointseg.simulate.servers.StacServer``."""
    (root / "items").mkdir(parents=True, exist_ok=True)
    (root / "collection.json").write_text(json.dumps(s2_collection()))
    hrefs = [root / "collection.json"]
    for item in item_dicts:
        p = root / "items" / f"{item['id']}.json"
        p.write_text(json.dumps(item))
        hrefs.append(p)
    return hrefs


def bigearthnet_items(file_url: str) -> list[dict]:
    """Earth-Search-style Items for the real patches; asset hrefs on ``file_url``.

    Four Items per patch: the real acquisition plus :data:`EXTRA_ACQUISITIONS`
    (same real pixels, other dates and cloud covers).
    """
    items = []
    for patch_dir in sorted(p for p in BIGEARTHNET_DIR.iterdir() if p.is_dir()):
        patch = patch_dir.name
        meta = json.loads((patch_dir / f"{patch}_labels_metadata.json").read_text())
        c = meta["coordinates"]
        source = meta["tile_source"]  # S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_...
        platform, mgrs = source[:3], source.split("_")[5][1:]
        baseline = f"{source.split('_')[3][1:3]}.{source.split('_')[3][3:5]}"
        epsg = int(meta["projection"].rsplit('"EPSG","', 1)[1].split('"')[0])
        tr = Transformer.from_crs(epsg, 4326, always_xy=True)
        ring = [tr.transform(x, y) for x, y in (
            (c["ulx"], c["lry"]), (c["lrx"], c["lry"]), (c["lrx"], c["uly"]),
            (c["ulx"], c["uly"]), (c["ulx"], c["lry"]))]
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        real_time = datetime.strptime(meta["acquisition_date"], "%Y-%m-%d %H:%M:%S")
        acquisitions = [(real_time.strftime("%Y-%m-%d"), REAL_CLOUD_COVER), *EXTRA_ACQUISITIONS]
        for date, cloud in acquisitions:
            stamp = f"{date}T{real_time.strftime('%H:%M:%S')}.000000Z"
            item_id = f"{platform}_{mgrs}_{date.replace('-', '')}_0_L2A"
            assets = {}
            for key, (band, res, common) in EARTH_SEARCH_BANDS.items():
                size = 1200 // res
                assets[key] = {
                    "href": f"{file_url}/{patch}/{patch}_{band}.tif",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "title": f"{common} ({band}) - {res}m",
                    "eo:bands": [{"name": band, "common_name": common}],
                    "proj:shape": [size, size],
                    "proj:transform": [res, 0, c["ulx"], 0, -res, c["uly"]],
                    "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                                      "spatial_resolution": res, "scale": 0.0001,
                                      "offset": 0}],
                    "roles": ["data", "reflectance"],
                }
            items.append({
                "type": "Feature",
                "stac_version": "1.0.0",
                "stac_extensions": [],
                "id": item_id,
                "collection": COLLECTION_ID,
                "bbox": [min(lons), min(lats), max(lons), max(lats)],
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "datetime": stamp,
                    "platform": {"S2A": "sentinel-2a", "S2B": "sentinel-2b"}[platform],
                    "constellation": "sentinel-2",
                    "instruments": ["msi"],
                    "eo:cloud_cover": cloud,
                    "proj:epsg": epsg,
                    "mgrs:utm_zone": int(mgrs[:2]),
                    "mgrs:latitude_band": mgrs[2],
                    "mgrs:grid_square": mgrs[3:],
                    "s2:processing_baseline": baseline,
                    "earthsearch:boa_offset_applied": False,
                },
                "links": [],
                "assets": assets,
            })
    return items


@dataclass(frozen=True)
class BigEarthNetStac:
    """A running loopback STAC API + file server over the real BigEarthNet patches."""

    stac_url: str
    file_url: str
    items: list[dict]
    root: Path


@pytest.fixture(scope="session")
def bigearthnet_stac(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigEarthNetStac]:
    """Session-wide STAC API + Range file server over ``tests/data/bigearthnet``."""
    root = tmp_path_factory.mktemp("bigearthnet_stac")
    with FileServer(BIGEARTHNET_DIR) as files:
        items = bigearthnet_items(files.url)
        hrefs = write_catalogue(root, items)
        with StacServer(hrefs) as stac:
            yield BigEarthNetStac(stac.url, files.url, items, root)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """``models/m.onnx`` (the test ONNX model) and its fp16 twin ``m_fp16.onnx`` in
    ``tmp_path`` (tests/test_predict_stage.py, tests/test_providers_fallback.py)."""
    import shutil

    from tests.test_predict_stage import MODEL, fp16_twin

    model = tmp_path / "models" / "m.onnx"
    model.parent.mkdir()
    shutil.copy(MODEL, model)
    fp16_twin(MODEL, model.with_name("m_fp16.onnx"))
    return model
