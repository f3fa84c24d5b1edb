"""Road centre lines of a simulated region, buffered to their widths (pixel coords).

Arterials (20-30 m, asphalt) on a ~900 m grid where urban, streets (8-12 m) on a
~170 m grid kept with a probability rising with urbanness, concrete farm lanes
(3-5 m) in the countryside, villages with their curved inner lanes and a meandering
link to the nearest road, and thin winding roads into the hill with a hamlet on each.
Streets and farm lanes follow the angles of their district
(:mod:`~jointseg.simulate.orientation`), so a region has many street bearings.
Village lanes are 3-4.5 m wide (JTG B01-2014, Technical Standard of Highway
Engineering: a class-IV single-lane road has a 3.5 m carriageway; the Ministry of
Transport's rural-road guidance asks >= 3.5 m for roads to administrative villages;
inner lanes are often narrower). Coordinates are pixels of the region's 1 m grid
(x = column, y = row, 1 px = 1 m).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
import shapely.ops

from jointseg.simulate.geometry import rot, sample
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.materials import M
from jointseg.simulate.orientation import Orientation
from jointseg.simulate.vectors import HIGHWAY_OF, RoadLine

#: Villages per km^2 of the region (an assumption kept from the earlier simulator, not
#: taken from a source; only farmland draws keep them).
VILLAGES_PER_KM2 = 1.3
#: Village inner lanes and links to the road network (m), see the module docstring.
VILLAGE_LANE_WIDTHS_M = (3.0, 3.5, 4.0, 4.5)
LINK_WIDTHS_M = (3.5, 4.0, 4.5)
#: Meander of village lanes: heading random walk (rad per sqrt(m)) and step (m).
HEADING_SD = 0.035
STEP_M = 4.0


def meander(x0: float, y0: float, heading: float, length: float,
            rng: np.random.Generator) -> np.ndarray:
    """(n, 2) px points of a smooth random walk from (x0, y0) at ``heading`` rad,
    ``length`` px long: the heading drifts by an AR(1)-smoothed Gaussian walk."""
    n = max(int(length / STEP_M), 3)
    turn = rng.normal(0.0, HEADING_SD * math.sqrt(STEP_M), n)
    rate = np.zeros(n)
    for i in range(1, n):  # smoothed turning rate: curves, not zig-zags
        rate[i] = 0.85 * rate[i - 1] + turn[i]
    ang = heading + np.cumsum(rate) * 0.5
    x = x0 + np.concatenate([[0.0], np.cumsum(STEP_M * np.cos(ang[:-1]))])
    y = y0 + np.concatenate([[0.0], np.cumsum(STEP_M * np.sin(ang[:-1]))])
    return np.stack([x, y], -1)


def bridge(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) px points from ``a`` to ``b`` (both (2,) px) bending sideways by a smooth
    random bridge (zero at both ends, amplitude ~8 % of the length)."""
    length = float(np.hypot(*(b - a)))
    n = max(int(length / STEP_M), 4)
    t = np.linspace(0.0, 1.0, n)
    k = np.arange(1, 4)
    coef = rng.normal(0.0, 0.08 * length, 3) / k
    side = (coef[None, :] * np.sin(np.pi * t[:, None] * k[None, :])).sum(1)
    d = (b - a) / max(length, 1e-9)
    normal = np.array([-d[1], d[0]])
    return a[None, :] + t[:, None] * (b - a)[None, :] + side[:, None] * normal[None, :]


