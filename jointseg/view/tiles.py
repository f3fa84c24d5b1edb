"""What one web-mercator map tile of a layer costs to read, and which tiles a layer serves.

A tile is cut by rio-tiler through a warped VRT that spans the whole tile at the
resolution of the overview level GDAL picks, and that for every file the tile touches
(:func:`render_tile`). Below the coarsest overview that VRT grows with the square of
``2**-z``: one z8 tile over four 300 px composite files (no overviews) warped
13 000 x 13 000 pixels per file and band (33 s, 1.5 GB), a z0 tile minutes and
gigabytes. So each layer serves only the zooms its files' overviews support:

* **minimum zoom** of a file: the smallest zoom at which one 256 px tile reads at
  most :attr:`TileLimits.max_read_side_px` (1024) pixels a side from the file's
  coarsest overview (its resolution in web-mercator metres times its largest overview
  factor); of a layer: the largest of its files', raised further while one tile of
  the layer's extent would read more than :attr:`TileLimits.max_tile_read_px` over all
  the files it touches;
* **maximum zoom**: the layer's native zoom (rio-tiler's ``maxzoom``) plus
  :attr:`TileLimits.overzoom` (cheap: a few source pixels stretched).

Any other ``z/x/y`` is refused (:class:`TileRefused`, HTTP 404) before any pixel is read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.warp import calculate_default_transform, transform_bounds

TILE_PX = 256
#: web-mercator world width in metres (the extent of the z0 tile)
WORLD_M = 2 * math.pi * 6378137.0
#: no layer serves tiles beyond this zoom (morecantile and GDAL overflow far above)
MAX_ZOOM = 30
#: GDAL picks an overview up to this much finer than the request (its default threshold)
_OVERVIEW_SLACK = 1.2


class TileRefused(ValueError):
    """A tile the layer does not serve (zoom out of range, x/y off the grid, too costly)."""


class RenderTimeout(TimeoutError):
    """A tile render ran past its deadline."""


@dataclass(frozen=True)
class TileLimits:
    """The per-request bounds of the viewer's tile server.

    Attributes:
        max_read_side_px: one file read for one tile at most this many source pixels a
            side (from the file's coarsest overview); sets each file's minimum zoom.
        max_tile_read_px: one tile reads at most this many source pixels (per band) over
            all the files it touches.
        overzoom: zoom levels served above a layer's native zoom.
        render_timeout_s: a tile still rendering after this long is answered 503.
        render_threads: tiles rendered at once (more wait in a queue).
    """

    max_read_side_px: int = 4 * TILE_PX
    max_tile_read_px: int = 16 * (4 * TILE_PX) ** 2
    overzoom: int = 4
    render_timeout_s: float = 15.0
    render_threads: int = 4


DEFAULT_LIMITS = TileLimits()


def tile_res_m(z: int) -> float:
    """Pixel size of a 256 px web-mercator tile at zoom ``z``, in web-mercator metres."""
    return WORLD_M / (TILE_PX * 2.0 ** z)


def tile_bounds_lonlat(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """lon/lat west, south, east, north of tile ``z/x/y``."""
    n = 2.0 ** z

    def lat(row: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


@dataclass(frozen=True)
class SourceFile:
    """One file of a layer as the tile reader sees it.

    Attributes:
        path: the file.
        bounds: lon/lat west, south, east, north.
        res_m: its pixel size reprojected to web mercator (metres there).
        overviews: its overview decimation factors, finest first (empty: none).
    """

    path: Path
    bounds: tuple[float, float, float, float]
    res_m: float
    overviews: tuple[int, ...]

    @classmethod
    def open(cls, path: Path) -> SourceFile:
        """Read the grid and overview factors from the file's header."""
        with rasterio.open(path) as ds:
            dst, _, _ = calculate_default_transform(ds.crs, "EPSG:3857", ds.width, ds.height,
                                                    *ds.bounds)
            bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
            return cls(Path(path), tuple(bounds), abs(dst.a), tuple(ds.overviews(1)))

    @property
    def coarsest_res_m(self) -> float:
        return self.res_m * max(self.overviews, default=1)

    def read_side_px(self, z: int) -> float:
        """Source pixels a side that one tile at zoom ``z`` reads from this file: the
        tile's extent at the overview level GDAL picks (the coarsest not coarser than
        the tile's pixels)."""
        ratio = tile_res_m(z) / self.res_m
        factor = max((f for f in (1, *self.overviews) if f <= ratio * _OVERVIEW_SLACK),
                     default=1)
        return TILE_PX * ratio / factor

    def min_zoom(self, max_read_side_px: int) -> int:
        """The smallest zoom at which a tile reads at most ``max_read_side_px`` a side."""
        # TILE_PX * tile_res_m(z) / coarsest_res_m <= max_read_side_px
        z = math.ceil(math.log2(WORLD_M / (max_read_side_px * self.coarsest_res_m)))
        return min(MAX_ZOOM, max(0, z))

    def intersects(self, bounds: tuple[float, float, float, float]) -> bool:
        return (self.bounds[0] < bounds[2] and self.bounds[2] > bounds[0]
                and self.bounds[1] < bounds[3] and self.bounds[3] > bounds[1])


def _union(files: list[SourceFile]) -> tuple[float, float, float, float]:
    return (min(f.bounds[0] for f in files), min(f.bounds[1] for f in files),
            max(f.bounds[2] for f in files), max(f.bounds[3] for f in files))


def _tiles_over(bounds: tuple[float, float, float, float], z: int, limit: int):
    """The tiles at zoom ``z`` over lon/lat ``bounds`` (``None`` if more than ``limit``)."""
    n = 2 ** z

    def col(lon: float) -> int:
        return min(n - 1, max(0, int((lon + 180.0) / 360.0 * n)))

    def row(lat: float) -> int:
        lat = max(-85.0511, min(85.0511, lat))
        s = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
        return min(n - 1, max(0, int((1 - s / math.pi) / 2 * n)))

    x0, x1, y0, y1 = col(bounds[0]), col(bounds[2]), row(bounds[3]), row(bounds[1])
    if (x1 - x0 + 1) * (y1 - y0 + 1) > limit:
        return None
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


@dataclass(frozen=True)
class LayerTiles:
    """The files of one layer and the tiles it serves (``minzoom`` .. ``maxzoom``)."""

    files: tuple[SourceFile, ...]
    minzoom: int
    maxzoom: int
    limits: TileLimits

    @classmethod
    def from_files(cls, paths: list[Path], native_maxzoom: int,
                   limits: TileLimits = DEFAULT_LIMITS) -> LayerTiles:
        """Derive the zoom range of a layer from its files' headers (see the module doc)."""
        files = tuple(SourceFile.open(p) for p in paths)
        minzoom = max(f.min_zoom(limits.max_read_side_px) for f in files)
        maxzoom = min(MAX_ZOOM, max(native_maxzoom, minzoom) + limits.overzoom)
        layer = cls(files, minzoom, maxzoom, limits)
        while layer.minzoom < maxzoom and not layer._affordable_everywhere(layer.minzoom):
            layer = cls(files, layer.minzoom + 1, maxzoom, limits)
        return layer

    def _affordable_everywhere(self, z: int) -> bool:
        tiles = _tiles_over(_union(list(self.files)), z, limit=4096)
        if tiles is None:  # thousands of tiles: each is far smaller than the files
            return True
        return all(self.read_px(z, x, y) <= self.limits.max_tile_read_px for x, y in tiles)

    def read_px(self, z: int, x: int, y: int) -> float:
        """Source pixels (per band) one tile reads over all the files it touches."""
        return sum(f.read_side_px(z) ** 2 for f in self.touched(z, x, y))

    def touched(self, z: int, x: int, y: int) -> list[SourceFile]:
        bounds = tile_bounds_lonlat(z, x, y)
        return [f for f in self.files if f.intersects(bounds)]

    def check(self, z: int, x: int, y: int) -> list[SourceFile]:
        """The files tile ``z/x/y`` reads; raises :class:`TileRefused` for a tile the
        layer does not serve (zoom outside minzoom..maxzoom, x/y off the grid, or a read
        over the pixel budget)."""
        if not self.minzoom <= z <= self.maxzoom:
            raise TileRefused(f"zoom {z} not served: this layer has tiles at zooms "
                              f"{self.minzoom}-{self.maxzoom}")
        if not (0 <= x < 2 ** z and 0 <= y < 2 ** z):
            raise TileRefused(f"no tile {x}/{y} at zoom {z}: x and y run 0-{2 ** z - 1}")
        files = self.touched(z, x, y)
        px = sum(f.read_side_px(z) ** 2 for f in files)
        if px > self.limits.max_tile_read_px:
            raise TileRefused(f"tile {z}/{x}/{y} would read {px:.3g} source pixels, over the "
                              f"budget of {self.limits.max_tile_read_px:.3g}; zoom in")
        return files


def check_deadline(deadline: float | None, what: str) -> None:
    """Raise :class:`RenderTimeout` when ``time.monotonic()`` is past ``deadline``."""
    if deadline is not None and time.monotonic() > deadline:
        raise RenderTimeout(f"{what}: render deadline passed")
