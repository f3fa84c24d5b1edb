"""High-resolution (HR) imagery: open, check and warp onto a chip grid.

An HR source is a GeoTIFF / VRT / COG in any CRS at 0.3-2 m, uint8 or uint16, with 3
(R G B) or 4 (R G B NIR) bands in the order ``--hr-bands`` names. Pixels equal to the
file's nodata value (or outside its internal mask) carry no data. Warping goes
through GDAL (``rasterio.warp.reproject``) onto a :class:`~jointseg.grid.GeoBox` in the
composite's CRS, optionally displaced by a co-registration shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from shapely.geometry import Polygon, box

from jointseg.grid import GeoBox
from jointseg.trainingdata.settings import HR_RES_RANGE_M, TrainingDataError

_DTYPES = ("uint8", "uint16")


@dataclass(frozen=True)
class HrSource:
    """One checked HR file.

    Attributes:
        path: the file.
        crs: its CRS (authority string or WKT).
        bounds: (left, bottom, right, top) in its CRS.
        res_m: approximate pixel size in metres (geographic CRS converted at its centre).
        count: number of bands (3 or 4).
        dtype: ``uint8`` or ``uint16``.
        nodata: the file's nodata value, or None.
    """

    path: Path
    crs: str
    bounds: tuple[float, float, float, float]
    res_m: float
    count: int
    dtype: str
    nodata: float | None

    def footprint(self, crs: str) -> Polygon:
        """The file's extent as a polygon in ``crs`` (densified bounding box)."""
        return box(*transform_bounds(self.crs, crs, *self.bounds, densify_pts=21))


def open_hr(path: Path, n_bands: int) -> HrSource:
    """Open and check an HR file.

    Args:
        n_bands: the number of bands ``--hr-bands`` names (3 or 4).

    Raises:
        TrainingDataError: unreadable, no CRS, wrong band count or dtype, resolution
            outside 0.3-2 m; the message names the file.
    """
    try:
        with rasterio.open(path) as ds:
            crs, count, dtype = ds.crs, ds.count, ds.dtypes[0]
            bounds, res, nodata = tuple(ds.bounds), ds.res, ds.nodata
            if crs is not None:
                ds.read(1, window=((0, 1), (0, 1)))
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise TrainingDataError(f"{path}: cannot read HR image ({_first_line(exc)})") from None
    if crs is None:
        raise TrainingDataError(f"{path}: HR image has no CRS (georeference it first)")
    if count != n_bands:
        raise TrainingDataError(
            f"{path}: HR image has {count} bands, --hr-bands names {n_bands}")
    if dtype not in _DTYPES:
        raise TrainingDataError(f"{path}: HR image is {dtype}, expected uint8 or uint16")
    res_m = _res_metres(crs, bounds, res)
    lo, hi = HR_RES_RANGE_M
    if not lo * 0.95 <= res_m <= hi * 1.05:
        raise TrainingDataError(
            f"{path}: HR resolution {res_m:.2f} m is outside {lo}-{hi} m")
    return HrSource(Path(path), crs.to_string(), bounds, res_m, count, dtype, nodata)


def _res_metres(crs: rasterio.crs.CRS, bounds: tuple[float, ...], res: tuple[float, float]
                ) -> float:
    """Mean pixel side (m); degrees converted at the centre latitude."""
    c = CRS.from_user_input(crs)
    if c.is_geographic:
        lat = math.radians((bounds[1] + bounds[3]) / 2)
        return 0.5 * (res[0] * 111_320.0 * math.cos(lat) + res[1] * 110_574.0)
    unit = c.axis_info[0].unit_conversion_factor if c.axis_info else 1.0
    return 0.5 * (res[0] + res[1]) * unit


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_hr(src: HrSource, grid: GeoBox, shift_m: tuple[float, float] = (0.0, 0.0)
            ) -> np.ndarray:
    """Warp the HR file's DN onto ``grid``, correcting a displacement.

    Args:
        grid: the destination grid (e.g. a tile's 1 m or 10 m grid, composite CRS).
        shift_m: the HR's displacement ``(dx_east, dy_north)`` in metres of ``grid``'s
            CRS: a feature at (x, y) on the ground appears at (x + dx, y + dy) in the HR.
            Destination pixel (x, y) is read from (x + dx, y + dy).

    Returns:
        float32 (bands, rows, cols) DN in file band order; NaN where the HR has no
        data. Pixels finer than the grid are area-averaged, coarser ones bilinear.
    """
    dx, dy = shift_m
    shifted = Affine.translation(dx, dy) @ grid.transform
    out = np.full((src.count, grid.height, grid.width), np.nan, dtype=np.float32)
    resampling = Resampling.average if src.res_m < grid.res_m else Resampling.bilinear
    try:
        with rasterio.open(src.path) as ds:
            for b in range(src.count):
                reproject(
                    rasterio.band(ds, b + 1), out[b], src_nodata=ds.nodata,
                    dst_transform=shifted, dst_crs=grid.crs, dst_nodata=np.nan,
                    resampling=resampling, init_dest_nodata=True,
                )
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise TrainingDataError(f"{src.path}: cannot read HR image ({_first_line(exc)})") from None
    out[:, ~np.isfinite(out).all(0)] = np.nan
    return out
