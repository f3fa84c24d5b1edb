"""Paired comparison of two models over test regions and training seeds.

Both models are trained with the same seeds and scored on the same held-out regions, so
their scores are paired: the uncertainty of their difference comes from which regions
happened to be held out and which seeds happened to be drawn. Scores are pooled counts
(F1 from summed TP / FP / FN over regions, a recall from summed hits / totals), averaged
over seeds. The interval is a two-level (regions x seeds) percentile bootstrap of the
difference, resampling regions and seeds independently with replacement and the two
models together (Efron & Tibshirani 1993, ch. 13; the regions and seeds are crossed, so
both levels are resampled: Field & Welsh 2007, "Bootstrapping clustered data", JRSS-B
69(3)).

Counts are arrays of shape (seeds, regions, k): for F1 ``k = 3`` (tp, fp, fn), for a
recall ``k = 2`` (hits, totals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Stat = Callable[[np.ndarray], np.ndarray]


def f1_stat(c: np.ndarray) -> np.ndarray:
    """F1 of summed counts ``c[..., (tp, fp, fn)]`` (0 where nothing was mapped or true)."""
    tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def recall_stat(c: np.ndarray) -> np.ndarray:
    """Recall of summed counts ``c[..., (hits, totals)]`` (nan where there is no total)."""
    return np.where(c[..., 1] > 0, c[..., 0] / np.maximum(c[..., 1], 1), np.nan)


def pooled(counts: np.ndarray, stat: Stat, regions: Sequence[int] | None = None) -> float:
    """The score of one model: ``stat`` of the counts summed over ``regions`` (all when
    None), averaged over seeds (nan-aware)."""
    c = np.asarray(counts, dtype=np.float64)
    r = np.arange(c.shape[1]) if regions is None else np.asarray(regions)
    return float(np.nanmean(stat(c[:, r].sum(axis=1))))


@dataclass(frozen=True)
class PairedResult:
    """Score of model a, of model b, their difference a - b and its percentile CI."""

    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_regions: int


def paired_bootstrap(a: np.ndarray, b: np.ndarray, stat: Stat = f1_stat,
                     regions: Sequence[int] | None = None, n_boot: int = 2000,
                     level: float = 0.95, seed: int = 0) -> PairedResult:
    """Mean difference ``stat(a) - stat(b)`` over seeds and ``regions`` with a paired
    two-level percentile bootstrap CI.

    Args:
        a, b: counts of the two models, shape (seeds, regions, k), same seeds and regions.
        stat: counts (..., k) -> score (...): :func:`f1_stat` or :func:`recall_stat`.
        regions: the region indices of a stratum (all when None).
        n_boot: bootstrap replicates.  level: CI coverage.  seed: resampling seed.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"paired counts must share one (seeds, regions, k) shape, got "
                         f"{a.shape} and {b.shape}")
    r = np.arange(a.shape[1]) if regions is None else np.asarray(regions)
    n_s, n_r = a.shape[0], len(r)
    rng = np.random.default_rng(seed)
    si = rng.integers(0, n_s, (n_boot, n_s))
    ri = r[rng.integers(0, n_r, (n_boot, n_r))]
    # (boot, seeds drawn, regions drawn, k) summed over regions -> (boot, seeds, k)
    sa = a[si[:, :, None], ri[:, None, :]].sum(axis=2)
    sb = b[si[:, :, None], ri[:, None, :]].sum(axis=2)
    d = np.nanmean(stat(sa) - stat(sb), axis=1)
    d = d[np.isfinite(d)]
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2]) if d.size else (np.nan,) * 2
    pa, pb = pooled(a, stat, r), pooled(b, stat, r)
    return PairedResult(pa, pb, pa - pb, float(lo), float(hi), n_s, n_r)
