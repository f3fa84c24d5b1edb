"""Composite tiles and chip cutting: twin check, chip grid, written chip format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from jointseg.bands import BANDS_20M, MODEL_INPUT_10M, SR_BANDS
from jointseg.trainingdata.cut import chip_grids, chip_id, open_composite, write_chip
from jointseg.trainingdata.settings import TrainingDataError
from tests.trainingdata_factory import make_scene, write_composite


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    d = tmp_path_factory.mktemp("comp")
    return write_composite(make_scene(960, seed=2, n_dates=2), d)


def test_missing_twin_names_the_file(tmp_path: Path) -> None:
    p10 = write_composite(make_scene(120, seed=1, n_dates=1), tmp_path, twin=False)
    with pytest.raises(TrainingDataError, match=r"_10m\.tif: its 20 m twin .*_20m\.tif is missing"):
        open_composite(p10)


def test_chip_grid(composite: Path) -> None:
    comp = open_composite(composite)
    grids = chip_grids(comp, 320)
    assert len(grids) == 9
    assert [chip_id(g) for g in grids[:2]] == ["32650_660000_3540640", "32650_660320_3540640"]
    assert all(g.bounds[0] % 20 == 0 and g.bounds[1] % 20 == 0 for g in grids)
    assert len(chip_grids(comp, 300)) == 9  # 960 // 300 whole chips per side = 3


def test_write_chip_format(composite: Path, tmp_path: Path) -> None:
    comp = open_composite(composite)
    g10 = chip_grids(comp, 320)[4]
    hr = np.ones((4, 320, 320), np.uint16)
    hr[3] = 0
    label = np.zeros((320, 320), np.uint8)
    write_chip(tmp_path / "c", comp, g10, hr, label, ("R", "G", "B"), "hr.tif")
    bounds = set()
    for name, count, dtype, res, names in (
        ("s2_10m", 5, "uint16", 10, MODEL_INPUT_10M), ("s2_20m", 6, "uint16", 20, BANDS_20M),
        ("hr", 4, "uint16", 1, SR_BANDS), ("label", 1, "uint8", 1, ("isa",)),
    ):
        with rasterio.open(tmp_path / "c" / f"{name}.tif") as ds:
            assert (ds.count, ds.dtypes[0], ds.res) == (count, dtype, (res, res))
            assert ds.descriptions == tuple(names) and ds.crs.to_epsg() == 32650
            bounds.add(tuple(ds.bounds))
            if name == "hr":
                assert ds.tags()["JOINTSEG_HR_BANDS"] == "R,G,B"
                assert ds.read(4).max() == 0
            if name == "s2_10m":
                w = comp.grid_10m.window_of(g10)
                np.testing.assert_array_equal(
                    ds.read(), comp.s2_10m[:5, w.row_off:w.row_off + 32, w.col_off:w.col_off + 32])
    assert len(bounds) == 1
