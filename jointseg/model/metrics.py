"""SR image metrics: PSNR and SSIM of reflectance (0..1).

Binary F1/IoU live in :mod:`jointseg.metrics` (one definition for training and reports).
"""

from __future__ import annotations

import numpy as np


def psnr(sr: np.ndarray, hr: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB of reflectance arrays (any shape, same shape), peak ``data_range``."""
    mse = float(np.mean((sr.astype(np.float64) - hr.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def ssim(sr: np.ndarray, hr: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM over bands of (B, H, W) arrays: 11 x 11 Gaussian window (sigma 1.5),
    valid windows only (Wang et al. 2004 constants K1 = 0.01, K2 = 0.03)."""
    from scipy.ndimage import correlate1d

    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g /= g.sum()

    def f(t: np.ndarray) -> np.ndarray:  # separable Gaussian, then crop to valid windows
        t = correlate1d(correlate1d(t, g, axis=-1, mode="constant"), g, axis=-2,
                        mode="constant")
        return t[..., 5:-5, 5:-5]

    x = np.asarray(sr, np.float64)
    y = np.asarray(hr, np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())
