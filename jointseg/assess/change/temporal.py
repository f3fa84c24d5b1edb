"""Temporal consistency of a series of yearly ISA maps: which pixels changed, and when.

Three methods (:data:`METHODS`), applied block by block to all years at once:

* ``independent``: each year's binary map as it is; change = two thresholded maps
  differ. Every epoch's noise is read as change.
* ``carry`` (GAIA's rule, :mod:`jointseg.assess.consistency`): an ISA pixel stays ISA
  unless a later year's p(ISA) is confidently low (``p <= 1 - confident``). Losses go,
  but a false ISA in one year becomes "new ISA" and stays.
* ``monotone`` (default; after GAIA / GISA's "ISA rarely reverts", decided on the
  probabilities with hysteresis): each pixel's series is fitted by one non-decreasing
  step, never ISA, ISA from year k on, or ISA throughout, maximising the summed
  evidence ``sum_{t >= k} s_t`` with ``s_t = logit(p_t) - logit(cut_t)`` (> 0 where the
  year's map says ISA), and a change (0 < k < T) must beat both stable fits by
  ``penalty`` (the log prior odds against a change: the hysteresis). Evidence from all
  epochs is pooled, so one noisy epoch does not make or undo ISA. Pixels without a
  probability use ``+-evidence_cap / 2`` from the binary map.

Maps are uint8 0/1/255, probabilities the uint8 DN of ``isa_prob_1m.tif``
(:func:`jointseg.products.decode_prob`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jointseg.assess.consistency import consistent_step
from jointseg.products import NODATA_U8, decode_prob

METHODS = {
    "independent": "each year's binary map as it is (change = two thresholded maps differ)",
    "carry": "GAIA's rule: ISA -> non-ISA kept only where p(ISA) <= 1 - confident; otherwise "
             "the earlier ISA is carried forward",
    "monotone": "one non-decreasing step per pixel fitted to the logit evidence of all "
                "epochs (logit p - logit cut); a change must beat both stable fits by "
                "`penalty` (hysteresis); ISA never reverts",
}
DEFAULT_METHOD = "monotone"


@dataclass(frozen=True)
class TemporalSettings:
    """How the yearly maps are made consistent (``change:`` section of the config).

    Attributes:
        method: a key of :data:`METHODS`.
        confident: ``carry``: p(non-ISA) needed to accept a loss (0.5..1).
        penalty: ``monotone``: evidence (log odds) a change must add over a stable fit.
        evidence_cap: ``monotone``: |s_t| is clipped to this (one year cannot decide alone).
    """

    method: str = DEFAULT_METHOD
    confident: float = 0.8
    penalty: float = 0.35
    evidence_cap: float = 4.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"change method {self.method!r}: expected one of "
                             f"{sorted(METHODS)}")
        if not 0.5 <= self.confident <= 1.0:
            raise ValueError(f"confident={self.confident}: expected 0.5 <= confident <= 1")
        if self.penalty < 0 or self.evidence_cap <= 0:
            raise ValueError("penalty must be >= 0 and evidence_cap > 0")

    @property
    def applied(self) -> bool:
        """Whether the maps are changed at all."""
        return self.method != "independent"


def evidence(isa: np.ndarray, prob_u8: np.ndarray | None, cut: float, cap: float) -> np.ndarray:
    """float32 s_t = logit(p) - logit(cut), clipped to +-cap; 0 on nodata; from the
    binary map (+-cap/2) where there is no probability."""
    valid = isa != NODATA_U8
    if prob_u8 is None:
        s = np.where(isa == 1, cap / 2, -cap / 2).astype(np.float32)
    else:
        p = np.clip(decode_prob(prob_u8), 1e-4, 1 - 1e-4)
        c = min(max(cut, 1e-4), 1 - 1e-4)
        s = (np.log(p / (1 - p)) - np.float32(np.log(c / (1 - c)))).astype(np.float32)
        s = np.where(np.isnan(s), np.where(isa == 1, cap / 2, -cap / 2), s)
        s = np.clip(s, -cap, cap).astype(np.float32)
    s[~valid] = 0.0
    return s


def monotone_fit(scores: Sequence[np.ndarray], penalty: float) -> np.ndarray:
    """Index k of the first ISA year (0..T; T = never) of the best non-decreasing step.

    ``J_k = sum_{t >= k} s_t - penalty [0 < k < T]``; ties go to the later k (less ISA).
    """
    s = np.stack(scores)  # (T, ...)
    t = s.shape[0]
    suffix = np.concatenate([np.cumsum(s[::-1], axis=0)[::-1], np.zeros((1, *s.shape[1:]),
                                                                        np.float32)])
    cost = suffix.copy()
    cost[1:t] -= penalty
    return (t - np.argmax(cost[::-1], axis=0)).astype(np.int16)  # last maximum


def fit_block(raws: Mapping[int, np.ndarray], probs: Mapping[int, np.ndarray | None],
              cuts: Mapping[int, float], settings: TemporalSettings) -> dict[int, np.ndarray]:
    """Consistent uint8 0/1/255 map of every year of one block (nodata stays nodata)."""
    years = sorted(raws)
    if settings.method == "independent":
        return {y: raws[y] for y in years}
    if settings.method == "carry":
        state = np.full(raws[years[0]].shape, NODATA_U8, np.uint8)
        out = {}
        for y in years:
            out[y], state, _ = consistent_step(state, raws[y], probs.get(y),
                                               settings.confident)
        return out
    scores = [evidence(raws[y], probs.get(y), cuts.get(y, 0.5), settings.evidence_cap)
              for y in years]
    k = monotone_fit(scores, settings.penalty)
    out = {}
    for i, y in enumerate(years):
        m = (k <= i).astype(np.uint8)
        m[raws[y] == NODATA_U8] = NODATA_U8
        out[y] = m
    return out
