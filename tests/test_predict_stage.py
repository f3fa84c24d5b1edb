"""The predict stage has one entrance: per tile and in a batch it writes the same bytes
with the same settings (fp16 included), and it refuses a simulated-data model on real
scenes (jointseg.inference.predict)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from jointseg.bands import BANDS_20M
from jointseg.batch import tile_files
from jointseg.cli import main as cli
from jointseg.provenance import KEPT_TAGS

MODEL = Path(__file__).parent / "data" / "models" / "tiny_rf.onnx"
TILES = ["32633_404400_5341200", "32633_404640_5341200"]
BATCH = "B32633_403200_5340000"
SETTINGS = {"providers": ["cpu"], "window_10m": 12, "overlap_10m": 2, "batch_size": 2,
            "threads": 1, "threshold": 0.5, "sr_quicklook": True}


def fp16_twin(src: Path, dst: Path) -> Path:
    """``dst``: ``src`` with float16 weights and activations, float32 inputs and outputs
    (what export's twin looks like to a caller); Resize scales stay float32."""
    m = onnx.load(str(src))
    g = m.graph
    scales = {n.input[2] for n in g.node if n.op_type == "Resize" and len(n.input) > 2}
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name))
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] not in scales:
            t = n.attribute[0].t
            if t.data_type == TensorProto.FLOAT:
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16)))
    casts_in = []
    for inp in g.input:
        half = f"{inp.name}_fp16"
        for n in g.node:
            n.input[:] = [half if i == inp.name else i for i in n.input]
        casts_in.append(helper.make_node("Cast", [inp.name], [half], to=TensorProto.FLOAT16))
    casts_out = []
    for out in g.output:
        half = f"{out.name}_fp16"
        for n in g.node:
            n.output[:] = [half if o == out.name else o for o in n.output]
        casts_out.append(helper.make_node("Cast", [half], [out.name], to=TensorProto.FLOAT))
    nodes = [*casts_in, *g.node, *casts_out]
    del g.node[:]
    g.node.extend(nodes)
    for p in m.metadata_props:
        if p.key == "jointseg.precision":
            p.value = "fp16"
    onnx.save(m, str(dst))
    return dst


def with_training_data(src: Path, dst: Path, training_data: dict | None) -> Path:
    """A copy of ``src`` whose ``jointseg.training`` records ``training_data``."""
    m = onnx.load(str(src))
    for p in m.metadata_props:
        if p.key == "jointseg.training":
            training = json.loads(p.value)
            if training_data is not None:
                training["training_data"] = training_data
            p.value = json.dumps(training)
    onnx.save(m, str(dst))
    return dst


def write_composite(c10: Path, seed: int, simulated: bool = True) -> Path:
    """A small composite pair ``c10`` / its ``_20m`` twin (24 x 24 px at 10 m)."""
    rng = np.random.default_rng(seed)
    x10 = rng.uniform(200, 4000, (5, 24, 24))
    x10[4] = 3
    x20 = rng.uniform(200, 4000, (6, 12, 12))
    c10.parent.mkdir(parents=True, exist_ok=True)
    c20 = c10.with_name(c10.name.replace("_10m.tif", "_20m.tif"))
    for path, arr, res, names in ((c10, x10, 10, ["B02", "B03", "B04", "B08", "COUNT"]),
                                  (c20, x20, 20, list(BANDS_20M))):
        with rasterio.open(path, "w", driver="GTiff", crs="EPSG:32633", nodata=0,
                           transform=Affine(res, 0, 404400.0 + 240 * seed, 0, -res, 5341440.0),
                           width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                           dtype="uint16") as ds:
            ds.write(arr.astype(np.uint16))
            ds.descriptions = tuple(names)
            tags = {"JOINTSEG_PRODUCT": "composite", "SCENES": "S2A_X"}
            if simulated:
                tags["JOINTSEG_SIMULATED"] = "true"
            ds.update_tags(**tags)
    return c10


def predict_per_tile(model: Path, c10: Path, out: Path, settings: dict, *extra: str):
    return CliRunner().invoke(cli, [
        "predict", "--model", str(model), "--input", str(c10),
        "--output", str(out / f"{c10.name[:-8]}_isa.tif"),
        "--prob-output", str(out / f"{c10.name[:-8]}_prob.tif"),
        "--settings", json.dumps(settings), "--no-progress", *extra])


