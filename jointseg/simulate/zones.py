"""Land use of a simulated region: zones, field parcels and the ground cover under them.

The layout's urbanness ``U`` sets the zone of each street-enclosed block (high-rise
core, old town, commercial, residential slabs, industrial, villas, parks,
construction sites); where ``U`` is low the land is farmland in field parcels, with
villages, and a hill carries forest. Each zone has a ground-cover mix
(:data:`GROUND`). Rasters are (rows, cols) on the region's 1 m grid.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from jointseg.simulate.geometry import rot
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.materials import M
from jointseg.simulate.noise import hash01, smooth_noise, to_uniform

#: Zones: what a piece of land is used for (uint8 codes).
RURAL, HILL, VILLAGE, HIGHRISE, OLDTOWN, COMMERCIAL, PARK, CONSTRUCTION = range(8)
RESIDENTIAL, INDUSTRIAL, VILLAS = 8, 9, 10
ZONE_NAMES = (
    "rural", "hill", "village", "highrise", "oldtown", "commercial", "park",
    "construction", "residential", "industrial", "villas",
)

#: Ground cover per zone, in the order the uniform noise is cut (low u first).
GROUND: dict[int, list[tuple[str, float]]] = {
    HILL: [("bare_soil", 0.05), ("grass", 0.12), ("tree", 0.83)],
    VILLAGE: [("paved", 0.30), ("bare_soil", 0.15), ("grass", 0.20), ("tree", 0.30),
              ("water_pond", 0.05)],
    HIGHRISE: [("paved", 0.45), ("grass", 0.25), ("tree", 0.30)],
    OLDTOWN: [("paved", 0.72), ("grass", 0.08), ("tree", 0.20)],
    COMMERCIAL: [("paved", 0.75), ("grass", 0.10), ("tree", 0.15)],
    PARK: [("paved", 0.08), ("grass", 0.37), ("tree", 0.45), ("water_pond", 0.10)],
    CONSTRUCTION: [("paved", 0.10), ("industrial_ground", 0.10), ("bare_soil", 0.65),
                   ("grass", 0.15)],
    RESIDENTIAL: [("paved", 0.35), ("grass", 0.30), ("tree", 0.35)],
    INDUSTRIAL: [("paved", 0.10), ("industrial_ground", 0.60), ("bare_soil", 0.10),
                 ("grass", 0.12), ("tree", 0.08)],
    VILLAS: [("paved", 0.25), ("grass", 0.40), ("tree", 0.35)],
}

#: Block-type probabilities by the block's mean urbanness.
BLOCK_TYPES = {
    "core": ([HIGHRISE, OLDTOWN, COMMERCIAL, PARK, CONSTRUCTION], [0.40, 0.25, 0.20, 0.10, 0.05]),
    "mid": ([HIGHRISE, RESIDENTIAL, INDUSTRIAL, COMMERCIAL, PARK, CONSTRUCTION, VILLAS],
            [0.15, 0.40, 0.15, 0.05, 0.10, 0.05, 0.10]),
    "fringe": ([RESIDENTIAL, INDUSTRIAL, VILLAS, PARK, CONSTRUCTION],
               [0.25, 0.35, 0.20, 0.05, 0.15]),
}


def zones(shape: tuple[int, int], urb: np.ndarray, hill: np.ndarray, road: np.ndarray,
          water: np.ndarray, villages: list[tuple[float, float, float]],
          rng: np.random.Generator) -> np.ndarray:
    """uint8 zone per 1 m pixel: block types in the city, farmland/hill/village outside.

    Street-enclosed blocks (land off ``road`` and ``water``, uint8 material rasters) get
    a block type drawn from :data:`BLOCK_TYPES` by their mean urbanness ``urb``; low
    urbanness is farmland (hill where the ``hill`` mask is set); ``villages`` (x, y,
    radius) px discs with noisy edges become VILLAGE.
    """
    free = (road == 0) & (water == 0)
    blocks, n = ndimage.label(free)
    zone = np.full(shape, RURAL, dtype=np.uint8)
    if n:
        mean_u = np.asarray(ndimage.mean(urb, blocks, np.arange(1, n + 1)))
        types = np.zeros(n + 1, dtype=np.uint8)
        r = rng.random(n)
        for key, lo, hi in (("core", 0.75, 9), ("mid", 0.55, 0.75), ("fringe", -1, 0.55)):
            sel = (mean_u >= lo) & (mean_u < hi)
            kinds, probs = BLOCK_TYPES[key]
            cum = np.cumsum(probs)
            types[1:][sel] = np.asarray(kinds, dtype=np.uint8)[
                np.minimum(np.searchsorted(cum, r[sel]), len(kinds) - 1)
            ]
        zone = types[blocks]
        zone[blocks == 0] = RURAL
    edge = urb + 0.08 * smooth_noise(shape, 40.0, rng) < 0.4
    zone[edge] = RURAL
    zone[hill & edge] = HILL
    vnoise = smooth_noise(shape, 30.0, rng)
    h, w = shape
    for vx, vy, vr in villages:
        r0, r1 = max(int(vy - 1.4 * vr), 0), min(int(vy + 1.4 * vr) + 1, h)
        c0, c1 = max(int(vx - 1.4 * vr), 0), min(int(vx + 1.4 * vr) + 1, w)
        if r0 >= r1 or c0 >= c1:
            continue
        yy = np.arange(r0, r1)[:, None] + 0.5
        xx = np.arange(c0, c1)[None, :] + 0.5
        inside = np.hypot(xx - vx, yy - vy) < vr * (1 + 0.25 * vnoise[r0:r1, c0:c1])
        sub = zone[r0:r1, c0:c1]
        sub[inside & ((sub == RURAL) | (sub == HILL))] = VILLAGE
    return zone


def parcels(shape: tuple[int, int], layout: LayoutParams, rng: np.random.Generator,
            district: np.ndarray | None = None,
            field_deg: np.ndarray | None = None) -> np.ndarray:
    """int32 (rows, cols) field-parcel ids: strips 25-60 m wide cut into 80-200 m lengths,
    oriented along each district's ``field_deg`` (``district``: int16 index raster), or
    along ``layout.field_angle_deg`` everywhere when ``district`` is None."""
    h, w = shape
    if district is None or field_deg is None:
        district = np.zeros(shape, dtype=np.int16)
        field_deg = np.array([layout.field_angle_deg])
    strip_w = float(rng.uniform(25, 60))
    n_strips = int((8 * h + 8 * w) / strip_w) + 2
    length = rng.uniform(80, 200, n_strips).astype(np.float32)
    shift = rng.uniform(0, 200, n_strips).astype(np.float32)
    out = np.zeros(shape, dtype=np.int32)
    for k in np.unique(district).tolist():
        sel = district == k
        rows, cols = np.nonzero(sel.any(1))[0], np.nonzero(sel.any(0))[0]
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        c, s = rot(float(field_deg[k]))
        ys = np.arange(r0, r1, dtype=np.float32)[:, None]
        xs = np.arange(c0, c1, dtype=np.float32)[None, :]
        u = xs * c + ys * s
        v = -xs * s + ys * c
        strip = np.floor((u + 4 * h + 4 * w) / strip_w).astype(np.int32)
        along = np.floor((v + 4 * h + 4 * w + shift[strip]) / length[strip]).astype(np.int32)
        ids = (strip * 4096 + along) * 61 + k % 61  # distinct parcels per district
        win = sel[r0:r1, c0:c1]
        out[r0:r1, c0:c1][win] = ids[win]
    return out


def ground(zone: np.ndarray, parcel: np.ndarray, shape: tuple[int, int],
           rng: np.random.Generator) -> np.ndarray:
    """uint8 ground material ids under everything else: per-zone mixes (:data:`GROUND`)
    cut from a smooth noise field; farmland gets one crop per ``parcel`` (int32 ids)."""
    u = to_uniform(smooth_noise(shape, 10.0, rng))
    material = np.zeros(shape, dtype=np.uint8)
    for z, mix in GROUND.items():
        sel = zone == z
        if not sel.any():
            continue
        uz = u[sel]
        out = np.full(uz.shape, M[mix[-1][0]], dtype=np.uint8)
        lo = 0.0
        for name, frac in mix:
            hi = lo + frac
            out[(uz >= lo) & (uz < hi)] = M[name]
            lo = hi
        material[sel] = out
    # Farmland: one crop per parcel, grass bunds between parcels, tree copses.
    rural = zone == RURAL
    hp = hash01(parcel[rural], 1)
    crop = np.select(
        [hp < 0.45, hp < 0.80, hp < 0.88, hp < 0.93],
        [M["crop_rice"], M["crop_wheat_rice"], M["grass"], M["bare_soil"]],
        M["tree"],
    ).astype(np.uint8)
    bund = _parcel_edges(parcel)[rural]
    crop[bund] = M["grass"]
    copse = (u[rural] > 0.985)
    crop[copse] = M["tree"]
    material[rural] = crop
    return material


def _parcel_edges(parcel: np.ndarray) -> np.ndarray:
    """True on the 1-2 m wide boundaries between parcels."""
    e = np.zeros(parcel.shape, dtype=bool)
    e[1:, :] |= parcel[1:, :] != parcel[:-1, :]
    e[:, 1:] |= parcel[:, 1:] != parcel[:, :-1]
    return e
