"""Binary agreement counts and scores: one definition for training and assessment.

ISA is the positive class. A score whose denominator is zero is undefined and is
NaN everywhere (validation during training, reports, tables): never 0, which would
read as "everything wrong".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jointseg.products import NODATA_U8


@dataclass(frozen=True)
class BinaryCounts:
    """Pixel (or sample) counts of a binary map against a binary reference.

    Attributes:
        tn: map 0, reference 0.
        fp: map 1, reference 0 (commission of ISA).
        fn: map 0, reference 1 (omission of ISA).
        tp: map 1, reference 1.
    """

    tn: int = 0
    fp: int = 0
    fn: int = 0
    tp: int = 0

    @property
    def n(self) -> int:
        """Number of compared pixels."""
        return self.tn + self.fp + self.fn + self.tp

    def confusion(self) -> list[list[int]]:
        """``[[tn, fp], [fn, tp]]``: rows = reference (0, 1), columns = map (0, 1)."""
        return [[self.tn, self.fp], [self.fn, self.tp]]

    def matrix(self) -> np.ndarray:
        """2 x 2 int64 count matrix, rows = map (0, 1), columns = reference (0, 1)."""
        return np.array([[self.tn, self.fn], [self.fp, self.tp]], dtype=np.int64)

    def swapped(self) -> BinaryCounts:
        """The counts with map and reference exchanged (fp <-> fn)."""
        return BinaryCounts(self.tn, self.fn, self.fp, self.tp)

    def __add__(self, other: BinaryCounts) -> BinaryCounts:
        return BinaryCounts(self.tn + other.tn, self.fp + other.fp,
                            self.fn + other.fn, self.tp + other.tp)


def binary_counts(
    map_isa: np.ndarray, ref_isa: np.ndarray, *, nodata: int = NODATA_U8
) -> BinaryCounts:
    """Count agreement of two 0/1 arrays (uint8 or bool); pixels where either is ``nodata``
    are skipped.

    Raises:
        ValueError: on different shapes, or any value other than 0, 1 and ``nodata``.
    """
    if map_isa.shape != ref_isa.shape:
        raise ValueError(f"map shape {map_isa.shape} != reference shape {ref_isa.shape}")
    map_isa = map_isa.astype(np.uint8, copy=False)
    ref_isa = ref_isa.astype(np.uint8, copy=False)
    for name, a in (("map", map_isa), ("reference", ref_isa)):
        bad = np.setdiff1d(np.unique(a), [0, 1, nodata])
        if bad.size:
            raise ValueError(f"{name} holds values {bad.tolist()}; expected 0, 1, {nodata}")
    valid = (map_isa != nodata) & (ref_isa != nodata)
    m = map_isa[valid] == 1
    r = ref_isa[valid] == 1
    tp = int(np.count_nonzero(m & r))
    fp = int(np.count_nonzero(m & ~r))
    fn = int(np.count_nonzero(~m & r))
    tn = int(m.size - tp - fp - fn)
    return BinaryCounts(tn, fp, fn, tp)


def ratio(a: float, b: float) -> float:
    """``a / b`` as a float, NaN when ``b`` is 0 (an undefined score, never 0)."""
    return float(a) / float(b) if b else float("nan")


def cohen_kappa(p: np.ndarray) -> float:
    """Cohen's kappa of a square count or proportion matrix (NaN when undefined)."""
    p = np.asarray(p, np.float64)
    n = p.sum()
    if n == 0:
        return float("nan")
    p = p / n
    po = float(np.trace(p))
    pe = float(np.sum(p.sum(axis=1) * p.sum(axis=0)))
    return ratio(po - pe, 1.0 - pe)


def binary_metrics(c: BinaryCounts) -> dict[str, float | int]:
    """Agreement scores of a binary map (ISA = positive class) from counts.

    * precision = TP / (TP + FP) (user's accuracy of ISA)
    * recall = TP / (TP + FN) (producer's accuracy of ISA)
    * f1 = 2 TP / (2 TP + FP + FN)
    * oa = (TP + TN) / n
    * kappa = (p_o - p_e) / (1 - p_e), p_e = sum_k (row_k / n)(col_k / n) (Cohen 1960)
    * iou = TP / (TP + FP + FN)

    Undefined ratios (zero denominators) are NaN. Returns also ``n_pixels`` and the
    four counts.
    """
    out: dict[str, float | int] = {
        "precision": ratio(c.tp, c.tp + c.fp),
        "recall": ratio(c.tp, c.tp + c.fn),
        "f1": ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "oa": ratio(c.tp + c.tn, c.n),
        "kappa": cohen_kappa(c.matrix()),
        "iou": ratio(c.tp, c.tp + c.fp + c.fn),
        "n_pixels": c.n,
    }
    out.update(tn=c.tn, fp=c.fp, fn=c.fn, tp=c.tp)
    return out
