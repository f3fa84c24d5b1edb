"""Irregular rural settlements: village houses, their courtyards and sheds, farmhouses.

No lattice. Houses line the village lanes (and any narrow road through a village) at
Poisson gaps, with backyard houses in Matern clusters around random parents; single
farmhouses and pairs stand along farm lanes in the fields. Each house faces its lane or
faces south (the customary orientation of rural houses in China), has a paved or earth
courtyard between it and the lane, and sometimes a shed beside it.

Sizes (metres, m^2): the Land Administration Law of the PRC (art. 62) gives each rural
household one homestead of an area set by its province, about 120-200 m^2 in the eastern
provinces' rules (e.g. Zhejiang: 125 m^2 on cultivated plains, 140 m^2 elsewhere;
Jiangsu and Guangdong set 80-200 m^2 by locality). A house takes most of it: footprints
are drawn from 70-200 m^2, a courtyard 4-9 m deep in front, sheds of 12-45 m^2. Houses
have 1-3 storeys (3-10 m). Coordinates are pixels of the region's 1 m grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from jointseg.simulate.geometry import rects
from jointseg.simulate.materials import M
from jointseg.simulate.vectors import RoadLine
from jointseg.simulate.zones import RURAL, VILLAGE

#: Footprint of a house (m^2), its aspect (long / short side), height (m).
HOUSE_AREA_M2 = (70.0, 200.0)
HOUSE_ASPECT = (1.2, 2.2)
HOUSE_HEIGHT_M = (3.5, 10.0)
#: Courtyard depth in front of the house (m) and the share that is paved (else earth).
COURT_DEPTH_M = (4.0, 9.0)
P_COURT_PAVED = 0.6
#: Shed beside a house: probability, area (m^2), height (m).
P_SHED, SHED_AREA_M2, SHED_HEIGHT_M = 0.35, (12.0, 45.0), (2.5, 4.0)
#: Mean gap between candidate house sites along a village lane (m, per side; overlapping
#: candidates are dropped, so built plots are ~15-25 m apart); farmhouses per m of farm lane.
#: Our assumptions, not from a source.
LANE_GAP_M = 10.0
FARMHOUSE_PER_M = 1 / 700.0  # per side
#: Matern clusters inside villages: parents per m^2 of village, houses per parent, radius.
PARENTS_PER_M2, CHILDREN_MEAN, CLUSTER_R_M = 1 / 1500.0, 4.0, 25.0
#: Share of houses facing south (+- 8 deg) rather than their lane (+- 6 deg).
P_SOUTH = 0.5
ROOFS = (("roof_red_tile", .45), ("roof_dark", .35), ("roof_concrete", .2))
#: Narrow roads houses line up along (OSM highway classes, vectors.HIGHWAY_OF).
LANE_CLASSES = ("service", "unclassified", "track")


@dataclass
class Settlements:
    """Placed houses and courtyards (pixel coords), ready to burn."""

    houses: list[shapely.Polygon]
    roofs: list[int]  # material ids
    heights_m: list[int]
    courts: list[shapely.Polygon]
    court_mats: list[int]


def _lane_sites(lines: list[RoadLine], zone: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, ...]:
    """Candidate house sites along narrow roads: (x, y, lane angle rad, side +-1, lane
    half width m, is-farmhouse bool), one row per site."""
    out = []
    h, w = zone.shape
    for ln in lines:
        if ln.highway not in LANE_CLASSES:
            continue
        for part in shapely.get_parts(ln.geom):
            length = part.length
            if length < 8:
                continue
            for side in (-1.0, 1.0):
                n = rng.poisson(length / LANE_GAP_M)
                s = np.sort(rng.uniform(0, length, n))
                if n == 0:
                    continue
                p0 = shapely.get_coordinates(shapely.line_interpolate_point(part, s - 1.0))
                p1 = shapely.get_coordinates(shapely.line_interpolate_point(part, s + 1.0))
                mid = (p0 + p1) / 2
                xi = np.clip(mid[:, 0].astype(np.intp), 0, w - 1)
                yi = np.clip(mid[:, 1].astype(np.intp), 0, h - 1)
                z = zone[yi, xi]
                farm = z == RURAL
                keep = (z == VILLAGE) | (farm & (rng.random(n) < FARMHOUSE_PER_M * LANE_GAP_M))
                ang = np.arctan2(p1[:, 1] - p0[:, 1], p1[:, 0] - p0[:, 0])
                out.append(np.stack([mid[:, 0], mid[:, 1], ang, np.full(n, side),
                                     np.full(n, ln.width_m / 2), farm], -1)[keep])
    return tuple(np.concatenate(out).T) if out else tuple(np.zeros((6, 0)))


def _cluster_sites(villages: list[tuple[float, float, float]], rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) px of Matern-cluster house sites in the village discs (x, y, radius)."""
    xs, ys = [], []
    for vx, vy, vr in villages:
        n_par = rng.poisson(PARENTS_PER_M2 * np.pi * vr**2)
        for _ in range(n_par):
            a, d = rng.uniform(0, 2 * np.pi), vr * np.sqrt(rng.random())
            px, py = vx + d * np.cos(a), vy + d * np.sin(a)
            m = rng.poisson(CHILDREN_MEAN)
            ca, cd = rng.uniform(0, 2 * np.pi, m), CLUSTER_R_M * np.sqrt(rng.random(m))
            xs.append(px + cd * np.cos(ca))
            ys.append(py + cd * np.sin(ca))
    if not xs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys)


