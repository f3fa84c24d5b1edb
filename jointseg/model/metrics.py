"""Evaluation metrics: binary F1/IoU at 1 m and SR PSNR/SSIM (reflectance 0..1)."""

from __future__ import annotations

import numpy as np

IGNORE = 255


class BinaryCounts:
    """Accumulates TP/FP/FN/TN over pixels whose label is not 255."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.tn = 0

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """``pred`` bool/0-1 and ``label`` uint8 (0/1/255), same shape."""
        valid = label != IGNORE
        p = pred.astype(bool)[valid]
        t = label[valid] == 1
        self.tp += int(np.sum(p & t))
        self.fp += int(np.sum(p & ~t))
        self.fn += int(np.sum(~p & t))
        self.tn += int(np.sum(~p & ~t))

    def scores(self) -> dict[str, float]:
        """precision, recall, f1, iou, accuracy (0..1; 0 where undefined)."""
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
        total = tp + fp + fn + tn
        return {"precision": prec, "recall": rec, "f1": f1, "iou": iou,
                "accuracy": (tp + tn) / total if total else 0.0}


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
