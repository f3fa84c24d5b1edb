"""The 1 m land-cover truth of a simulated region: roads, buildings, ground, water.

The layout is driven by an *urbanness* field ``U`` in [0, 1] (distance to a city
centre, roughened by smooth noise): street-enclosed blocks get a block type from
their mean ``U`` (high-rise core, old town, commercial, residential slabs,
industrial, villas, parks, construction sites); where ``U`` is low the land is
farmland in field parcels with villages, fish ponds and concrete lanes; a hill
area carries forest with a few hamlets on thin winding roads. A river crosses
the region.

Two rasters come out, both on the region's 1 m grid:

* ``material`` (uint8 :data:`MATERIALS` ids): what the spectra are rendered from;
* ``landcover`` (uint8 :data:`CLASSES` codes): the truth classes.

Geometry is built as shapely vectors in pixel coordinates (x = column,
y = row, 1 px = 1 m) and burnt with :func:`rasterio.features.rasterize`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage

from jointseg.simulate.noise import smooth_noise, to_uniform

log = logging.getLogger(__name__)

#: Land-cover truth codes (uint8). ISA = 1-4.
CLASSES: dict[int, str] = {
    0: "nodata",
    1: "road",
    2: "building",
    3: "paved",
    4: "industrial_ground",
    5: "tree",
    6: "grass",
    7: "crop",
    8: "water",
    9: "bare_soil",
}
ISA_CLASSES: tuple[int, ...] = (1, 2, 3, 4)

#: Surface materials (uint8 ids) -> (name, land-cover class).
MATERIALS: dict[int, tuple[str, int]] = {
    1: ("asphalt", 1),
    2: ("concrete_road", 1),
    3: ("roof_concrete", 2),
    4: ("roof_bright", 2),
    5: ("roof_blue_steel", 2),
    6: ("roof_red_tile", 2),
    7: ("roof_dark", 2),
    8: ("paved", 3),
    9: ("industrial_ground", 4),
    10: ("tree", 5),
    11: ("grass", 6),
    12: ("crop_rice", 7),
    13: ("crop_wheat_rice", 7),
    14: ("water_river", 8),
    15: ("bare_soil", 9),
    16: ("water_pond", 8),
}
N_MATERIALS = 17  # ids 0..16
M = {name: mid for mid, (name, _) in MATERIALS.items()}

#: material id -> land-cover class (lookup table).
MATERIAL_TO_CLASS = np.zeros(N_MATERIALS, dtype=np.uint8)
for _mid, (_name, _cls) in MATERIALS.items():
    MATERIAL_TO_CLASS[_mid] = _cls

# Zones (internal): what a piece of land is used for.
RURAL, HILL, VILLAGE, HIGHRISE, OLDTOWN, COMMERCIAL, PARK, CONSTRUCTION = range(8)
RESIDENTIAL, INDUSTRIAL, VILLAS = 8, 9, 10
ZONE_NAMES = (
    "rural", "hill", "village", "highrise", "oldtown", "commercial", "park",
    "construction", "residential", "industrial", "villas",
)

# Ground cover per zone, in the order the uniform noise is cut (low u first).
_GROUND: dict[int, list[tuple[str, float]]] = {
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

# Block-type probabilities by the block's mean urbanness.
_BLOCK_TYPES = {
    "core": ([HIGHRISE, OLDTOWN, COMMERCIAL, PARK, CONSTRUCTION], [0.40, 0.25, 0.20, 0.10, 0.05]),
    "mid": ([HIGHRISE, RESIDENTIAL, INDUSTRIAL, COMMERCIAL, PARK, CONSTRUCTION, VILLAS],
            [0.15, 0.40, 0.15, 0.05, 0.10, 0.05, 0.10]),
    "fringe": ([RESIDENTIAL, INDUSTRIAL, VILLAS, PARK, CONSTRUCTION],
               [0.25, 0.35, 0.20, 0.05, 0.15]),
}


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


_BUILDINGS: dict[int, BuildingType] = {
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
    VILLAGE: BuildingType((15, 13), (9, 12), (8, 10), 0.7, (4, 9), 1.5,
                          (("roof_red_tile", .45), ("roof_dark", .35), ("roof_concrete", .2))),
}


@dataclass(frozen=True)
class LayoutParams:
    """Where the city is and how it is oriented (pixel coords of the 1 m grid).

    Attributes:
        centre_xy: city centre (column, row) on the 1 m grid; may lie outside.
        core_radius_m: e-folding distance of urbanness (m).
        street_angle_deg: orientation of the urban street grid.
        field_angle_deg: orientation of field parcels, lanes and villages.
        hill_dir_deg: direction (from the centre) towards the hill area.
        river: whether a river crosses the region.
    """

    centre_xy: tuple[float, float]
    core_radius_m: float
    street_angle_deg: float
    field_angle_deg: float
    hill_dir_deg: float
    river: bool = True

    @classmethod
    def default(
        cls,
        shape: tuple[int, int],
        rng: np.random.Generator,
        centre_xy: tuple[float, float] | None = None,
        core_radius_m: float | None = None,
        river: bool = True,
    ) -> LayoutParams:
        """City centred on the region (slightly off), radius 0.4 x the region size."""
        h, w = shape
        if centre_xy is None:
            centre_xy = (w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2 + rng.uniform(-0.05, 0.05) * h)
        if core_radius_m is None:
            core_radius_m = 0.4 * min(h, w)
        street = float(rng.uniform(-12, 12))
        return cls(
            centre_xy=(float(centre_xy[0]), float(centre_xy[1])),
            core_radius_m=float(core_radius_m),
            street_angle_deg=street,
            field_angle_deg=street + float(rng.uniform(-25, 25)),
            hill_dir_deg=float(rng.uniform(0, 360)),
            river=river,
        )


@dataclass
class Landscape:
    """The simulated 1 m scene.

    Attributes:
        material: uint8 (rows, cols) material ids (:data:`MATERIALS`).
        landcover: uint8 (rows, cols) class codes (:data:`CLASSES`).
        height_m: uint8 (rows, cols) building height in metres (0 off buildings).
        parcel: int32 (rows, cols) field-parcel / object id (texture variation).
        urbanness: float32 (rows, cols) in [0, 1].
        layout: the parameters used.
    """

    material: np.ndarray
    landcover: np.ndarray
    height_m: np.ndarray
    parcel: np.ndarray
    urbanness: np.ndarray
    layout: LayoutParams

    @property
    def isa(self) -> np.ndarray:
        """uint8 0/1 impervious mask."""
        return np.isin(self.landcover, ISA_CLASSES).astype(np.uint8)


def simulate_landscape(
    shape: tuple[int, int], rng: np.random.Generator, layout: LayoutParams | None = None
) -> Landscape:
    """Build the 1 m land-cover truth of a region of ``shape`` = (rows, cols) metres.

    Args:
        shape: (rows, cols) of the 1 m grid.
        rng: random generator (all randomness comes from it).
        layout: city placement; :meth:`LayoutParams.default` when omitted.
    """
    h, w = shape
    if layout is None:
        layout = LayoutParams.default(shape, rng)
    cx, cy = layout.centre_xy
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5

    # Urbanness: distance decay roughened by smooth noise (scale ~250 m).
    d = np.hypot(xs - cx, ys - cy)
    urb = np.exp(-((d / layout.core_radius_m) ** 1.5))
    urb *= 1.0 + 0.3 * smooth_noise(shape, 250.0, rng)
    np.clip(urb, 0.0, 1.0, out=urb)
    del d

    # Hill: a smooth ridge towards hill_dir, only where it is not urban.
    a = math.radians(layout.hill_dir_deg)
    proj = ((xs - cx) * math.cos(a) + (ys - cy) * math.sin(a)) / max(h, w)
    hill = (2.5 * proj + 0.5 * smooth_noise(shape, 400.0, rng) > 1.0) & (urb < 0.3)
    del proj

    lines = _RoadBuilder(shape, urb, hill, layout, rng)
    lines.arterials()
    lines.streets()
    lines.field_tracks()
    villages = lines.villages()
    lines.hill_roads(villages)

    water = np.zeros(shape, dtype=np.uint8)
    if layout.river:
        _burn(water, [_river(shape, layout, rng)], [M["water_river"]])
    ponds = _ponds(shape, urb, hill, layout, rng)
    if ponds:
        _burn(water, ponds, [M["water_pond"]] * len(ponds))

    road = np.zeros(shape, dtype=np.uint8)
    # Lanes and streets stop at water; arterials bridge it.
    _burn(road, lines.geoms["minor"], lines.values["minor"])
    road[water > 0] = 0
    _burn(road, lines.geoms["arterial"], lines.values["arterial"])

    zone = _zones(shape, urb, hill, road, water, villages, rng)
    parcel = _parcels(shape, layout, rng)
    material = _ground(zone, parcel, shape, rng)
    material = np.where(water > 0, water, material)
    material = np.where(road > 0, road, material)

    free = (road == 0) & (water == 0)
    b_geoms, b_mat, b_h = _buildings(zone, free, layout, rng)
    if b_geoms:
        _burn(material, b_geoms, b_mat)
    height = np.zeros(shape, dtype=np.uint8)
    if b_geoms:
        _burn(height, b_geoms, b_h)
    log.info(
        "landscape %dx%d m: %d road lines, %d villages, %d buildings",
        w, h, len(lines.geoms["minor"]) + len(lines.geoms["arterial"]), len(villages),
        len(b_geoms),
    )
    landcover = MATERIAL_TO_CLASS[material]
    return Landscape(material, landcover, height, parcel, urb, layout)


# ----------------------------------------------------------------------------- helpers


def _burn(out: np.ndarray, geoms: list, values: list) -> None:
    """Rasterise ``geoms`` (pixel coords) into ``out`` in place; later ones win."""
    if len(geoms) == 0:
        return
    rasterize(
        zip(geoms, values, strict=True),
        out=out,
        transform=Affine.identity(),
        all_touched=False,
    )


def _rot(angle_deg: float) -> tuple[float, float]:
    a = math.radians(angle_deg)
    return math.cos(a), math.sin(a)


def _sample(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nearest-pixel samples of ``field`` at pixel coords (clipped to the grid)."""
    r = np.clip(y.astype(np.intp), 0, field.shape[0] - 1)
    c = np.clip(x.astype(np.intp), 0, field.shape[1] - 1)
    return field[r, c]


