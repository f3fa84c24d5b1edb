"""Co-registration of an HR image to Sentinel-2 by sub-pixel phase correlation at 10 m.

The HR (aggregated to the composite's 10 m grid by area mean) and the composite are
each reduced to one standardised image (mean of the z-scored matched bands), tapered
by a Hann window, and compared with scikit-image's ``phase_cross_correlation``
(upsampled to 1/20 pixel). The displacement is refined by re-warping the HR once with
the first estimate. The result is the HR's displacement in metres, ``[dx_east,
dy_north]``: a feature on the ground at (x, y) appears in the HR at (x + dx, y + dy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation

#: Phase correlation precision: 1/UPSAMPLE of a 10 m pixel.
UPSAMPLE = 20
#: Fewer valid 10 m pixels than this in both images: no estimate.
MIN_PIXELS = 400


@dataclass(frozen=True)
class ShiftEstimate:
    """A co-registration result.

    Attributes:
        shift_m: (dx_east, dy_north) in metres of the composite's CRS.
        correlation: Pearson r of the two standardised 10 m images after the shift.
        n: number of valid 10 m pixels compared.
    """

    shift_m: tuple[float, float]
    correlation: float
    n: int


def standardised(stack: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float64 (rows, cols) mean of the z-scored bands of ``stack`` (bands, rows, cols)
    over ``valid`` pixels; 0 elsewhere."""
    out = np.zeros(stack.shape[1:], dtype=np.float64)
    for band in stack:
        v = band[valid].astype(np.float64)
        sd = v.std()
        if sd > 0:
            out[valid] += (v - v.mean()) / sd
    out /= len(stack)
    return out


def pixel_shift(hr_10m: np.ndarray, s2_10m: np.ndarray, valid: np.ndarray
                ) -> tuple[float, float]:
    """Sub-pixel (drow, dcol) that moves ``hr_10m`` onto ``s2_10m`` (10 m pixels).

    Args:
        hr_10m, s2_10m: float (bands, rows, cols) matched bands.
        valid: bool (rows, cols) pixels valid in both.
    """
    rows, cols = np.nonzero(valid.any(1))[0], np.nonzero(valid.any(0))[0]
    crop = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    valid = valid[crop]
    win = np.outer(np.hanning(valid.shape[0]), np.hanning(valid.shape[1]))
    a = standardised(s2_10m[(slice(None), *crop)], valid) * win
    b = standardised(hr_10m[(slice(None), *crop)], valid) * win
    shift, _, _ = phase_cross_correlation(a, b, upsample_factor=UPSAMPLE, normalization=None)
    return float(shift[0]), float(shift[1])


def correlation(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    """Pearson r of two standardised images over ``valid`` (nan if constant)."""
    x, y = a[valid], b[valid]
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def estimate_shift(warp_10m: Callable[[tuple[float, float]], np.ndarray], s2_10m: np.ndarray,
                   s2_valid: np.ndarray, res_m: float, iterations: int = 2) -> ShiftEstimate:
    """Estimate the HR's displacement against the composite.

    Args:
        warp_10m: callable ``(dx_east, dy_north) -> float (bands, rows, cols)``: the HR
            matched bands warped onto the 10 m grid with that shift corrected (NaN
            where no data).
        s2_10m: float (bands, rows, cols) composite bands matched to the HR's.
        s2_valid: bool (rows, cols) composite pixels with data.
        res_m: the composite's pixel size (m).
        iterations: estimate, re-warp with the estimate, refine.

    Returns:
        The shift (0, 0 and correlation nan when too few pixels overlap).
    """
    dx = dy = 0.0
    for _ in range(iterations):
        hr = warp_10m((dx, dy))
        valid = s2_valid & np.isfinite(hr).all(0)
        valid = _interior(valid)
        if valid.sum() < MIN_PIXELS:
            return ShiftEstimate((0.0, 0.0), float("nan"), int(valid.sum()))
        drow, dcol = pixel_shift(np.nan_to_num(hr), s2_10m, valid)
        # moving the HR by (drow, dcol) aligns it: the HR shows features at -shift
        dx -= dcol * res_m
        dy += drow * res_m
    hr = warp_10m((dx, dy))
    valid = _interior(s2_valid & np.isfinite(hr).all(0))
    r = correlation(standardised(np.nan_to_num(hr), valid), standardised(s2_10m, valid), valid)
    return ShiftEstimate((round(dx, 3), round(dy, 3)), r, int(valid.sum()))


def _interior(valid: np.ndarray) -> np.ndarray:
    """``valid`` less a 1-pixel rim: 10 m pixels the HR covers only in part."""
    return ndimage.binary_erosion(valid, iterations=1)
