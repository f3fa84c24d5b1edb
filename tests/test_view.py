"""The viewer's layer manifest, tile and point endpoints, and the QGIS project writer,
on a small product folder with known pixel values (tests/viewfactory.py)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import morecantile
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pyproj import Transformer

pytest.importorskip("fastapi")
pytest.importorskip("rio_tiler")
from fastapi.testclient import TestClient  # noqa: E402

from jointseg.cli import main  # noqa: E402
from jointseg.view import styles  # noqa: E402
from jointseg.view.layers import (  # noqa: E402
    ManifestError,
    build_manifest,
    read_manifest,
    write_manifest,
)
from jointseg.view.server import create_app  # noqa: E402
from tests import viewfactory as vf  # noqa: E402

TMS = morecantile.tms.get("WebMercatorQuad")
TO_LONLAT = Transformer.from_crs(vf.CRS, "EPSG:4326", always_xy=True)
ISA_RGB = {v: styles.hex_to_rgba(c)[:3] for v, (c, _) in styles.ISA_CLASSES.items()}


@pytest.fixture(scope="module")
def product_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vf.make_product_dir(tmp_path_factory.mktemp("view"))


@pytest.fixture(scope="module")
def client(product_dir: Path) -> TestClient:
    return TestClient(create_app([build_manifest(product_dir)]))


def lonlat(x_m: float, y_m: float) -> tuple[float, float]:
    """lon/lat of a point given in metres from the fixture's lower-left corner."""
    return TO_LONLAT.transform(vf.LEFT + x_m, vf.BOTTOM + y_m)


