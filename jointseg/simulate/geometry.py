"""Vector helpers in the pixel coordinates of a region's 1 m grid.

Geometry is built as shapely vectors in pixel coordinates (x = column, y = row,
1 px = 1 m) and burnt with :func:`rasterio.features.rasterize` (identity transform).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize


def burn(out: np.ndarray, geoms: list, values: list) -> None:
    """Rasterise ``geoms`` (pixel coords) into ``out`` in place; later ones win."""
    if len(geoms) == 0:
        return
    rasterize(
        zip(geoms, values, strict=True),
        out=out,
        transform=Affine.identity(),
        all_touched=False,
    )


def rot(angle_deg: float) -> tuple[float, float]:
    """(cos, sin) of ``angle_deg`` degrees."""
    a = math.radians(angle_deg)
    return math.cos(a), math.sin(a)


def sample(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nearest-pixel samples of ``field`` at pixel coords (clipped to the grid)."""
    r = np.clip(y.astype(np.intp), 0, field.shape[0] - 1)
    c = np.clip(x.astype(np.intp), 0, field.shape[1] - 1)
    return field[r, c]


def rects(x: np.ndarray, y: np.ndarray, half_u: np.ndarray, half_v: np.ndarray,
          angle_deg: float | np.ndarray) -> np.ndarray:
    """Rotated rectangles (shapely polygons) centred at (x, y) px with half sizes (px),
    rotated by ``angle_deg`` (one angle, or one per rectangle)."""
    a = np.radians(np.asarray(angle_deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    if c.ndim:
        c, s = c[:, None], s[:, None]
    cu = np.array([-1, 1, 1, -1, -1])[None, :] * half_u[:, None]
    cv = np.array([-1, -1, 1, 1, -1])[None, :] * half_v[:, None]
    px = x[:, None] + cu * c - cv * s
    py = y[:, None] + cu * s + cv * c
    return shapely.polygons(np.stack([px, py], -1))
