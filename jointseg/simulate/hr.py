"""The 1 m high-resolution image (the SR target): R G B NIR reflectance x 10000, uint16.

Rendered from the material spectra (the S2 columns of ``jointseg.bands.SR_FROM_S2``) times a
per-pixel brightness factor (within-class texture, per-parcel variation and building
shadows cast with the sun of the HR acquisition).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from jointseg.bands import SR_BANDS, SR_FROM_S2
from jointseg.simulate.landcover import Landscape
from jointseg.simulate.materials import N_MATERIALS, M, with_water_variants
from jointseg.simulate.noise import hash01, smooth_noise
from jointseg.simulate.spectra import band_index, spectra_table

# Texture amplitude (relative brightness std) per material.
_TEX = np.full(N_MATERIALS, 0.05, dtype=np.float32)
for _n, _a in (("tree", 0.25), ("grass", 0.10), ("crop_rice", 0.08), ("crop_wheat_rice", 0.08),
               ("bare_soil", 0.10), ("industrial_ground", 0.10), ("water_river", 0.02),
               ("water_pond", 0.03), ("paved", 0.07)):
    _TEX[M[_n]] = _a


def brightness(ls: Landscape, rng: np.random.Generator, sun_elev_deg: float = 65.0,
               sun_az_deg: float = 140.0) -> np.ndarray:
    """float32 (rows, cols) multiplicative brightness: texture x parcel factor x shadow."""
    shape = ls.material.shape
    fine = smooth_noise(shape, 1.5, rng)
    tex = 1.0 + _TEX[ls.material] * fine
    tex *= 0.88 + 0.24 * hash01(ls.parcel, 2)
    shadow = building_shadow(ls.height_m, sun_elev_deg, sun_az_deg)
    tex[shadow & (ls.height_m == 0)] *= 0.35
    return np.clip(tex, 0.2, 2.0).astype(np.float32)


def building_shadow(height_m: np.ndarray, sun_elev_deg: float, sun_az_deg: float) -> np.ndarray:
    """bool mask of pixels shadowed by buildings (1 m grid, heights in metres)."""
    hmax = int(height_m.max())
    out = np.zeros(height_m.shape, dtype=bool)
    if hmax == 0:
        return out
    tan_e = math.tan(math.radians(sun_elev_deg))
    az = math.radians(sun_az_deg)
    dc, dr = -math.sin(az), math.cos(az)  # shadow direction in (col, row)
    h, w = height_m.shape
    for s in range(1, int(hmax / tan_e) + 1):
        oc, orow = int(round(dc * s)), int(round(dr * s))
        need = s * tan_e
        src = height_m[max(0, -orow):h - max(0, orow), max(0, -oc):w - max(0, oc)] > need
        out[max(0, orow):h - max(0, -orow), max(0, oc):w - max(0, -oc)] |= src
    return out


def render_hr(ls: Landscape, tex: np.ndarray, date: dt.date) -> np.ndarray:
    """uint16 (4, rows, cols) reflectance x 10000 on the 1 m grid, bands ``SR_BANDS``
    (R G B NIR); water bodies in the same variant colours as the Sentinel-2 scenes."""
    material = with_water_variants(ls.material)
    table = spectra_table(date)[:, band_index(tuple(SR_FROM_S2[b] for b in SR_BANDS))] * 10000.0
    out = np.empty((len(SR_BANDS), *ls.material.shape), dtype=np.uint16)
    for b in range(len(SR_BANDS)):
        out[b] = np.clip(table[material, b] * tex, 1, 65535)
    return out
