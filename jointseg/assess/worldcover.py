"""ESA WorldCover 10 m land cover as published: tile names, windowed reads, built-up mask.

WorldCover tiles are 3 x 3 degree GeoTIFFs in EPSG:4326 (pixel 1/12000 degree, about
10 m), uint8 class codes (10 tree ... 50 built-up ... 100 moss; 0 = no data), named
after their lower-left corner: ``ESA_WorldCover_10m_<year>_<version>_<N|S>yy<E|W>xxx_Map.tif``
(v100 for 2020, v200 for 2021). Tile N30E117 covers 30-33 N, 117-120 E. Tiles exist only
where there is land; the ocean has none.

A *source* is one of:

* a local folder holding tiles under their official names;
* an http(s) folder URL (tiles are read through GDAL's ``/vsicurl/``);
* a name template with ``{year}``, ``{version}``, ``{tile}`` (``N30E117``) and/or
  ``{name}`` (the official file name), e.g. :data:`DEFAULT_URL_TEMPLATE`;
* one GeoTIFF file on the WorldCover grid (a cut-out or a mosaic), used as is.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import reproject
from rasterio.windows import Window, from_bounds

from jointseg.grid import GeoBox
from jointseg.products import NODATA_U8

log = logging.getLogger(__name__)

BUILT_UP = 50
#: WorldCover's own no-data class (the ocean, gaps); not the products' NODATA_U8.
NODATA_CLASS = 0
CRS = "EPSG:4326"
PIXEL_DEG = 1.0 / 12000.0
TILE_DEG = 3
VERSIONS: dict[int, str] = {2020: "v100", 2021: "v200"}
DEFAULT_URL_TEMPLATE = (
    "https://esa-worldcover.s3.eu-central-1.amazonaws.com/"
    "{version}/{year}/map/ESA_WorldCover_10m_{year}_{version}_{tile}_Map.tif"
)


class WorldCoverError(RuntimeError):
    """A WorldCover tile is missing or unreadable, or a request is out of range."""


class MissingTileWarning(UserWarning):
    """A WorldCover tile needed for the grid is absent; its part was filled with 0 (no data)."""


def version_for(year: int) -> str:
    """Product version of a WorldCover year (``v100`` for 2020, ``v200`` for 2021).

    Raises:
        WorldCoverError: for a year WorldCover was not published for.
    """
    try:
        return VERSIONS[int(year)]
    except KeyError:
        raise WorldCoverError(
            f"no ESA WorldCover for year {year}: published years are {sorted(VERSIONS)}"
        ) from None


def tile_id(lat0: int, lon0: int) -> str:
    """Tile id from the lower-left corner in whole degrees, e.g. (30, 117) -> ``N30E117``."""
    ns = "N" if lat0 >= 0 else "S"
    ew = "E" if lon0 >= 0 else "W"
    return f"{ns}{abs(lat0):02d}{ew}{abs(lon0):03d}"


def tile_name(tile: str, year: int) -> str:
    """Official file name of tile ``tile`` (``N30E117``) for ``year``."""
    return f"ESA_WorldCover_10m_{year}_{version_for(year)}_{tile}_Map.tif"


def worldcover_tile_ids(bounds_lonlat: tuple[float, float, float, float]) -> list[str]:
    """Ids of the 3-degree tiles covering (west, south, east, north) in degrees.

    Edges that fall exactly on a tile boundary do not pull in the neighbouring tile.
    Ordered north to south, then west to east.
    """
    west, south, east, north = bounds_lonlat
    if not (east > west and north > south):
        raise ValueError(f"empty lon/lat bounds {bounds_lonlat}")
    lon0s = range(_floor3(west), _ceil3(east), TILE_DEG)
    lat0s = range(_floor3(south), _ceil3(north), TILE_DEG)
    return [tile_id(lat0, lon0) for lat0 in reversed(lat0s) for lon0 in lon0s]


def worldcover_tile_names(
    bounds_lonlat: tuple[float, float, float, float], year: int
) -> list[str]:
    """Official file names of the tiles covering (west, south, east, north) degrees.

    Example: ``(117.2, 30.5, 117.4, 30.7), 2021`` ->
    ``["ESA_WorldCover_10m_2021_v200_N30E117_Map.tif"]``.
    """
    return [tile_name(t, year) for t in worldcover_tile_ids(bounds_lonlat)]


def _floor3(v: float) -> int:
    return int(math.floor(v / TILE_DEG)) * TILE_DEG


def _ceil3(v: float) -> int:
    return int(math.ceil(v / TILE_DEG)) * TILE_DEG


def tile_href(source: str | os.PathLike, tile: str, year: int) -> str:
    """Where ``tile`` of ``year`` lives in ``source`` (local path or ``/vsicurl/`` URL)."""
    name = tile_name(tile, year)
    src = str(source)
    if "{" in src:
        src = src.format(year=year, version=version_for(year), tile=tile, name=name)
        return _vsicurl(src)
    if src.startswith(("http://", "https://")):
        return _vsicurl(src.rstrip("/") + "/" + name)
    return str(Path(src) / name)


def _vsicurl(href: str) -> str:
    return f"/vsicurl/{href}" if href.startswith(("http://", "https://")) else href


def _is_single_file(source: str | os.PathLike) -> bool:
    src = str(source)
    return "{" not in src and src.lower().endswith((".tif", ".tiff", ".vrt"))


def worldcover_geobox(bounds_lonlat: tuple[float, float, float, float]) -> GeoBox:
    """The native WorldCover grid (EPSG:4326, 1/12000 degree) snapped out to cover bounds."""
    west, south, east, north = bounds_lonlat
    c0 = math.floor(round(west / PIXEL_DEG, 6))
    c1 = math.ceil(round(east / PIXEL_DEG, 6))
    r0 = math.floor(round(-north / PIXEL_DEG, 6))
    r1 = math.ceil(round(-south / PIXEL_DEG, 6))
    transform = Affine(PIXEL_DEG, 0.0, c0 * PIXEL_DEG, 0.0, -PIXEL_DEG, -r0 * PIXEL_DEG)
    return GeoBox(CRS, transform, c1 - c0, r1 - r0)


def read_worldcover(
    source: str | os.PathLike,
    dst_geobox: GeoBox,
    year: int,
    *,
    allow_missing: bool = False,
) -> np.ndarray:
    """WorldCover class codes on ``dst_geobox`` (nearest neighbour), uint8, 0 = no data.

    Reads only the window of each tile that covers the grid (plus a 2-pixel margin),
    then reprojects it onto the grid with nearest-neighbour resampling.

    Args:
        source: folder, folder URL, name template or single GeoTIFF (see module doc).
        dst_geobox: target grid in any CRS.
        year: 2020 or 2021 (picks v100/v200 in official names).
        allow_missing: fill the part of a missing tile with 0 and warn
            (:class:`MissingTileWarning`) instead of raising.

    Returns:
        (rows, cols) uint8 class codes.

    Raises:
        WorldCoverError: a tile the grid needs is missing or unreadable (names the file).
    """
    out = np.zeros(dst_geobox.shape, np.uint8)
    bounds = dst_geobox.lonlat_bounds()
    if _is_single_file(source):
        hrefs = [(Path(source).name, _vsicurl(str(source)))]
    else:
        hrefs = [(t, tile_href(source, t, year)) for t in worldcover_tile_ids(bounds)]
    for tile, href in hrefs:
        try:
            ds = rasterio.open(href)
        except RasterioIOError as exc:
            if _is_single_file(source):
                raise WorldCoverError(f"{href}: cannot open WorldCover file ({exc})") from exc
            if not allow_missing:
                raise WorldCoverError(
                    f"WorldCover tile {tile} missing: {href} cannot be opened ({exc})"
                ) from exc
            msg = f"WorldCover tile {tile} missing ({href}); its part of the grid is 0 (no data)"
            log.warning(msg)
            warnings.warn(msg, MissingTileWarning, stacklevel=2)
            continue
        with ds:
            log.info("WorldCover %s: reading %s", tile, href)
            _reproject_window(ds, bounds, dst_geobox, out)
    return out


def _reproject_window(
    ds: rasterio.io.DatasetReader,
    bounds_lonlat: tuple[float, float, float, float],
    dst_geobox: GeoBox,
    out: np.ndarray,
) -> None:
    """Nearest-reproject the part of ``ds`` under the bounds into ``out`` where it is 0."""
    win = from_bounds(*bounds_lonlat, transform=ds.transform)
    col0 = max(int(math.floor(win.col_off)) - 2, 0)
    row0 = max(int(math.floor(win.row_off)) - 2, 0)
    col1 = min(int(math.ceil(win.col_off + win.width)) + 2, ds.width)
    row1 = min(int(math.ceil(win.row_off + win.height)) + 2, ds.height)
    if col1 <= col0 or row1 <= row0:
        return
    window = Window(col0, row0, col1 - col0, row1 - row0)
    data = ds.read(1, window=window)
    part = np.zeros_like(out)
    reproject(
        data, part,
        src_transform=ds.window_transform(window), src_crs=ds.crs, src_nodata=NODATA_CLASS,
        dst_transform=dst_geobox.transform, dst_crs=dst_geobox.crs, dst_nodata=NODATA_CLASS,
        resampling=Resampling.nearest,
    )
    np.copyto(out, part, where=(out == NODATA_CLASS))


@dataclass(frozen=True)
class BinaryReference:
    """A binary reference on a grid: ``isa`` uint8 1 = ISA, 0 = not, 255 = no data."""

    isa: np.ndarray
    geobox: GeoBox


def builtup_mask(classes: np.ndarray, nodata_out: int = NODATA_U8) -> np.ndarray:
    """WorldCover classes -> uint8 1 = built-up (50), 0 = other class, ``nodata_out`` = 0."""
    out = (classes == BUILT_UP).astype(np.uint8)
    out[classes == NODATA_CLASS] = nodata_out
    return out


def read_worldcover_builtup(
    source: str | os.PathLike, year: int, bounds_lonlat: tuple[float, float, float, float],
    *, allow_missing: bool = False,
) -> BinaryReference:
    """Built-up mask on the native WorldCover grid covering ``bounds_lonlat`` (degrees)."""
    geobox = worldcover_geobox(bounds_lonlat)
    classes = read_worldcover(source, geobox, year, allow_missing=allow_missing)
    return BinaryReference(builtup_mask(classes), geobox)
