"""Aggregation to an ISA fraction and comparisons on a common grid, with exact counts.

Maps here are built from the real WorldCover cut-out so that the expected confusion
matrix follows from which 10 x 10 blocks were perturbed, not from the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from jointseg.assess.compare import (
    CompareError,
    Product,
    aggregate_fraction,
    binarise,
    compare_with_binary,
    compare_with_product,
    compare_with_worldcover,
    fraction_on_grid,
    map_fraction,
)
from jointseg.assess.worldcover import read_worldcover
from jointseg.grid import GeoBox
from jointseg.io import write_cog
from jointseg.metrics import BinaryCounts

CUTOUT = (Path(__file__).parent / "data" / "worldcover"
          / "ESA_WorldCover_10m_2020_v100_N00E006_cutout_r31680_c8400_600px.tif")


@dataclass(frozen=True)
class PerturbedMap:
    """A ~1 m map on the 10 x 10 sub-grid of a WorldCover window, and its expected counts."""

    path: Path
    counts: BinaryCounts  # expected at threshold 0.5
    counts_035: BinaryCounts  # expected at threshold 0.35


def perturbed_map(classes: np.ndarray, wc_transform: Affine, path: Path,
                  seed: int = 0, k: int = 40) -> PerturbedMap:
    """Class 50 -> 1 in 10 x 10 blocks, then perturb ``k`` blocks of each kind.

    Kinds: whole built-up blocks flipped to 0 (FN), whole other blocks flipped to 1
    (FP), built-up blocks with 40 px flipped (fraction 0.6, still ISA), other blocks
    with 49 px flipped (0.49: not ISA at 0.5, ISA at 0.35), built-up blocks with 60 px
    nodata (the 40 valid px are ISA: fraction 1.0), whole blocks nodata (excluded).
    """
    rng = np.random.default_rng(seed)
    valid = classes != 0
    isa = classes == 50
    ids_isa = rng.permutation(np.flatnonzero(isa.ravel() & valid.ravel()))
    ids_non = rng.permutation(np.flatnonzero(~isa.ravel() & valid.ravel()))
    fn, part_isa, half_nd, nd_isa = (ids_isa[i * k:(i + 1) * k] for i in range(4))
    fp, part_non, nd_non = (ids_non[i * k:(i + 1) * k] for i in range(3))
    m = np.kron(isa.astype(np.uint8), np.ones((10, 10), np.uint8))
    m[np.kron(~valid, np.ones((10, 10), bool))] = 255  # WorldCover 0 -> map nodata too

    def block(i: int) -> tuple[slice, slice]:
        r, c = divmod(int(i), classes.shape[1])
        return slice(10 * r, 10 * r + 10), slice(10 * c, 10 * c + 10)

    for i in fn:
        m[block(i)] = 0
    for i in fp:
        m[block(i)] = 1
    for i in part_isa:
        m[block(i)].flat[:40] = 0
    for i in part_non:
        m[block(i)].flat[:49] = 1
    for i in half_nd:
        m[block(i)].flat[:60] = 255
    for i in np.concatenate([nd_isa, nd_non]):
        m[block(i)] = 255
    n_isa, n_non = int((isa & valid).sum()), int((~isa & valid).sum())
    # every perturbation took effect (1 m pixel budget of the kinds above)
    assert int((m == 1).sum()) == 100 * n_isa - 151 * k
    assert int((m == 255).sum()) == 100 * int((~valid).sum()) + 260 * k
    tp = n_isa - 2 * k  # minus FN and whole-nodata built-up blocks
    tn = n_non - 2 * k  # minus FP and whole-nodata other blocks
    counts = BinaryCounts(tn=tn, fp=k, fn=k, tp=tp)
    counts_035 = BinaryCounts(tn=tn - k, fp=2 * k, fn=k, tp=tp)
    gb = GeoBox("EPSG:4326", wc_transform @ Affine.scale(0.1), m.shape[1], m.shape[0])
    write_cog(path, m, gb, nodata=255)
    return PerturbedMap(path, counts, counts_035)


@pytest.fixture(scope="module")
def cutout_map(tmp_path_factory: pytest.TempPathFactory) -> PerturbedMap:
    with rasterio.open(CUTOUT) as ds:
        win = ((150, 350), (150, 350))
        classes = ds.read(1, window=win)
        t = ds.window_transform(win)
    return perturbed_map(classes, t, tmp_path_factory.mktemp("cmp") / "map_1m.tif")


def test_aggregate_fraction_by_hand():
    isa = np.array([[1, 1, 0, 255, 255],
                    [0, 1, 0, 255, 255],
                    [1, 0, 255, 0, 1]], np.uint8)
    got = aggregate_fraction(isa, factor=2)
    # blocks: [[1,1],[0,1]] -> 3/4; [[0,255],[0,255]] -> 0/2; [[255],[255]] padded -> NaN
    #         [[1,0]] + pad -> 1/2; [[255,0]] -> 0/1; [[1]] -> 1
    np.testing.assert_allclose(got, [[0.75, 0.0, np.nan], [0.5, 0.0, 1.0]])
    assert got.dtype == np.float32
    with pytest.raises(CompareError, match=r"values \[7\]"):
        aggregate_fraction(np.array([[7]], np.uint8))


def test_binarise_threshold_and_nodata():
    f = np.array([0.0, 0.49, 0.5, 1.0, np.nan], np.float32)
    assert binarise(f).tolist() == [0, 0, 1, 1, 255]
    assert binarise(f, 0.3).tolist() == [0, 1, 1, 1, 255]


def test_map_fraction_strips_match_whole(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    m = (rng.random((95, 123)) < 0.3).astype(np.uint8)
    m[:7, :9] = 255
    gb = GeoBox.from_bounds("EPSG:32632", (500000, 20000, 500123, 20095), 1)
    write_cog(tmp_path / "m.tif", m, gb, nodata=255)
    monkeypatch.setattr("jointseg.assess.compare.STRIP_ROWS_10M", 2)  # 20-row strips
    frac, grid = map_fraction(tmp_path / "m.tif")
    np.testing.assert_array_equal(frac, aggregate_fraction(m))
    assert (grid.width, grid.height) == (13, 10)
    assert grid.transform == Affine(10, 0, 500000, 0, -10, 20095)


def test_fraction_on_grid_masks_poorly_covered_edges():
    src = GeoBox.from_bounds("EPSG:32632", (0, 0, 40, 40), 10)
    frac = np.full((4, 4), 0.25, np.float32)
    dst = GeoBox.from_bounds("EPSG:32632", (-20, 0, 40, 40), 20)  # first column outside
    got = fraction_on_grid(frac, src, dst)
    assert np.isnan(got[:, 0]).all()
    np.testing.assert_allclose(got[:, 1:], 0.25)
    half = GeoBox.from_bounds("EPSG:32632", (-10, 0, 30, 40), 20)  # half covered column
    assert np.isfinite(fraction_on_grid(frac, src, half, min_coverage=0.5)[:, 0]).all()
    assert np.isnan(fraction_on_grid(frac, src, half, min_coverage=0.6)[:, 0]).all()


def test_worldcover_comparison_counts_exactly(cutout_map):
    comp = compare_with_worldcover(cutout_map.path, CUTOUT, 2020)
    assert comp.counts() == cutout_map.counts
    assert comp.grid == "reference" and comp.geobox.shape == (200, 200)
    assert comp.geobox.transform.a == pytest.approx(1 / 12000)
    comp35 = compare_with_worldcover(cutout_map.path, CUTOUT, 2020, threshold=0.35)
    assert comp35.counts() == cutout_map.counts_035


def test_product_comparison_equals_worldcover(cutout_map):
    product = Product.from_dict({"path": str(CUTOUT).replace("2020", "{year}"),
                                 "isa_values": [50], "nodata": [0]}, name="wc-as-product")
    assert product.href(2020) == str(CUTOUT)
    comp = compare_with_product(cutout_map.path, product, 2020)
    assert comp.counts() == cutout_map.counts
    with pytest.raises(CompareError, match=r"missing keys \['isa_values'\]"):
        Product.from_dict({"path": "x_{year}.tif"}, name="gaia")


def test_utm_map_against_worldcover_agrees(tmp_path):
    """A 1 m UTM map resampled from WorldCover agrees with it on the WorldCover grid."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True).transform(6.725, 0.335)
    x0, y0 = round(x) - 1000, round(y) - 1000
    gb = GeoBox.from_bounds("EPSG:32632", (x0, y0, x0 + 2000, y0 + 2000), 1)
    m = (read_worldcover(CUTOUT, gb, 2020) == 50).astype(np.uint8)
    write_cog(tmp_path / "utm.tif", m, gb, nodata=255)
    comp = compare_with_worldcover(tmp_path / "utm.tif", CUTOUT, 2020)
    c = comp.counts()
    assert comp.geobox.crs == "EPSG:4326"
    assert 0.9 * 216**2 < c.n <= 218**2  # ~2 km / 9.26 m pixels, edges below coverage dropped
    f1 = 2 * c.tp / (2 * c.tp + c.fp + c.fn)
    assert f1 > 0.85 and (c.tp + c.tn) / c.n > 0.93


