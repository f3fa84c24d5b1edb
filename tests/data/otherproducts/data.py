"""Make the tiny product fixtures in each product's published format (run: python data.py).

All cover the same 300 m x 300 m square of UTM 50N (EPSG:32650, x 663000-663300,
y 3548700-3549000) with a known pattern: the WEST half (x < 663150) is ISA, the east
half is not. Each file encodes it as its product does (formats.py cites the sources):

* gaia.tif: EPSG:4326, 0.00025 degree, uint8 year-of-change codes: west half 10
  (= 2009) in the north half, 1 (= 2018) in the south half; east half 0;
* gisa.tif: EPSG:4326, 0.0000898315284 degree, uint8 1 = ISA / 0;
* wsf.tif: as GISA but 255 = settlement / 0;
* esri_lc.tif: EPSG:32650, 10 m, uint8 7 = built / 5 = crops, nodata 0 in the
  northernmost 30 m;
* dynamic_world.tif: EPSG:32650, 10 m, uint8 label 6 = built / 4 = crops;
* ghs_built_s.tif: ESRI:54009, 100 m, uint16 m² per cell: 2500 (a quarter built)
  everywhere, nodata 65535.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.warp import transform_bounds

HERE = Path(__file__).parent
UTM = "EPSG:32650"
BOUNDS = (663000.0, 3548700.0, 663300.0, 3549000.0)
SPLIT_X = 663150.0


def _grid(crs: str, res: float, pad: int = 2) -> tuple[Affine, int, int]:
    b = BOUNDS if crs == UTM else transform_bounds(UTM, crs, *BOUNDS, densify_pts=21)
    left = (math.floor(b[0] / res) - pad) * res
    top = (math.ceil(b[3] / res) + pad) * res
    return (Affine(res, 0, left, 0, -res, top), math.ceil((b[2] - left) / res) + pad,
            math.ceil((top - b[1]) / res) + pad)


def _utm_centres(crs: str, transform: Affine, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x, y = transform * (cols, rows)
    if crs == UTM:
        return x, y
    return Transformer.from_crs(crs, UTM, always_xy=True).transform(x, y)


def _write(name: str, data: np.ndarray, crs: str, transform: Affine,
           nodata: int | None) -> None:
    profile = {"driver": "GTiff", "dtype": data.dtype.name, "count": 1, "crs": crs,
               "transform": transform, "width": data.shape[1], "height": data.shape[0],
               "nodata": nodata, "compress": "deflate"}
    with rasterio.open(HERE / name, "w", **profile) as ds:
        ds.write(data, 1)


def make() -> None:
    """Write every fixture."""
    mid_y = (BOUNDS[1] + BOUNDS[3]) / 2
    for name, crs, res, isa, other, nodata in (
        ("gisa.tif", "EPSG:4326", 0.0000898315284, 1, 0, None),
        ("wsf.tif", "EPSG:4326", 0.0000898315284, 255, 0, None),
        ("esri_lc.tif", UTM, 10.0, 7, 5, 0),
        ("dynamic_world.tif", UTM, 10.0, 6, 4, None),
        ("gaia.tif", "EPSG:4326", 0.00025, None, 0, None),
    ):
        t, w, h = _grid(crs, res)
        x, y = _utm_centres(crs, t, w, h)
        west = x < SPLIT_X
        if isa is None:  # GAIA: year-of-change codes
            data = np.where(west, np.where(y >= mid_y, 10, 1), 0).astype(np.uint8)
        else:
            data = np.where(west, isa, other).astype(np.uint8)
        if nodata is not None:
            data[y > BOUNDS[3] - 30] = nodata
        _write(name, data, crs, t, nodata)
    t, w, h = _grid("ESRI:54009", 100.0)
    _write("ghs_built_s.tif", np.full((h, w), 2500, np.uint16), "ESRI:54009", t, 65535)


if __name__ == "__main__":
    make()
