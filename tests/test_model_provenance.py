"""Training-data provenance: chips' provenance.json -> checkpoint -> summary -> ONNX."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import rasterio
import torch

from jointseg.io import sha256_file
from jointseg.model.checkpoint import training_summary
from jointseg.model.chips import (
    ChipError,
    read_chips_provenance,
    training_data_record,
    write_chips_provenance,
)
from jointseg.model.export import export_model
from jointseg.model.metadata import read_model_metadata
from jointseg.model.train import TrainConfig, load_checkpoint, train

CHIPS = Path(__file__).parent / "data" / "chips"
CFG = TrainConfig(epochs=1, batch_size=4, crops_per_chip=1, seed=3, threads=2, crop_10m=8)
torch.set_num_threads(2)


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    shutil.copytree(CHIPS, tmp_path / "chips")
    return tmp_path / "chips"


def test_write_and_read(chips: Path) -> None:
    assert read_chips_provenance(chips) is None
    path = write_chips_provenance(chips, "demo-sim-2021-seed7", True)
    assert path == chips / "provenance.json"
    assert json.loads(path.read_text()) == {"training_data_id": "demo-sim-2021-seed7",
                                            "simulated": True}
    assert read_chips_provenance(str(chips)) == {"training_data_id": "demo-sim-2021-seed7",
                                                 "simulated": True}
    assert training_data_record(chips) == {"id": "demo-sim-2021-seed7", "simulated": True}
    with pytest.raises(ValueError, match="training_data_id"):
        write_chips_provenance(chips, " ", False)
    with pytest.raises(ValueError, match="simulated"):
        write_chips_provenance(chips, "x", "no")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["{", "[]", '{"training_data_id": "", "simulated": false}',
                                  '{"training_data_id": "a", "simulated": "false"}',
                                  '{"simulated": true}'])
def test_malformed_file_names_itself(chips: Path, text: str) -> None:
    (chips / "provenance.json").write_text(text)
    with pytest.raises(ChipError, match="provenance.json"):
        read_chips_provenance(chips)


def test_chips_without_provenance(chips: Path) -> None:
    """A user's own chips: the id comes from index.csv, simulated is unknown (None)
    unless the chips carry the simulator's JOINTSEG_SIMULATED=true tag."""
    sha = sha256_file(chips / "index.csv")
    assert training_data_record(chips) == {"id": f"sha256:{sha[:16]}", "simulated": None}
    with rasterio.open(chips / "chip02" / "s2_10m.tif", "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        ds.update_tags(JOINTSEG_SIMULATED="true")
    assert training_data_record(chips, sha) == {"id": f"sha256:{sha[:16]}", "simulated": True}


def test_provenance_travels_to_summary_and_onnx_metadata(chips: Path, tmp_path: Path) -> None:
    write_chips_provenance(chips, "city-2021-osm", False)
    want = {"id": "city-2021-osm", "simulated": False}
    summary = train(chips, tmp_path / "run", CFG, progress=False)
    assert summary["training_data"] == want
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["training_data"] == want
    for name in ("best.pt", "last.pt"):
        assert load_checkpoint(tmp_path / "run" / name)[1]["training_data"] == want
    res = export_model(tmp_path / "run" / "best.pt", tmp_path / "m.onnx", fp16=False,
                       halo_10m=2, verify=False)
    assert read_model_metadata(res["fp32"])["training"]["training_data"] == want


def test_checkpoint_of_an_older_format(chips: Path, tmp_path: Path) -> None:
    """A checkpoint written before training_data existed summarises as the chips would
    without provenance.json: the index id, simulated from its data.simulated tag flag."""
    train(chips, tmp_path / "run", CFG, progress=False)
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    del ckpt["training_data"]
    for flag, want in ((False, None), (True, True)):
        ckpt["data"]["simulated"] = flag
        torch.save(ckpt, tmp_path / "old.pt")
        sha = ckpt["data"]["index_sha256"]
        assert training_summary(tmp_path / "old.pt")["training_data"] == {
            "id": f"sha256:{sha[:16]}", "simulated": want}


def test_resume_and_declared_training_data(chips: Path, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """provenance.json added to the same chips later (the lead's new `jointseg chips`):
    the finished model is kept and its record updated; chips declaring other training
    data (same index.csv, other imagery) train afresh."""
    run = tmp_path / "run"
    train(chips, run, CFG, progress=False)
    weights = load_checkpoint(run / "best.pt")[1]["model"]
    write_chips_provenance(chips, "region-a", True)
    (run / "best.pt").unlink()
    s = train(chips, run, CFG, resume=True, progress=False)
    assert s["training_data"] == {"id": "region-a", "simulated": True}
    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(run / name)[1]
        assert ckpt["training_data"] == {"id": "region-a", "simulated": True}
    best = load_checkpoint(run / "best.pt")[1]["model"]
    assert all(torch.equal(weights[k], best[k]) for k in weights)
    assert "fresh run" not in caplog.text
    write_chips_provenance(chips, "region-b", True)
    s = train(chips, run, CFG, resume=True, progress=False)
    assert s["training_data"]["id"] == "region-b"
    assert "trained on training data 'region-a'" in caplog.text
    assert "starting a fresh run" in caplog.text
