"""Tests for jointseg.data.composite: median of clear observations, BOA offset, best pixel."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio

from jointseg.bands import BANDS_10M, BANDS_20M
from jointseg.data.composite import CompositeError, composite_tile, mask_20m
from jointseg.grid import Tile
from jointseg.io import write_cog
from jointseg.products import QA_FILLED, QA_NO_OBSERVATION
from tests.stackfactory import make_stack

TILE = Tile.at(32633, 500040, 5000040, 240)  # 24 x 24 at 10 m, 12 x 12 at 20 m
G10, G20 = TILE.geobox(10), TILE.geobox(20)


def write_mask(path: Path, clear: np.ndarray, ids: list[str]) -> Path:
    return write_cog(path, clear.astype(np.uint8), G10, band_names=ids)


def read_all(path: Path) -> tuple[np.ndarray, rasterio.io.DatasetReader]:
    with rasterio.open(path) as ds:
        return ds.read(), {"desc": ds.descriptions, "tags": ds.tags(), "scales": ds.scales,
                           "nodata": ds.nodata, "transform": ds.transform, "dtypes": ds.dtypes}


def random_stack(tmp_path: Path, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vals = {b: rng.integers(1, 9000, (n, *G10.shape), dtype=np.uint16) for b in BANDS_10M}
    vals |= {b: rng.integers(1, 9000, (n, *G20.shape), dtype=np.uint16) for b in BANDS_20M}
    clear = rng.random((n, *G10.shape)) > 0.4
    clear[:, 0, 0] = False  # one pixel never clear
    ids = [f"S{i}" for i in range(n)]
    scenes = [{"id": ids[i], "datetime": f"2021-0{i + 1}-15T10:00:00Z", "boa_offset_dn": 0,
               "bands": {b: vals[b][i] for b in vals}} for i in range(n)]
    manifest = make_stack(tmp_path / "stack", TILE, scenes)
    mask = write_mask(tmp_path / "mask.tif", clear, ids)
    return manifest, mask, vals, clear, ids


def nan_median(values: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """Reference: numpy's median over the clear observations of every pixel, 0 if none."""
    out = np.zeros(values.shape[1:], np.uint16)
    for r in range(values.shape[1]):
        for c in range(values.shape[2]):
            v = values[clear[:, r, c], r, c]
            if v.size:
                out[r, c] = np.rint(np.median(v.astype(float)))
    return out


def test_mask_20m_needs_all_four() -> None:
    m = np.ones((1, 4, 4), bool)
    m[0, 0, 1] = False
    assert mask_20m(m)[0].tolist() == [[False, True], [True, True]]


@pytest.mark.parametrize("block_rows", [4, 256])
def test_median_equals_numpy_median_of_clear(tmp_path: Path, block_rows: int) -> None:
    manifest, mask, vals, clear, ids = random_stack(tmp_path, 5)
    o10, o20 = composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif",
                              block_rows=block_rows, fill=False)
    a10, meta10 = read_all(o10)
    a20, meta20 = read_all(o20)
    for i, b in enumerate(BANDS_10M):
        np.testing.assert_array_equal(a10[i], nan_median(vals[b], clear), err_msg=b)
    np.testing.assert_array_equal(a10[4], clear.sum(axis=0))
    assert a10[4, 0, 0] == 0 and (a10[:4, 0, 0] == 0).all()
    assert (a10[5] == 0).all()  # QA: every pixel was seen, none filled
    clear20 = mask_20m(clear)
    for i, b in enumerate(BANDS_20M):
        np.testing.assert_array_equal(a20[i], nan_median(vals[b], clear20), err_msg=b)
    assert meta10["desc"] == (*BANDS_10M, "COUNT", "QA") and meta20["desc"] == BANDS_20M
    assert meta10["scales"] == (1e-4,) * 4 + (1.0, 1.0) and meta20["scales"] == (1e-4,) * 6
    assert meta10["tags"]["JOINTSEG_PRODUCT"] == "composite"
    assert meta10["tags"]["SCENES"] == ",".join(ids) and meta20["tags"]["METHOD"] == "median"
    assert meta10["nodata"] == 0 and meta10["dtypes"] == ("uint16",) * 6
    assert meta10["tags"]["FILL"] == "none"
    assert meta10["transform"] == G10.transform and meta20["transform"] == G20.transform


