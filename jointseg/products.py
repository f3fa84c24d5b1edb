"""The encoding of the 1 m products, one definition for writers and readers.

* Binary ISA map: band 1 uint8, 1 = impervious, 0 = not, :data:`NODATA_U8` (255) =
  no valid input (Sentinel-2 never saw the ground, or a pixel neither clear nor
  filled); band 2 ``QA``: the composite's QA bit flags (:data:`QA_FILLED`,
  :data:`QA_NO_OBSERVATION`) at 1 m.
* ISA probability: uint8 ``DN = round(p * 254)`` (0..254), so ``p = DN *``
  :data:`PROB_SCALE`; :data:`NODATA_U8` (255) = no data. The file stores the
  scale in its band metadata too.
* Training labels (``label.tif`` of a chip) use the same 255 for "no label": those
  pixels are ignored by the loss and the validation scores.
"""

from __future__ import annotations

import numpy as np

#: No-data value of every uint8 product (binary map, probability, change codes).
NODATA_U8 = 255
#: Probability DN -> probability: ``p = DN * PROB_SCALE``.
PROB_DN_MAX = 254
PROB_SCALE = 1.0 / PROB_DN_MAX
#: QA bit flags of the 10 m composite's QA band (uint8), carried to the 1 m ISA map.
QA_FILLED = 1  # no clear observation: filled from the best remaining (least-cloudy) one
QA_NO_OBSERVATION = 2  # Sentinel-2 never saw the ground here (all dates nodata)


def encode_prob(prob: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 ``round(p * 254)`` (0..254) of float ``prob`` (0..1), 255 where not ``valid``."""
    out = np.rint(np.clip(prob, 0.0, 1.0) * PROB_DN_MAX).astype(np.uint8)
    out[~valid] = NODATA_U8
    return out


def decode_prob(dn: np.ndarray, nodata: int | None = NODATA_U8) -> np.ndarray:
    """float32 probability (0..1) of uint8 DN, NaN where ``dn == nodata``."""
    p = dn.astype(np.float32) * np.float32(PROB_SCALE)
    if nodata is not None:
        p[dn == nodata] = np.nan
    return p


def encode_binary(prob: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 1 where ``prob >= threshold``, 0 elsewhere, 255 where not ``valid``."""
    out = (prob >= threshold).astype(np.uint8)
    out[~valid] = NODATA_U8
    return out


#: value -> (colour "#rrggbb", label) of the binary ISA products: one palette for the
#: mosaic quicklooks, the viewer and the QGIS project.
ISA_CLASSES: dict[int, tuple[str, str]] = {
    0: ("#e8e8e8", "not impervious"),
    1: ("#a50f15", "impervious"),
}
#: colour ramp (matplotlib name) of the ISA probability, 0..1.
PROB_RAMP = "magma"
