"""Judge SR output on the task: a fixed per-pixel impervious-surface classifier.

A logistic regression on (R, G, B, NIR, NDVI) reflectance at 1 m is fitted once on the
HR targets against the labels of the training chips, then frozen; it is run on a
model's SR output and on the bilinear upsampling of the 10 m bands, and the F1 of
each against the chips' labels (pass chips with truth labels where they exist,
:func:`jointseg.model.chips.with_truth_labels`) says whether SR carries more
impervious-surface evidence than plain interpolation: a task-based image quality
measure, independent of the segmentation branch (Barrett & Myers 2004, ch. 13).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jointseg.metrics import BinaryCounts, binary_counts, binary_metrics
from jointseg.model.chips import Chip
from jointseg.model.jointseg import bilinear_rgbn
from jointseg.products import NODATA_U8


def pixel_features(rgbn: np.ndarray) -> np.ndarray:
    """float64 (n, 5) features R G B NIR NDVI of (4, h, w) reflectance (0..1), pixel-major."""
    x = np.asarray(rgbn, np.float64).reshape(4, -1)
    ndvi = (x[3] - x[0]) / np.maximum(np.abs(x[3] + x[0]), 1e-3)
    return np.concatenate([x, ndvi[None]]).T


@dataclass(frozen=True)
class PixelClassifier:
    """Frozen logistic regression: p = sigmoid(((f - mean) / std) . coef + bias)."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    bias: float

    def predict(self, rgbn: np.ndarray) -> np.ndarray:
        """uint8 (h, w) 0/1 impervious map of (4, h, w) reflectance (p >= 0.5)."""
        z = (pixel_features(rgbn) - self.mean) / self.std
        return ((z @ self.coef + self.bias) >= 0).astype(np.uint8).reshape(rgbn.shape[1:])


def fit_pixel_classifier(chips: list[Chip], max_pixels: int = 200_000, seed: int = 0,
                         l2: float = 1e-3, iters: int = 25) -> PixelClassifier:
    """Fit the classifier on ``chips``' HR targets (all four bands valid) vs their labels
    (255 ignored), at most ``max_pixels`` random pixels; Newton/IRLS with an L2 penalty
    ``l2`` on the coefficients.

    Raises:
        ValueError: with no labelled pixel carrying an HR target, or one class only.
    """
    feats, ys = [], []
    for chip in chips:
        ok = chip.hr_mask.all(0) & (chip.label != NODATA_U8)
        feats.append(pixel_features(chip.hr / 10000.0)[ok.ravel()])
        ys.append(chip.label[ok].astype(np.float64))
    f, y = np.concatenate(feats), np.concatenate(ys)
    if f.shape[0] == 0 or y.min() == y.max():
        raise ValueError("need labelled HR pixels of both classes")
    if f.shape[0] > max_pixels:
        pick = np.random.default_rng(seed).choice(f.shape[0], max_pixels, replace=False)
        f, y = f[pick], y[pick]
    mean, std = f.mean(0), np.maximum(f.std(0), 1e-9)
    x = np.hstack([(f - mean) / std, np.ones((f.shape[0], 1))])
    w = np.zeros(x.shape[1])
    reg = np.diag([l2] * (x.shape[1] - 1) + [0.0]) * f.shape[0]
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + reg @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return PixelClassifier(mean, std, w[:-1].copy(), float(w[-1]))


@torch.no_grad()
def sr_task_score(model: torch.nn.Module | None, chips: list[Chip],
                  classifier: PixelClassifier) -> dict[str, float]:
    """F1 / IoU of ``classifier`` against the chips' labels run on three inputs: the
    model's SR output (``f1_sr``, ``iou_sr``; nan when ``model`` is None or has no SR
    branch, i.e. its ``arch`` is not jointseg), the bilinear upsampling of the 10 m
    bands (``f1_bilinear``, ``iou_bilinear``) and the HR target itself (``f1_hr``,
    ``iou_hr``: the ceiling), each over the pixels with a label and an HR target."""
    from jointseg.model.train import chip_tensors

    counts = {k: BinaryCounts() for k in ("sr", "bilinear", "hr")}
    has_sr = model is not None and getattr(model, "arch", "") == "jointseg"
    if model is not None:
        model.eval()
    device = next(model.parameters()).device if model is not None else torch.device("cpu")
    for chip in chips:
        s10, s20 = chip_tensors(chip)
        ref = np.where(chip.hr_mask.all(0), chip.label, NODATA_U8).astype(np.uint8)
        imgs = {"bilinear": bilinear_rgbn(s10)[0].numpy(), "hr": chip.hr / 10000.0}
        if has_sr:
            imgs["sr"] = model(s10.to(device), s20.to(device), sr_only=True)[0].cpu().numpy()
        for k, img in imgs.items():
            pred = np.where(ref == NODATA_U8, NODATA_U8, classifier.predict(img))
            counts[k] += binary_counts(pred.astype(np.uint8), ref)
    out: dict[str, float] = {}
    for k, c in counts.items():
        m = binary_metrics(c) if (k != "sr" or has_sr) else {"f1": np.nan, "iou": np.nan}
        out[f"f1_{k}"], out[f"iou_{k}"] = float(m["f1"]), float(m["iou"])
    return out
