"""Water of a simulated region: a meandering river and fish ponds (pixel coords).

Shapes are shapely polygons in pixels of the region's 1 m grid (x = column,
y = row, 1 px = 1 m), burnt as ``water_river`` / ``water_pond`` materials.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from jointseg.simulate.geometry import rects, sample
from jointseg.simulate.layout import LayoutParams


def river(shape: tuple[int, int], rng: np.random.Generator) -> shapely.Polygon:
    """A meandering river band (pixel coords) across the region of ``shape`` = (rows, cols);
    its width (25-90 m) scales with the region size."""
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


def ponds(shape: tuple[int, int], urb: np.ndarray, hill: np.ndarray, layout: LayoutParams,
          rng: np.random.Generator) -> list[shapely.Polygon]:
    """Rectangular fish ponds (20-80 m, pixel coords) in farmland (urbanness ``urb`` < 0.3,
    off the ``hill`` mask), aligned with the fields."""
    h, w = shape
    n = rng.poisson(6.0 * h * w / 1e6)
    x = rng.uniform(0, w, n)
    y = rng.uniform(0, h, n)
    ok = (sample(urb, x, y) < 0.3) & ~sample(hill, x, y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        return []
    a = rng.uniform(30, 80, x.size) / 2
    b = rng.uniform(20, 50, x.size) / 2
    return rects(x, y, a, b, layout.field_angle_deg).tolist()
