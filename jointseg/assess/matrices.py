"""Class matrices: the count matrix of two labellings and the per-class accuracies of a
count or area-proportion matrix.

Convention: ``n[i, j]`` has **rows = map class, columns = reference class** (Olofsson et
al. 2014, Table 8), as every matrix of :mod:`jointseg.assess.estimators`. Design-based
estimates of these accuracies from a probability sample, with standard errors, are
:func:`jointseg.assess.estimators.olofsson_estimates` and
:func:`~jointseg.assess.estimators.stratified_estimates`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jointseg.metrics import ratio


def confusion_matrix(
    map_labels: np.ndarray, ref_labels: np.ndarray, classes: Sequence[object]
) -> np.ndarray:
    """Count matrix ``n[i, j]`` = units mapped ``classes[i]`` with reference ``classes[j]``.

    Units whose map or reference label is not in ``classes`` are ignored.
    """
    m = np.asarray(map_labels)
    r = np.asarray(ref_labels)
    if m.shape != r.shape:
        raise ValueError(f"map labels shape {m.shape} != reference labels shape {r.shape}")
    q = len(classes)
    out = np.zeros((q, q), np.int64)
    for i, ci in enumerate(classes):
        mi = m == ci
        for j, cj in enumerate(classes):
            out[i, j] = np.count_nonzero(mi & (r == cj))
    return out


def overall_accuracy(p: np.ndarray) -> float:
    """Sum of the diagonal over the total of a count or proportion matrix."""
    p = np.asarray(p, np.float64)
    return ratio(np.trace(p), p.sum())


def users_accuracy(p: np.ndarray) -> np.ndarray:
    """Per map class: p_ii / p_i. (rows = map). NaN for an empty row."""
    p = np.asarray(p, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(p) / p.sum(axis=1)


def producers_accuracy(p: np.ndarray) -> np.ndarray:
    """Per reference class: p_jj / p_.j (columns = reference). NaN for an empty column."""
    p = np.asarray(p, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(p) / p.sum(axis=0)


def f1_scores(p: np.ndarray) -> np.ndarray:
    """Per class F1 = 2 UA PA / (UA + PA) of a count or area-proportion matrix."""
    ua, pa = users_accuracy(p), producers_accuracy(p)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * ua * pa / (ua + pa)


def iou_scores(p: np.ndarray) -> np.ndarray:
    """Per class IoU = p_kk / (p_k. + p_.k - p_kk)."""
    p = np.asarray(p, np.float64)
    d = np.diag(p)
    with np.errstate(invalid="ignore", divide="ignore"):
        return d / (p.sum(axis=1) + p.sum(axis=0) - d)
