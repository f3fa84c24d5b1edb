"""Temporal-consistency rule for a series of yearly binary ISA maps (as GAIA).

A pixel that was ISA in an earlier year stays ISA unless the later year's probability
of ISA is confidently low, ``p <= 1 - confident``; otherwise the earlier ISA is carried
forward. Years are processed in order and the state carries through nodata. Without
probability maps no loss is confident, so ISA is never lost (GAIA's strict rule).

Maps are uint8 0/1/255 (:data:`jointseg.products.NODATA_U8`); probabilities are the
uint8 DN of ``isa_prob_1m.tif`` (:func:`jointseg.products.decode_prob`, 255 = nodata).
"""

from __future__ import annotations

import numpy as np

from jointseg.products import NODATA_U8, decode_prob

RULE = ("ISA -> non-ISA kept only where p(ISA) <= 1 - confident; otherwise the earlier ISA "
        "is carried forward")


def consistent_step(
    state: np.ndarray, isa: np.ndarray, prob_u8: np.ndarray | None, confident: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Apply the temporal-consistency rule to one year.

    Args:
        state: uint8 last consistent value per pixel (0/1, 255 = never observed).
        isa: uint8 this year's map (0/1/255).
        prob_u8: this year's ISA probability DN (255 = nodata), or None.
        confident: a loss (state 1 -> map 0) is kept only where p <= 1 - confident.

    Returns:
        (consistent map of this year, new state, number of suppressed losses).
    """
    loss = (state == 1) & (isa == 0)
    if prob_u8 is None:
        keep_loss = np.zeros_like(loss)
    else:
        # DN steps are 1/254 apart: a 1e-6 tolerance only absorbs float rounding
        keep_loss = decode_prob(prob_u8) <= (1.0 - confident) + 1e-6  # NaN (nodata) -> False
    suppress = loss & ~keep_loss
    out = isa.copy()
    out[suppress] = 1
    new_state = np.where(out != NODATA_U8, out, state).astype(np.uint8)
    return out, new_state, int(np.count_nonzero(suppress))
