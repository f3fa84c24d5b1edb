"""Named districts of a SIMULATED region: Voronoi cells of random seeds, clipped to it.

Written as ``districts.gpkg`` (polygons in the region's CRS, field ``name``), the stand-in
for the administrative boundaries a user configures as ``accuracy.cities``: the per-city
table (Table 3) and the growth per region read it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from jointseg.grid import GeoBox
from jointseg.io import atomic_path

#: Simulated district names (pinyin-like, invented; every name says it is simulated).
NAMES = ("Xinhe", "Dongqiao", "Lianhua", "Baishi", "Nanyuan", "Qingshan", "Hegang",
         "Longtan", "Meiling")
SUFFIX = " (simulated)"


def districts(grid: GeoBox, rng: np.random.Generator, n: int = 6) -> gpd.GeoDataFrame:
    """``n`` (<= len(NAMES)) districts tiling ``grid``'s bounds: Voronoi cells of seeds
    jittered on a lattice, in ``grid.crs``; columns ``name``, ``simulated``, geometry."""
    if not 1 <= n <= len(NAMES):
        raise ValueError(f"districts: n={n} must be in 1..{len(NAMES)}")
    x0, y0, x1, y1 = grid.bounds
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    cells = [(i, j) for j in range(rows) for i in range(cols)][:n]
    pts = [((i + rng.uniform(0.25, 0.75)) / cols, (j + rng.uniform(0.25, 0.75)) / rows)
           for i, j in cells]
    seeds = shapely.multipoints([(x0 + u * (x1 - x0), y0 + v * (y1 - y0)) for u, v in pts])
    frame = shapely.box(x0, y0, x1, y1)
    polys = shapely.voronoi_polygons(seeds, extend_to=frame.buffer(x1 - x0))
    # voronoi_polygons returns cells in no fixed order: sort them by their seed
    by_seed = {}
    for poly in shapely.get_parts(polys):
        k = next(k for k, p in enumerate(shapely.get_parts(seeds)) if poly.contains(p))
        by_seed[k] = poly.intersection(frame)
    names = [NAMES[k] + SUFFIX for k in range(n)]
    return gpd.GeoDataFrame({"name": names, "simulated": [True] * n},
                            geometry=[by_seed[k] for k in range(n)], crs=grid.crs)


def write_districts(path: str | Path, grid: GeoBox, rng: np.random.Generator,
                    n: int = 6) -> Path:
    """Write :func:`districts` as a GeoPackage (layer ``districts``) atomically."""
    path = Path(path)
    gdf = districts(grid, rng, n)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gdf.to_file(tmp, driver="GPKG", layer="districts")
    return path
