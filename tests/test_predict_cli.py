"""Tests for ``jointseg predict`` on real BigEarthNet band directories and a composite pair."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rio_cogeo.cogeo import cog_validate

from jointseg.cli import main
from jointseg.products import QA_FILLED, QA_NO_OBSERVATION

REPO = Path(__file__).parents[1]
MODEL = REPO / "tests" / "data" / "models" / "tiny_rf.onnx"


def bigearthnet_patches() -> list[Path]:
    for root in (REPO.parent / "shared" / "data", REPO / "tests" / "data"):
        if (root / "bigearthnet").is_dir():
            return sorted(p for p in (root / "bigearthnet").iterdir() if p.is_dir())
    pytest.skip("BigEarthNet sample patches not found")


@pytest.fixture
def patch(tmp_path) -> Path:
    """A writable copy of one real BigEarthNet patch directory."""
    src = bigearthnet_patches()[0]
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def run(*args: str):
    return CliRunner().invoke(main, ["predict", "--model", str(MODEL), "--threads", "1",
                                     "--no-progress", *args])


def band_file(directory: Path, band: str) -> Path:
    return next(directory.glob(f"*_{band}.tif"))


def rewrite(path: Path, **changes) -> None:
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile.update(changes)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_predict_real_bigearthnet_patches(tmp_path, index):
    src = bigearthnet_patches()[index]
    out = tmp_path / "isa.tif"
    res = run("--input", str(src), "--output", str(out), "--prob-output",
              str(tmp_path / "p.tif"), "--window", "48", "--batch-size", "2")
    assert res.exit_code == 0, res.output
    assert res.output.split() == [str(out), str(tmp_path / "p.tif")]
    assert cog_validate(str(out))[0]
    with rasterio.open(band_file(src, "B02")) as b02, rasterio.open(out) as isa:
        assert isa.crs == b02.crs
        assert isa.bounds == b02.bounds
        assert (isa.width, isa.height) == (1200, 1200)
        assert isa.tags()["SCENES"] == src.name
        values = set(np.unique(isa.read(1)))
    assert values <= {0, 1, 255} and values & {0, 1}


def write_pair(tmp_path: Path, patch: Path, count: np.ndarray, qa: np.ndarray | None = None
               ) -> Path:
    """A composite pair ``t_10m.tif`` / ``t_20m.tif`` of a patch's bands with ``count``
    (and a QA band when ``qa`` is given)."""
    bands10 = [rasterio.open(band_file(patch, b)).read(1) for b in ("B02", "B03", "B04", "B08")]
    bands20 = [rasterio.open(band_file(patch, b)).read(1)
               for b in ("B05", "B06", "B07", "B8A", "B11", "B12")]
    names10 = ["B02", "B03", "B04", "B08", "COUNT"] + (["QA"] if qa is not None else [])
    arrs10 = [*bands10, count] + ([qa] if qa is not None else [])
    with rasterio.open(band_file(patch, "B02")) as ref:
        crs, t = ref.crs, ref.transform
    for name, arrs, res, names in (
        ("t_10m.tif", arrs10, 10, names10),
        ("t_20m.tif", bands20, 20, ["B05", "B06", "B07", "B8A", "B11", "B12"]),
    ):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", crs=crs, count=len(arrs),
                           transform=Affine(res, 0, t.c, 0, -res, t.f), dtype="uint16",
                           width=arrs[0].shape[1], height=arrs[0].shape[0], nodata=0) as ds:
            ds.write(np.stack(arrs).astype(np.uint16))
            ds.descriptions = tuple(names)
            ds.update_tags(SCENES="S2A_A,S2B_B")
    return tmp_path / "t_10m.tif"


def test_predict_composite_pair(tmp_path, patch):
    count = np.full((120, 120), 3, np.uint16)
    count[:20] = 0
    write_pair(tmp_path, patch, count)
    out = tmp_path / "isa.tif"
    res = run("--input", str(tmp_path / "t_10m.tif"), "--output", str(out), "--sr-output",
              str(tmp_path / "sr.tif"), "--threshold", "0.3")
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds:
        isa = ds.read(1)
        assert ds.tags()["SCENES"] == "S2A_A,S2B_B" and ds.tags()["THRESHOLD"] == "0.3"
    assert (isa[:200] == 255).all() and (isa[200:] != 255).all()
    assert cog_validate(str(tmp_path / "sr.tif"))[0]


def test_missing_bands_are_named(tmp_path, patch):
    band_file(patch, "B8A").unlink()
    band_file(patch, "B11").unlink()
    res = run("--input", str(patch), "--output", str(tmp_path / "o.tif"))
    assert res.exit_code == 1
    assert "missing band file(s) B8A B11" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.tif").exists()


def test_wrong_crs_names_file(tmp_path, patch):
    path = band_file(patch, "B05")
    rewrite(path, crs="EPSG:32634")
    res = run("--input", str(patch), "--output", str(tmp_path / "o.tif"))
    assert res.exit_code == 1
    assert path.name in res.output and "CRS EPSG:32634 differs" in res.output


def test_wrong_resolution_names_file_and_expectation(tmp_path, patch):
    path = band_file(patch, "B06")
    with rasterio.open(path) as src:
        t = src.transform
    rewrite(path, transform=Affine(10, 0, t.c, 0, -10, t.f))
    res = run("--input", str(patch), "--output", str(tmp_path / "o.tif"))
    assert res.exit_code == 1
    assert path.name in res.output and "expected 20 m" in res.output


def test_inconsistent_extent(tmp_path, patch):
    path = band_file(patch, "B03")
    with rasterio.open(path) as src:
        t = src.transform
    rewrite(path, transform=Affine(10, 0, t.c + 60, 0, -10, t.f))
    res = run("--input", str(patch), "--output", str(tmp_path / "o.tif"))
    assert res.exit_code == 1
    assert path.name in res.output and "does not match" in res.output


def test_corrupt_band_file_is_named(tmp_path, patch):
    path = band_file(patch, "B04")
    path.write_bytes(path.read_bytes()[:300])
    res = run("--input", str(patch), "--output", str(tmp_path / "o.tif"))
    assert res.exit_code == 1
    assert f"{path.name}: corrupt or truncated" in res.output
    assert "Traceback" not in res.output


def test_missing_20m_sibling_and_bad_model(tmp_path, patch):
    p10 = tmp_path / "x_10m.tif"
    shutil.copy(band_file(patch, "B02"), p10)
    res = run("--input", str(p10), "--output", str(tmp_path / "o.tif"))
    assert res.exit_code == 1 and "x_20m.tif: 20 m composite sibling" in res.output
    res = CliRunner().invoke(main, ["predict", "--model", str(tmp_path / "none.onnx"),
                                    "--input", str(patch), "--output", str(tmp_path / "o.tif")])
    assert res.exit_code == 1 and "none.onnx: model file not found" in res.output


def test_filled_pixels_predicted_and_qa_carried_to_the_mosaic(tmp_path, patch):
    count = np.full((120, 120), 3, np.uint16)
    count[:20] = 0
    qa = np.zeros((120, 120), np.uint16)
    qa[:10] = QA_FILLED
    qa[10:20] = QA_NO_OBSERVATION
    c10 = write_pair(tmp_path, patch, count, qa)
    out = tmp_path / "isa" / "t_isa.tif"
    res = run("--input", str(c10), "--output", str(out), "--window", "48")
    assert res.exit_code == 0, res.output
    mosaic = tmp_path / "isa_1m.tif"
    res = CliRunner().invoke(main, ["mosaic", str(out), "--output", str(mosaic), "--kind",
                                    "binary", "--year", "2021", "--region", "t"])
    assert res.exit_code == 0, res.output
    for path in (out, mosaic):
        with rasterio.open(path) as ds:
            assert ds.descriptions == ("isa_binary", "QA"), path
            isa, qa_1m = ds.read(1), ds.read(2)
        np.testing.assert_array_equal(qa_1m[:100], QA_FILLED)
        np.testing.assert_array_equal(qa_1m[100:200], QA_NO_OBSERVATION)
        assert (qa_1m[200:] == 0).all()
        assert (isa[:100] != 255).all() and set(np.unique(isa[:100])) <= {0, 1}
        assert (isa[100:200] == 255).all() and (isa[200:] != 255).all()