def test_min_clear(tmp_path: Path) -> None:
    manifest, mask, vals, clear, _ = random_stack(tmp_path, 5, seed=1)
    o10, _ = composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif",
                            min_clear=3, fill=False)
    a10, _ = read_all(o10)
    few = clear.sum(axis=0) < 3
    assert few.any() and (~few).any()
    assert (a10[:, few] == 0).all()
    np.testing.assert_array_equal(a10[0][~few], nan_median(vals["B02"], clear)[~few])
    # Filled: COUNT 0, QA_FILLED, one scene for all bands, a clear one (rank 0) where any.
    o10, _ = composite_tile(manifest, mask, tmp_path / "f10.tif", tmp_path / "f20.tif",
                            min_clear=3)
    f10, _ = read_all(o10)
    np.testing.assert_array_equal(f10[:5, ~few], a10[:5, ~few])
    assert (f10[4, few] == 0).all() and (f10[5, few] == QA_FILLED).all()
    assert (f10[5, ~few] == 0).all()
    blue = vals["B02"].astype(float)
    pick = np.argmin(np.where(clear, blue, np.inf), axis=0)
    pick = np.where(clear.any(axis=0), pick, np.argmin(blue, axis=0))
    for i, b in enumerate(BANDS_10M):
        np.testing.assert_array_equal(
            f10[i][few], np.take_along_axis(vals[b], pick[None], 0)[0][few], err_msg=b)


def test_boa_offset_applied_once_and_composite_continuous(tmp_path: Path) -> None:
    # The same surface seen in 2021 (baseline 03.01) and 2023 (04.00, stored DN + 1000).
    truth10 = np.arange(1, 24 * 24 + 1, dtype=np.uint16).reshape(24, 24) * 10
    truth20 = truth10[::2, ::2] + 5
    old = {b: truth10 for b in BANDS_10M} | {b: truth20 for b in BANDS_20M}
    new = {b: (v + 1000).astype(np.uint16) for b, v in old.items()}
    manifest = make_stack(tmp_path / "stack", TILE, [
        {"id": "OLD", "datetime": "2021-07-01T10:00:00Z", "boa_offset_dn": 0, "bands": old},
        {"id": "NEW", "datetime": "2023-07-01T10:00:00Z", "boa_offset_dn": -1000, "bands": new},
    ])
    clear = np.zeros((2, 24, 24), bool)
    clear[0, :, :12] = True   # west half only in the old scene
    clear[1, :, 12:] = True   # east half only in the new scene
    mask = write_mask(tmp_path / "mask.tif", clear, ["OLD", "NEW"])
    o10, o20 = composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif")
    a10, _ = read_all(o10)
    a20, _ = read_all(o20)
    for i in range(4):
        np.testing.assert_array_equal(a10[i], truth10)
    for i in range(6):
        np.testing.assert_array_equal(a20[i], truth20)
    assert (a10[4] == 1).all()


def test_all_cloud_tile_is_nodata_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest, _, _, _, ids = random_stack(tmp_path, 3)
    mask = write_mask(tmp_path / "cloudy.tif", np.zeros((3, 24, 24), bool), ids)
    with caplog.at_level(logging.WARNING, logger="jointseg.data.composite"):
        o10, o20 = composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif",
                                  fill=False)
    assert (read_all(o10)[0] == 0).all() and (read_all(o20)[0] == 0).all()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(TILE.tile_id in r.getMessage() for r in warnings)


@pytest.mark.parametrize("method", ["median", "best_pixel"])
def test_all_cloud_tile_is_filled_from_the_darkest_blue_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    manifest, _, vals, _, ids = random_stack(tmp_path, 3)
    mask = write_mask(tmp_path / "cloudy.tif", np.zeros((3, 24, 24), bool), ids)
    with caplog.at_level(logging.WARNING, logger="jointseg.data.composite"):
        o10, o20 = composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif",
                                  method=method)
    a10, meta = read_all(o10)
    assert (a10[4] == 0).all() and (a10[5] == QA_FILLED).all()
    assert meta["tags"]["FILL"] == "least_cloudy"
    # No SCL in the stack: every scene ranks alike, the darkest blue wins.
    pick = np.argmin(vals["B02"], axis=0)
    for i, b in enumerate(BANDS_10M):
        np.testing.assert_array_equal(a10[i], np.take_along_axis(vals[b], pick[None], 0)[0])
    a20, _ = read_all(o20)
    blue20 = vals["B02"].reshape(3, 12, 2, 12, 2).mean(axis=(2, 4))
    pick20 = np.argmin(blue20, axis=0)
    for i, b in enumerate(BANDS_20M):
        np.testing.assert_array_equal(a20[i], np.take_along_axis(vals[b], pick20[None], 0)[0])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(TILE.tile_id in m and "filled" in m for m in warnings), warnings


