"""SR image metrics (PSNR and SSIM of reflectance, 0..1) and the decision-threshold
calibration of the ISA probability.

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


#: Probability bins of the threshold calibration: candidate thresholds are k / bins.
THRESHOLD_BINS = 100
#: The thresholds considered: the extremes would map (almost) everything or nothing.
THRESHOLD_RANGE = (0.05, 0.95)


def prob_histograms(prob: np.ndarray, label: np.ndarray, bins: int = THRESHOLD_BINS
                    ) -> np.ndarray:
    """int64 (2, bins) counts of ``prob`` (float 0..1) binned at 1 / ``bins``: row 0 over
    the pixels labelled 0, row 1 over those labelled 1 (``label`` uint8; 255 ignored)."""
    idx = np.clip((np.asarray(prob, np.float64) * bins).astype(np.int64), 0, bins - 1)
    return np.stack([np.bincount(idx[label == v], minlength=bins) for v in (0, 1)])


def best_threshold(hist: np.ndarray, lo_hi: tuple[float, float] = THRESHOLD_RANGE
                   ) -> tuple[float, float]:
    """(threshold, F1) of the binary map ``prob >= threshold`` that maximises F1 over the
    thresholds k / bins within ``lo_hi``, from :func:`prob_histograms` counts (ties go to
    the threshold nearest 0.5); (0.5, nan) when no pixel is labelled 1.

    With labels that miss features (OSM) a model's probabilities come out too low, by
    a roughly constant factor (Elkan & Noto 2008), so 0.5 is the wrong cut; and the
    F1-optimal threshold is half the optimal F1 anyway (Lipton et al. 2014).
    """
    neg, pos = np.asarray(hist, np.float64)
    bins = neg.size
    if pos.sum() == 0:
        return 0.5, float("nan")
    tp = pos[::-1].cumsum()[::-1]  # tp[k]: pixels labelled 1 with prob >= k / bins
    fp = neg[::-1].cumsum()[::-1]
    f1 = 2 * tp / np.maximum(2 * tp + fp + (pos.sum() - tp), 1.0)
    ks = np.arange(round(lo_hi[0] * bins), round(lo_hi[1] * bins) + 1)
    top = ks[f1[ks] >= f1[ks].max() - 1e-12]
    k = int(top[np.argmin(np.abs(top / bins - 0.5))])
    return k / bins, float(f1[k])
