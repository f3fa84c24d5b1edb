"""Road centre lines of a simulated region, buffered to their widths (pixel coords).

Arterials (20-30 m, asphalt) on a ~900 m grid where urban, streets (8-12 m) on a
~170 m grid kept with a probability rising with urbanness, concrete farm lanes
(3-5 m) in the countryside, villages with their inner lanes and winding links, and
thin winding roads into the hill with a hamlet on each. Coordinates are pixels of
the region's 1 m grid (x = column, y = row, 1 px = 1 m).
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from jointseg.simulate.geometry import rot, sample
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.materials import M
from jointseg.simulate.vectors import HIGHWAY_OF, RoadLine


class RoadBuilder:
    """Road centre lines (pixel coords) buffered to their widths.

    ``geoms['arterial']`` (20-30 m, asphalt) and ``geoms['minor']`` (streets 8-12 m,
    lanes 3-5 m) with burn values = material ids; ``lines`` keeps each centre line with
    its width and OSM class (:class:`~jointseg.simulate.vectors.RoadLine`).
    """

    def __init__(self, shape: tuple[int, int], urb: np.ndarray, hill: np.ndarray,
                 layout: LayoutParams, rng: np.random.Generator) -> None:
        """``urb``: float32 urbanness, ``hill``: bool mask, both ``shape`` on the 1 m grid."""
        self.shape, self.urb, self.hill, self.layout, self.rng = shape, urb, hill, layout, rng
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
        centre = shapely.linestrings(lines)
        for g, wd in zip(centre.tolist(), widths.tolist(), strict=True):
            rt = f"{road_type}_{int(wd)}" if road_type == "arterial" else road_type
            self.lines.append(RoadLine(g, float(wd), HIGHWAY_OF[rt], "square", kind == "arterial"))
        geoms = shapely.buffer(centre, widths / 2.0, cap_style="square")
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

    def streets(self) -> None:
        """Streets (8-12 m) on a ~170 m grid, segment kept with a probability rising with U."""
        rng = self.rng
        spacing = rng.uniform(150, 200)
        segs, lid = self._grid_segments(
            self.layout.street_angle_deg, spacing, 25.0, self.layout.centre_xy
        )
        keep = self._inside(segs, 100)
        mid_u = sample(self.urb, segs[:, :, 0].mean(1), segs[:, :, 1].mean(1))
        p = np.clip((mid_u - 0.35) / 0.3, 0.0, 1.0) * 0.92
        keep &= rng.random(len(segs)) < p
        segs, lid = segs[keep], lid[keep]
        width_of = {li: rng.choice([8.0, 10.0, 12.0]) for li in np.unique(lid)}
        widths = np.array([width_of[li] for li in lid])
        self._add("minor", segs, widths, np.full(len(segs), M["asphalt"]), "street")

    def field_tracks(self) -> None:
        """Concrete farm lanes (3-5 m) on a ~350 m grid in the countryside."""
        rng = self.rng
        spacing = rng.uniform(280, 420)
        segs, lid = self._grid_segments(self.layout.field_angle_deg, spacing, 40.0, self.centre)
        keep = self._inside(segs, 100)
        mx, my = segs[:, :, 0].mean(1), segs[:, :, 1].mean(1)
        keep &= (sample(self.urb, mx, my) < 0.45) & ~sample(self.hill, mx, my)
        keep &= rng.random(len(segs)) < 0.6
        segs = segs[keep]
        widths = rng.choice([3.0, 4.0, 5.0], size=len(segs))
        mats = np.where(rng.random(len(segs)) < 0.7, M["concrete_road"], M["asphalt"])
        self._add("minor", segs, widths, mats, "field_track")

    def villages(self) -> list[tuple[float, float, float]]:
        """Village centres (x, y, radius_m) in farmland with their inner lanes and links."""
        rng = self.rng
        h, w = self.shape
        n = rng.poisson(1.3 * h * w / 1e6) + 1
        x = rng.uniform(0, w, n * 3)
        y = rng.uniform(0, h, n * 3)
        ok = (sample(self.urb, x, y) < 0.33) & ~sample(self.hill, x, y)
        x, y = x[ok][:n], y[ok][:n]
        out = []
        c, s = rot(self.layout.field_angle_deg)
        for xi, yi in zip(x, y, strict=True):
            r = float(rng.uniform(60, 140))
            out.append((float(xi), float(yi), r))
            self._village_lanes(xi, yi, r, c, s, rng)
        return out

    def _village_lanes(self, xi: float, yi: float, r: float, c: float, s: float,
                       rng: np.random.Generator) -> None:
        """Lanes (3-4 m) on a rotated grid (cos ``c``, sin ``s``) clipped to the village
        disc of radius ``r`` px at (``xi``, ``yi``), plus one or two winding links out."""
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
        self.lines.extend(RoadLine(g, float(wd), HIGHWAY_OF["village_lane"])
                          for g, wd in zip(inner.tolist(), widths.tolist(), strict=True))
        self.geoms["minor"].extend(geoms.tolist())
        self.values["minor"].extend([M["concrete_road"]] * len(geoms))
        # One or two winding links out of the village.
        for _ in range(rng.integers(1, 3)):
            ang = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(250, 600)
            self._winding(xi, yi, ang, length, rng.choice([3.0, 4.0]), amp=15.0,
                          road_type="link")

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
