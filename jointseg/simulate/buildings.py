"""Buildings of a simulated region: per-zone jittered lattices of rotated footprints.

Each urban zone with buildings has a :class:`BuildingType` (lattice pitch, footprint
sizes, fill probability, heights, setback, roof materials); the lattice of each district
follows that district's street angle (:mod:`~jointseg.simulate.orientation`). A lattice
slot becomes a building when its footprint plus setback lies on free land (off roads and
water) of that zone. Village houses are not on a lattice: :mod:`~jointseg.simulate.villages`.
Coordinates are pixels of the region's 1 m grid (x = column, y = row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from jointseg.simulate.geometry import rects, rot
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.materials import M
from jointseg.simulate.zones import (
    COMMERCIAL,
    CONSTRUCTION,
    HIGHRISE,
    INDUSTRIAL,
    OLDTOWN,
    PARK,
    RESIDENTIAL,
    VILLAS,
)


@dataclass(frozen=True)
class BuildingType:
    """Lattice parameters of one zone's buildings (metres, storeys -> height_m)."""

    pitch: tuple[float, float]  # lattice spacing along u, v
    size_u: tuple[float, float]
    size_v: tuple[float, float]
    keep: float  # probability that a free lattice slot gets a building
    height_m: tuple[float, float]
    setback_m: float
    roofs: tuple[tuple[str, float], ...]


#: Building lattice per zone.
BUILDINGS: dict[int, BuildingType] = {
    HIGHRISE: BuildingType((62, 62), (20, 35), (18, 42), 0.75, (40, 100), 8,
                           (("roof_concrete", .5), ("roof_bright", .3), ("roof_dark", .2))),
    OLDTOWN: BuildingType((16, 14), (9, 13), (8, 11), 0.85, (6, 15), 2,
                          (("roof_dark", .5), ("roof_concrete", .3), ("roof_red_tile", .2))),
    COMMERCIAL: BuildingType((90, 72), (40, 70), (30, 55), 0.65, (15, 50), 10,
                             (("roof_bright", .5), ("roof_concrete", .4),
                              ("roof_blue_steel", .1))),
    PARK: BuildingType((120, 120), (8, 15), (8, 15), 0.2, (4, 8), 5,
                       (("roof_concrete", .5), ("roof_red_tile", .5))),
    CONSTRUCTION: BuildingType((80, 80), (15, 30), (15, 30), 0.15, (5, 30), 8,
                               (("roof_concrete", 1.0),)),
    RESIDENTIAL: BuildingType((62, 28), (40, 55), (11, 14), 0.85, (18, 33), 6,
                              (("roof_concrete", .4), ("roof_red_tile", .3),
                               ("roof_dark", .3))),
    INDUSTRIAL: BuildingType((110, 80), (50, 95), (25, 65), 0.75, (8, 15), 8,
                             (("roof_blue_steel", .5), ("roof_bright", .3),
                              ("roof_concrete", .2))),
    VILLAS: BuildingType((26, 24), (12, 17), (10, 14), 0.75, (8, 12), 4,
                         (("roof_red_tile", .4), ("roof_dark", .4), ("roof_concrete", .2))),
}


def buildings(zone: np.ndarray, free: np.ndarray, layout: LayoutParams,
              rng: np.random.Generator, district: np.ndarray | None = None,
              street_deg: np.ndarray | None = None,
              ) -> tuple[list[shapely.Polygon], list[int], list[int]]:
    """Buildings on jittered lattices per zone and district, street-aligned.

    Args:
        zone: uint8 (rows, cols) zone codes (:mod:`jointseg.simulate.zones`).
        free: bool (rows, cols), True off roads and water.
        layout: the region's street orientation (used when ``district`` is None).
        rng: random generator.
        district: int16 (rows, cols) district index (``Orientation.raster``) or None.
        street_deg: street angle per district (degrees).

    Returns:
        (footprints in pixel coords, roof material ids, heights in metres 0-255).
    """
    if district is None or street_deg is None:
        district = np.zeros(zone.shape, dtype=np.int16)
        street_deg = np.array([layout.street_angle_deg])
    geoms, mats, heights = [], [], []
    for z, bt in BUILDINGS.items():
        in_zone = zone == z
        if not in_zone.any():
            continue
        for k in np.unique(district[in_zone]).tolist():
            placed = _zone_buildings(zone, free, z, bt, float(street_deg[k]), rng,
                                     in_zone & (district == k))
            if placed is None:
                continue
            polys, roof, hgt = placed
            geoms.extend(polys.tolist())
            mats.extend(int(r) for r in roof)
            heights.extend(int(round(min(v, 255))) for v in hgt)
    return geoms, mats, heights


