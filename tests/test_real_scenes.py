"""Real-scene sanity: the demo-style model on real Sentinel-2 L2A patches (BigEarthNet).

The model (``tests/data/models/jointseg_tiny_sim.onnx``, ``make.py realscene`` beside it)
is JointSeg-tiny trained on *simulated* chips only, as the demo's model is. The patches are
real (``tests/data/bigearthnet``, see its README; 2017, processing baseline 02.05, so no
BOA offset). What is checked, without any real 1 m truth:

* the Finnish lake in S2B_MSIL2A_20170924T93020_69_24 (pixels with B08 < 800 DN, i.e.
  NIR reflectance < 0.08) is at most 5 % ISA;
* land in patches whose CORINE labels name no artificial surface is at most 10 % ISA
  (rural forest, bog, arable land and pasture hold a few farm roads and buildings);
* a snow-covered patch (>= 30 % NDSI snow) is at most 10 % ISA, counting nodata as not
  ISA (``predict`` leaves snow unpredicted). No such real patch is stored offline: the
  test looks in tests/data and ../shared/data and skips, saying so, when there is none.
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
#: CORINE level-3 labels of artificial surfaces (class 1.x.x).
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


def test_snow_scene_is_not_isa(results) -> None:
    snowy = [name for name, (_, _, snow) in results.items() if snow.mean() >= 0.3]
    if not snowy:
        pytest.skip("no snow-covered real patch (>= 30 % NDSI snow) in tests/data/bigearthnet "
                    "or ../shared/data/bigearthnet; snow handling is tested on arrays in "
                    "test_infer_gpu_options.py::test_snow_is_nodata_in_predict")
    for name in snowy:
        isa, _, _ = results[name]
        share = float((isa == 1).mean())  # nodata (masked snow) counts as not ISA
        assert share <= 0.10, f"{name}: {100 * share:.1f} % of a snow scene mapped as ISA"
