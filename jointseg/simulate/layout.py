"""Where the simulated city lies: layout parameters, the urbanness field and the hill.

The layout is driven by an *urbanness* field ``U`` in [0, 1] (distance to a city
centre, roughened by smooth noise); a hill area lies towards ``hill_dir_deg`` where
the land is not urban. Coordinates are pixels of the region's 1 m grid
(x = column, y = row, 1 px = 1 m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jointseg.simulate.noise import smooth_noise


@dataclass(frozen=True)
class LayoutParams:
    """Where the city is and how it is oriented (pixel coords of the 1 m grid).

    Attributes:
        centre_xy: city centre (column, row) on the 1 m grid; may lie outside.
        core_radius_m: e-folding distance of urbanness (m).
        street_angle_deg: orientation of the urban street grid.
        field_angle_deg: orientation of field parcels, lanes and villages.
        hill_dir_deg: direction (from the region's centre) towards the hill area.
        river: whether a river crosses the region.
    """

    centre_xy: tuple[float, float]
    core_radius_m: float
    street_angle_deg: float
    field_angle_deg: float
    hill_dir_deg: float
    river: bool = True

    @classmethod
    def default(
        cls,
        shape: tuple[int, int],
        rng: np.random.Generator,
        centre_xy: tuple[float, float] | None = None,
        core_radius_m: float | None = None,
        river: bool = True,
    ) -> LayoutParams:
        """City centred on the region (slightly off), radius 0.4 x the region size."""
        h, w = shape
        if centre_xy is None:
            centre_xy = (w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2 + rng.uniform(-0.05, 0.05) * h)
        if core_radius_m is None:
            core_radius_m = 0.4 * min(h, w)
        street = float(rng.uniform(-12, 12))
        return cls(
            centre_xy=(float(centre_xy[0]), float(centre_xy[1])),
            core_radius_m=float(core_radius_m),
            street_angle_deg=street,
            field_angle_deg=street + float(rng.uniform(-25, 25)),
            hill_dir_deg=float(rng.uniform(0, 360)),
            river=river,
        )


def urbanness_and_hill(
    shape: tuple[int, int], layout: LayoutParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(float32 urbanness in [0, 1], bool hill mask), both (rows, cols) on the 1 m grid.

    Urbanness decays with distance to ``layout.centre_xy`` (e-folding
    ``core_radius_m``), roughened by smooth noise (scale ~250 m); the hill is a smooth
    ridge at the region's edge towards ``hill_dir_deg``, only where urbanness < 0.3.
    """
    h, w = shape
    cx, cy = layout.centre_xy
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5

    d = np.hypot(xs - cx, ys - cy)
    urb = np.exp(-((d / layout.core_radius_m) ** 1.5))
    urb *= 1.0 + 0.3 * smooth_noise(shape, 250.0, rng)
    np.clip(urb, 0.0, 1.0, out=urb)
    del d

    # The hill lies at the region's edge towards hill_dir (measured from the region's
    # centre, so a region far from its city is not all hill: rural chip regions).
    a = math.radians(layout.hill_dir_deg)
    proj = ((xs - w / 2) * math.cos(a) + (ys - h / 2) * math.sin(a)) / max(h, w)
    hill = (2.5 * proj + 0.5 * smooth_noise(shape, 400.0, rng) > 1.0) & (urb < 0.3)
    return urb, hill