def tile_pixel(client: TestClient, layer: str, x_m: float, y_m: float, z: int = 18) -> tuple:
    """RGBA of the tile pixel under a point (metres from the lower-left corner)."""
    lon, lat = lonlat(x_m, y_m)
    t = TMS.tile(lon, lat, z)
    r = client.get(f"/tiles/testreg/2021/{layer}/{z}/{t.x}/{t.y}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
    b = TMS.xy_bounds(t)
    px, py = TMS.xy(lon, lat)
    col = int((px - b.left) / (b.right - b.left) * img.shape[1])
    row = int((b.top - py) / (b.top - b.bottom) * img.shape[0])
    return tuple(int(v) for v in img[row, col])


def test_manifest_finds_every_product(product_dir: Path) -> None:
    m = build_manifest(product_dir)
    assert (m.region, m.year, m.simulated) == ("testreg", 2021, True)
    assert [layer.id for layer in m.layers] == ["composite", "sr", "isa", "baseline", "prob"]
    comp = m.layer("composite")
    assert comp.bands == [3, 2, 1]  # B04 B03 B02 found by band description
    red = 100 + np.arange(60 * 60)
    lo, hi = np.percentile(red, [2, 98])
    assert comp.rescale[0] == pytest.approx([lo, hi], abs=60)  # read from a 512 px overview
    w, s, e, n = m.layer("isa").public()["bounds"]
    assert (w, s) == pytest.approx(lonlat(0, 0), abs=1e-3)
    assert m.layer("isa").maxzoom >= 17


def test_manifest_round_trip_drops_missing(product_dir: Path, tmp_path: Path) -> None:
    path = write_manifest(build_manifest(product_dir), tmp_path / "sub" / "viewer.json")
    doc = json.loads(path.read_text())
    assert all(not Path(f).is_absolute() for layer in doc["layers"] for f in layer["files"])
    assert len(read_manifest(path).layers) == 5
    doc["layers"][0]["files"] = ["nowhere.tif"]
    path.write_text(json.dumps(doc))
    assert [layer.id for layer in read_manifest(path).layers] == ["sr", "isa", "baseline", "prob"]


def test_manifest_errors_name_the_folder(tmp_path: Path) -> None:
    empty = tmp_path / "r" / "2020"
    empty.mkdir(parents=True)
    with pytest.raises(ManifestError, match="no products"):
        build_manifest(empty)
    with pytest.raises(ManifestError, match="not a year"):
        build_manifest(empty.parent)
    with pytest.raises(ManifestError, match="no such product folder"):
        build_manifest(tmp_path / "missing")


def test_isa_tile_pixels(client: TestClient) -> None:
    assert tile_pixel(client, "isa", 125, 300) == (*ISA_RGB[1], 255)  # stripe 2: impervious
    assert tile_pixel(client, "isa", 475, 300) == (*ISA_RGB[0], 255)  # stripe 9: not
    assert tile_pixel(client, "isa", 550, 550)[3] == 0  # nodata corner: transparent
    assert tile_pixel(client, "baseline", 125, 300) == (*ISA_RGB[0], 255)


def test_prob_tile_follows_the_ramp(client: TestClient) -> None:
    ramp = styles.ramp_colormap(styles.PROB_RAMP)
    for x_m in (20.5, 300.5, 580.5):
        dn = int(x_m) * 254 // 599
        got = np.array(tile_pixel(client, "prob", x_m, 300)[:3])
        idx = round(dn * 255 / 254)
        expected = [np.array(ramp[i][:3]) for i in range(max(0, idx - 2), min(255, idx + 2) + 1)]
        assert min(np.abs(got - e).max() for e in expected) <= 2, (x_m, got, ramp[idx])


def test_rgb_tiles(client: TestClient) -> None:
    r, g, b, a = tile_pixel(client, "sr", 300, 300)
    assert a == 255 and (r, g, b) == pytest.approx((199, 99, 49), abs=1.5)  # [1, 255] stretch
    west = tile_pixel(client, "composite", 5, 595, z=16)
    east = tile_pixel(client, "composite", 595, 5, z=16)
    assert west[3] == east[3] == 255 and east[0] > west[0]  # B04 grows by pixel index


def test_tile_outside_and_unknown(client: TestClient) -> None:
    r = client.get("/tiles/testreg/2021/isa/18/0/0.png")
    assert r.status_code == 200
    assert np.asarray(Image.open(io.BytesIO(r.content)))[..., 3].max() == 0
    assert client.get("/tiles/testreg/2021/nope/1/0/0.png").status_code == 404
    assert client.get("/tiles/other/2021/isa/1/0/0.png").status_code == 404


def test_point_values_of_every_layer(client: TestClient) -> None:
    lon, lat = lonlat(125.5, 300.5)
    doc = client.get(f"/point/testreg/2021?lon={lon}&lat={lat}").json()
    got = {layer["id"]: layer for layer in doc["layers"]}
    assert got["isa"]["value"] == 1 and got["isa"]["label"] == "impervious"
    assert got["baseline"]["value"] == 0
    assert got["prob"]["value"] == pytest.approx(125 * 254 // 599 / 254, abs=1e-3)
    assert got["sr"]["value"] == [200, 100, 50]
    lon, lat = lonlat(550.5, 550.5)
    nodata = {la["id"]: la for la in client.get(f"/point/testreg/2021?lon={lon}&lat={lat}")
              .json()["layers"]}
    assert nodata["isa"]["value"] is None and nodata["isa"]["label"] == "no data"


def test_page_and_layers_api(client: TestClient) -> None:
    page = client.get("/").text
    assert "/static/vendor/maplibre-gl.js" in page and "http" not in page.split("<body>")[0]
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "jointsegViewer" in js.text
    assert client.get("/static/vendor/maplibre-gl-compare.js").status_code == 200
    (product,) = client.get("/api/layers").json()
    assert product["simulated"] is True and product["key"] == "testreg/2021"
    assert "files" not in product["layers"][0]
    isa = next(la for la in product["layers"] if la["id"] == "isa")
    assert isa["legend"]["entries"][1] == {"value": 1, "colour": "#a50f15",
                                           "label": "impervious"}


def test_cli_writes_manifest_and_qgs(product_dir: Path, tmp_path: Path) -> None:
    man, qgs = tmp_path / "viewer.json", tmp_path / "isa.qgs"
    res = CliRunner().invoke(main, ["view", str(product_dir), "--write-manifest", str(man),
                                    "--write-qgs", str(qgs)])
    assert res.exit_code == 0, res.output
    assert json.loads(man.read_text())["schema"] == "jointseg.viewer/1"
    root = ET.parse(qgs).getroot()
    layers = root.findall("projectlayers/maplayer")
    assert len(layers) == 5
    for ml in layers:
        assert (qgs.parent / ml.find("datasource").text).resolve().is_file()
    isa = next(ml for ml in layers if ml.find("id").text == "jointseg_isa_0")
    entries = isa.findall("pipe/rasterrenderer/colorPalette/paletteEntry")
    assert [(e.get("value"), e.get("color")) for e in entries] == [("0", "#e8e8e8"),
                                                                   ("1", "#a50f15")]
    prob = next(ml for ml in layers if ml.find("id").text == "jointseg_prob_0")
    assert prob.find("pipe/rasterrenderer").get("type") == "singlebandpseudocolor"
    comp = next(ml for ml in layers if ml.find("id").text == "jointseg_composite_0")
    assert comp.find("pipe/rasterrenderer").get("redBand") == "3"
    assert root.find("projectCrs/spatialrefsys/authid").text == "EPSG:32650"
    assert "SIMULATED" in root.find("title").text


def test_cli_bad_folder(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["view", str(tmp_path / "nope"), "--write-manifest",
                                    str(tmp_path / "m.json")])
    assert res.exit_code != 0 and "no such product folder" in res.output


def test_cli_sr_quicklook(product_dir: Path, tmp_path: Path) -> None:
    png = tmp_path / "sr.png"
    res = CliRunner().invoke(main, ["view", str(product_dir), "--write-sr-quicklook", str(png)])
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(png).convert("RGBA"))
    assert img.shape[:2] == (600, 600)  # 600 m at 1 m: below the 1024 px cap
    assert tuple(img[300, 300]) == pytest.approx((199, 99, 49, 255), abs=1)


def test_several_years_are_offered(product_dir: Path) -> None:
    other = vf.make_product_dir(product_dir.parent.parent, year=2023)
    c = TestClient(create_app([build_manifest(product_dir), build_manifest(other)]))
    assert [p["key"] for p in c.get("/api/layers").json()] == ["testreg/2021", "testreg/2023"]
    lon, lat = lonlat(125.5, 300.5)
    assert c.get(f"/point/testreg/2023?lon={lon}&lat={lat}").json()["layers"][2]["id"] == "isa"
