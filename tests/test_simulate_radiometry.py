"""Sentinel-2 radiometric / geometric realism of the simulator (issue 21): SNR-derived noise,
L2A atmospheric-correction error, misregistration and urban material variability."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from jointseg.bands import BANDS_10M, BANDS_20M
from jointseg.simulate import s2errors, variability
from jointseg.simulate.materials import N_MATERIALS, M
from jointseg.simulate.sentinel2 import material_fractions, render_scene

DATE = dt.date(2021, 7, 1)


def _flat(name: str, size: int = 1200) -> np.ndarray:
    return np.full((size, size), M[name], dtype=np.uint8)


def test_noise_sigma_from_snr():
    # B04: pi * 108 / 142 / 1512.79 = 0.00158 at the sun in the zenith.
    assert s2errors.noise_sigma("B04", 90.0) == pytest.approx(0.00158, rel=0.01)
    # lower sun -> less irradiance -> more reflectance noise for the same radiance noise
    assert s2errors.noise_sigma("B04", 30.0) == pytest.approx(2 * 0.00158, rel=0.01)
    assert all(0.0003 < s2errors.noise_sigma(b, 60) < 0.004 for b in s2errors.SNR_REF)


def test_flat_target_noise_matches_snr():
    mat = _flat("roof_concrete")
    f = material_fractions(mat, np.ones(mat.shape, np.float32), variability=False)
    sc = render_scene(f, DATE, np.random.default_rng(3), 0.0, 32.0, 0)
    for b in BANDS_10M + BANDS_20M:
        x = sc.dn[b].astype(float)[4:-4, 4:-4] / 1e4
        # neighbour differences remove the smooth AC error field (correlated over ~1 km)
        sd = np.std(np.diff(x, axis=1)) / math.sqrt(2)
        assert sd == pytest.approx(s2errors.noise_sigma(b, sc.sun_elev_deg), rel=0.12), b


def test_ac_error_magnitude_and_band_correlation():
    rng = np.random.default_rng(0)
    means = []
    for _ in range(400):
        common = float(rng.standard_normal())
        ac = s2errors.ac_error_fields((8, 8), 10, ("B02", "B08", "B12"), common, rng)
        means.append([ac[b].mean() for b in ("B02", "B08", "B12")])
    m = np.array(means)
    assert m[:, 0].std() == pytest.approx(s2errors.AC_SIGMA["B02"], rel=0.15)
    assert m[:, 2].std() == pytest.approx(s2errors.AC_SIGMA["B12"], rel=0.15)
    assert np.corrcoef(m[:, 0], m[:, 1])[0, 1] > 0.6  # one aerosol error drives all bands


def test_misregistration_in_cited_range():
    rng = np.random.default_rng(1)
    before = np.array([s2errors.draw_shifts(dt.date(2020, 6, 1), ("B02",), rng)[0]
                       for _ in range(4000)])
    after = np.array([s2errors.draw_shifts(DATE, BANDS_10M + BANDS_20M, rng)
                      for _ in range(4000)], dtype=object)
    r_before = np.hypot(*before.T)
    r_after = np.hypot(*np.array([a[0] for a in after]).T)
    assert np.quantile(r_before, 0.95) == pytest.approx(11.0, rel=0.08)
    assert np.quantile(r_after, 0.95) == pytest.approx(5.0, rel=0.08)
    band = np.array([a[1][b] for a in after for b in ("B02", "B11")])
    assert np.quantile(np.hypot(*band.T), 0.997) == pytest.approx(0.3, rel=0.15)
    sc = render_scene(material_fractions(_flat("grass", 400), np.ones((400, 400), np.float32)),
                      DATE, np.random.default_rng(2), 0.0)
    assert set(sc.band_shift_px) == set(BANDS_10M + BANDS_20M)
    assert max(abs(v) for s in sc.band_shift_px.values() for v in s) < 0.5
    assert math.hypot(*sc.shift_px) * 10 < 20


def _roof_squares(n: int = 60, side: int = 10, gap: int = 6) -> np.ndarray:
    size = n * (side + gap)
    mat = np.full((size, size), M["grass"], dtype=np.uint8)
    for r in range(n):
        for c in range(n):
            y, x = r * (side + gap), c * (side + gap)
            mat[y:y + side, x:x + side] = M["roof_concrete"]
    return mat


def test_object_brightness_cv():
    mat = _roof_squares()
    factor, tilt = variability.isa_variability(mat)
    roof = mat == M["roof_concrete"]
    assert np.all(factor[~roof] == 1) and np.all(tilt[~roof] == 0)
    s_obj = variability.OBJECT_SIGMA["roof_concrete"]
    expect = math.hypot(s_obj, variability.WITHIN_SIGMA)  # region offset is one constant
    assert np.log(factor[roof]).std() == pytest.approx(expect, rel=0.12)
    # objects differ: the per-square means spread by ~ the object sigma
    sq = np.log(factor).reshape(60, 16, 60, 16)[:, :10, :, :10].mean((1, 3))
    assert sq.std() == pytest.approx(s_obj, rel=0.2)
    assert tilt[roof].std() == pytest.approx(variability.TILT_SIGMA_OBJECT, rel=0.2)
    # coefficient of variation of the brightness (stated in docs/simulation.md)
    cv = factor[roof].std() / factor[roof].mean()
    assert cv == pytest.approx(math.sqrt(math.exp(expect**2) - 1), rel=0.15)


def test_variability_keeps_mean_and_is_deterministic():
    mat = _roof_squares()
    tex = np.ones(mat.shape, np.float32)
    f0 = material_fractions(mat, tex, variability=False)
    f1 = material_fractions(mat, tex)
    f2 = material_fractions(mat, tex)
    assert f1.shape[0] == N_MATERIALS + len(variability.ISA_MATERIALS)
    np.testing.assert_array_equal(f1, f2)
    roof = M["roof_concrete"]
    # one region draw of the per-region factor (sigma 0.10) -> the mean stays within ~3 sigma
    assert f1[roof].sum() / f0[roof].sum() == pytest.approx(1.0, abs=0.35)
    assert f1[M["grass"]].sum() == pytest.approx(f0[M["grass"]].sum())


def test_render_deterministic_per_seed():
    mat = _roof_squares(20)
    f = material_fractions(mat, np.ones(mat.shape, np.float32))
    a = render_scene(f, DATE, np.random.default_rng(5), 0.1)
    b = render_scene(f, DATE, np.random.default_rng(5), 0.1)
    c = render_scene(f, DATE, np.random.default_rng(6), 0.1)
    for band in a.dn:
        np.testing.assert_array_equal(a.dn[band], b.dn[band])
    assert a.band_shift_px == b.band_shift_px
    assert any(not np.array_equal(a.dn[k], c.dn[k]) for k in a.dn)
