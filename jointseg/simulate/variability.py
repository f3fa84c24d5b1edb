"""Per-object and per-region spectral variability of the impervious (urban) materials.

Real roofs and roads of one material type differ a lot in brightness (age, dirt,
weathering) and somewhat in spectral shape, so a 10 m pixel's ISA fraction cannot be read
off by unmixing with fixed library spectra. On the 1 m material map each object (a
4-connected patch of one ISA material: a roof, a paved yard; patches larger than
:data:`LARGE_OBJECT_M2`, i.e. road networks, vary along a smooth field of segment scale
instead) gets a log-normal brightness factor and a spectral tilt; every ISA material also
gets a per-region factor and tilt. All draws are seeded from the map's content, not from
the simulator's random stream, so a region's objects look the same on every date.
Magnitudes are cited in docs/simulation.md ("Urban material variability").
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from scipy import ndimage, special

from jointseg.simulate.materials import ISA_CLASSES, MATERIAL_TO_CLASS, N_MATERIALS, M
from jointseg.simulate.noise import hash01, smooth_noise

#: ISA material ids, in the order of the tilt channels of the fractions.
ISA_MATERIALS: tuple[int, ...] = tuple(
    int(m) for m in np.flatnonzero(np.isin(MATERIAL_TO_CLASS, ISA_CLASSES)))

#: Per-object log-brightness sigma (~ coefficient of variation) per ISA material.
#: Asphalt 0.30: ageing raises VIS reflectance from ~0.05 (new) to ~0.10-0.12 (old)
#: (Herold & Roberts 2005; Herold et al. 2004 Santa Barbara library). Roofs 0.25: roofs of
#: one type span a factor ~2 in brightness in that library and in ECOSTRESS/ASTER
#: (Baldridge et al. 2009; Meerdink et al. 2019). Concrete / paved / industrial 0.20.
OBJECT_SIGMA: dict[str, float] = {
    "asphalt": 0.30, "concrete_road": 0.20, "roof_concrete": 0.25, "roof_bright": 0.25,
    "roof_blue_steel": 0.25, "roof_red_tile": 0.25, "roof_dark": 0.25, "paved": 0.20,
    "industrial_ground": 0.20,
}
#: Per-region, per-material log-brightness sigma (local building stock / road age).
REGION_SIGMA = 0.10
#: Within-object smooth log-brightness sigma and its correlation length (m): patches, stains.
WITHIN_SIGMA = 0.08
WITHIN_SCALE_M = 15.0
#: Objects larger than this (m^2, road networks, big yards) vary along a smooth field of
#: :data:`SEGMENT_SCALE_M` (road segments between junctions) with OBJECT_SIGMA.
LARGE_OBJECT_M2 = 2500
SEGMENT_SCALE_M = 50.0
#: Spectral tilt sigma: relative change of reflectance at the spectrum's ends (B02, B12),
#: linear in log-wavelength between (per object and, separately, per region).
TILT_SIGMA_OBJECT = 0.06
TILT_SIGMA_REGION = 0.03

#: Central wavelengths (nm) of S2_BANDS (S2A spectral response, ESA).
_WAVELENGTH_NM = np.array([492, 560, 665, 704, 740, 783, 833, 865, 1614, 2202], dtype=float)
_lw = np.log(_WAVELENGTH_NM)
#: Band shape of a tilt of +1: -1 at B02 .. +1 at B12 (linear in log wavelength).
TILT_VECTOR = (2 * (_lw - _lw.min()) / (_lw.max() - _lw.min()) - 1).astype(np.float32)

_SIGMA = np.zeros(N_MATERIALS, dtype=np.float32)
for _name, _s in OBJECT_SIGMA.items():
    _SIGMA[M[_name]] = _s


def content_key(material: np.ndarray) -> int:
    """A 32-bit key from a 1 m material map's content (seed of its variability)."""
    return zlib.crc32(np.ascontiguousarray(material[::7, ::7]).tobytes())


def isa_variability(material: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 brightness factor, float32 spectral tilt) per 1 m pixel of ``material``
    (uint8 ids): 1 and 0 outside ISA materials. A pixel's reflectance is
    ``spectrum * factor * (1 + tilt * TILT_VECTOR)``."""
    key = content_key(material)
    rng = np.random.default_rng([key, 21])
    log_b = np.zeros(material.shape, dtype=np.float32)
    tilt = np.zeros(material.shape, dtype=np.float32)
    within = smooth_noise(material.shape, WITHIN_SCALE_M, rng)
    segment = smooth_noise(material.shape, SEGMENT_SCALE_M, rng)
    seg_tilt = smooth_noise(material.shape, SEGMENT_SCALE_M, rng)
    for mid in ISA_MATERIALS:
        mask = material == mid
        if not mask.any():
            continue
        sigma = float(_SIGMA[mid])
        reg_b, reg_t = rng.normal(0, REGION_SIGMA), rng.normal(0, TILT_SIGMA_REGION)
        labels, n = ndimage.label(mask)
        size = np.bincount(labels.ravel(), minlength=n + 1)
        ids = np.arange(n + 1, dtype=np.int64) + (mid << 32)
        z_obj = _normal(hash01(ids, key % 100003 + mid))
        z_tilt = _normal(hash01(ids, key % 100003 + mid + 500))
        lab = labels[mask]
        large = size[lab] > LARGE_OBJECT_M2
        zb = np.where(large, segment[mask], z_obj[lab])
        zt = np.where(large, seg_tilt[mask], z_tilt[lab])
        log_b[mask] = reg_b + sigma * zb + WITHIN_SIGMA * within[mask]
        tilt[mask] = reg_t + TILT_SIGMA_OBJECT * zt
    # Mean-preserving: E[exp(s z)] = exp(s^2/2), so the library spectrum stays the mean.
    corr = np.zeros(N_MATERIALS, dtype=np.float32)
    corr[list(ISA_MATERIALS)] = 0.5 * (_SIGMA[list(ISA_MATERIALS)] ** 2 + REGION_SIGMA**2
                                       + WITHIN_SIGMA**2)
    return np.exp(log_b - corr[material]).astype(np.float32), tilt


def _normal(u: np.ndarray) -> np.ndarray:
    """Standard-normal float32 from uniform [0, 1) hashes."""
    return special.ndtri(np.clip(u, 1e-6, 1 - 1e-6)).astype(np.float32)


def total_sigma(material_name: str) -> float:
    """Total log-brightness sigma of an ISA material (object, region, within-object):
    the coefficient of variation of its brightness is ~ sqrt(exp(s^2) - 1)."""
    s = OBJECT_SIGMA[material_name]
    return math.sqrt(s**2 + REGION_SIGMA**2 + WITHIN_SIGMA**2)
