"""Full disks (issue 22 item 3): every writer fails in one line naming its output and
leaves nothing partial, on a real 20 MiB tmpfs (``tests/tmpfs.py``; skipped where
mounting is refused). Inputs live outside the tmpfs; only the outputs go there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import jointseg.model.export as export_mod
import jointseg.mosaic.quicklook as quicklook_mod
from jointseg.cli import main
from jointseg.io import OutputError
from jointseg.model.losses import LossConfig
from jointseg.model.train import TrainConfig, train
from jointseg.mosaic.quicklook import quicklook_png
from tests.test_integrity import _composite_pair, _mosaic, _predict, _tiles, error_line
from tests.tmpfs import fill, listing, small_tmpfs
from tests.trainingdata_factory import (
    isa_polygons,
    make_scene,
    write_composite,
    write_hr,
    write_labels,
)

CHIPS = Path(__file__).parent / "data" / "chips"
NOSPACE = "write failed, no file written (No space left on device"


@pytest.fixture
def disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "tmpfs") as d:
        yield d


def test_mosaic_without_room_for_the_map(tmp_path: Path, disk: Path) -> None:
    tiles = _tiles(tmp_path)
    fill(disk)
    line = error_line(_mosaic(tiles, disk / "m.tif"))
    assert line.startswith(f"Error: {disk / 'm.tif'}: write failed, no file written ("), line
    assert listing(disk) == ["filler"]


def test_mosaic_with_room_for_the_map_but_not_the_quicklook(tmp_path: Path, disk: Path,
                                                            monkeypatch) -> None:
    """The issue's case: before, m.tif and m.json stayed behind."""
    tiles = _tiles(tmp_path)
    real = quicklook_mod.quicklook_png

    def full_then_quicklook(*args, **kwargs):
        fill(disk)  # the map and its item are written; the disk fills up now
        return real(*args, **kwargs)

    monkeypatch.setattr(quicklook_mod, "quicklook_png", full_then_quicklook)
    line = error_line(_mosaic(tiles, disk / "m.tif"))
    assert line.startswith(f"Error: {disk / 'm.png'}: {NOSPACE}"), line
    assert listing(disk) == ["filler"]  # no m.tif, m.tif.sha256, m.json, part or VRT


def test_quicklook_on_a_full_disk(tmp_path: Path, disk: Path) -> None:
    src = _tiles(tmp_path)[0]
    fill(disk, leave=4096)
    with pytest.raises(OutputError) as err:
        quicklook_png(src, disk / "q.png", kind="binary")
    assert str(err.value).startswith(f"{disk / 'q.png'}: {NOSPACE}")
    assert "\n" not in str(err.value) and listing(disk) == ["filler"]


def test_chips_on_a_full_disk(tmp_path: Path, disk: Path) -> None:
    scene = make_scene(640, seed=11, n_dates=8)  # tests/test_trainingdata_build.py's
    c10 = write_composite(scene, tmp_path)
    hr = write_hr(tmp_path / "hr.tif", scene, shift_m=(5.0, -3.0))
    labels = write_labels(tmp_path / "labels.gpkg", isa_polygons(scene), "EPSG:4326")
    fill(disk, leave=64 << 10)
    out = disk / "chips"
    res = CliRunner().invoke(main, ["chips", "--hr", str(hr), "--labels", str(labels),
                                    "--composite", str(c10), "--out", str(out),
                                    "--chip-size-m", "320", "--split-block-m", "640",
                                    "--no-progress"])
    line = error_line(res)
    assert line.startswith(f"Error: {out}: write failed, no chip written ("), line
    assert "No space left on device" in line or "disk full" in line, line
    assert listing(disk) == ["filler"]  # no chip folder, no staging folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.set_num_threads(2)
    run = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(arch="bilinear", epochs=1, batch_size=4, crop_10m=8, seed=1,
                      loss=LossConfig(sr_warmup_epochs=0))
    train(CHIPS, run, cfg, progress=False)
    return run / "last.pt"


def _export(checkpoint: Path, out: Path):
    return CliRunner().invoke(main, ["export", "--checkpoint", str(checkpoint), "--out",
                                     str(out), "--halo", "4"])


def test_export_on_a_full_disk(checkpoint: Path, disk: Path) -> None:
    fill(disk, leave=4096)
    line = error_line(_export(checkpoint, disk / "m.onnx"))
    assert line.startswith(f"Error: {disk / 'm.onnx'}: write failed, no file written ("), line
    assert listing(disk) == ["filler"]


def test_export_removes_the_fp32_model_when_the_fp16_twin_fails(checkpoint: Path, disk: Path,
                                                                 monkeypatch) -> None:
    real = export_mod._write_onnx

    def write(module, example, final, meta):
        if meta["precision"] == "fp16":
            fill(disk)
        return real(module, example, final, meta)

    monkeypatch.setattr(export_mod, "_write_onnx", write)
    line = error_line(_export(checkpoint, disk / "m.onnx"))
    assert line.startswith(f"Error: {disk / 'm_fp16.onnx'}: write failed"), line
    assert listing(disk) == ["filler"]  # the fp32 model and its sidecar went too


def test_predict_on_a_full_disk(tmp_path: Path, disk: Path) -> None:
    c10 = _composite_pair(tmp_path)
    fill(disk, leave=256 << 10)
    line = error_line(_predict(c10, disk / "isa.tif"))
    assert line.startswith(f"Error: {disk / 'isa.tif'}"), line  # (and the SR quicklook's)
    assert "write failed, no file written (" in line, line
    assert listing(disk) == ["filler"]  # no product, part, staging folder or .ovr.tmp
