"""The 1 m high-resolution image (the SR target): R G B NIR reflectance x 10000, uint16.

Rendered from the material spectra (the S2 columns of ``jointseg.bands.SR_FROM_S2``) times a
per-pixel brightness factor (within-class texture, per-parcel variation and building
shadows cast with the sun of the HR acquisition).

The HR image is a very-high-resolution scene taken off-nadir (:class:`HrView`) and
orthorectified to the terrain, so the ground stays in place but each roof is displaced
from its footprint by ``height x tan(view zenith)`` away from the satellite, with the
walls facing the satellite visible between footprint and roof. Agile VHR satellites
image up to 30 deg and more off-nadir (WorldView-3 and Pleiades up to ~30 deg in their
standard products, Gaofen-2 +-35 deg side-swing); archive scenes typically lie at
10-20 deg. The truth stays the footprints. The HR is acquired on one date
(:func:`hr_date`, summer), the Sentinel-2 input is an annual median composite, so
vegetation differs between the two.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from jointseg.bands import SR_BANDS, SR_FROM_S2
from jointseg.simulate.landcover import Landscape
from jointseg.simulate.materials import N_MATERIALS, M, with_water_variants
from jointseg.simulate.noise import hash01, smooth_noise
from jointseg.simulate.spectra import band_index, spectra_table
from jointseg.simulate.variability import TILT_VECTOR, isa_variability

# Texture amplitude (relative brightness std) per material.
_TEX = np.full(N_MATERIALS, 0.05, dtype=np.float32)
for _n, _a in (("tree", 0.25), ("grass", 0.10), ("crop_rice", 0.08), ("crop_wheat_rice", 0.08),
               ("bare_soil", 0.10), ("industrial_ground", 0.10), ("water_river", 0.02),
               ("water_pond", 0.03), ("paved", 0.07)):
    _TEX[M[_n]] = _a


#: Draw range of the HR view zenith angle at the ground (deg) and the wall brightness.
VIEW_ZENITH_DEG = (5.0, 25.0)
WALL_FACTOR = 0.7


@dataclass(frozen=True)
class HrView:
    """Viewing geometry of the HR acquisition: zenith and azimuth (deg, clockwise from
    north) of the direction from the ground towards the satellite."""

    zenith_deg: float = 15.0
    azimuth_deg: float = 100.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> HrView:
        """Zenith uniform in :data:`VIEW_ZENITH_DEG`, azimuth uniform in 0-360."""
        return cls(float(rng.uniform(*VIEW_ZENITH_DEG)), float(rng.uniform(0.0, 360.0)))

    def lean_px(self, height_m: float) -> tuple[float, float]:
        """(d_col, d_row) px by which a point ``height_m`` high appears displaced (1 m
        grid, north up): away from the satellite, ``height x tan(zenith)`` long."""
        d = height_m * math.tan(math.radians(self.zenith_deg))
        az = math.radians(self.azimuth_deg)
        return -d * math.sin(az), d * math.cos(az)


def hr_date(year: int) -> dt.date:
    """The HR acquisition date of ``year``: 20 July (leaf-on summer), while the
    Sentinel-2 input is a median over the whole year."""
    return dt.date(year, 7, 20)


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


def lean(material: np.ndarray, tex: np.ndarray, height_m: np.ndarray,
         view: HrView) -> tuple[np.ndarray, np.ndarray]:
    """(material, brightness) as seen from ``view``: every building pixel of height h
    sweeps its wall (material x :data:`WALL_FACTOR`) from its footprint to
    ``lean_px(h)`` and its roof lands there; lower buildings are drawn first."""
    mat, out_tex = material.copy(), tex.copy()
    h, w = material.shape
    rows, cols = np.nonzero(height_m)
    if rows.size == 0 or view.zenith_deg <= 0:
        return mat, out_tex
    hgt = height_m[rows, cols]
    roof_m, roof_t = material[rows, cols], tex[rows, cols]
    for hv in np.unique(hgt).tolist():
        sel = hgt == hv
        r, c, m, t = rows[sel], cols[sel], roof_m[sel], roof_t[sel]
        dc, dr = view.lean_px(float(hv))
        n = int(math.ceil(math.hypot(dc, dr)))
        for k in range(n + 1):
            f = min(k / max(n, 1), 1.0)
            rr, cc = np.round(r + f * dr).astype(np.intp), np.round(c + f * dc).astype(np.intp)
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            mat[rr[ok], cc[ok]] = m[ok]
            out_tex[rr[ok], cc[ok]] = (t[ok] if k == n else WALL_FACTOR * t[ok])
    return mat, out_tex


def render_hr(ls: Landscape, tex: np.ndarray, date: dt.date,
              view: HrView | None = None) -> np.ndarray:
    """uint16 (4, rows, cols) reflectance x 10000 on the 1 m grid, bands ``SR_BANDS``
    (R G B NIR); water bodies in the same variant colours as the Sentinel-2 scenes;
    buildings leaning as seen from ``view`` (:class:`HrView` defaults when None).

    ISA objects carry the same brightness factor and spectral tilt as in the Sentinel-2
    scenes (:func:`~jointseg.simulate.variability.isa_variability`, keyed on the
    scene's content), carried with their roofs when buildings lean."""
    view = view or HrView()
    factor, tilt = isa_variability(ls.material)
    water = with_water_variants(ls.material)
    material, tex = lean(water, tex * factor, ls.height_m, view)
    _, tilt = lean(water, tilt, ls.height_m, view)
    idx = band_index(tuple(SR_FROM_S2[b] for b in SR_BANDS))
    table = spectra_table(date)[:, idx] * 10000.0
    out = np.empty((len(SR_BANDS), *material.shape), dtype=np.uint16)
    for b in range(len(SR_BANDS)):
        shape = 1.0 + tilt * TILT_VECTOR[idx[b]]
        out[b] = np.clip(table[material, b] * tex * shape, 1, 65535)
    return out
