"""Tests for model.export and model.metadata: ONNX contract, parity, fp16, halo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
import torch
from click.testing import CliRunner

from jointseg.model.chips import load_chips
from jointseg.model.export import export_model, measure_halo, parity, realistic_input, run_onnx
from jointseg.model.jointseg import Normaliser
from jointseg.model.losses import LossConfig
from jointseg.model.metadata import ModelMetadataError, read_model_metadata
from jointseg.model.train import TrainConfig, chip_tensors, load_checkpoint, train

CHIPS = Path(__file__).parent / "data" / "chips"
BIGEARTHNET = Path(__file__).parents[1].parent / "shared" / "data" / "bigearthnet"
torch.set_num_threads(2)


@pytest.fixture(scope="module", params=["jointseg", "bilinear"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    arch = request.param
    out = tmp_path_factory.mktemp(arch)
    cfg = TrainConfig(arch=arch, epochs=1, batch_size=4, crop_10m=8, seed=1,
                      loss=LossConfig(sr_warmup_epochs=0))
    train(CHIPS, out / "run", cfg, progress=False)
    res = export_model(out / "run" / "last.pt", out / "model.onnx", max_halo_10m=12)
    model, _ = load_checkpoint(out / "run" / "last.pt")
    return {"arch": arch, "model": model, **res}


def test_onnx_graph_contract(exported: dict) -> None:
    proto = onnx.load(str(exported["fp32"]))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in proto.graph.input] == ["s2_10m", "s2_20m"]
    assert [o.name for o in proto.graph.output] == ["isa_logit", "sr"]
    for v in list(proto.graph.input) + list(proto.graph.output):
        assert v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = v.type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[2].dim_param and dims[3].dim_param  # dynamic
        assert dims[1].dim_value in (5, 6, 1, 4)
    assert not list(Path(exported["fp32"]).parent.glob("*.data"))  # one file, no external data


def test_metadata(exported: dict) -> None:
    meta = read_model_metadata(exported["fp32"])
    assert meta["arch"] == exported["arch"] and meta["preset"] == "tiny"
    assert meta["bands_10m"] == ["B02", "B03", "B04", "B08", "COUNT"]
    assert meta["bands_20m"] == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    assert meta["scale_factor"] == 10 and meta["multiple_10m"] == 2
    assert meta["halo_10m"] % 2 == 0 and 0 < meta["halo_10m"] <= 12
    assert meta["precision"] == "fp32"
    assert meta["training"]["epochs"] == 1 and meta["training"]["data"]["n_train"] == 4
    norm = meta["normalisation"]
    assert norm["mean_10m"] == pytest.approx(exported["model"].norm.mean_10m.tolist(), abs=1e-2)
    assert read_model_metadata(exported["fp16"])["precision"] == "fp16"


def test_calibrated_threshold_travels_to_inference(exported: dict) -> None:
    """The cut training calibrated (summary.json) is the ONNX model's threshold, which
    predict uses when none is given."""
    from jointseg.model.metadata import ModelInfo

    meta = read_model_metadata(exported["fp32"])
    summary = json.loads((Path(exported["fp32"]).parent / "run" / "summary.json").read_text())
    assert meta["training"]["threshold"] == summary["threshold"]
    assert summary["threshold_source"] == "calibrated"
    assert summary["threshold"] == summary["best"]["val_threshold"]
    assert 0.05 <= summary["threshold"] <= 0.95
    props = {f"jointseg.{k}": json.dumps(v) if isinstance(v, dict | list) else str(v)
             for k, v in meta.items()}
    assert ModelInfo.from_props(props).threshold == summary["threshold"]
    props["jointseg.training"] = json.dumps({"epochs": 1})  # a model from before calibration
    assert ModelInfo.from_props(props).threshold == 0.5


def test_metadata_errors(tmp_path: Path) -> None:
    bare = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelMetadataError, match="missing metadata keys"):
        read_model_metadata(tmp_path / "bare.onnx")
    with pytest.raises(FileNotFoundError):
        read_model_metadata(tmp_path / "nope.onnx")


def test_metadata_module_does_not_import_torch() -> None:
    code = "import sys, jointseg.model.metadata; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parity_random_inputs(exported: dict) -> None:
    model = exported["model"]
    for seed, size, batch in ((3, 12, 2), (4, 20, 1)):
        s10, s20 = realistic_input(model.norm, size, seed=seed, batch=batch)
        assert parity(model, exported["fp32"], s10, s20) < 1e-4
    s10, s20 = realistic_input(model.norm, 24, seed=5)
    s10, s20 = s10[..., :, :14], s20[..., :, :7]  # non-square
    assert parity(model, exported["fp32"], s10, s20) < 1e-4


def test_parity_real_inputs(exported: dict) -> None:
    model = exported["model"]
    chip = load_chips(CHIPS, "val")[0]
    assert parity(model, exported["fp32"], *chip_tensors(chip)) < 1e-4
    patches = sorted(p for p in BIGEARTHNET.glob("S2*") if p.is_dir())
    if not patches:
        pytest.skip(f"{BIGEARTHNET} not available")
    p = patches[0]

    def band(name: str, n: int) -> np.ndarray:
        with rasterio.open(p / f"{p.name}_{name}.tif") as ds:
            return ds.read(1)[:n, :n].astype(np.float32)

    s10 = np.stack([band(b, 32) for b in ("B02", "B03", "B04", "B08")] +
                   [np.full((32, 32), 9, np.float32)])[None]
    s20 = np.stack([band(b, 16) for b in ("B05", "B06", "B07", "B8A", "B11", "B12")])[None]
    assert parity(model, exported["fp32"], torch.from_numpy(s10), torch.from_numpy(s20)) < 1e-4


def test_fp16_twin_runs_and_agrees_loosely(exported: dict) -> None:
    proto = onnx.load(str(exported["fp16"]))
    onnx.checker.check_model(proto)
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
               for v in list(proto.graph.input) + list(proto.graph.output))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    assert exported["fp16"].stat().st_size < 0.75 * exported["fp32"].stat().st_size
    chip = load_chips(CHIPS, "val")[0]
    s10, s20 = (t.numpy() for t in chip_tensors(chip))
    l32, sr32 = run_onnx(exported["fp32"], s10, s20)
    l16, sr16 = run_onnx(exported["fp16"], s10, s20)
    assert l16.dtype == np.float32 and l16.shape == l32.shape
    assert np.abs(sr16 - sr32).max() < 1e-2
    assert np.abs(l16 - l32).max() < 5e-2 * max(1.0, float(np.abs(l32).max()))


def test_tiled_onnx_prediction_with_halo_is_seamless(exported: dict) -> None:
    """Predict a 40 x 40 input as four 20 x 20 tiles + halo; compare with one pass."""
    meta = read_model_metadata(exported["fp32"])
    halo = meta["halo_10m"]
    s10, s20 = (t.numpy() for t in realistic_input(exported["model"].norm, 40, seed=9))
    full, _ = run_onnx(exported["fp32"], s10, s20)
    tiled = np.zeros_like(full)
    for r in (0, 20):
        for c in (0, 20):
            r0, c0 = max(r - halo, 0), max(c - halo, 0)
            r1, c1 = min(r + 20 + halo, 40), min(c + 20 + halo, 40)
            out, _ = run_onnx(exported["fp32"], s10[..., r0:r1, c0:c1],
                              s20[..., r0 // 2:r1 // 2, c0 // 2:c1 // 2])
            tiled[..., 10 * r:10 * (r + 20), 10 * c:10 * (c + 20)] = out[
                ..., 10 * (r - r0):10 * (r - r0 + 20), 10 * (c - c0):10 * (c - c0 + 20)]
    assert np.abs(tiled - full).max() < 2e-3


def test_measure_halo_of_a_pointwise_model_is_zero() -> None:
    """A model whose outputs depend on one input pixel each needs no halo."""

    class Pointwise(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = Normaliser()

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
            up = torch.nn.functional.interpolate(a, scale_factor=10.0, mode="nearest")
            return up[:, :1], up[:, :4]

    assert measure_halo(Pointwise(), max_halo_10m=8) == 0


def test_cli_export(exported: dict, tmp_path: Path) -> None:
    from jointseg.cli import main

    if exported["arch"] != "bilinear":
        pytest.skip("one arch is enough for the CLI")
    ckpt = Path(exported["fp32"]).parent / "run" / "best.pt"
    res = CliRunner().invoke(main, ["export", "--checkpoint", str(ckpt), "--out",
                                    str(tmp_path / "m.onnx"), "--no-fp16", "--halo", "6"])
    assert res.exit_code == 0, res.output
    assert read_model_metadata(tmp_path / "m.onnx")["halo_10m"] == 6
    assert not (tmp_path / "m_fp16.onnx").exists()
