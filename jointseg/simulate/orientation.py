"""Street orientation per district of a simulated region (pixel coords of its 1 m grid).

A Chinese city is fairly gridded but not at one angle: districts built in different
decades and along different rivers and roads each have their own grid (Boeing 2019,
"Urban spatial order: street network orientation, configuration, and entropy",
Applied Network Science 4:67: street-bearing entropy of Chinese cities is among the
lower of the 100 cities studied, yet every city has several dominant bearings). The
region is cut into Voronoi districts of about :data:`DISTRICT_AREA_M2` (the size of an
arterial superblock, 0.5-1 km across); a district's street grid follows the region's
angle plus a small deviation with probability :data:`P_ALIGNED`, else any angle.
Streets, farm lanes, field parcels and the buildings of each district follow its angles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy.spatial import cKDTree

#: Mean district area (m^2): one arterial superblock, ~800 m across (roads.arterials).
DISTRICT_AREA_M2 = 0.6e6
#: Probability that a district's grid follows the region's angle (+- N(0, ALIGNED_SD_DEG)).
P_ALIGNED = 0.6
ALIGNED_SD_DEG = 10.0
#: Field parcels and farm lanes turn from a district's streets by U(-FIELD_TURN, +FIELD_TURN).
FIELD_TURN_DEG = 25.0


@dataclass(frozen=True)
class Orientation:
    """Districts (Voronoi cells of ``seeds_xy``, px) with their street and field angles."""

    seeds_xy: np.ndarray  # float64 (k, 2) px
    street_deg: np.ndarray  # float64 (k,)
    field_deg: np.ndarray  # float64 (k,)
    cells: tuple[shapely.Polygon, ...]  # Voronoi cell of each seed, px, covering the grid

    def cell_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """intp district index of the points (x, y) px."""
        _, idx = cKDTree(self.seeds_xy).query(np.stack([np.ravel(x), np.ravel(y)], -1))
        return np.asarray(idx, dtype=np.intp).reshape(np.shape(x))

    def raster(self, shape: tuple[int, int], step: int = 4) -> np.ndarray:
        """int16 (rows, cols) district index per 1 m pixel (computed every ``step`` px)."""
        h, w = shape
        ys = np.arange(0, h, step) + step / 2
        xs = np.arange(0, w, step) + step / 2
        xx, yy = np.meshgrid(xs, ys)
        coarse = self.cell_of(xx, yy).astype(np.int16)
        full = np.repeat(np.repeat(coarse, step, 0), step, 1)
        return np.ascontiguousarray(full[:h, :w])


def draw_orientation(shape: tuple[int, int], street_deg: float,
                     rng: np.random.Generator) -> Orientation:
    """Districts of a region of ``shape`` (rows, cols) px around the regional street
    angle ``street_deg``; seeds uniform over the grid grown by 300 m."""
    h, w = shape
    pad = 300.0
    area = (h + 2 * pad) * (w + 2 * pad)
    k = max(2, int(rng.poisson(area / DISTRICT_AREA_M2)))
    seeds = np.stack([rng.uniform(-pad, w + pad, k), rng.uniform(-pad, h + pad, k)], -1)
    aligned = rng.random(k) < P_ALIGNED
    street = np.where(aligned, street_deg + rng.normal(0.0, ALIGNED_SD_DEG, k),
                      rng.uniform(-45.0, 45.0, k))
    field = street + rng.uniform(-FIELD_TURN_DEG, FIELD_TURN_DEG, k)
    frame = shapely.box(-2 * pad - w, -2 * pad - h, 2 * (w + pad), 2 * (h + pad))
    polys = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds),
                                                       extend_to=frame))
    cells: list = [None] * k
    owner = Orientation(seeds, street, field, ()).cell_of(
        *np.array([p.representative_point().coords[0] for p in polys]).T)
    for p, i in zip(polys, owner, strict=True):
        cells[int(i)] = p
    return Orientation(seeds, street, field, tuple(cells))
