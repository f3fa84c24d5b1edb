"""Integrity along the DAG (issue 22 item 1): an intermediate changed after its stage
wrote it is refused by the next stage in one line naming the file, instead of silently
changing the map.

Each stage's writer records ``<file>.sha256`` (``jointseg.io.atomic_path``); each reader
checks it (``jointseg.io.verify_file``). Corruption here is the issue's reproduction: 64
bytes overwritten in the middle of the file, its size and mtime kept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jointseg.cli import main
from jointseg.data.cloudmask import cloud_mask_tile
from jointseg.data.composite import CompositeError, composite_tile
from jointseg.grid import Tile
from jointseg.io import atomic_path, checksum_path, write_cog
from jointseg.model.chips import ChipError, load_chips
from tests.test_bad_inputs import _stack
from tests.trainingdata_factory import (
    isa_polygons,
    make_scene,
    write_composite,
    write_hr,
    write_labels,
)

REPO = Path(__file__).parents[1]
CHIPS = REPO / "tests" / "data" / "chips"
MODEL = REPO / "tests" / "data" / "models" / "tiny_rf.onnx"


def corrupt_middle(path: Path, n: int = 64) -> None:
    """Overwrite ``n`` bytes in the middle of ``path``, keeping its size and mtime."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        block = f.read(n)
        f.seek(st.st_size // 2)
        f.write(bytes(b ^ 0xFF for b in block))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def error_line(result) -> str:
    """The CLI's one error line; no traceback (the exception was handled)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len([ln for ln in lines if ln.startswith("Error:")]) == 1, result.output
    assert "Traceback" not in result.output
    return next(ln for ln in lines if ln.startswith("Error:"))


def mismatch(path: Path, remedy: str) -> str:
    return (f"{path}: sha256 mismatch with {checksum_path(path)} (file changed after it was "
            f"written): {remedy}")


def _tiles(tmp_path: Path, checksum: bool = True) -> list[Path]:
    out = []
    for x0, v in ((663000, 1), (663600, 0)):
        tile = Tile.at(32650, x0, 3543000, 600)
        a = np.full(tile.geobox(1).shape, v, "uint8")
        out.append(write_cog(tmp_path / f"{tile.tile_id}_isa.tif", a, tile.geobox(1),
                             nodata=255, band_names=["isa"], checksum=checksum))
    return out


def _mosaic(tiles: list[Path], out: Path):
    return CliRunner().invoke(main, ["mosaic", *map(str, tiles), "--output", str(out),
                                     "--kind", "binary", "--year", "2021", "--region", "r",
                                     "--item", str(out.with_suffix(".json")),
                                     "--quicklook", str(out.with_suffix(".png"))])


def test_corrupted_tile_is_refused_by_the_mosaic_in_one_line(tmp_path: Path) -> None:
    tiles = _tiles(tmp_path)
    assert _mosaic(tiles, tmp_path / "m.tif").exit_code == 0
    assert checksum_path(tmp_path / "m.tif").is_file()  # the mosaic records its own
    corrupt_middle(tiles[1])
    out = tmp_path / "m2.tif"
    assert error_line(_mosaic(tiles, out)) == \
        f"Error: {mismatch(tiles[1], 'rerun predict for this tile')}"
    assert not list(tmp_path.glob("m2*")) and not list(tmp_path.glob(".m2*"))


def test_truncated_tile_without_a_checksum_is_one_line_in_the_mosaic(tmp_path: Path) -> None:
    """A tile of an older run (no sidecar) cut to half its size: one line, not a
    34-line traceback, and no output left."""
    tiles = _tiles(tmp_path, checksum=False)
    tiles[0].write_bytes(tiles[0].read_bytes()[: tiles[0].stat().st_size // 2])
    line = error_line(_mosaic(tiles, tmp_path / "m.tif"))
    assert line.startswith("Error: ") and str(tiles[0]) in line, line
    assert "rerun predict" in line
    assert not list(tmp_path.glob("m.*")) and not list(tmp_path.glob(".m.tif*"))


def test_corrupted_cloud_mask_is_refused_by_composite(tmp_path: Path) -> None:
    manifest = _stack(tmp_path)
    mask = cloud_mask_tile(manifest, tmp_path / "mask.tif")
    assert checksum_path(mask).is_file()
    corrupt_middle(mask)
    with pytest.raises(CompositeError) as err:
        composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif")
    assert str(err.value) == mismatch(mask, "rerun cloudmask")
    res = CliRunner().invoke(main, ["composite", str(manifest), str(mask),
                                    str(tmp_path / "c10.tif"), str(tmp_path / "c20.tif")])
    assert error_line(res) == f"Error: {mismatch(mask, 'rerun cloudmask')}"
    assert not (tmp_path / "c10.tif").exists() and not (tmp_path / "c20.tif").exists()


def test_corrupted_composite_is_refused_by_chips(tmp_path: Path) -> None:
    scene = make_scene(320, seed=11, n_dates=4)
    c10 = write_composite(scene, tmp_path)
    hr = write_hr(tmp_path / "hr.tif", scene)
    labels = write_labels(tmp_path / "labels.gpkg", isa_polygons(scene), "EPSG:4326")
    corrupt_middle(c10)
    res = CliRunner().invoke(main, ["chips", "--hr", str(hr), "--labels", str(labels),
                                    "--composite", str(c10), "--out", str(tmp_path / "chips"),
                                    "--chip-size-m", "160", "--no-progress"])
    assert error_line(res) == f"Error: {mismatch(c10, 'rerun composite for this tile')}"
    assert not (tmp_path / "chips").exists()


def _chips_with_checksums(tmp_path: Path) -> Path:
    """tests/data/chips with every chip file rewritten by our writer (sidecars)."""
    root = tmp_path / "chips"
    shutil.copytree(CHIPS, root)
    for tif in root.glob("*/*.tif"):
        data = tif.read_bytes()
        with atomic_path(tif, checksum=True) as tmp:
            tmp.write_bytes(data)
    return root


def test_corrupted_chip_is_refused_by_training_in_one_line(tmp_path: Path) -> None:
    root = _chips_with_checksums(tmp_path)
    assert len(load_chips(root)) > 1  # intact chips with sidecars load
    bad = root / "chip01" / "s2_10m.tif"
    corrupt_middle(bad)
    remedy = "rebuild the chips (jointseg chips)"
    with pytest.raises(ChipError) as err:
        load_chips(root)
    assert str(err.value) == mismatch(bad, remedy)
    res = CliRunner().invoke(main, ["train", "--chips", str(root), "--out",
                                    str(tmp_path / "run"), "--epochs", "1", "--no-progress"])
    assert error_line(res) == f"Error: {mismatch(bad, remedy)}"


def test_corrupted_checkpoint_is_refused_by_export(tmp_path: Path) -> None:
    ckpt = tmp_path / "best.pt"
    with atomic_path(ckpt, checksum=True) as tmp:
        tmp.write_bytes(os.urandom(4096))
    corrupt_middle(ckpt)
    res = CliRunner().invoke(main, ["export", "--checkpoint", str(ckpt), "--out",
                                    str(tmp_path / "m.onnx")])
    assert error_line(res) == f"Error: {mismatch(ckpt, 'rerun train')}"
    assert not (tmp_path / "m.onnx").exists()


# --- predict (jointseg/inference): wiring pending -------------------------------------


def _composite_pair(tmp_path: Path) -> Path:
    """A small composite pair written by our writer (sidecars), as the composite stage."""
    tile = Tile.at(32650, 663000, 3543000, 1200)
    rng = np.random.default_rng(0)
    g10, g20 = tile.geobox(10), tile.geobox(20)
    s10 = rng.integers(300, 3000, (6, *g10.shape)).astype("uint16")
    s10[4], s10[5] = 3, 0  # COUNT, QA
    s20 = rng.integers(300, 3000, (6, *g20.shape)).astype("uint16")
    write_cog(tmp_path / "t_10m.tif", s10, g10, nodata=0,
              band_names=["B02", "B03", "B04", "B08", "COUNT", "QA"])
    write_cog(tmp_path / "t_20m.tif", s20, g20, nodata=0,
              band_names=["B05", "B06", "B07", "B8A", "B11", "B12"])
    return tmp_path / "t_10m.tif"


def _predict(c10: Path, out: Path, model: Path = MODEL):
    return CliRunner().invoke(main, ["predict", "--model", str(model), "--threads", "1",
                                     "--no-progress", "--input", str(c10), "--output",
                                     str(out)])


def test_corrupted_composite_is_refused_by_predict(tmp_path: Path) -> None:
    c10 = _composite_pair(tmp_path)
    assert _predict(c10, tmp_path / "ok.tif").exit_code == 0
    assert checksum_path(tmp_path / "ok.tif").is_file()  # per-tile products record theirs
    corrupt_middle(c10)
    line = error_line(_predict(c10, tmp_path / "isa.tif"))
    assert line == f"Error: {mismatch(c10, 'rerun composite for this tile')}"
    assert not (tmp_path / "isa.tif").exists()


def test_corrupted_model_is_refused_by_predict(tmp_path: Path) -> None:
    c10 = _composite_pair(tmp_path)
    model = tmp_path / "model.onnx"
    with atomic_path(model, checksum=True) as tmp:
        tmp.write_bytes(MODEL.read_bytes())
    corrupt_middle(model)
    line = error_line(_predict(c10, tmp_path / "isa.tif", model))
    assert line == f"Error: {mismatch(model, 'rerun export')}"
