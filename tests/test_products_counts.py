"""Table 1's numbers against counts known by construction (jointseg.assess.otherproducts).

Tiny rasters on a 5 x 2 grid of 10 m cells (50 m wide, 20 m high): a 1 m truth, map and
baseline whose ISA share in each cell is set to a whole number of per cent, and a
Dynamic World product at 2 m (25 pixels per 10 m cell, class 6 = built) whose built
share in each cell is k / 25. A layer calls a cell ISA when its share is at or above
the threshold, so the expected TP / FP / FN / TN of every row at each threshold are
written out below by hand from the table, not computed by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from jointseg.assess.otherproducts.assess import BASELINE, JOINTSEG, assess_products
from jointseg.assess.otherproducts.load import ProductSpec
from jointseg.grid import GeoBox

CRS = "EPSG:32650"
X0, Y0 = 663000, 3548400
GRID_1M = GeoBox.from_bounds(CRS, (X0, Y0, X0 + 50, Y0 + 20), 1.0)
#: the product reaches 20 m beyond the grid on every side (full coverage of each cell)
GRID_2M = GeoBox.from_bounds(CRS, (X0 - 20, Y0 - 20, X0 + 70, Y0 + 40), 2.0)
DW_BUILT, DW_CROPS, DW_INVALID = 6, 4, 200
NODATA = 255

#: per 10 m cell, row-major (row 0 = north): (truth %, map %, baseline %, product k of 25).
#: None: no data there (map: 1 m nodata; product: a value outside Dynamic World's legend).
CELLS = [
    # c0              c1               c2            c3            c4
    (100, 100, 100, 25), (60, 40, 70, 13), (0, 20, 0, 5), (0, 0, 0, 0), (100, 100, 100, None),
    # c5              c6               c7            c8            c9
    (80, 100, 20, 12), (40, 60, 50, 8), (0, 0, 60, 3), (50, 0, 0, 20), (100, None, 100, 25),
]
#: (tp, fp, fn, tn) over the 8 cells valid in every layer (c4 and c9 are not), by hand:
#: threshold 0.5 -> truth ISA {c0 c1 c5 c8}; map {c0 c5 c6}; baseline {c0 c1 c6 c7};
#: product (k >= 12.5) {c0 c1 c8}.  threshold 0.3 -> truth {c0 c1 c5 c6 c8};
#: map {c0 c1 c5 c6}; baseline {c0 c1 c6 c7}; product (k >= 7.5) {c0 c1 c5 c6 c8}.
EXPECTED = {
    0.5: {JOINTSEG: (2, 1, 2, 3), BASELINE: (2, 2, 2, 2), "Dynamic World": (3, 0, 1, 4)},
    0.3: {JOINTSEG: (4, 0, 1, 3), BASELINE: (3, 1, 2, 2), "Dynamic World": (5, 0, 0, 3)},
}


def _blocks(values: list[int | None], size: int, on: int, off: int, none: int) -> np.ndarray:
    """A 2 x 5 cell raster, ``size`` px per cell side: the first ``v`` px of cell (row-major
    inside it) ``on``, the rest ``off``; a None cell all ``none``."""
    out = np.empty((2 * size, 5 * size), np.uint8)
    for i, v in enumerate(values):
        r, c = divmod(i, 5)
        cell = np.full(size * size, none if v is None else off, np.uint8)
        if v is not None:
            cell[:v] = on
        out[r * size:(r + 1) * size, c * size:(c + 1) * size] = cell.reshape(size, size)
    return out


def _write(path, data: np.ndarray, grid: GeoBox, nodata: int | None):
    with rasterio.open(path, "w", driver="GTiff", dtype="uint8", count=1, nodata=nodata,
                       **grid.profile()) as ds:
        ds.write(data, 1)
    return path


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    d = tmp_path_factory.mktemp("counts")
    truth, isa_map, baseline, product = zip(*CELLS, strict=True)
    paths = {name: _write(d / f"{name}.tif", _blocks(list(v), 10, 1, 0, NODATA), GRID_1M,
                          NODATA)
             for name, v in (("truth", truth), ("map", isa_map), ("baseline", baseline))}
    dw = np.full(GRID_2M.shape, DW_CROPS, np.uint8)
    dw[10:20, 10:35] = _blocks(list(product), 5, DW_BUILT, DW_CROPS, DW_INVALID)
    paths["product"] = _write(d / "dynamic_world_2021.tif", dw, GRID_2M, None)
    return paths


def test_blocks_hold_the_table() -> None:
    """The raster maker itself: cell shares are the table's numbers."""
    a = _blocks([30, None, 0, 100, 7, 1, 2, 3, 4, 5], 10, 1, 0, NODATA)
    shares = (a == 1).reshape(2, 10, 5, 10).sum(axis=(1, 3))
    assert shares.tolist() == [[30, 0, 0, 100, 7], [1, 2, 3, 4, 5]]
    assert (a[:10, 10:20] == NODATA).all()


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_rows_have_the_counts_of_the_table(rasters, threshold) -> None:
    spec = ProductSpec.from_dict({"kind": "dynamic_world", "path": str(rasters["product"])})
    out = assess_products(rasters["map"], [spec], 2021, truth=rasters["truth"],
                          baseline=rasters["baseline"], threshold=threshold)
    assert out["n_common"] == 8 and out["threshold"] == threshold
    rows = {r["name"]: r for r in out["rows"]}
    assert list(rows) == [JOINTSEG, BASELINE, "Dynamic World"]
    f1 = {}
    for name, (tp, fp, fn, tn) in EXPECTED[threshold].items():
        r = rows[name]
        assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (tp, fp, fn, tn), name
        assert r["n_pixels"] == 8, name
        f1[name] = 2 * tp / (2 * tp + fp + fn)
        assert r["f1"] == pytest.approx(f1[name]), name
        assert r["precision"] == pytest.approx(tp / (tp + fp)), name
        assert r["recall"] == pytest.approx(tp / (tp + fn)), name
        assert r["oa"] == pytest.approx((tp + tn) / 8), name
        assert r["iou"] == pytest.approx(tp / (tp + fp + fn)), name
    for name, r in rows.items():
        assert r["f1_gain_points"] == pytest.approx(100 * (f1[JOINTSEG] - f1[name])), name
