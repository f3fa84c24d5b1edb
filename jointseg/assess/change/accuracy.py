"""Change accuracy against a reference change: F1 of new ISA per period.

The reference is one binary ISA raster per year (e.g. the simulator's truth
``{sim_dir}/{Y}/truth/isa_1m.tif``: 1 = ISA, 0 = not, its nodata excluded). Each is
read on the maps' grid through a nearest-neighbour :class:`rasterio.vrt.WarpedVRT`
(identity when the grids match), block by block.

For a period ``y0 -> y1`` a pixel is **new ISA** when it is non-ISA in ``y0`` and ISA
in ``y1``. Map and reference new ISA are compared over the pixels valid in both years
of both series; precision, recall and F1 of the class "new ISA" follow from
:class:`jointseg.metrics.BinaryCounts` (pixel counts: agreement with the reference, on
simulated data a test of the software, not real-world accuracy).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import ExitStack

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from jointseg.assess.rasters import RasterError, binary_block
from jointseg.grid import GeoBox
from jointseg.metrics import BinaryCounts, binary_counts, binary_metrics
from jointseg.products import NODATA_U8


class TruthSeries:
    """Reference binary rasters per year, read on one grid (nearest), block by block.

    Use as a context manager; :meth:`read` returns uint8 0/1/255 blocks.
    """

    def __init__(self, paths: Mapping[int, str | os.PathLike], geobox: GeoBox) -> None:
        self.paths = {int(y): p for y, p in paths.items()}
        self.geobox = geobox
        self._stack = ExitStack()
        self._vrts: dict[int, WarpedVRT] = {}
        self._nodata: dict[int, int] = {}

    def __enter__(self) -> TruthSeries:
        g = self.geobox
        for y, p in self.paths.items():
            try:
                src = self._stack.enter_context(rasterio.open(p))
            except RasterioIOError as exc:
                self._stack.close()
                raise RasterError(f"{p}: cannot open reference raster ({exc})") from exc
            nodata = NODATA_U8 if src.nodata is None else int(src.nodata)
            self._nodata[y] = nodata
            self._vrts[y] = self._stack.enter_context(WarpedVRT(
                src, crs=g.crs, transform=g.transform, width=g.width, height=g.height,
                resampling=Resampling.nearest, nodata=nodata))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read(self, year: int, window: Window) -> np.ndarray:
        """Reference of ``year`` in ``window`` of the grid as uint8 0/1/255.

        Raises:
            RasterError: if the raster holds values other than 0, 1 and its nodata.
        """
        return binary_block(self._vrts[year].read(1, window=window), self._nodata[year],
                            self.paths[year])


def new_isa(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """uint8 1 = new ISA (0 -> 1), 0 = not, 255 where either year is nodata."""
    out = ((before == 0) & (after == 1)).astype(np.uint8)
    out[(before == NODATA_U8) | (after == NODATA_U8)] = NODATA_U8
    return out


def new_isa_counts(m0: np.ndarray, m1: np.ndarray, t0: np.ndarray,
                   t1: np.ndarray) -> BinaryCounts:
    """Counts of map new ISA against reference new ISA over pixels valid in all four."""
    return binary_counts(new_isa(m0, m1), new_isa(t0, t1))


def accuracy_entry(c: BinaryCounts, px_km2: float) -> dict:
    """JSON block of one period: counts, P/R/F1/IoU of new ISA, new-ISA areas (km²)."""
    m = {k: None if np.isnan(v) else float(v) for k, v in binary_metrics(c).items()
         if k in ("precision", "recall", "f1", "iou")}
    return {"tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn, "n_pixels": c.n, **m,
            "map_new_isa_km2": (c.tp + c.fp) * px_km2,
            "reference_new_isa_km2": (c.tp + c.fn) * px_km2}