def test_best_pixel_takes_one_scene_for_all_bands(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 4
    # Every band of scene i carries the scene in its value: 1000 * (i + 1) + noise.
    blue = rng.integers(100, 3000, (n, *G10.shape)).astype(np.uint16)
    scenes, ids = [], []
    for i in range(n):
        bands = {"B02": blue[i]}
        for k, b in enumerate(BANDS_10M[1:] + BANDS_20M):
            shape = G10.shape if b in BANDS_10M else G20.shape
            bands[b] = np.full(shape, 10000 + 1000 * i + k, np.uint16)
        ids.append(f"S{i}")
        scenes.append({"id": ids[-1], "datetime": "2021-06-15T10:00:00Z", "bands": bands})
    manifest = make_stack(tmp_path / "stack", TILE, scenes)
    clear = rng.random((n, *G10.shape)) > 0.3
    mask = write_mask(tmp_path / "mask.tif", clear, ids)
    o10, o20 = composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif",
                              method="best_pixel", fill=False)
    a10, meta = read_all(o10)
    assert meta["tags"]["METHOD"] == "best_pixel"
    # Expected: the clear scene with the lowest blue (all dates equal -> no date penalty).
    best = np.argmin(np.where(clear, blue, 65535), axis=0)
    has = clear.any(axis=0)
    np.testing.assert_array_equal(a10[0][has], np.take_along_axis(blue, best[None], 0)[0][has])
    for k, _b in enumerate(BANDS_10M[1:]):
        np.testing.assert_array_equal(a10[k + 1][has], (10000 + 1000 * best + k)[has])
    assert (a10[:4, ~has] == 0).all()
    # 20 m: all six bands from one scene, and that scene was clear on all four 10 m pixels.
    a20, _ = read_all(o20)
    filled = a20[0] > 0
    scene20 = (a20[0].astype(int) - 10000 - 3) // 1000
    for k in range(6):
        np.testing.assert_array_equal(a20[k][filled], (10000 + 1000 * scene20 + 3 + k)[filled])
    clear20 = mask_20m(clear)
    rr, cc = np.nonzero(filled)
    assert clear20[scene20[rr, cc], rr, cc].all()
    np.testing.assert_array_equal(filled, clear20.any(axis=0))


def test_best_pixel_prefers_the_centre_date_on_ties(tmp_path: Path) -> None:
    ids = ["EARLY", "MID", "LATE"]
    dates = ["2021-03-01T10:00:00Z", "2021-06-01T10:00:00Z", "2021-09-01T10:00:00Z"]
    scenes = [{"id": s, "datetime": d, "bands": {
        b: np.full(G10.shape if b in BANDS_10M else G20.shape, 500 if b == "B02" else 1000 + i,
                   np.uint16) for b in (*BANDS_10M, *BANDS_20M)}}
        for i, (s, d) in enumerate(zip(ids, dates, strict=True))]
    manifest = make_stack(tmp_path / "stack", TILE, scenes)
    mask = write_mask(tmp_path / "mask.tif", np.ones((3, 24, 24), bool), ids)
    o10, _ = composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif",
                            method="best_pixel")
    assert (read_all(o10)[0][1] == 1001).all()


def test_mask_manifest_mismatch(tmp_path: Path) -> None:
    manifest, _, _, clear, _ = random_stack(tmp_path, 3)
    mask = write_mask(tmp_path / "bad.tif", clear, ["S0", "S2", "S1"])
    with pytest.raises(CompositeError, match="do not match the manifest"):
        composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif")


