"""Put one source raster onto a tile's band grid (10, 20 or 60 m), exactly when it aligns.

* Aligned source (same CRS, same resolution, origin offset a whole number of
  pixels): exact windowed read, bit-exact DN; pixels outside the source are 0.
* Otherwise (another UTM zone, a sub-pixel shift): ``rasterio.warp.reproject``,
  nearest for categorical bands (SCL), bilinear for reflectance, 0 outside the
  source footprint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from jointseg.bands import NATIVE_RES_M
from jointseg.data.errors import DownloadError
from jointseg.grid import GeoBox, Tile


def band_geobox(tile: Tile, band: str) -> GeoBox:
    """The tile grid a band is stored on (its native resolution: 10, 20 or 60 m).

    Raises:
        ValueError: for a band id not in :data:`jointseg.bands.NATIVE_RES_M`.
    """
    try:
        return tile.geobox(NATIVE_RES_M[band])
    except KeyError:
        raise ValueError(f"unknown Sentinel-2 band {band!r}; "
                         f"known: {sorted(NATIVE_RES_M)}") from None


def same_crs(a: CRS | str, b: CRS | str) -> bool:
    """Whether two CRS are the same (equal, or the same EPSG code)."""
    a, b = CRS.from_user_input(a), CRS.from_user_input(b)
    if a == b:
        return True
    epsg = a.to_epsg()
    return epsg is not None and epsg == b.to_epsg()


def aligned_window(src: GeoBox, dst: GeoBox) -> Window | None:
    """The window of ``src`` that covers ``dst`` pixel for pixel, or None if the grids
    differ (CRS, north-up pixel size, or an origin offset that is not whole pixels).

    The window may extend beyond the source raster.
    """
    if not same_crs(src.crs, dst.crs):
        return None
    try:
        return GeoBox(dst.crs, src.transform, src.width, src.height).window_of(dst)
    except ValueError:
        return None


def read_to_grid(ds: rasterio.io.DatasetReader, dst: GeoBox, *, categorical: bool) -> np.ndarray:
    """Band 1 of ``ds`` on the grid ``dst``, source dtype, 0 where the source has no data.

    Exact windowed read (bit-exact) when the grids align, else reprojection
    (nearest if ``categorical``, bilinear otherwise).
    """
    out = np.zeros(dst.shape, dtype=ds.dtypes[0])
    src_nodata = ds.nodata if ds.nodata is not None else 0
    win = aligned_window(GeoBox.of(ds), dst)
    if win is not None:
        r0, c0 = int(win.row_off), int(win.col_off)
        rr0, rr1 = max(r0, 0), min(r0 + dst.height, ds.height)
        cc0, cc1 = max(c0, 0), min(c0 + dst.width, ds.width)
        if rr1 > rr0 and cc1 > cc0:
            data = ds.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
            if src_nodata != 0:
                data = np.where(data == src_nodata, 0, data).astype(out.dtype)
            out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = data
        return out
    reproject(
        source=rasterio.band(ds, 1),
        destination=out,
        src_nodata=src_nodata,
        dst_transform=dst.transform,
        dst_crs=dst.crs,
        dst_nodata=0,
        resampling=Resampling.nearest if categorical else Resampling.bilinear,
    )
    return out


def check_on_grid(path: Path, grid: GeoBox) -> None:
    """Raise DownloadError unless ``path`` is a 1-band raster exactly on ``grid``."""
    try:
        with rasterio.open(path) as ds:
            ok = (
                ds.count == 1
                and (ds.height, ds.width) == grid.shape
                and same_crs(ds.crs, grid.crs)
                and ds.transform.almost_equals(grid.transform, precision=1e-6)
            )
            detail = f"{ds.count} band(s) {ds.height}x{ds.width} {ds.crs} {tuple(ds.transform)[:6]}"
    except RasterioError as exc:
        raise DownloadError(f"{path}: does not open: {exc}") from exc
    if not ok:
        raise DownloadError(f"{path}: not on the tile grid {grid}: {detail}")