class RoadBuilder:
    """Road centre lines (pixel coords) buffered to their widths.

    ``geoms['arterial']`` (20-30 m, asphalt) and ``geoms['minor']`` (streets 8-12 m,
    lanes 3-5 m) with burn values = material ids; ``lines`` keeps each centre line with
    its width and OSM class (:class:`~jointseg.simulate.vectors.RoadLine`).
    """

    def __init__(self, shape: tuple[int, int], urb: np.ndarray, hill: np.ndarray,
                 layout: LayoutParams, rng: np.random.Generator,
                 orient: Orientation | None = None) -> None:
        """``urb``: float32 urbanness, ``hill``: bool mask, both ``shape`` on the 1 m grid;
        ``orient``: district angles (one district at the layout's angles when None)."""
        self.shape, self.urb, self.hill, self.layout, self.rng = shape, urb, hill, layout, rng
        h, w = shape
        if orient is None:
            orient = Orientation(np.array([[w / 2.0, h / 2.0]]),
                                 np.array([layout.street_angle_deg]),
                                 np.array([layout.field_angle_deg]),
                                 (shapely.box(-4 * w, -4 * h, 5 * w, 5 * h),))
        self.orient = orient
        self.geoms: dict[str, list] = {"arterial": [], "minor": []}
        self.values: dict[str, list] = {"arterial": [], "minor": []}
        self.lines: list[RoadLine] = []
        h, w = shape
        self.half = 0.75 * math.hypot(h, w)
        self.centre = (w / 2.0, h / 2.0)

    def _add(self, kind: str, lines: np.ndarray, widths: np.ndarray, mats: np.ndarray,
             road_type: str) -> None:
        """Add segments ``lines`` (N, 2, 2) buffered by ``widths`` (N,); ``road_type``
        (a :data:`~jointseg.simulate.vectors.HIGHWAY_OF` key, ``arterial`` + ``_<width>``)."""
        if len(lines) == 0:
            return
        self._add_geoms(kind, shapely.linestrings(lines), widths, mats, road_type)

    def _add_geoms(self, kind: str, centre: np.ndarray, widths: np.ndarray, mats: np.ndarray,
                   road_type: str) -> None:
        """Add centre lines ``centre`` (shapely array, px) buffered by ``widths`` (N,)."""
        if len(centre) == 0:
            return
        cap = "round" if road_type in ("village_lane", "link") else "square"
        for g, wd in zip(centre.tolist(), widths.tolist(), strict=True):
            rt = f"{road_type}_{int(wd)}" if road_type == "arterial" else road_type
            self.lines.append(RoadLine(g, float(wd), HIGHWAY_OF[rt], cap, kind == "arterial"))
        geoms = shapely.buffer(centre, widths / 2.0, cap_style=cap)
        self.geoms[kind].extend(geoms.tolist())
        self.values[kind].extend(int(m) for m in mats)

    def _grid_segments(self, angle_deg: float, spacing: float, jitter: float,
                       origin: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Segments between consecutive crossings of a jittered rotated grid.

        Returns (segments (N, 2, 2) in pixel coords, line index (N,)).
        """
        c, s = rot(angle_deg)
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
        """bool (N,): segment midpoints within the grid grown by ``margin`` px."""
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
        mid_u = sample(self.urb, segs[:, :, 0].mean(1), segs[:, :, 1].mean(1))
        keep &= (mid_u > 0.22) | np.isin(lid, through)
        segs, lid = segs[keep], lid[keep]
        width_of = {li: rng.choice([20.0, 24.0, 30.0]) for li in np.unique(lid)}
        widths = np.array([width_of[li] for li in lid])
        self._add("arterial", segs, widths, np.full(len(segs), M["asphalt"]), "arterial")

    def _district_grids(self, angles: np.ndarray, spacing: float, jitter: float,
                        origin: tuple[float, float], margin: float
                        ) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Per district ``k`` whose cell meets the grid grown by ``margin``: the segments
        (N, 2, 2) px and line ids of a jittered grid at ``angles[k]``, near the cell."""
        h, w = self.shape
        frame = shapely.box(-margin, -margin, w + margin, h + margin)
        out = []
        for k, cell in enumerate(self.orient.cells):
            if not cell.intersects(frame):
                continue
            segs, lid = self._grid_segments(float(angles[k]), spacing, jitter, origin)
            x0, y0, x1, y1 = cell.bounds
            mx, my = segs[:, :, 0].mean(1), segs[:, :, 1].mean(1)
            near = ((mx > x0 - spacing) & (mx < x1 + spacing) & (my > y0 - spacing)
                    & (my < y1 + spacing) & self._inside(segs, margin))
            out.append((k, segs[near], lid[near]))
        return out

    def _clip(self, k: int, segs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(centre lines clipped to district ``k``'s cell, bool (N,) which segments stay)."""
        cell = self.orient.cells[k]
        lines = shapely.linestrings(segs) if len(segs) else np.array([], dtype=object)
        meet = shapely.intersects(lines, cell)
        clipped = shapely.intersection(lines[meet], cell)
        ok = ~shapely.is_empty(clipped) & (shapely.length(clipped) > 1.0)
        stay = meet.copy()
        stay[meet] = ok
        return clipped[ok], stay

    def streets(self) -> None:
        """Streets (8-12 m) on a ~170 m grid per district (its angle), each segment kept
        with a probability rising with U."""
        rng = self.rng
        spacing = rng.uniform(150, 200)
        for k, segs, lid in self._district_grids(self.orient.street_deg, spacing, 25.0,
                                                 self.layout.centre_xy, 100):
            mid_u = sample(self.urb, segs[:, :, 0].mean(1), segs[:, :, 1].mean(1))
            p = np.clip((mid_u - 0.35) / 0.3, 0.0, 1.0) * 0.92
            keep = rng.random(len(segs)) < p
            geoms, stay = self._clip(k, segs[keep])
            lid = lid[keep][stay]
            width_of = {li: rng.choice([8.0, 10.0, 12.0]) for li in np.unique(lid)}
            widths = np.array([width_of[li] for li in lid])
            self._add_geoms("minor", geoms, widths, np.full(len(geoms), M["asphalt"]), "street")

    def field_tracks(self) -> None:
        """Concrete farm lanes (3-5 m) on a ~350 m grid per district (its field angle) in
        the countryside."""
        rng = self.rng
        spacing = rng.uniform(280, 420)
        for k, segs, _ in self._district_grids(self.orient.field_deg, spacing, 40.0,
                                               self.centre, 100):
            mx, my = segs[:, :, 0].mean(1), segs[:, :, 1].mean(1)
            keep = (sample(self.urb, mx, my) < 0.45) & ~sample(self.hill, mx, my)
            keep &= rng.random(len(segs)) < 0.6
            geoms, _ = self._clip(k, segs[keep])
            widths = rng.choice([3.0, 4.0, 5.0], size=len(geoms))
            mats = np.where(rng.random(len(geoms)) < 0.7, M["concrete_road"], M["asphalt"])
            self._add_geoms("minor", geoms, widths, mats, "field_track")

    def villages(self) -> list[tuple[float, float, float]]:
        """Village centres (x, y, radius_m) in farmland with their curved inner lanes and a
        meandering link to the nearest road (call after the other road networks)."""
        rng = self.rng
        h, w = self.shape
        n = rng.poisson(VILLAGES_PER_KM2 * h * w / 1e6) + 1
        x = rng.uniform(0, w, n * 3)
        y = rng.uniform(0, h, n * 3)
        ok = (sample(self.urb, x, y) < 0.33) & ~sample(self.hill, x, y)
        x, y = x[ok][:n], y[ok][:n]
        network = shapely.union_all([ln.geom for ln in self.lines]) if self.lines else None
        out = []
        for xi, yi in zip(x, y, strict=True):
            r = float(rng.uniform(60, 140))
            out.append((float(xi), float(yi), r))
            self._village_lanes(xi, yi, r, rng)
            self._village_link(xi, yi, r, network, rng)
        return out

    def _village_lanes(self, xi: float, yi: float, r: float, rng: np.random.Generator) -> None:
        """2-5 curved lanes (3-4.5 m) across the village disc of radius ``r`` px at
        (``xi``, ``yi``): smooth random walks (heading noise, :func:`meander`)."""
        n = 2 + int(rng.poisson(r / 60))
        for _ in range(n):
            a = rng.uniform(0, 2 * math.pi)
            d = r * rng.uniform(0.7, 1.1)
            x0, y0 = xi + d * math.cos(a), yi + d * math.sin(a)
            tx, ty = xi + rng.normal(0, r / 3), yi + rng.normal(0, r / 3)
            head = math.atan2(ty - y0, tx - x0)
            pts = meander(x0, y0, head, 2 * d * rng.uniform(0.8, 1.1), rng)
            line = shapely.intersection(shapely.linestrings(pts),
                                        shapely.Point(xi, yi).buffer(1.2 * r))
            if line.is_empty or line.length < 20:
                continue
            width = float(rng.choice(VILLAGE_LANE_WIDTHS_M))
            self._add_geoms("minor", np.array([line]), np.array([width]),
                            np.array([M["concrete_road"]]), "village_lane")

    def _village_link(self, xi: float, yi: float, r: float, network: shapely.Geometry | None,
                      rng: np.random.Generator) -> None:
        """A meandering link (3.5-4.5 m) from the village centre to the nearest point of
        ``network`` (the roads so far) within 900 m, else a winding road outwards."""
        width = float(rng.choice(LINK_WIDTHS_M))
        if network is not None and not network.is_empty:
            _, near = shapely.ops.nearest_points(shapely.Point(xi, yi), network)
            length = math.hypot(near.x - xi, near.y - yi)
            if r < length < 900:
                pts = bridge(np.array([xi, yi]), np.array([near.x, near.y]), rng)
                centre = shapely.linestrings(pts)
                self._add_geoms("minor", np.array([centre]), np.array([width]),
                                np.array([M["concrete_road"]]), "link")
                return
        self._winding(xi, yi, rng.uniform(0, 2 * math.pi), rng.uniform(250, 600), width,
                      amp=15.0, road_type="link")

    def _winding(self, x0: float, y0: float, ang: float, length: float, width: float,
                 amp: float, road_type: str) -> np.ndarray:
        """A meandering lane from (x0, y0) px heading ``ang`` radians, ``length``,
        ``width`` and wobble amplitude ``amp`` in px (``road_type``: link | hill_road);
        returns its (n, 2) centre-line points."""
        rng = self.rng
        t = np.linspace(0, length, max(int(length // 10), 4))
        lam = rng.uniform(150, 400)
        wob = amp * np.sin(2 * math.pi * t / lam + rng.uniform(0, 2 * math.pi))
        ca, sa = math.cos(ang), math.sin(ang)
        x = x0 + t * ca - wob * sa
        y = y0 + t * sa + wob * ca
        pts = np.stack([x, y], -1)
        centre = shapely.linestrings(pts)
        self.lines.append(RoadLine(centre, float(width), HIGHWAY_OF[road_type], "round"))
        geom = shapely.buffer(centre, width / 2.0, cap_style="round")
        self.geoms["minor"].append(geom)
        self.values["minor"].append(M["concrete_road"])
        return pts

    def hill_roads(self, villages: list[tuple[float, float, float]]) -> None:
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
                                amp=rng.uniform(30, 60), road_type="hill_road")
            j = rng.integers(len(pts) // 3, len(pts))
            hx, hy = pts[j]
            if 0 <= hx < w and 0 <= hy < h:
                villages.append((float(hx), float(hy), float(rng.uniform(30, 50))))
