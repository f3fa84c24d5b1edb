"""Radiometric harmonisation: HR DN -> Sentinel-2-like reflectance x 10000.

Per HR file and band, a robust straight line ``composite = gain x DN + offset`` is fitted
between the HR aggregated to the composite's 10 m grid (area mean, after
co-registration) and the matching composite band (R-B04, G-B03, B-B02, NIR-B08), with
scipy's ``least_squares`` and a Huber loss (scale: 1.4826 x the median absolute
deviation of the ordinary least-squares residuals), so roofs, shadows and clouds the
composite missed weigh little. ``r`` is the Pearson correlation of the pixel pairs.

Before the fit the HR's 10 m means are blurred with a Gaussian of
:data:`S2_PSF_SIGMA_PX` (spatial response matching): Sentinel-2's 10 m bands have a
modulation transfer of about 0.25 at Nyquist, i.e. a Gaussian point-spread function
of sigma ~0.5 pixel, which the HR's area mean lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares

#: Fewer valid 10 m pixel pairs than this: no fit.
MIN_PAIRS = 100
#: Sigma (10 m pixels) of Sentinel-2's point-spread function (MTF ~0.25 at Nyquist).
S2_PSF_SIGMA_PX = 0.5


def match_psf(stack: np.ndarray, sigma_px: float = S2_PSF_SIGMA_PX) -> np.ndarray:
    """float32 (bands, rows, cols) ``stack`` blurred by a Gaussian of ``sigma_px``,
    NaN-aware (normalised convolution: NaN pixels neither spread nor are filled)."""
    valid = np.isfinite(stack).all(0)
    weight = ndimage.gaussian_filter(valid.astype(np.float32), sigma_px)
    out = np.full(stack.shape, np.nan, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        for b, band in enumerate(stack):
            num = ndimage.gaussian_filter(np.where(valid, band, 0).astype(np.float32), sigma_px)
            out[b] = np.where(valid, num / weight, np.nan)
    return out


@dataclass(frozen=True)
class BandFit:
    """One band's fit: reflectance x 10000 = gain x DN + offset.

    Attributes:
        gain, offset: the line (offset in reflectance x 10000).
        r: Pearson r of the 10 m pairs.
        n: number of 10 m pixel pairs.
        ratio: mean of the harmonised HR over the mean of the composite band.
    """

    gain: float
    offset: float
    r: float
    n: int
    ratio: float

    def to_dict(self) -> dict:
        return {"gain": round(self.gain, 6), "offset": round(self.offset, 3),
                "r": round(self.r, 4), "n": self.n, "ratio": round(self.ratio, 4)}


def fit_band(dn: np.ndarray, s2: np.ndarray) -> BandFit:
    """Robust line through (HR DN, composite DN) pairs (1-D float arrays).

    Raises:
        ValueError: with fewer than :data:`MIN_PAIRS` pairs or constant DN.
    """
    dn, s2 = np.asarray(dn, np.float64), np.asarray(s2, np.float64)
    if dn.size < MIN_PAIRS or dn.std() == 0:
        raise ValueError(f"{dn.size} 10 m pixel pairs (need {MIN_PAIRS}, not constant)")
    gain0, offset0 = np.polyfit(dn, s2, 1)
    resid = s2 - (gain0 * dn + offset0)
    scale = max(1.4826 * np.median(np.abs(resid - np.median(resid))), 1.0)
    sol = least_squares(lambda p: p[0] * dn + p[1] - s2, x0=[gain0, offset0],
                        loss="huber", f_scale=scale)
    gain, offset = (float(v) for v in sol.x)
    r = float(np.corrcoef(dn, s2)[0, 1])
    ratio = float((gain * dn + offset).mean() / s2.mean())
    return BandFit(gain, offset, r, int(dn.size), ratio)


def fit_bands(hr_10m: np.ndarray, s2_10m: np.ndarray, valid: np.ndarray) -> list[BandFit]:
    """Fit every band: ``hr_10m`` float (bands, rows, cols) DN aggregated to 10 m,
    ``s2_10m`` the matched composite bands, ``valid`` bool (rows, cols) pairs to use."""
    return [fit_band(h[valid], s[valid]) for h, s in zip(hr_10m, s2_10m, strict=True)]


def apply_fit(dn: np.ndarray, fits: list[BandFit]) -> np.ndarray:
    """uint16 (bands, rows, cols) reflectance x 10000 of float DN (bands, rows, cols);
    0 where the DN is NaN (no data) and at least 1 elsewhere (0 means "no target")."""
    out = np.zeros(dn.shape, dtype=np.uint16)
    valid = np.isfinite(dn).all(0)
    for b, fit in enumerate(fits):
        v = np.clip(np.rint(fit.gain * dn[b][valid] + fit.offset), 1, 65535)
        out[b][valid] = v.astype(np.uint16)
    return out