@pytest.mark.parametrize("method", ["median", "best_pixel"])
@pytest.mark.parametrize("block_rows", [4, 256])
def test_fill_leaves_clear_pixels_bit_identical(
    tmp_path: Path, method: str, block_rows: int
) -> None:
    manifest, mask, vals, clear, _ = random_stack(tmp_path, 5, seed=4)
    kw = {"method": method, "block_rows": block_rows}
    n10, n20 = composite_tile(manifest, mask, tmp_path / "n10.tif", tmp_path / "n20.tif",
                              fill=False, **kw)
    f10, f20 = composite_tile(manifest, mask, tmp_path / "f10.tif", tmp_path / "f20.tif", **kw)
    (a10, _), (b10, _) = read_all(n10), read_all(f10)
    (a20, _), (b20, _) = read_all(n20), read_all(f20)
    has = clear.any(axis=0)
    np.testing.assert_array_equal(b10[:, has], a10[:, has])  # bands, COUNT and QA 0
    assert (b10[5, has] == 0).all() and (b10[5, ~has] == QA_FILLED).all()
    assert (b10[4, ~has] == 0).all() and (b10[:4, ~has] > 0).all()
    has20 = mask_20m(clear).any(axis=0)
    np.testing.assert_array_equal(b20[:, has20], a20[:, has20])
    assert (b20[:, ~has20] > 0).all() and (a20[:, ~has20] == 0).all()
    pick = np.argmin(vals["B02"], axis=0)
    for i, b in enumerate(BANDS_10M):
        np.testing.assert_array_equal(
            b10[i][~has], np.take_along_axis(vals[b], pick[None], 0)[0][~has], err_msg=b)


@pytest.mark.parametrize("flag, qa00", [("--fill", QA_FILLED), ("--no-fill", 0)])
def test_cli_fill_flag(tmp_path: Path, flag: str, qa00: int) -> None:
    from click.testing import CliRunner

    from jointseg.cli import main

    manifest, mask, _, _, _ = random_stack(tmp_path, 3)
    r = CliRunner().invoke(main, ["composite", str(manifest), str(mask), str(tmp_path / "c10.tif"),
                                  str(tmp_path / "c20.tif"), flag])
    assert r.exit_code == 0, r.output
    a10, meta = read_all(tmp_path / "c10.tif")
    assert meta["tags"]["FILL"] == ("none" if qa00 == 0 else "least_cloudy")
    assert a10[5, 0, 0] == qa00 and (a10[0, 0, 0] > 0) == (qa00 == QA_FILLED)


def scl_ranked_stack(tmp_path: Path) -> tuple[Path, Path, dict[str, dict[str, int]]]:
    """Five scenes of constant spectra; 10 m rows 4-5 x cols 6-7 (20 m pixel (2, 3)) is
    masked on every date with a different SCL class per date; 10 m rows 10-11 x cols 10-11
    (20 m pixel (5, 5)) is nodata on every date; everything else is clear on scene A only."""
    scl_at = {"A": 9, "B": 8, "C": 10, "D": 3, "E": 0}   # cloud high, medium, cirrus, shadow
    blue = {"A": 200, "B": 2000, "C": 1500, "D": 100, "E": 50}
    spectra: dict[str, dict[str, int]] = {}
    scenes = []
    for i, sid in enumerate(scl_at):
        spectra[sid] = {b: 1000 * (i + 1) + k for k, b in enumerate((*BANDS_10M, *BANDS_20M))}
        spectra[sid]["B02"] = blue[sid]
        bands = {b: np.full(G10.shape if b in BANDS_10M else G20.shape, v, np.uint16)
                 for b, v in spectra[sid].items()}
        for b, a in bands.items():
            if b in BANDS_10M:
                a[10:12, 10:12] = 0
            else:
                a[5, 5] = 0
        scl = np.full(G20.shape, 4, np.uint8)
        scl[2, 3] = scl_at[sid]
        scl[5, 5] = 0
        bands["SCL"] = scl
        scenes.append({"id": sid, "datetime": f"2021-0{i + 3}-01T10:00:00Z", "bands": bands})
    manifest = make_stack(tmp_path / "stack", TILE, scenes)
    clear = np.zeros((5, *G10.shape), bool)
    clear[0] = True
    clear[0, 4:6, 6:8] = False
    clear[0, 10:12, 10:12] = False
    return manifest, write_mask(tmp_path / "mask.tif", clear, list(scl_at)), spectra


