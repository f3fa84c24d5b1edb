"""Build the tiny ONNX models used by the inference tests (needs torch; run once).

    .venv/bin/python tests/data/models/make.py             # tiny_rf.onnx
    nice .venv/bin/python tests/data/models/make.py realscene  # jointseg_tiny_sim.onnx

``realscene`` writes ``jointseg_tiny_sim.onnx``, the demo-style model that
``tests/test_real_scenes.py`` runs on the real BigEarthNet patches: it simulates paired
chips (:mod:`jointseg.simulate.chips`: 4 regions of 1920 m, seed 3000, apart from the
demo's 42/1000/1042; clean labels), trains JointSeg-tiny for 4 epochs (no SR-only
warm-up) and exports fp32 ONNX. About 5 min of CPU time on 2 cores. Simulated
training data only: the real patches never enter training.

``tiny_rf`` writes ``tiny_rf.onnx``: a small convolutional net with the JointSeg inference
interface (inputs ``s2_10m`` (N, 5, H, W) and ``s2_20m`` (N, 6, H/2, W/2) DN;
outputs ``isa_logit`` (N, 1, 10H, 10W) and ``sr`` (N, 4, 10H, 10W)) and a known,
finite receptive field, so that tiled prediction with a halo that covers the
receptive field equals whole-raster prediction.

Receptive-field radius at 10 m (``jointseg.halo_10m`` is set to 6 >= the sum):
  * 20 m input, nearest x2 to 10 m: 1 px (parity of the 20 m parent)
  * three 3x3 convs at 10 m (zero padding): 3 px
  * bilinear x10 to 1 m (align_corners=False): 1 px
  * one 3x3 conv at 1 m: 0.1 px -> 1 px
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).parent
HALO_10M = 6
#: The real-scene fixture's recipe (see the module docstring).
REALSCENE_CHIPS = ["--seed", "3000", "--n-regions", "4", "--region-size-m", "1920",
                   "--label-noise", "clean"]
REALSCENE_TRAIN = {"arch": "jointseg", "preset": "tiny", "epochs": 4, "batch_size": 8,
                   "seed": 0, "loss": {"sr_warmup_epochs": 0}}


class TinyRF(nn.Module):
    """A deterministic toy JointSeg-shaped net (not a trained model)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(11, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.c3 = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 5, 3, padding=1)

    def forward(self, s2_10m: torch.Tensor, s2_20m: torch.Tensor):
        x10 = torch.cat([s2_10m[:, :4] / 10000.0, s2_10m[:, 4:5] / 10.0], dim=1)
        x20 = F.interpolate(s2_20m / 10000.0, scale_factor=2.0, mode="nearest")
        x = torch.cat([x10, x20], dim=1)
        x = torch.tanh(self.c1(x))
        x = torch.tanh(self.c2(x))
        x = torch.tanh(self.c3(x))
        x = F.interpolate(x, scale_factor=10.0, mode="bilinear", align_corners=False)
        y = self.head(x)
        isa_logit = 4.0 * y[:, :1]
        sr = torch.sigmoid(y[:, 1:5])
        return isa_logit, sr


def export(model: nn.Module, path: Path, meta: dict[str, str]) -> None:
    model.eval()
    x10 = torch.rand(1, 5, 16, 16) * 3000
    x20 = torch.rand(1, 6, 8, 8) * 3000
    torch.onnx.export(
        model,
        (x10, x20),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["s2_10m", "s2_20m"],
        output_names=["isa_logit", "sr"],
        dynamic_axes={
            "s2_10m": {0: "n", 2: "h", 3: "w"},
            "s2_20m": {0: "n", 2: "h2", 3: "w2"},
            "isa_logit": {0: "n", 2: "h10", 3: "w10"},
            "sr": {0: "n", 2: "h10", 3: "w10"},
        },
    )
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def realscene(out: Path = HERE / "jointseg_tiny_sim.onnx") -> None:
    """Simulate chips, train JointSeg-tiny, export ``out`` (fp32) with the CLI."""
    def jointseg(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "jointseg", *args], check=True)

    with tempfile.TemporaryDirectory() as tmp:
        chips, run = Path(tmp) / "chips", Path(tmp) / "run"
        jointseg("simulate", "chips", "--out", str(chips), *REALSCENE_CHIPS)
        jointseg("train", "--chips", str(chips), "--out", str(run), "--threads", "2",
                 "--train-json", json.dumps(REALSCENE_TRAIN), "--no-progress")
        jointseg("export", "--checkpoint", str(run / "best.pt"), "--out", str(out),
                 "--no-fp16", "--name", "jointseg-tiny-sim")
    print("wrote", out)


def tiny_rf() -> None:
    torch.manual_seed(0)
    model = TinyRF()
    with torch.no_grad():  # stronger weights: make window-edge effects clearly visible
        for conv in (model.c1, model.c2, model.c3):
            conv.weight.mul_(3.0)
    meta = {
        "jointseg.model_name": "tiny_rf",
        "jointseg.model_version": "0.0.1",
        "jointseg.arch": "tiny-rf-test",
        "jointseg.preset": "test",
        "jointseg.bands_10m": json.dumps(["B02", "B03", "B04", "B08", "COUNT"]),
        "jointseg.bands_20m": json.dumps(["B05", "B06", "B07", "B8A", "B11", "B12"]),
        "jointseg.scale_factor": "10",
        "jointseg.multiple_10m": "2",
        "jointseg.halo_10m": str(HALO_10M),
        "jointseg.normalisation": json.dumps({"dn_scale": 10000.0, "count_scale": 10.0}),
        "jointseg.training": json.dumps({"trained": False, "note": "random weights, seed 0"}),
        "jointseg.precision": "fp32",
    }
    export(model, HERE / "tiny_rf.onnx", meta)
    print("wrote", HERE / "tiny_rf.onnx")


if __name__ == "__main__":
    {"tiny_rf": tiny_rf, "realscene": realscene}[sys.argv[1] if len(sys.argv) > 1 else "tiny_rf"]()
