"""Real-scene sanity: the demo-style model on real Sentinel-2 L2A patches (BigEarthNet).

The model (``tests/data/models/jointseg_tiny_sim.onnx``, ``make.py realscene`` beside it)
is JointSeg-tiny trained on *simulated* chips only, as the demo's model is. The patches are
real (``tests/data/bigearthnet``, see its README; 2017, processing baseline 02.05, so no
BOA offset). What is checked, without any real 1 m truth:

* the Finnish lake in S2B_MSIL2A_20170924T93020_69_24 (pixels with B08 < 800 DN, i.e.
  NIR reflectance < 0.08) is at most 5 % ISA;
* land in patches whose CORINE labels name no artificial surface is at most 10 % ISA
  (rural forest, bog, arable land and pasture hold a few farm roads and buildings);
* the real snow patch in ``tests/data/real_snow`` (2017-01-11, Slovenia; Sentinel-2 **L1C**
  top-of-atmosphere, 57 % nodata in the source; see its README) has >= 20 % NDSI snow on its
  valid pixels, none of that snow is mapped as ISA (``predict`` leaves it nodata), and at
  most 10 % of its valid pixels are ISA.

Those are upper bounds only, which a model that maps nothing passes; so one lower bound
where the patches hold built-up land (none of their CORINE labels is artificial: CORINE
maps areas of 25 ha and more):

* the farm complex in the middle of the Austrian patch S2A_MSIL2A_20170613T101031_87_48,
  10 m rows 63-73, columns 48-55: a large grey roof, smaller red roofs and a bright
  paved yard in the true-colour bands (B04/B03/B02), beside a motorway. Its built-up
  pixels are those of that box with NDVI < 0.2 (59 of the 88; the fields around reach
  0.3-0.8). At least 40 % of their 1 m pixels must be ISA.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from jointseg.inference.products import predict_tile
from jointseg.inference.scene import open_scene, snow_mask_10m
from jointseg.inference.session import make_session
from jointseg.products import NODATA_U8

REPO = Path(__file__).parents[1]
MODEL = REPO / "tests" / "data" / "models" / "jointseg_tiny_sim.onnx"
ROOTS = (REPO / "tests" / "data" / "bigearthnet", REPO.parent / "shared" / "data" / "bigearthnet")
LAKE_PATCH = "S2B_MSIL2A_20170924T93020_69_24"
SNOW_PATCH = REPO / "tests" / "data" / "real_snow" / "S2_L1C_20170111T100351_SI_eolearn"
#: CORINE level-3 labels of artificial surfaces (class 1.x.x).
#: the farm complex (see the module docstring): patch, 10 m rows, 10 m columns
FARM_PATCH, FARM_ROWS, FARM_COLS = "S2A_MSIL2A_20170613T101031_87_48", (63, 74), (48, 56)
ARTIFICIAL = ("urban fabric", "industrial", "road and rail", "port", "airport", "mineral "
              "extraction", "dump", "construction", "green urban", "sport and leisure")


def patches() -> list[Path]:
    seen: dict[str, Path] = {}
    for root in ROOTS:
        if root.is_dir():
            for p in sorted(root.iterdir()):
                if p.is_dir() and any(p.glob("*_B02.tif")):
                    seen.setdefault(p.name, p)
    return list(seen.values())


def labels(patch: Path) -> list[str]:
    meta = json.loads(next(patch.glob("*_labels_metadata.json")).read_text())
    return [lab.lower() for lab in meta["labels"]]


def predict(patch: Path, tmp_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(isa 1 m uint8, B08 10 m DN, snow 10 m bool) of one patch."""
    out = tmp_path / f"{patch.name}_isa.tif"
    with open_scene(patch) as scene:
        session, info = make_session(MODEL, providers=("cpu",), threads=2)
        predict_tile(session, scene, out, window=60, overlap=4, batch_size=2, info=info)
        x10, x20 = scene.read_all()
    with rasterio.open(out) as ds:
        isa = ds.read(1)
    return isa, x10[3], snow_mask_10m(x10, x20)


def up10(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, 10, 0), 10, 1)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    if not MODEL.is_file():
        pytest.fail(f"{MODEL} missing: run `python tests/data/models/make.py realscene`")
    tmp = tmp_path_factory.mktemp("real")
    return {p.name: predict(p, tmp) for p in patches()}


def test_lake_is_not_isa(results) -> None:
    isa, b08, _ = results[LAKE_PATCH]
    lake = up10(b08 < 800) & (isa != NODATA_U8)
    assert lake.sum() > 100_000  # the lake is ~18 % of the patch
    share = float((isa[lake] == 1).mean())
    assert share <= 0.05, f"{100 * share:.1f} % of the lake mapped as ISA"


def test_rural_land_is_mostly_not_isa(results) -> None:
    checked = 0
    for patch in patches():
        if any(a in lab for lab in labels(patch) for a in ARTIFICIAL):
            continue
        isa, b08, _ = results[patch.name]
        land = up10(b08 >= 800) & (isa != NODATA_U8)
        share = float((isa[land] == 1).mean())
        assert share <= 0.10, f"{patch.name}: {100 * share:.1f} % of rural land mapped as ISA"
        checked += 1
    assert checked >= 3


def test_built_up_farm_complex_is_isa(results) -> None:
    """A lower bound: the farm complex's built-up pixels are mostly mapped as ISA.

    The bound was set from the imagery, not from the model's output: the box and the
    NDVI < 0.2 rule pick the complex's roofs and yard by eye and by spectrum. The
    committed model maps 86 % of those 1 m pixels (2026-11-28); 40 % leaves room for
    a retrained model that draws the roofs a little smaller, and fails a model that
    maps little or nothing (the patch as a whole is 2 % ISA, its rural land <= 10 %).
    """
    isa, _, _ = results[FARM_PATCH]
    patch = next(p for p in patches() if p.name == FARM_PATCH)
    with open_scene(patch) as scene:
        x10, _ = scene.read_all()
    red, nir = x10[2].astype(np.float64), x10[3].astype(np.float64)
    ndvi = (nir - red) / np.maximum(nir + red, 1)
    box = np.zeros(ndvi.shape, bool)
    box[slice(*FARM_ROWS), slice(*FARM_COLS)] = True
    built = up10(box & (ndvi < 0.2)) & (isa != NODATA_U8)
    assert built.sum() >= 5_000  # 59 px of 10 m
    share = float((isa[built] == 1).mean())
    assert share >= 0.40, f"only {100 * share:.1f} % of the farm complex mapped as ISA"


@pytest.fixture(scope="module")
def snow_result(tmp_path_factory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(isa 1 m, valid 10 m, NDSI snow 10 m) of the real snow patch."""
    if not MODEL.is_file():
        pytest.fail(f"{MODEL} missing: run `python tests/data/models/make.py realscene`")
    isa, _, snow = predict(SNOW_PATCH, tmp_path_factory.mktemp("snow"))
    with open_scene(SNOW_PATCH) as scene:
        x10, _ = scene.read_all()
    return isa, (x10[:4] > 0).all(axis=0), snow


def test_snow_scene_is_not_isa(snow_result) -> None:
    isa, valid, snow = snow_result
    assert valid.mean() > 0.4  # 43 % of the patch has data
    assert snow[valid].mean() >= 0.2, "the snow patch should hold NDSI snow"  # 27 %
    assert (isa[up10(snow)] == NODATA_U8).all(), "NDSI snow must be left unpredicted"
    share = float((isa[up10(valid)] == 1).mean())  # masked snow counts as not ISA
    assert share <= 0.10, f"{100 * share:.1f} % of the snow scene's valid pixels mapped as ISA"