def test_binary_reference_on_map_grid_by_hand(tmp_path):
    rng = np.random.default_rng(5)
    gb1 = GeoBox.from_bounds("EPSG:32650", (600000, 3500000, 600400, 3500300), 1)
    gb2 = gb1.with_res(2)
    ref2 = (rng.random(gb2.shape) < 0.4).astype(np.uint8)
    ref2[:10, :10] = 255
    m = np.kron(ref2 == 1, np.ones((2, 2), bool)).astype(np.uint8)
    flip = rng.random(m.shape) < 0.1
    m[flip] ^= 1
    m[-5:, :] = 255
    write_cog(tmp_path / "map.tif", m, gb1, nodata=255)
    write_cog(tmp_path / "ref.tif", ref2, gb2, nodata=255)
    comp = compare_with_binary(tmp_path / "map.tif", tmp_path / "ref.tif")
    ref1 = np.kron(ref2, np.ones((2, 2), np.uint8))
    ok = (m != 255) & (ref1 != 255)
    want = BinaryCounts(tn=int((ok & (m == 0) & (ref1 == 0)).sum()),
                        fp=int((ok & (m == 1) & (ref1 == 0)).sum()),
                        fn=int((ok & (m == 0) & (ref1 == 1)).sum()),
                        tp=int((ok & (m == 1) & (ref1 == 1)).sum()))
    assert comp.counts() == want
    assert comp.grid == "map" and comp.geobox.shape == (300, 400)
    assert want.fp + want.fn == int((flip & ok).sum())


