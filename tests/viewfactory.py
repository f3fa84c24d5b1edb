"""A small product folder with known pixel values, for the viewer tests.

``make_product_dir(tmp)/<region>/<year>`` holds, on a 600 m square in UTM 50N
(EPSG:32650, 1 m grid; the composite on the 10 m grid with the same origin):

* ``isa_1m.tif``: north-south stripes 50 m wide, 1 (impervious) where x // 50 m is
  even, 0 where odd; the north-east 100 x 100 m corner is nodata (255).
  Every file is tagged ``JOINTSEG_SIMULATED=true``.
* ``baseline/isa_1m.tif``: the opposite classes.
* ``isa_prob_1m.tif``: a west-to-east ramp, DN = column * 254 // 599 (nodata none).
* ``composite/<tile>_10m.tif``: B02 B03 B04 B08 COUNT QA, B04 = 100..3699 by pixel.
* ``isa/<tile>_sr.tif``: the SR RGB quicklook, constant (200, 100, 50).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jointseg.grid import GeoBox
from jointseg.io import write_cog
from jointseg.products import NODATA_U8, PROB_SCALE

CRS = "EPSG:32650"
LEFT, BOTTOM, SIZE_M = 663000.0, 3543000.0, 600
TILE = "32650_663000_3543000"
SIM = {"JOINTSEG_SIMULATED": "true"}


def isa_array() -> np.ndarray:
    """The ISA map's band 1 (uint8, rows north to south)."""
    cols = np.arange(SIZE_M)
    isa = np.broadcast_to(((cols // 50) % 2 == 0).astype(np.uint8), (SIZE_M, SIZE_M)).copy()
    isa[:100, -100:] = NODATA_U8
    return isa


def prob_array() -> np.ndarray:
    """The probability DN ramp (uint8 0..254)."""
    cols = np.arange(SIZE_M) * 254 // (SIZE_M - 1)
    return np.broadcast_to(cols.astype(np.uint8), (SIZE_M, SIZE_M)).copy()


def make_product_dir(root: Path, region: str = "testreg", year: int = 2021) -> Path:
    """Write the product folder ``root/region/year`` and return its path."""
    d = Path(root) / region / str(year)
    g1 = GeoBox.from_bounds(CRS, (LEFT, BOTTOM, LEFT + SIZE_M, BOTTOM + SIZE_M), 1)
    g10 = g1.zoom_out(10)
    isa = isa_array()
    write_cog(d / "isa_1m.tif", isa, g1, nodata=NODATA_U8, band_names=["isa_binary"],
              tags={**SIM, "JOINTSEG_PRODUCT": "isa_binary"})
    base = np.where(isa == NODATA_U8, NODATA_U8, 1 - isa).astype(np.uint8)
    write_cog(d / "baseline" / "isa_1m.tif", base, g1, nodata=NODATA_U8, tags=SIM)
    write_cog(d / "isa_prob_1m.tif", prob_array(), g1, nodata=NODATA_U8, tags=SIM,
              scales=[PROB_SCALE], overview_resampling="average")
    n = g10.height * g10.width
    red = (100 + np.arange(n, dtype=np.uint16)).reshape(g10.height, g10.width)
    comp = np.stack([red // 2, red // 2 + 50, red, red + 500,
                     np.full_like(red, 3), np.zeros_like(red)])
    write_cog(d / "composite" / f"{TILE}_10m.tif", comp, g10, nodata=0,
              band_names=["B02", "B03", "B04", "B08", "COUNT", "QA"], tags=SIM)
    sr = np.stack([np.full((SIZE_M, SIZE_M), v, np.uint8) for v in (200, 100, 50)])
    write_cog(d / "isa" / f"{TILE}_sr.tif", sr, g1, nodata=0, tags=SIM)
    return d