def _zone_buildings(
    zone: np.ndarray, free: np.ndarray, z: int, bt: BuildingType, angle: float,
    rng: np.random.Generator, where: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(polygons, roof material ids, heights m) of zone ``z``'s buildings with their
    centres in ``where`` (bool), rotated by ``angle`` degrees; None when no slot is kept."""
    c, s = rot(angle)
    x, y = _slots(where, bt.pitch, c, s, rng)
    n = x.size
    if n == 0:
        return None
    pu, pv = bt.pitch
    su = rng.uniform(*bt.size_u, n) / 2
    sv = rng.uniform(*bt.size_v, n) / 2
    # Jitter within the slack of the slot.
    ju = rng.uniform(-1, 1, n) * np.maximum(pu / 2 - su - 1, 0) * 0.8
    jv = rng.uniform(-1, 1, n) * np.maximum(pv / 2 - sv - 1, 0) * 0.8
    x = x + ju * c - jv * s
    y = y + ju * s + jv * c
    keep = rng.random(n) < bt.keep
    keep &= _fits(zone, free, z, bt, x, y, su, sv, c, s)
    if not keep.any():
        return None
    polys = rects(x[keep], y[keep], su[keep], sv[keep], angle)
    names, probs = zip(*bt.roofs, strict=True)
    roof = rng.choice([M[nm] for nm in names], size=polys.size, p=np.array(probs))
    hgt = rng.uniform(*bt.height_m, polys.size)
    return polys, roof, hgt


def _slots(where: np.ndarray, pitch: tuple[float, float], c: float, s: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) px of the lattice slots (pitch along u, v in m; rotation cos ``c``, sin
    ``s`` about the grid centre, random offset) that fall inside the grid in ``where``."""
    h, w = where.shape
    ox, oy = w / 2.0, h / 2.0
    rows, cols = np.nonzero(where.any(1))[0], np.nonzero(where.any(0))[0]
    bx = np.array([cols[0], cols[-1] + 1, cols[0], cols[-1] + 1], dtype=np.float64) - ox
    by = np.array([rows[0], rows[0], rows[-1] + 1, rows[-1] + 1], dtype=np.float64) - oy
    bu, bv = bx * c + by * s, -bx * s + by * c  # bounding box corners in (u, v)
    pu, pv = pitch
    gu = (np.floor(bu.min() / pu) - 1 + np.arange(int((bu.max() - bu.min()) // pu) + 3)) * pu
    gv = (np.floor(bv.min() / pv) - 1 + np.arange(int((bv.max() - bv.min()) // pv) + 3)) * pv
    gu = gu + rng.uniform(0, pu)
    gv = gv + rng.uniform(0, pv)
    uu, vv = np.meshgrid(gu, gv)
    uu, vv = uu.ravel(), vv.ravel()
    x = ox + uu * c - vv * s
    y = oy + uu * s + vv * c
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    x, y = x[inside], y[inside]
    x_i = np.clip(x.astype(np.intp), 0, w - 1)
    y_i = np.clip(y.astype(np.intp), 0, h - 1)
    ok = where[y_i, x_i]
    return x[ok], y[ok]


def _fits(zone: np.ndarray, free: np.ndarray, z: int, bt: BuildingType, x: np.ndarray,
          y: np.ndarray, su: np.ndarray, sv: np.ndarray, c: float, s: float) -> np.ndarray:
    """bool (n,): the setback-expanded footprints (centres x, y px; half sizes su, sv m),
    sampled on a k x k lattice, lie on free land of zone ``z`` or outside the grid."""
    h, w = zone.shape
    k = int(min(8, math.ceil(2 * max(bt.size_u[1], bt.size_v[1]) / 15) + 2))
    t = np.linspace(-1, 1, k)
    tu, tv = np.meshgrid(t, t)
    eu = (su + bt.setback_m)[:, None] * tu.ravel()[None, :]
    ev = (sv + bt.setback_m)[:, None] * tv.ravel()[None, :]
    sx = x[:, None] + eu * c - ev * s
    sy = y[:, None] + eu * s + ev * c
    outside = (sx < 0) | (sx >= w) | (sy < 0) | (sy >= h)
    ri = np.clip(sy.astype(np.intp), 0, h - 1)
    ci = np.clip(sx.astype(np.intp), 0, w - 1)
    return ((free[ri, ci] & (zone[ri, ci] == z)) | outside).all(1)