def test_map_with_foreign_values_is_rejected(tmp_path):
    gb = GeoBox.from_bounds("EPSG:32650", (0, 0, 20, 20), 1)
    write_cog(tmp_path / "bad.tif", np.full((20, 20), 3, np.uint8), gb, nodata=255)
    with pytest.raises(CompareError, match=r"bad.tif: map holds values \[3\]"):
        compare_with_binary(tmp_path / "bad.tif", tmp_path / "bad.tif")


def test_maps_with_a_qa_band_are_read_from_band_1(tmp_path):
    """The ISA product's QA band (band 2, flags) is never read as map values."""
    rng = np.random.default_rng(9)
    gb = GeoBox.from_bounds("EPSG:32632", (500000, 20000, 500095, 20063), 1)
    m = (rng.random(gb.shape) < 0.4).astype(np.uint8)
    m[:5, :5] = 255
    qa = (rng.random(gb.shape) * 8).astype(np.uint8)  # flags 0..7
    write_cog(tmp_path / "one.tif", m, gb, nodata=255)
    write_cog(tmp_path / "two.tif", np.stack([m, qa]), gb, nodata=255)
    frac1, grid1 = map_fraction(tmp_path / "one.tif")
    frac2, grid2 = map_fraction(tmp_path / "two.tif")
    np.testing.assert_array_equal(frac2, frac1)
    # 95 x 63 m: 10 x 7 pixels of 10 m from the map's origin, the last ones partial
    assert grid2 == grid1 == GeoBox("EPSG:32632", Affine(10, 0, 500000, 0, -10, 20063), 10, 7)
    c1 = compare_with_binary(tmp_path / "one.tif", tmp_path / "two.tif").counts()
    c2 = compare_with_binary(tmp_path / "two.tif", tmp_path / "one.tif").counts()
    assert c1 == c2 == BinaryCounts(tn=int((m == 0).sum()), tp=int((m == 1).sum()))
