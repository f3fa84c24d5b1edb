"""Season-matched SR targets (phenological / radiometric harmonisation of the HR).

The HR target (``hr.tif``) is one summer acquisition, the network's input an annual
median composite: an L1 against the raw HR spends part of its capacity learning the
season and sensor difference (greener vegetation, other illumination), not detail.
:func:`match_target` corrects each chip's HR to the composite per band with a robust
straight line ``composite = gain x HR + offset`` fitted between the HR block-averaged
to 10 m (PSF-matched, :func:`jointseg.trainingdata.harmonise.match_psf`) and the
composite's matching band (R-B04, G-B03, B-B02, NIR-B08) over the valid 10 m pixels
(Huber fit, :func:`jointseg.trainingdata.harmonise.fit_band`), then applies it to the
1 m HR: relative radiometric normalisation, as in multi-date change detection
(Schott et al. 1988; Canty et al. 2004), here per chip so it also absorbs phenology.
The 1 m detail (deviations from the 10 m means) is kept, rescaled by the gain.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from jointseg.bands import MODEL_INPUT_10M, SR_BANDS, SR_FROM_S2
from jointseg.model.chips import Chip
from jointseg.trainingdata.harmonise import BandFit, fit_band, match_psf

log = logging.getLogger(__name__)
#: s2_10m channel of the composite band behind each HR band (R G B NIR)
_S2_OF_HR = [MODEL_INPUT_10M.index(SR_FROM_S2[b]) for b in SR_BANDS]
SCALE = 10


def block_mean(hr: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 (bands, h, w) 10 m means of ``hr`` (bands, 10h, 10w) and the bool
    (bands, h, w) mask of 10 m pixels whose 100 1 m pixels are all ``valid``."""
    b, hh, ww = hr.shape
    h, w = hh // SCALE, ww // SCALE
    blocks = hr[:, :h * SCALE, :w * SCALE].astype(np.float64).reshape(b, h, SCALE, w, SCALE)
    ok = valid[:, :h * SCALE, :w * SCALE].reshape(b, h, SCALE, w, SCALE).all(axis=(2, 4))
    return blocks.mean(axis=(2, 4)), ok


def fit_target(chip: Chip) -> list[BandFit | None]:
    """Per HR band, the line HR DN -> composite DN of ``chip`` (None: too few valid pairs
    or a constant band: that band stays as it is)."""
    mean, ok = block_mean(chip.hr, chip.hr_mask)
    fits: list[BandFit | None] = []
    for b, s2_band in enumerate(_S2_OF_HR):
        m = np.where(ok[b], mean[b], np.nan)[None].astype(np.float32)
        blurred = match_psf(m)[0]
        valid = ok[b] & np.isfinite(blurred)
        try:
            fits.append(fit_band(blurred[valid], chip.s2_10m[s2_band][valid].astype(np.float64)))
        except ValueError:
            fits.append(None)
    return fits


def apply_target_fits(hr: np.ndarray, valid: np.ndarray, fits: list[BandFit | None]
                      ) -> np.ndarray:
    """uint16 ``hr`` (bands, 10h, 10w) x 1e4 with each band's line applied where
    ``valid`` (clipped to 1..65535: 0 keeps meaning "no target"); unfitted bands as given."""
    out = hr.copy()
    for b, fit in enumerate(fits):
        if fit is None:
            continue
        v = fit.gain * hr[b][valid[b]].astype(np.float64) + fit.offset
        out[b][valid[b]] = np.clip(np.rint(v), 1, 65535).astype(np.uint16)
    return out


def match_target(chip: Chip) -> Chip:
    """A copy of ``chip`` whose HR target is season-matched to its composite."""
    fits = fit_target(chip)
    return dataclasses.replace(chip, hr=apply_target_fits(chip.hr, chip.hr_mask, fits))
