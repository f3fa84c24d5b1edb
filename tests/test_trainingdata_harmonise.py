"""Radiometric harmonisation: robust line fit, PSF matching, DN -> reflectance."""

from __future__ import annotations

import numpy as np
import pytest

from jointseg.trainingdata.harmonise import apply_fit, fit_band, match_psf


def test_robust_fit_ignores_outliers() -> None:
    rng = np.random.default_rng(0)
    dn = rng.uniform(10, 240, 5000)
    s2 = 12.0 * dn + 300.0 + rng.normal(0, 30, dn.size)
    s2[:400] += 3000.0  # clouds the composite kept: 8 % gross outliers
    fit = fit_band(dn, s2)
    assert fit.gain == pytest.approx(12.0, rel=0.02)
    assert fit.offset == pytest.approx(300.0, abs=40)
    assert fit.n == 5000 and 0.5 < fit.r < 1.0


def test_too_few_pairs() -> None:
    with pytest.raises(ValueError, match="pixel pairs"):
        fit_band(np.arange(10.0), np.arange(10.0))


def test_apply_fit_keeps_zero_for_no_data() -> None:
    fit = fit_band(np.arange(200.0), 10 * np.arange(200.0) - 50)
    dn = np.array([[[np.nan, 0.0, 100.0]]], dtype=np.float32)
    out = apply_fit(dn, [fit])
    assert out.dtype == np.uint16
    assert out[0, 0].tolist() == [0, 1, 950]  # no data, clipped to 1 ("has data"), line


def test_match_psf_is_nan_aware() -> None:
    img = np.zeros((1, 20, 20), np.float32)
    img[0, 10, 10] = 1.0
    img[0, :, :3] = np.nan
    out = match_psf(img, 0.5)
    assert np.isnan(out[0, :, :3]).all() and np.isfinite(out[0, :, 3:]).all()
    assert out[0, 10, 10] < 1.0 and out[0, 10, 11] > 0.0
    assert out[0, :, 3:].sum() == pytest.approx(1.0, rel=0.02)