def predict_batch(model: Path, res: Path, settings: dict, *extra: str):
    return CliRunner().invoke(cli, [
        "batch", "predict", "--region", "r", "--year", "2021", "--batch", BATCH,
        "--tiles", ",".join(TILES), "--manifest", str(res / "manifest.json"),
        "--results-dir", str(res), "--model", str(model), "--settings", json.dumps(settings),
        "--no-progress", *extra])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_per_tile_and_batch_write_the_same_bytes(tmp_path: Path, models: Path,
                                                 precision: str) -> None:
    res, per_tile = tmp_path / "results", tmp_path / "per_tile"
    settings = {**SETTINGS, "precision": precision}
    for i, t in enumerate(TILES):
        c10 = write_composite(tile_files("composite", t, "r", 2021, res)["c10"], i)
        r = predict_per_tile(models, c10, per_tile, settings)
        assert r.exit_code == 0, r.output
    r = predict_batch(models, res, settings)
    assert r.exit_code == 0, r.output
    for t in TILES:
        batch_files = tile_files("predict", t, "r", 2021, res)
        batch_files["sr"] = batch_files["isa"].with_name(f"{t}_sr.tif")  # sr_quicklook
        for name, path in batch_files.items():
            mine = per_tile / f"{t}_{name}.tif"
            assert mine.read_bytes() == path.read_bytes(), f"{t} {name}"
            with rasterio.open(path) as ds:
                tags = ds.tags()
            assert tags["MODEL_PRECISION"] == precision
            assert tags["MODEL_TRAINING_SIMULATED"] == "unknown"  # tiny_rf predates it
            assert tags["MODEL_TRAINING_DATA"] == "unknown"


def test_fp16_maps_differ_from_fp32(tmp_path: Path, models: Path) -> None:
    c10 = write_composite(tmp_path / "c" / f"{TILES[0]}_10m.tif", 0)
    probs = {}
    for precision in ("fp32", "fp16"):
        r = predict_per_tile(models, c10, tmp_path / precision,
                             {**SETTINGS, "precision": precision})
        assert r.exit_code == 0, r.output
        with rasterio.open(tmp_path / precision / f"{TILES[0]}_prob.tif") as ds:
            probs[precision] = ds.read(1)
    assert not np.array_equal(probs["fp32"], probs["fp16"])  # the twin really ran
    assert np.abs(probs["fp32"].astype(int) - probs["fp16"]).max() <= 3


def test_training_tags_and_simulated_model_refusal(tmp_path: Path) -> None:
    assert {"MODEL_TRAINING_SIMULATED", "MODEL_TRAINING_DATA"} <= set(KEPT_TAGS)
    sim = with_training_data(MODEL, tmp_path / "sim.onnx", {"id": "sim-1042", "simulated": True})
    real = with_training_data(MODEL, tmp_path / "real.onnx", {"id": "wuhan-2021",
                                                              "simulated": False})
    sim_scene = write_composite(tmp_path / "sim" / f"{TILES[0]}_10m.tif", 0)
    real_scene = write_composite(tmp_path / "real" / f"{TILES[0]}_10m.tif", 0, simulated=False)
    settings = {**SETTINGS, "sr_quicklook": False}

    # a simulated model on a simulated scene, a real model on a real scene: mapped, tagged
    for model, scene, expected in ((sim, sim_scene, ("true", "sim-1042")),
                                   (real, real_scene, ("false", "wuhan-2021"))):
        out = tmp_path / "out" / model.stem
        r = predict_per_tile(model, scene, out, settings)
        assert r.exit_code == 0, r.output
        for name in ("isa", "prob"):
            with rasterio.open(out / f"{TILES[0]}_{name}.tif") as ds:
                tags = ds.tags()
            assert (tags["MODEL_TRAINING_SIMULATED"], tags["MODEL_TRAINING_DATA"]) == expected

    # a simulated model on a real scene: one line naming the model, nothing written
    out = tmp_path / "refused"
    r = predict_per_tile(sim, real_scene, out, settings)
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        f"Error: {sim}: trained on simulated data (training data sim-1042); mapping real "
        "scenes with it needs infer.allow_simulated_model: true"]
    assert not out.exists() or not list(out.iterdir())
    r = predict_per_tile(sim, real_scene, out, settings, "--allow-simulated-model")
    assert r.exit_code == 0, r.output

    # the batch stops at once, with the same line and no manifest
    res = tmp_path / "results"
    for i, t in enumerate(TILES):
        write_composite(tile_files("composite", t, "r", 2021, res)["c10"], i, simulated=False)
    r = predict_batch(sim, res, settings)
    assert r.exit_code == 1
    assert r.output.strip() == (f"Error: {sim}: trained on simulated data (training data "
                                "sim-1042); mapping real scenes with it needs "
                                "infer.allow_simulated_model: true")
    assert not (res / "manifest.json").exists() and not (res / "r/2021/isa").exists()
    r = predict_batch(sim, res, {**settings, "allow_simulated_model": True})
    assert r.exit_code == 0, r.output
