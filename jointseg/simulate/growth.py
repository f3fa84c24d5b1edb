"""Urban growth between epochs of a SIMULATED region: one landscape, many years.

The base landscape (:func:`~jointseg.simulate.landcover.simulate_landscape`) is the
region in :data:`BASE_YEAR`. :func:`plan_growth` adds *events* on top of it, each with a
year: new industrial plots and housing compounds on former farmland at the urban fringe
(bare soil while under construction, one or two years before they are done), new roads
across the fields, and rarely a demolished building (bare soil from its year on). The
events are rasterised once into edit rasters on the 1 m grid; :func:`landscape_in` applies
those whose year has come, so any year is one cheap masked copy and every year shares one
grid. Coordinates are pixels of the region's 1 m grid (x = column, y = row, 1 px = 1 m).
Everything is deterministic given the generator.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import shapely

from jointseg.simulate.geometry import burn, rects, rot
from jointseg.simulate.landcover import Landscape
from jointseg.simulate.materials import ISA_CLASSES, MATERIAL_TO_CLASS, M

#: The year the base landscape shows; events fall in (BASE_YEAR, LAST_YEAR].
BASE_YEAR = 2017
LAST_YEAR = 2023
#: Class codes growth may build on: grass, crop, bare soil.
FARMLAND = (6, 7, 9)
_NEVER = np.int16(9999)
_PARCEL0 = 2_000_000_000  # parcel ids of growth plots (apart from the base parcels)


@dataclass
class Growth:
    """Edit rasters of the growth events (all on the region's 1 m grid).

    Attributes:
        event: int16 (rows, cols) event number (0 = untouched).
        material: uint8 (rows, cols) material once the event is done.
        height_m: uint8 (rows, cols) building height once done (m).
        start: int16 (n_events + 1,) year the plot is cleared to bare soil (index 0: never).
        done: int16 (n_events + 1,) year the event is finished (index 0: never).
        kinds: kind of each event (index 0: ``""``): industrial | housing | road | demolition.
    """

    event: np.ndarray
    material: np.ndarray
    height_m: np.ndarray
    start: np.ndarray
    done: np.ndarray
    kinds: list[str]

    def summary(self) -> dict[str, dict[str, int]]:
        """Event counts per kind and per year done (for ``simulation.json``)."""
        out: dict[str, dict[str, int]] = {}
        for k, y in zip(self.kinds[1:], self.done[1:].tolist(), strict=True):
            out.setdefault(k, {}).setdefault(str(y), 0)
            out[k][str(y)] += 1
        return out


def landscape_in(ls: Landscape, growth: Growth, year: int) -> Landscape:
    """The landscape of ``year``: ``ls`` (the :data:`BASE_YEAR` state) with the events
    done by ``year`` applied and those under construction shown as bare soil."""
    done = growth.done[growth.event] <= year
    building = (growth.start[growth.event] <= year) & ~done
    material = np.where(done, growth.material, ls.material)
    material[building] = M["bare_soil"]
    height = np.where(done, growth.height_m, ls.height_m)
    height[building] = 0
    parcel = np.where(growth.event > 0, _PARCEL0 + growth.event.astype(np.int64), ls.parcel)
    return dataclasses.replace(ls, material=material, landcover=MATERIAL_TO_CLASS[material],
                               height_m=height, parcel=parcel.astype(ls.parcel.dtype))


def plan_growth(ls: Landscape, rng: np.random.Generator, n_plots: int = 60, n_roads: int = 6,
                demolish_fraction: float = 0.004, last_year: int = LAST_YEAR) -> Growth:
    """Place the growth events of (BASE_YEAR, ``last_year``] on ``ls``.

    Args:
        n_plots: industrial plots + housing compounds to place (fewer when the fringe
            farmland runs out).
        n_roads: new road segments across farmland.
        demolish_fraction: share of the base buildings demolished over the period.
    """
    shape = ls.material.shape
    farm = np.isin(MATERIAL_TO_CLASS[ls.material], FARMLAND)
    fringe = farm & (ls.urbanness > 0.05) & (ls.urbanness < 0.7)
    blocked = np.isin(MATERIAL_TO_CLASS[ls.material], (2, 8)) | (ls.height_m > 0)
    spots = np.argwhere(fringe[::25, ::25])[:, ::-1] * 25.0  # (x, y) px, one per 25 m
    years = np.arange(BASE_YEAR + 1, last_year + 1)
    geoms: list = []  # (geometry, event, material, height) in burn order
    start, done, kinds = [_NEVER], [_NEVER], [""]

    def add(kind: str, y_start: int, y_done: int, parts: list) -> None:
        kinds.append(kind)
        start.append(np.int16(y_start))
        done.append(np.int16(y_done))
        geoms.extend((g, len(kinds) - 1, m, h) for g, m, h in parts)

    for parts in _roads(ls, fringe, n_roads, rng):
        y = int(rng.choice(years))
        add("road", y, y, parts)
    placed: list[shapely.Polygon] = []
    for _ in range(40 * n_plots if len(spots) else 0):
        if len(placed) >= n_plots:
            break
        plot = _plot(ls, spots, farm, blocked, placed, rng)
        if plot is None:
            continue
        kind, poly, parts = plot
        placed.append(poly.buffer(15))
        y = int(rng.choice(years))
        add(kind, max(BASE_YEAR + 1, y - int(rng.integers(1, 3))), y, parts)
    for poly in _demolitions(ls, demolish_fraction, rng):
        y = int(rng.choice(years))
        add("demolition", y, y, [(poly, M["bare_soil"], 0)])
    return _rasterise(shape, ls, geoms, start, done, kinds)


def _rasterise(shape: tuple[int, int], ls: Landscape, geoms: list, start: list, done: list,
               kinds: list[str]) -> Growth:
    """Burn the events' parts into the edit rasters; roads keep off water and buildings."""
    event = np.zeros(shape, dtype=np.int16)
    material = np.zeros(shape, dtype=np.uint8)
    height = np.zeros(shape, dtype=np.uint8)
    if geoms:
        g, e, m, h = zip(*geoms, strict=True)
        burn(event, list(g), list(e))
        burn(material, list(g), list(m))
        burn(height, list(g), list(h))
    # Roads keep off water and buildings; plots keep the lanes they swallow (only a
    # demolition turns impervious land pervious).
    base = MATERIAL_TO_CLASS[ls.material]
    is_road = np.array([k == "road" for k in kinds])
    is_demolition = np.array([k == "demolition" for k in kinds])
    event[is_road[event] & (np.isin(base, (2, 8)) | (ls.height_m > 0))] = 0
    lost = np.isin(base, ISA_CLASSES) & ~np.isin(MATERIAL_TO_CLASS[material], ISA_CLASSES)
    event[lost & ~is_demolition[event]] = 0
    return Growth(event, material, height, np.array(start, np.int16), np.array(done, np.int16),
                  kinds)


def _roads(ls: Landscape, fringe: np.ndarray, n: int, rng: np.random.Generator) -> list[list]:
    """``n`` straight road segments (12-20 m asphalt, 400-1500 m, street-aligned) from
    random fringe farmland points; each a list of (geometry, material, height) parts."""
    ys, xs = np.nonzero(fringe[::25, ::25])
    out = []
    if ys.size == 0:
        return out
    for i in rng.choice(ys.size, size=min(n, ys.size), replace=False):
        x, y = xs[i] * 25.0, ys[i] * 25.0
        angle = ls.layout.street_angle_deg + (90.0 if rng.random() < 0.5 else 0.0)
        c, s = rot(angle)
        half = rng.uniform(200, 750)
        line = shapely.LineString([(x - half * c, y - half * s), (x + half * c, y + half * s)])
        width = float(rng.uniform(12, 20))
        out.append([(line.buffer(width / 2, cap_style="flat"), M["asphalt"], 0)])
    return out


def _plot(ls: Landscape, spots: np.ndarray, farm: np.ndarray, blocked: np.ndarray,
          placed: list, rng: np.random.Generator) -> tuple[str, shapely.Polygon, list] | None:
    """One industrial plot or housing compound centred on a random one of ``spots``
    ((n, 2) x, y px), mostly on farmland, off ``blocked`` land and clear of ``placed``
    (None when it does not fit): (kind, outline, parts)."""
    x, y = spots[rng.integers(len(spots))] + rng.uniform(0, 25, 2)
    industrial = rng.random() < 0.55
    su = rng.uniform(45, 110) if industrial else rng.uniform(60, 120)
    sv = rng.uniform(35, 80) if industrial else rng.uniform(45, 95)
    angle = ls.layout.street_angle_deg
    poly = _rect(x, y, su, sv, angle)
    if not _fits(farm, blocked, x, y, su, sv, angle) or any(poly.intersects(p) for p in placed):
        return None
    parts = (_industrial if industrial else _housing)(x, y, su, sv, angle, rng)
    return ("industrial" if industrial else "housing"), poly, parts


def _fits(farm: np.ndarray, blocked: np.ndarray, x: float, y: float, su: float, sv: float,
          angle: float) -> bool:
    """Whether a 9 x 9 lattice over the rotated rectangle (centre x, y; half sizes su, sv)
    lies inside the grid, >= 85 % on ``farm`` and nowhere on ``blocked``."""
    h, w = farm.shape
    c, s = rot(angle)
    t = np.linspace(-1, 1, 9)
    tu, tv = np.meshgrid(t * su, t * sv)
    px, py = x + tu * c - tv * s, y + tu * s + tv * c
    if (px < 0).any() or (py < 0).any() or (px >= w).any() or (py >= h).any():
        return False
    r, c_ = py.astype(np.intp), px.astype(np.intp)
    return bool(farm[r, c_].mean() >= 0.85 and not blocked[r, c_].any())


def _industrial(x: float, y: float, su: float, sv: float, angle: float,
                rng: np.random.Generator) -> list:
    """Industrial ground with 1-3 large steel or bright sheds (8-15 m) and an access road."""
    parts = [(_rect(x, y, su, sv, angle), M["industrial_ground"], 0)]
    n = int(rng.integers(1, 4))
    c, s = rot(angle)
    for k in range(n):
        u = -su + (2 * k + 1) * su / n
        bu, bv = 0.8 * su / n, 0.55 * sv
        roof = M["roof_blue_steel"] if rng.random() < 0.6 else M["roof_bright"]
        parts.append((_rect(x + u * c, y + u * s, bu, bv, angle), roof,
                      int(rng.uniform(8, 15))))
    edge = sv - 6  # an access road along the plot's long side, inside it
    parts.append((_rect(x - edge * s, y + edge * c, su, 6, angle), M["asphalt"], 0))
    return parts


def _housing(x: float, y: float, su: float, sv: float, angle: float,
             rng: np.random.Generator) -> list:
    """A housing compound: grass and trees, a paved ring road and rows of slab blocks
    (40-50 x 12 m, 18-33 m high) on a 62 x 30 m lattice."""
    parts = [(_rect(x, y, su, sv, angle), M["grass"], 0),
             (_rect(x, y, su, sv, angle).difference(_rect(x, y, su - 7, sv - 7, angle)),
              M["paved"], 0)]
    c, s = rot(angle)
    roof = int(rng.choice([M["roof_concrete"], M["roof_red_tile"], M["roof_dark"]]))
    nu, nv = max(1, int((2 * su - 20) // 62)), max(1, int((2 * sv - 20) // 30))
    for i in range(nu):
        for j in range(nv):
            u = -su + 10 + (i + 0.5) * (2 * su - 20) / nu
            v = -sv + 10 + (j + 0.5) * (2 * sv - 20) / nv
            parts.append((_rect(x + u * c - v * s, y + u * s + v * c, 22, 6, angle), roof,
                          int(rng.uniform(18, 33))))
    return parts


def _rect(x: float, y: float, su: float, sv: float, angle: float) -> shapely.Polygon:
    """A rotated rectangle (centre x, y px; half sizes su, sv m)."""
    return rects(np.array([x]), np.array([y]), np.array([su]), np.array([sv]), angle)[0]


def _demolitions(ls: Landscape, fraction: float, rng: np.random.Generator) -> list:
    """Footprints of the base buildings to demolish (``fraction`` of them, at least one
    when there are any), from ``ls.vectors``."""
    b = ls.vectors.buildings if ls.vectors is not None else []
    n = min(len(b), max(1, int(math.ceil(fraction * len(b))))) if b else 0
    return [b[i] for i in sorted(rng.choice(len(b), size=n, replace=False))] if n else []