def settlements(zone: np.ndarray, free: np.ndarray, lines: list[RoadLine],
                villages: list[tuple[float, float, float]], rng: np.random.Generator
                ) -> Settlements:
    """Village houses, sheds and courtyards on ``free`` (bool, off roads and water) land
    of VILLAGE zones (farmhouses also on RURAL land), no two overlapping."""
    lx, ly, lang, side, half_w, _ = _lane_sites(lines, zone, rng)
    cx, cy = _cluster_sites(villages, rng)
    n_l, n = lx.size, lx.size + cx.size
    area = rng.uniform(*HOUSE_AREA_M2, n)
    aspect = rng.uniform(*HOUSE_ASPECT, n)
    hu, hv = np.sqrt(area * aspect) / 2, np.sqrt(area / aspect) / 2  # half sizes along u, v
    depth = rng.uniform(*COURT_DEPTH_M, n)
    south = rng.random(n) < P_SOUTH
    jitter = np.where(south, rng.normal(0, 8, n), rng.normal(0, 6, n))
    # Lane houses: the courtyard between the lane and the house; the house's v axis
    # points away from the lane. Cluster houses: courtyard on their south side.
    lane_deg = np.degrees(lang)
    ang = np.concatenate([np.where(south[:n_l], 0.0, lane_deg), np.zeros(cx.size)]) + jitter
    ang_r = np.radians(ang)
    # d: unit vector from the lane into the plot (lane sites); north for cluster sites
    # (rows grow southwards), so their courtyard lies south of the house.
    dx = np.concatenate([-np.sin(lang) * side, np.zeros(cx.size)])
    dy = np.concatenate([np.cos(lang) * side, -np.ones(cx.size)])
    off = np.concatenate([half_w + rng.uniform(0.5, 3.0, n_l), np.zeros(cx.size)])
    base_x = np.concatenate([lx, cx]) + dx * off
    base_y = np.concatenate([ly, cy]) + dy * off
    lane = np.arange(n) < n_l
    house_c = np.where(lane, depth + hv, 0.0)
    court_c = np.where(lane, depth / 2, -(hv + depth / 2))
    hx, hy = base_x + dx * house_c, base_y + dy * house_c
    kx, ky = base_x + dx * court_c, base_y + dy * court_c
    house = rects(hx, hy, hu, hv, ang)
    court = rects(kx, ky, hu, depth / 2, ang)
    plot = shapely.union(house, court)
    farm_ok = np.concatenate([np.ones(n_l, bool), np.zeros(cx.size, bool)])
    fits = _on_land(plot, zone, free, farm_ok)
    # Sheds: beside the house along its u axis.
    shed_a = rng.uniform(*SHED_AREA_M2, n)
    su, sv = np.sqrt(shed_a) / 2 * 0.8, np.sqrt(shed_a) / 2 * 1.25
    sgn = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    du = sgn * (hu + su + 0.5)
    sx = hx + du * np.cos(ang_r)
    sy = hy + du * np.sin(ang_r)
    shed = rects(sx, sy, su, sv, ang)
    want_shed = (rng.random(n) < P_SHED) & _on_land(shed, zone, free, farm_ok)
    chosen = _no_overlap(np.concatenate([plot, shed]), np.concatenate([fits, want_shed]),
                         rng.permutation(n), n)
    names, probs = zip(*ROOFS, strict=True)
    roof = rng.choice([M[nm] for nm in names], size=2 * n, p=np.array(probs))
    height = np.concatenate([rng.uniform(*HOUSE_HEIGHT_M, n), rng.uniform(*SHED_HEIGHT_M, n)])
    shed_ok = chosen[n:] & chosen[:n]
    keep = np.concatenate([chosen[:n], shed_ok])
    polys = np.concatenate([house, shed])[keep]
    paved = rng.random(n) < P_COURT_PAVED
    court_mat = np.where(paved, M["paved"], M["bare_soil"])
    return Settlements(polys.tolist(), [int(r) for r in roof[keep]],
                       [int(round(v)) for v in height[keep]], court[chosen[:n]].tolist(),
                       [int(m) for m in court_mat[chosen[:n]]])


