"""A WorldCover-format 10 m map of a simulated region, with a 10 m product's errors.

A 10 m pixel is built-up (50) when its 1 m ISA fraction exceeds ~0.4 (+- noise), so thin
roads are missed and mixed edge pixels are over-called; other pixels take the majority
class. Written in EPSG:4326 at 1/12000 degree, on WorldCover's tile lattice.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from rasterio.warp import Resampling, reproject

from jointseg.grid import GeoBox
from jointseg.simulate.materials import ISA_CLASSES

PIXEL_DEG = 1.0 / 12000.0
# truth class -> WorldCover code (ISA classes handled by the fraction rule)
_WC = {5: 10, 6: 30, 7: 40, 8: 80, 9: 60}


def worldcover_name(year: int, lat: float, lon: float) -> str:
    """ESA tile file name holding (lat, lon), e.g. ESA_WorldCover_10m_2021_v200_N30E117_Map.tif."""
    la = int(math.floor(lat / 3) * 3)
    lo = int(math.floor(lon / 3) * 3)
    ver = "v100" if year == 2020 else "v200"
    ns = f"N{la:02d}" if la >= 0 else f"S{-la:02d}"
    ew = f"E{lo:03d}" if lo >= 0 else f"W{-lo:03d}"
    return f"ESA_WorldCover_10m_{year}_{ver}_{ns}{ew}_Map.tif"


def worldcover_grid(grid: GeoBox) -> GeoBox:
    """The EPSG:4326 grid on WorldCover's lattice (1/12000 degree, origin on whole
    pixels) that covers ``grid``'s lon/lat bounds."""
    lon0, lat0, lon1, lat1 = grid.lonlat_bounds()
    left = math.floor(lon0 / PIXEL_DEG) * PIXEL_DEG
    top = math.ceil(lat1 / PIXEL_DEG) * PIXEL_DEG
    width = math.ceil((lon1 - left) / PIXEL_DEG)
    height = math.ceil((top - lat0) / PIXEL_DEG)
    return GeoBox("EPSG:4326", Affine(PIXEL_DEG, 0, left, 0, -PIXEL_DEG, top), width, height)


def worldcover_map(landcover: np.ndarray, grid_1m: GeoBox,
                   rng: np.random.Generator) -> tuple[np.ndarray, GeoBox]:
    """(uint8 map, GeoBox in EPSG:4326) of WorldCover codes covering the region.

    ``landcover``: uint8 truth class codes on the region's 1 m ``grid_1m`` (shape a
    multiple of 10 px); the map is made at 10 m and reprojected (nearest) to
    :func:`worldcover_grid`.
    """
    h, w = landcover.shape
    blk = landcover.reshape(h // 10, 10, w // 10, 10)
    isa = np.isin(blk, ISA_CLASSES).mean((1, 3))
    counts = np.stack([(blk == c).sum((1, 3)) for c in _WC])
    codes = np.array(list(_WC.values()), dtype=np.uint8)
    wc10 = codes[counts.argmax(0)]
    wc10[isa > 0.4 + 0.08 * rng.standard_normal(isa.shape)] = 50
    g10 = grid_1m.zoom_out(10)
    geo = worldcover_grid(grid_1m)
    out = np.zeros(geo.shape, dtype=np.uint8)
    reproject(wc10, out, src_transform=g10.transform, src_crs=g10.crs, src_nodata=0,
              dst_transform=geo.transform, dst_crs=geo.crs, dst_nodata=0,
              resampling=Resampling.nearest)
    return out, geo