class _RoadBuilder:
    """Road centre lines (pixel coords) buffered to their widths.

    ``geoms['arterial']`` (20-30 m, asphalt) and ``geoms['minor']`` (streets 8-12 m,
    lanes 3-5 m) with burn values = material ids.
    """

    def __init__(self, shape, urb, hill, layout: LayoutParams, rng: np.random.Generator):
        self.shape, self.urb, self.hill, self.layout, self.rng = shape, urb, hill, layout, rng
        self.geoms: dict[str, list] = {"arterial": [], "minor": []}
        self.values: dict[str, list] = {"arterial": [], "minor": []}
        h, w = shape
        self.half = 0.75 * math.hypot(h, w)
        self.centre = (w / 2.0, h / 2.0)

    def _add(self, kind: str, lines: np.ndarray, widths: np.ndarray, mats: np.ndarray) -> None:
        """Add segments ``lines`` (N, 2, 2) buffered by ``widths`` (N,)."""
        if len(lines) == 0:
            return
        geoms = shapely.buffer(shapely.linestrings(lines), widths / 2.0, cap_style="square")
        self.geoms[kind].extend(geoms.tolist())
        self.values[kind].extend(int(m) for m in mats)

    def _grid_segments(self, angle_deg: float, spacing: float, jitter: float, origin):
        """Segments between consecutive crossings of a jittered rotated grid.

        Returns (segments (N, 2, 2) in pixel coords, line index (N,)).
        """
        c, s = _rot(angle_deg)
        ox, oy = origin
        n = int(self.half // spacing) + 1
        k = np.arange(-n, n + 1, dtype=np.float64)
        pos_u = k * spacing + self.rng.uniform(-jitter, jitter, k.size)
        pos_v = k * spacing + self.rng.uniform(-jitter, jitter, k.size)
        segs, line_id = [], []
        # Lines of constant v (running along u), then lines of constant u.
        for axis, fixed, running in ((0, pos_v, pos_u), (1, pos_u, pos_v)):
            a0, a1 = running[:-1], running[1:]
            for li, f in enumerate(fixed):
                if axis == 0:
                    u = np.stack([a0, a1], 1)
                    v = np.full_like(u, f)
                else:
                    v = np.stack([a0, a1], 1)
                    u = np.full_like(v, f)
                x = ox + u * c - v * s
                y = oy + u * s + v * c
                segs.append(np.stack([x, y], -1))
                line_id.append(np.full(len(a0), axis * 10_000 + li))
        return np.concatenate(segs), np.concatenate(line_id)

    def _inside(self, segs: np.ndarray, margin: float = 0.0) -> np.ndarray:
        h, w = self.shape
        mx = segs[:, :, 0].mean(1)
        my = segs[:, :, 1].mean(1)
        return (mx > -margin) & (mx < w + margin) & (my > -margin) & (my < h + margin)

    def arterials(self) -> None:
        """Arterials (20-30 m) on a ~900 m grid where urban, plus two through roads."""
        rng = self.rng
        spacing = rng.uniform(800, 1000)
        segs, lid = self._grid_segments(
            self.layout.street_angle_deg, spacing / 4, 0.0, self.layout.centre_xy
        )
        # Keep every 4th line; pieces are 1/4 of the spacing long.
        lines = np.unique(lid)
        chosen = lines[(lines % 10_000) % 4 == 0]
        through = rng.choice(chosen, size=min(2, chosen.size), replace=False)
        keep = np.isin(lid, chosen) & self._inside(segs, 200)
        mid_u = _sample(self.urb, segs[:, :, 0].mean(1), segs[:, :, 1].mean(1))
        keep &= (mid_u > 0.22) | np.isin(lid, through)
        segs, lid = segs[keep], lid[keep]
        width_of = {li: rng.choice([20.0, 24.0, 30.0]) for li in np.unique(lid)}
        widths = np.array([width_of[li] for li in lid])
        self._add("arterial", segs, widths, np.full(len(segs), M["asphalt"]))

    def streets(self) -> None:
        """Streets (8-12 m) on a ~170 m grid, segment kept with a probability rising with U."""
        rng = self.rng
        spacing = rng.uniform(150, 200)
        segs, lid = self._grid_segments(
            self.layout.street_angle_deg, spacing, 25.0, self.layout.centre_xy
        )
        keep = self._inside(segs, 100)
        mid_u = _sample(self.urb, segs[:, :, 0].mean(1), segs[:, :, 1].mean(1))
        p = np.clip((mid_u - 0.35) / 0.3, 0.0, 1.0) * 0.92
        keep &= rng.random(len(segs)) < p
        segs, lid = segs[keep], lid[keep]
        width_of = {li: rng.choice([8.0, 10.0, 12.0]) for li in np.unique(lid)}
        widths = np.array([width_of[li] for li in lid])
        self._add("minor", segs, widths, np.full(len(segs), M["asphalt"]))

    def field_tracks(self) -> None:
        """Concrete farm lanes (3-5 m) on a ~350 m grid in the countryside."""
        rng = self.rng
        spacing = rng.uniform(280, 420)
        segs, lid = self._grid_segments(self.layout.field_angle_deg, spacing, 40.0, self.centre)
        keep = self._inside(segs, 100)
        mx, my = segs[:, :, 0].mean(1), segs[:, :, 1].mean(1)
        keep &= (_sample(self.urb, mx, my) < 0.45) & ~_sample(self.hill, mx, my)
        keep &= rng.random(len(segs)) < 0.6
        segs = segs[keep]
        widths = rng.choice([3.0, 4.0, 5.0], size=len(segs))
        mats = np.where(rng.random(len(segs)) < 0.7, M["concrete_road"], M["asphalt"])
        self._add("minor", segs, widths, mats)

    def villages(self) -> list[tuple[float, float, float]]:
        """Village centres (x, y, radius_m) in farmland with their inner lanes and links."""
        rng = self.rng
        h, w = self.shape
        n = rng.poisson(1.3 * h * w / 1e6) + 1
        x = rng.uniform(0, w, n * 3)
        y = rng.uniform(0, h, n * 3)
        ok = (_sample(self.urb, x, y) < 0.33) & ~_sample(self.hill, x, y)
        x, y = x[ok][:n], y[ok][:n]
        out = []
        c, s = _rot(self.layout.field_angle_deg)
        for xi, yi in zip(x, y, strict=True):
            r = float(rng.uniform(60, 140))
            out.append((float(xi), float(yi), r))
            self._village_lanes(xi, yi, r, c, s, rng)
        return out

    def _village_lanes(self, xi, yi, r, c, s, rng) -> None:
        sp = rng.uniform(35, 50)
        k = np.arange(-int(r // sp), int(r // sp) + 1) * sp
        segs = []
        for off in k:
            segs.append([(-r, off), (r, off)])
            segs.append([(off, -r), (off, r)])
        uv = np.array(segs, dtype=np.float64)
        xy = np.stack([xi + uv[..., 0] * c - uv[..., 1] * s, yi + uv[..., 0] * s + uv[..., 1] * c],
                      -1)
        keep = rng.random(len(xy)) < 0.7
        disc = shapely.Point(xi, yi).buffer(r)
        inner = shapely.intersection(shapely.linestrings(xy[keep]), disc)
        inner = inner[~shapely.is_empty(inner)]
        widths = rng.choice([3.0, 3.5, 4.0], size=len(inner))
        geoms = shapely.buffer(inner, widths / 2.0, cap_style="square")
        self.geoms["minor"].extend(geoms.tolist())
        self.values["minor"].extend([M["concrete_road"]] * len(geoms))
        # One or two winding links out of the village.
        for _ in range(rng.integers(1, 3)):
            ang = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(250, 600)
            self._winding(xi, yi, ang, length, rng.choice([3.0, 4.0]), amp=15.0)

    def _winding(self, x0, y0, ang, length, width, amp) -> np.ndarray:
        """A meandering lane from (x0, y0); returns its centre-line points."""
        rng = self.rng
        t = np.linspace(0, length, max(int(length // 10), 4))
        lam = rng.uniform(150, 400)
        wob = amp * np.sin(2 * math.pi * t / lam + rng.uniform(0, 2 * math.pi))
        ca, sa = math.cos(ang), math.sin(ang)
        x = x0 + t * ca - wob * sa
        y = y0 + t * sa + wob * ca
        pts = np.stack([x, y], -1)
        geom = shapely.buffer(shapely.linestrings(pts), width / 2.0, cap_style="round")
        self.geoms["minor"].append(geom)
        self.values["minor"].append(M["concrete_road"])
        return pts

    def hill_roads(self, villages: list) -> None:
        """Thin winding roads (3-4 m) up into the hill, each with a hamlet on it."""
        rng = self.rng
        h, w = self.shape
        ys, xs = np.nonzero(self.hill[::20, ::20])
        if xs.size == 0:
            return
        n = max(1, int(xs.size * 400 / 1e6 * 2))  # ~2 roads per km^2 of hill
        n = min(n, 8)
        for _ in range(n):
            i = rng.integers(xs.size)
            x0, y0 = xs[i] * 20.0, ys[i] * 20.0
            ang = rng.uniform(0, 2 * math.pi)
            pts = self._winding(x0, y0, ang, rng.uniform(500, 1400), rng.choice([3.0, 4.0]),
                                amp=rng.uniform(30, 60))
            j = rng.integers(len(pts) // 3, len(pts))
            hx, hy = pts[j]
            if 0 <= hx < w and 0 <= hy < h:
                villages.append((float(hx), float(hy), float(rng.uniform(30, 50))))


def _river(shape, layout: LayoutParams, rng: np.random.Generator):
    """A meandering river band across the region (width scales with region size)."""
    h, w = shape
    size = min(h, w)
    width = float(np.clip(0.012 * size, 25, 90)) * rng.uniform(0.8, 1.2)
    t = np.linspace(-0.1, 1.1, 200)
    horizontal = rng.random() < 0.5
    base = rng.uniform(0.2, 0.8)
    off = (base + rng.uniform(-0.15, 0.15) * t
           + 0.04 * np.sin(2 * math.pi * t * rng.uniform(1.5, 3) + rng.uniform(0, 6.3))
           + 0.015 * np.sin(2 * math.pi * t * rng.uniform(5, 8) + rng.uniform(0, 6.3)))
    if horizontal:
        pts = np.stack([t * w, off * h], -1)
    else:
        pts = np.stack([off * w, t * h], -1)
    return shapely.buffer(shapely.linestrings(pts), width / 2.0)


def _ponds(shape, urb, hill, layout: LayoutParams, rng: np.random.Generator) -> list:
    """Rectangular fish ponds (20-80 m) in farmland, aligned with the fields."""
    h, w = shape
    n = rng.poisson(6.0 * h * w / 1e6)
    x = rng.uniform(0, w, n)
    y = rng.uniform(0, h, n)
    ok = (_sample(urb, x, y) < 0.3) & ~_sample(hill, x, y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        return []
    a = rng.uniform(30, 80, x.size) / 2
    b = rng.uniform(20, 50, x.size) / 2
    return _rects(x, y, a, b, layout.field_angle_deg).tolist()


def _rects(x, y, half_u, half_v, angle_deg: float) -> np.ndarray:
    """Rotated rectangles (shapely polygons) centred at (x, y) with half sizes."""
    c, s = _rot(angle_deg)
    cu = np.array([-1, 1, 1, -1, -1])[None, :] * half_u[:, None]
    cv = np.array([-1, -1, 1, 1, -1])[None, :] * half_v[:, None]
    px = x[:, None] + cu * c - cv * s
    py = y[:, None] + cu * s + cv * c
    return shapely.polygons(np.stack([px, py], -1))


def _zones(shape, urb, hill, road, water, villages, rng: np.random.Generator) -> np.ndarray:
    """Zone per pixel: block types in the city, farmland/hill/village outside."""
    free = (road == 0) & (water == 0)
    blocks, n = ndimage.label(free)
    zone = np.full(shape, RURAL, dtype=np.uint8)
    if n:
        mean_u = np.asarray(ndimage.mean(urb, blocks, np.arange(1, n + 1)))
        types = np.zeros(n + 1, dtype=np.uint8)
        r = rng.random(n)
        for key, lo, hi in (("core", 0.75, 9), ("mid", 0.55, 0.75), ("fringe", -1, 0.55)):
            sel = (mean_u >= lo) & (mean_u < hi)
            kinds, probs = _BLOCK_TYPES[key]
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


def _parcels(shape, layout: LayoutParams, rng: np.random.Generator) -> np.ndarray:
    """Field-parcel ids (int32): strips 25-60 m wide cut into 80-200 m lengths."""
    h, w = shape
    c, s = _rot(layout.field_angle_deg)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    u = xs * c + ys * s
    v = -xs * s + ys * c
    strip_w = float(rng.uniform(25, 60))
    strip = np.floor((u + 4 * h + 4 * w) / strip_w).astype(np.int32)
    n_strips = int(strip.max()) + 1
    length = rng.uniform(80, 200, n_strips).astype(np.float32)
    shift = rng.uniform(0, 200, n_strips).astype(np.float32)
    along = np.floor((v + 4 * h + 4 * w + shift[strip]) / length[strip]).astype(np.int32)
    return strip * 4096 + along


def _hash01(ids: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random uniform [0, 1) per integer id (float32)."""
    x = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt * 7919 + 1))
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(32)
    return ((x >> np.uint64(40)).astype(np.float64) / float(1 << 24)).astype(np.float32)


def _ground(zone: np.ndarray, parcel: np.ndarray, shape, rng: np.random.Generator) -> np.ndarray:
    """Ground material under everything else: zone mixes cut from a smooth noise field."""
    u = to_uniform(smooth_noise(shape, 10.0, rng))
    material = np.zeros(shape, dtype=np.uint8)
    for z, mix in _GROUND.items():
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
    hp = _hash01(parcel[rural], 1)
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


def _buildings(zone, free, layout: LayoutParams, rng: np.random.Generator):
    """Buildings on jittered lattices per zone; a slot is used when its footprint
    plus setback lies on free land of that zone. Returns (geoms, materials, heights)."""
    h, w = zone.shape
    geoms, mats, heights = [], [], []
    half = 0.75 * math.hypot(h, w)
    ox, oy = w / 2.0, h / 2.0
    for z, bt in _BUILDINGS.items():
        if not (zone == z).any():
            continue
        angle = layout.field_angle_deg if z == VILLAGE else layout.street_angle_deg
        c, s = _rot(angle)
        pu, pv = bt.pitch
        gu = np.arange(-half, half, pu) + rng.uniform(0, pu)
        gv = np.arange(-half, half, pv) + rng.uniform(0, pv)
        uu, vv = np.meshgrid(gu, gv)
        uu, vv = uu.ravel(), vv.ravel()
        x = ox + uu * c - vv * s
        y = oy + uu * s + vv * c
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        x, y = x[inside], y[inside]
        x_i = np.clip(x.astype(np.intp), 0, w - 1)
        y_i = np.clip(y.astype(np.intp), 0, h - 1)
        ok = zone[y_i, x_i] == z
        x, y = x[ok], y[ok]
        n = x.size
        if n == 0:
            continue
        su = rng.uniform(*bt.size_u, n) / 2
        sv = rng.uniform(*bt.size_v, n) / 2
        # Jitter within the slack of the slot.
        ju = rng.uniform(-1, 1, n) * np.maximum(pu / 2 - su - 1, 0) * 0.8
        jv = rng.uniform(-1, 1, n) * np.maximum(pv / 2 - sv - 1, 0) * 0.8
        x = x + ju * c - jv * s
        y = y + ju * s + jv * c
        keep = rng.random(n) < bt.keep
        # Sample the setback-expanded footprint on a k x k grid.
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
        fits = ((free[ri, ci] & (zone[ri, ci] == z)) | outside).all(1)
        keep &= fits
        if not keep.any():
            continue
        polys = _rects(x[keep], y[keep], su[keep], sv[keep], angle)
        names, probs = zip(*bt.roofs, strict=True)
        roof = rng.choice([M[nm] for nm in names], size=polys.size, p=np.array(probs))
        hgt = rng.uniform(*bt.height_m, polys.size)
        geoms.extend(polys.tolist())
        mats.extend(int(r) for r in roof)
        heights.extend(int(round(min(v, 255))) for v in hgt)
    return geoms, mats, heights
