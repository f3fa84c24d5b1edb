"""The QGIS project (``jointseg/view/qgis.py``) opened and drawn by real QGIS.

The small product folder of ``tests/viewfactory.py``, with its composite stored as the
pipeline stores it (reflectance DN with scale 1e-4; the probability has scale 1/254), is
written as ``isa.qgs`` and rendered layer by layer by ``tests/data/qgis/render.py`` under
Debian's ``/usr/bin/python3`` (the only interpreter with the ``python3-qgis`` bindings),
headless. Checked: every layer loads and the layer tree finds it; the ISA maps show the
ISA palette; the probability is a ramp of many colours, not near-black; the composite
and the SR quicklook are not black; and at the pixels of three rows, each layer has the
colours the viewer (``jointseg.view.server.style_image``) gives the same stored values.
Skipped only where ``/usr/bin/python3`` cannot import ``qgis``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytest.importorskip("rio_tiler")
pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402
from rio_tiler.models import ImageData  # noqa: E402

from jointseg.data.composite import SCALE  # noqa: E402
from jointseg.grid import GeoBox  # noqa: E402
from jointseg.io import write_cog  # noqa: E402
from jointseg.view import styles  # noqa: E402
from jointseg.view.layers import Layer, Manifest, build_manifest  # noqa: E402
from jointseg.view.qgis import write_qgs  # noqa: E402
from jointseg.view.server import style_image  # noqa: E402
from tests import viewfactory as vf  # noqa: E402

QGIS_PYTHON = "/usr/bin/python3"
RENDER = Path(__file__).parent / "data" / "qgis" / "render.py"
SIZE_PX = 96
#: largest per-channel difference from the viewer's colour (QGIS 3.22 measured 0, 0, 5):
#: QGIS interpolates the ramp between its 11 stops, the viewer has 256 colours
TOLERANCE = {"classes": 1, "rgb": 4, "ramp": 8}
#: variables of this (venv) process that must not reach Debian's Python and its GDAL
NOT_PASSED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "GDAL_DATA", "PROJ_LIB", "PROJ_DATA")


def _qgis_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
    return {**env, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp)}


def _skip_without_qgis(tmp: Path) -> None:
    try:
        res = subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True,
                             text=True, env=_qgis_env(tmp), timeout=120)
    except FileNotFoundError:
        pytest.skip(f"{QGIS_PYTHON} not found (QGIS bindings: apt-get install python3-qgis)")
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"{QGIS_PYTHON} cannot import qgis ({last}); "
                    "apt-get install python3-qgis")


def _store_composite_scaled(product_dir: Path) -> None:
    """Rewrite the composite with the pipeline's scales: 1e-4 on reflectance, 1 on the rest."""
    path = product_dir / "composite" / f"{vf.TILE}_10m.tif"
    with rasterio.open(path) as ds:
        data, names, tags = ds.read(), list(ds.descriptions), ds.tags()
    grid = GeoBox.from_bounds(
        vf.CRS, (vf.LEFT, vf.BOTTOM, vf.LEFT + vf.SIZE_M, vf.BOTTOM + vf.SIZE_M), 1).zoom_out(10)
    scales = [1.0 if n in ("COUNT", "QA") else SCALE for n in names]
    write_cog(path, data, grid, nodata=0, band_names=names, tags=tags, scales=scales)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, dict]:
    """The manifest and what QGIS drew of its ``isa.qgs`` (see tests/data/qgis/render.py),
    plus ``"written_ids"``: the layer ids the project file gives."""
    tmp = tmp_path_factory.mktemp("qgis")
    _skip_without_qgis(tmp)
    product_dir = vf.make_product_dir(tmp)
    _store_composite_scaled(product_dir)
    manifest = build_manifest(product_dir)
    qgs = write_qgs(manifest, product_dir / "isa.qgs")
    res = subprocess.run([QGIS_PYTHON, str(RENDER), str(qgs), str(SIZE_PX)],
                         capture_output=True, text=True, env=_qgis_env(tmp), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    out["written_ids"] = [el.text for el in ET.parse(qgs).getroot().iterfind(
        "projectlayers/maplayer/id")]
    return manifest, out


def _qgis_layer(rendered: tuple[Manifest, dict], lid: str, index: int = 0) -> dict:
    """What QGIS drew of the ``index``-th file of the manifest's layer ``lid``."""
    manifest, out = rendered
    path = manifest.path(manifest.layer(lid).files[index])
    (drawn,) = [la for la in out["layers"].values() if Path(la["source"]).resolve() == path]
    return drawn


def test_every_layer_loads_under_its_id(rendered: tuple[Manifest, dict]) -> None:
    manifest, out = rendered
    ids = out["written_ids"]
    assert len(ids) == sum(len(la.files) for la in manifest.layers)
    assert sorted(out["layers"]) == sorted(ids)  # QGIS kept the project's ids
    assert all(la["valid"] for la in out["layers"].values())
    assert out["tree"] == dict.fromkeys(ids, True)  # every tree node finds its layer


def test_isa_maps_show_the_isa_palette(rendered: tuple[Manifest, dict]) -> None:
    palette = {colour for colour, _ in styles.ISA_CLASSES.values()}
    for lid in ("isa", "baseline"):
        drawn = _qgis_layer(rendered, lid)
        assert drawn["renderer"] == "paletted"
        assert set(drawn["top"]) == palette, (lid, drawn["top"])


def test_probability_is_a_ramp_of_many_colours(rendered: tuple[Manifest, dict]) -> None:
    drawn = _qgis_layer(rendered, "prob")
    assert drawn["scales"][0] == pytest.approx(1 / 254)  # QGIS draws probabilities 0..1
    assert drawn["colours"] >= 20, drawn
    assert drawn["mean_brightness"] > 60, drawn  # the old DN ramp drew 0..1 near-black


@pytest.mark.parametrize("lid", ["composite", "sr"])
def test_rgb_layers_are_not_black(rendered: tuple[Manifest, dict], lid: str) -> None:
    drawn = _qgis_layer(rendered, lid)
    assert drawn["opaque_px"] == SIZE_PX * SIZE_PX
    assert drawn["mean_brightness"] > 60, drawn


def _viewer_row(layer: Layer, path: Path, extent: list[float], row: int) -> np.ndarray:
    """The viewer's RGBA (``style_image``) of the stored values at one rendered row's pixels."""
    xmin, ymin, xmax, ymax = extent
    xs = xmin + (np.arange(SIZE_PX) + 0.5) * (xmax - xmin) / SIZE_PX
    y = ymax - (row + 0.5) * (ymax - ymin) / SIZE_PX
    with rasterio.open(path) as ds:
        data = ds.read(layer.bands, masked=True)
        rows, cols = rasterio.transform.rowcol(ds.transform, xs, np.full_like(xs, y))
    values = data[:, np.asarray(rows), np.asarray(cols)][:, None, :]
    png = style_image(ImageData(values), layer)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[0].astype(int)


def test_every_layer_draws_as_the_viewer(rendered: tuple[Manifest, dict]) -> None:
    manifest, _ = rendered
    for layer in manifest.layers:
        drawn = _qgis_layer(rendered, layer.id)
        for row, pixels in drawn["rows"].items():
            qgis = np.asarray(pixels)
            viewer = _viewer_row(layer, manifest.path(layer.files[0]), drawn["extent"], int(row))
            assert np.array_equal(qgis[:, 3] > 0, viewer[:, 3] > 0), (layer.id, row)
            opaque = qgis[:, 3] > 0
            diff = np.abs(qgis[opaque, :3] - viewer[opaque, :3]).max(initial=0)
            assert diff <= TOLERANCE[layer.kind], (layer.id, row, diff)