@pytest.mark.parametrize("method", ["median", "best_pixel"])
def test_fill_takes_the_least_cloudy_scl_class_then_the_darkest_blue(
    tmp_path: Path, method: str
) -> None:
    manifest, mask, spectra = scl_ranked_stack(tmp_path)
    o10, o20 = composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif",
                              method=method)
    a10, _ = read_all(o10)
    a20, _ = read_all(o20)
    # Cirrus (C) and cloud medium (B) outrank shadow (D, darker) and cloud high (A);
    # SCL no data (E, darkest) is no candidate; between C and B the darker blue (C) wins.
    c = spectra["C"]
    assert a10[:4, 4:6, 6:8].tolist() == [[[c[b]] * 2] * 2 for b in BANDS_10M]
    assert a20[:, 2, 3].tolist() == [c[b] for b in BANDS_20M]
    assert (a10[4, 4:6, 6:8] == 0).all() and (a10[5, 4:6, 6:8] == QA_FILLED).all()
    # Never seen: nodata in every band, QA_NO_OBSERVATION.
    assert (a10[:5, 10:12, 10:12] == 0).all() and (a20[:, 5, 5] == 0).all()
    assert (a10[5, 10:12, 10:12] == QA_NO_OBSERVATION).all()
    # Clear elsewhere: scene A, COUNT 1, QA 0.
    rest = np.ones(G10.shape, bool)
    rest[4:6, 6:8] = rest[10:12, 10:12] = False
    for i, b in enumerate(BANDS_10M):
        assert (a10[i][rest] == spectra["A"][b]).all()
    assert (a10[4][rest] == 1).all() and (a10[5][rest] == 0).all()


BEN = Path(__file__).parents[1].parent / "shared" / "data" / "bigearthnet"
PATCH = "S2A_MSIL2A_20170613T101031_87_48"  # real L2A, UTM 33N, June 2017, no SCL


def test_cli_chain_on_a_real_patch(tmp_path: Path) -> None:
    """search JSON -> download (HTTP) -> cloudmask (s2cloudless) -> composite, via the CLI."""
    if not BEN.is_dir():
        pytest.skip(f"{BEN} not present")
    from click.testing import CliRunner

    from jointseg.cli import main
    from jointseg.data.providers import SceneInfo
    from jointseg.data.stac import write_scene_list
    from jointseg.simulate.servers import FileServer

    tile = Tile.at(32633, 404400 + 240, 5341200 + 360, 600)
    stack, runner = tmp_path / "stack", CliRunner()
    with FileServer(BEN) as fs:
        bands = {b: f"{fs.url}/{PATCH}/{PATCH}_{b}.tif" for b in (*BANDS_10M, *BANDS_20M)}
        info = SceneInfo(id=PATCH, datetime="2017-06-13T10:10:31Z", cloud_cover=0.0,
                         processing_baseline="02.05", boa_offset_dn=0, bands=bands, epsg=32633)
        scenes = write_scene_list(tmp_path / "scenes.json", tile.tile_id, "test", 2017, [info])
        r = runner.invoke(main, ["download", str(scenes), "--out-dir", str(stack),
                                 "--tile-size-m", "600", "--bands", ",".join(bands)])
        assert r.exit_code == 0, r.output
    manifest = stack / "manifest.json"
    r = runner.invoke(main, ["cloudmask", str(manifest), str(tmp_path / "mask.tif"),
                             "--combine", "s2cloudless"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["composite", str(manifest), str(tmp_path / "mask.tif"),
                             str(tmp_path / "c10.tif"), str(tmp_path / "c20.tif")])
    assert r.exit_code == 0, r.output
    a10, meta = read_all(tmp_path / "c10.tif")
    assert meta["tags"]["SCENES"] == PATCH and a10.shape == (6, 60, 60)
    with rasterio.open(BEN / PATCH / f"{PATCH}_B04.tif") as ds:
        b04 = ds.read(1, window=rasterio.windows.from_bounds(*tile.bounds, ds.transform))
    count = a10[4]
    assert set(np.unique(count)) <= {0, 1} and count.mean() > 0.9  # a clear June scene
    np.testing.assert_array_equal(a10[2][count == 1], b04[count == 1])
    # One scene: the masked pixels are filled from it (QA_FILLED), the clear ones are not.
    np.testing.assert_array_equal(a10[2], b04)
    np.testing.assert_array_equal(a10[5], np.where(count == 0, QA_FILLED, 0))
