"""``jointseg assess`` and ``jointseg sample`` end to end through the click group."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window

from jointseg.cli import main
from jointseg.grid import GeoBox
from jointseg.io import write_cog
from tests.test_compare import CUTOUT, perturbed_map

TILE_NAME = "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif"
REAL_TILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "worldcover" / TILE_NAME


def _run(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    return res.exit_code, res.output


@pytest.mark.skipif(not REAL_TILE.exists(), reason=f"real WorldCover tile not found at "
                    f"{REAL_TILE} (the shared sample data sits beside the repository in CI)")
def test_assess_reproduces_hand_computed_f1_on_real_tile(tmp_path):
    """A map made from the real tile with known perturbed blocks: F1/OA to 4 decimals."""
    win = Window(col_off=8160, row_off=31920, width=240, height=240)  # 6.68-6.70 E, 0.32-0.34 N
    with rasterio.open(REAL_TILE) as ds:
        classes = ds.read(1, window=win)
        t = ds.window_transform(win)
    pm = perturbed_map(classes, t, tmp_path / "map_1m.tif", seed=11, k=60)
    c = pm.counts
    # independent expectations, written out from the counts
    f1 = 2 * c.tp / (2 * c.tp + c.fp + c.fn)
    oa = (c.tp + c.tn) / (c.tp + c.tn + c.fp + c.fn)
    code, out = _run(["assess", "--map", str(pm.path), "--reference", str(REAL_TILE.parent),
                      "--reference-kind", "worldcover", "--year", "2020",
                      "--out", str(tmp_path / "rep"), "--no-progress"])
    assert code == 0, out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["confusion"] == [[c.tn, c.fp], [c.fn, c.tp]]
    assert round(rep["f1"], 4) == round(f1, 4)
    assert round(rep["oa"], 4) == round(oa, 4)
    assert rep["n_pixels"] == c.n == 240 * 240 - 2 * 60 - int((classes == 0).sum())
    assert rep["precision"] == pytest.approx(c.tp / (c.tp + c.fp))
    assert rep["recall"] == pytest.approx(c.tp / (c.tp + c.fn))
    assert rep["iou"] == pytest.approx(c.tp / (c.tp + c.fp + c.fn))
    assert f"F1 {f1:.4f}" in out
    csv = (tmp_path / "rep" / "confusion.csv").read_text().splitlines()
    assert csv == ["reference,map_0,map_1", f"0,{c.tn},{c.fp}", f"1,{c.fn},{c.tp}"]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"| f1 | {f1:.4f} |" in md and f"| 1 | {c.fn} | {c.tp} |" in md


def test_assess_worldcover_threshold_option(tmp_path):
    with rasterio.open(CUTOUT) as ds:
        win = Window(300, 300, 150, 150)
        classes, t = ds.read(1, window=win), ds.window_transform(win)
    pm = perturbed_map(classes, t, tmp_path / "map.tif", seed=2, k=20)
    code, out = _run(["assess", "--map", str(pm.path), "--reference", str(CUTOUT),
                      "--out", str(tmp_path / "r"), "--threshold", "0.35", "--no-progress"])
    assert code == 0, out
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    c = pm.counts_035
    assert rep["confusion"] == [[c.tn, c.fp], [c.fn, c.tp]]
    assert rep["threshold"] == 0.35 and rep["reference_kind"] == "worldcover"


def test_assess_binary_on_map_grid(tmp_path):
    gb = GeoBox.from_bounds("EPSG:32632", (500000, 30000, 500200, 30100), 1)
    ref = np.zeros(gb.shape, np.uint8)
    ref[:, :80] = 1  # 8000 ISA px
    m = ref.copy()
    m[:10, 80:100] = 1  # 200 FP
    m[:5, :40] = 0  # 200 FN
    m[-10:, :] = 255  # 2000 px nodata, 800 of them ISA in ref
    write_cog(tmp_path / "map.tif", m, gb, nodata=255)
    write_cog(tmp_path / "ref.tif", ref, gb, nodata=255)
    code, out = _run(["assess", "--map", str(tmp_path / "map.tif"), "--reference",
                      str(tmp_path / "ref.tif"), "--reference-kind", "binary",
                      "--out", str(tmp_path / "r")])
    assert code == 0, out
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    tp, fp, fn = 8000 - 800 - 200, 200, 200
    tn = 18000 - tp - fp - fn
    assert rep["confusion"] == [[tn, fp], [fn, tp]]
    assert rep["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert rep["grid"]["on"] == "map"


def test_assess_missing_tile_fails_cleanly(tmp_path):
    gb = GeoBox.from_bounds("EPSG:32632", (480000, 30000, 480100, 30100), 1)  # 8.8 E
    write_cog(tmp_path / "map.tif", np.zeros(gb.shape, np.uint8), gb, nodata=255)
    res = CliRunner().invoke(main, ["assess", "--map", str(tmp_path / "map.tif"),
                                    "--reference", str(tmp_path), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert "WorldCover tile N00E006 missing" in res.output
    assert "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif" in res.output
    assert not (tmp_path / "r" / "report.json").exists()


def test_sample_command_writes_labelled_gpkg(tmp_path):
    gb = GeoBox.from_bounds("EPSG:32632", (500000, 30000, 501000, 31000), 1)
    m = np.zeros(gb.shape, np.uint8)
    m[:200, :] = 1
    write_cog(tmp_path / "map.tif", m, gb, nodata=255)
    code, out = _run(["sample", "--map", str(tmp_path / "map.tif"), "--out",
                      str(tmp_path / "s.gpkg"), "--floor", "20", "--min-distance-m", "30",
                      "--target-se", "0.02", "--reference", str(tmp_path / "map.tif")])
    assert code == 0, out
    pts = gpd.read_file(tmp_path / "s.gpkg")
    assert pts.crs.to_epsg() == 32632
    assert set(pts["stratum"]) == {"0", "1"}
    assert (pts["reference"] == pts["map_class"]).all()
    assert {"point_id", "zone", "weight", "stratum_pixels"} <= set(pts.columns)