def _on_land(polys: np.ndarray, zone: np.ndarray, free: np.ndarray,
             rural_ok: np.ndarray) -> np.ndarray:
    """bool (n,): polygon (grown by 1 m) samples every ~2 m that fall inside the grid
    lie on ``free`` land of a VILLAGE zone (or RURAL where ``rural_ok``); the polygon's
    centre lies inside the grid (the region is a window: houses may be cut by its edge)."""
    h, w = zone.shape
    out = np.zeros(len(polys), dtype=bool)
    grown = shapely.buffer(polys, 1.0, join_style="mitre")
    for i, g in enumerate(grown.tolist()):
        x0, y0, x1, y1 = g.bounds
        if not (0 <= (x0 + x1) / 2 < w and 0 <= (y0 + y1) / 2 < h):
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1, 2.0), np.arange(y0, y1 + 1, 2.0))
        inside = shapely.contains_xy(g, xs, ys) & (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        r, c = ys[inside].astype(np.intp), xs[inside].astype(np.intp)
        z = zone[r, c]
        ok_z = (z == VILLAGE) | ((z == RURAL) & rural_ok[i])
        out[i] = bool(free[r, c].all() and ok_z.all())
    return out


def _no_overlap(polys: np.ndarray, ok: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """bool (2n,): greedy choice of non-overlapping ``polys`` (n plots then n sheds) among
    ``ok``, plots in ``order`` first; a shed needs its plot chosen (0.5 m gap kept)."""
    tree = shapely.STRtree(polys)
    a, b = tree.query(shapely.buffer(polys, 0.5), predicate="intersects")
    nbrs: dict[int, list[int]] = {}
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        if i != j:
            nbrs.setdefault(i, []).append(j)
    chosen = np.zeros(len(polys), dtype=bool)
    for i in [*order.tolist(), *(order + n).tolist()]:
        if not ok[i] or (i >= n and not chosen[i - n]):
            continue
        if not any(chosen[j] and j != i - n and j != i + n for j in nbrs.get(i, ())):
            chosen[i] = True
    return chosen
