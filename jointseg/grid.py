"""The tile grid: the spine of the project.

A *tile* is a square of ``tile_size_m`` metres in the UTM zone that holds the
tile's centre. Its 10 m grid, its 20 m grid and its 1 m child grid share one
origin (the tile's upper-left corner), so every 10 m pixel is exactly 10 x 10
output pixels at 1 m and every 20 m pixel is exactly 2 x 2 pixels at 10 m.

Tile ids read ``<epsg>_<xmin>_<ymin>`` with the lower-left corner in metres,
for example ``32650_664000_3544000``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

TILE_ID_RE = re.compile(r"^(?P<epsg>\d{4,5})_(?P<xmin>-?\d+)_(?P<ymin>-?\d+)$")


@dataclass(frozen=True)
class GeoBox:
    """A raster grid: CRS + north-up affine transform + shape (pixels).

    Attributes:
        crs: CRS as an authority string, e.g. ``"EPSG:32650"``.
        transform: affine transform from pixel (col, row) to map coordinates (m).
        width: number of columns.
        height: number of rows.
    """

    crs: str
    transform: Affine
    width: int
    height: int

    @classmethod
    def from_bounds(
        cls, crs: str, bounds: tuple[float, float, float, float], res_m: float
    ) -> GeoBox:
        """Grid covering ``bounds`` (left, bottom, right, top) at ``res_m`` metres.

        Raises:
            ValueError: if the bounds are not a whole number of pixels.
        """
        left, bottom, right, top = bounds
        w = (right - left) / res_m
        h = (top - bottom) / res_m
        if abs(w - round(w)) > 1e-6 or abs(h - round(h)) > 1e-6 or w <= 0 or h <= 0:
            raise ValueError(
                f"bounds {bounds} are not a positive whole number of {res_m} m pixels"
            )
        return cls(crs, Affine(res_m, 0.0, left, 0.0, -res_m, top), round(w), round(h))

    @classmethod
    def of(cls, ds: object) -> GeoBox:
        """The grid of an open rasterio dataset (its CRS, transform and shape)."""
        return cls(ds.crs.to_string(), ds.transform, ds.width, ds.height)

    @property
    def res_m(self) -> float:
        """Pixel size in CRS units (metres for UTM)."""
        return float(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    def with_res(self, res_m: float) -> GeoBox:
        """Same bounds at another resolution (e.g. the 1 m child of a 10 m grid).

        Raises:
            ValueError: if the bounds are not a whole number of ``res_m`` pixels.
        """
        return GeoBox.from_bounds(self.crs, self.bounds, res_m)

    def zoom_in(self, factor: int) -> GeoBox:
        """The child grid ``factor`` times finer: same origin and bounds, pixel size /
        ``factor``, shape x ``factor`` (the 1 m child of a 10 m grid is ``zoom_in(10)``)."""
        if factor < 1 or int(factor) != factor:
            raise ValueError(f"zoom factor must be a positive integer, got {factor}")
        t = self.transform
        return GeoBox(
            self.crs,
            Affine(t.a / factor, t.b / factor, t.c, t.d / factor, t.e / factor, t.f),
            self.width * factor,
            self.height * factor,
        )

    def zoom_out(self, factor: int) -> GeoBox:
        """The parent grid ``factor`` times coarser, same origin (10 m of a 1 m grid is
        ``zoom_out(10)``).

        Raises:
            ValueError: if the shape is not a whole number of ``factor`` pixels.
        """
        if factor < 1 or int(factor) != factor:
            raise ValueError(f"zoom factor must be a positive integer, got {factor}")
        if self.width % factor or self.height % factor:
            raise ValueError(
                f"grid of {self.width} x {self.height} px is not a whole number of "
                f"{factor} x {factor} px blocks"
            )
        t = self.transform
        return GeoBox(
            self.crs,
            Affine(t.a * factor, t.b * factor, t.c, t.d * factor, t.e * factor, t.f),
            self.width // factor,
            self.height // factor,
        )

    def __getitem__(self, roi: Window | tuple[slice, slice]) -> GeoBox:
        """The sub-grid of a window (or ``(row_slice, col_slice)``), as odc-geo's
        ``gbox[roi]``: its transform is shifted, its shape is the window's.

        Raises:
            ValueError: if the window has a non-positive size or non-integer offsets.
        """
        if isinstance(roi, tuple):
            rows, cols = roi
            r0, r1, _ = rows.indices(self.height)
            c0, c1, _ = cols.indices(self.width)
            roi = Window(c0, r0, c1 - c0, r1 - r0)
        if roi.width <= 0 or roi.height <= 0:
            raise ValueError(f"empty window {roi}")
        if any(v != int(v) for v in (roi.col_off, roi.row_off, roi.width, roi.height)):
            raise ValueError(f"window {roi} is not on whole pixels")
        return GeoBox(
            self.crs,
            self.transform @ Affine.translation(roi.col_off, roi.row_off),
            int(roi.width),
            int(roi.height),
        )

    def row_windows(self, rows: int) -> Iterator[Window]:
        """Full-width windows of ``rows`` rows (the last one shorter) covering the grid,
        top to bottom: the strips a block-wise reader or writer walks."""
        for row0 in range(0, self.height, rows):
            yield Window(0, row0, self.width, min(rows, self.height - row0))

    def window_of(self, other: GeoBox) -> Window:
        """The window of ``other`` (same CRS and resolution, pixel-aligned) in this grid.

        Raises:
            ValueError: if ``other`` is in another CRS, at another resolution or off-grid.
        """
        if other.crs != self.crs or other.transform[:2] != self.transform[:2] or (
            other.transform.e != self.transform.e
        ):
            raise ValueError(f"grid {other} is not a sub-grid of {self}")
        col, row = ~self.transform @ (other.transform.c, other.transform.f)
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            raise ValueError(f"grid {other} is not pixel-aligned with {self}")
        return Window(round(col), round(row), other.width, other.height)

    def lonlat_bounds(self, densify_pts: int = 21) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees (EPSG:4326) of the grid's extent, with
        ``densify_pts`` points per edge so curved edges are enclosed."""
        from rasterio.warp import transform_bounds

        return tuple(
            transform_bounds(self.crs, "EPSG:4326", *self.bounds, densify_pts=densify_pts)
        )

    @property
    def is_projected(self) -> bool:
        """True for a projected CRS (pixel sizes in linear units, e.g. metres)."""
        return CRS.from_user_input(self.crs).is_projected

    @property
    def pixel_area_m2(self) -> float:
        """Area of one pixel in m² of a projected grid (CRS linear unit converted to m).

        Raises:
            ValueError: for a geographic (degree) grid, whose pixel area varies by row:
                use :meth:`pixel_area_m2_rows`.
        """
        crs = CRS.from_user_input(self.crs)
        if not crs.is_projected:
            raise ValueError(f"grid CRS {self.crs} is not projected; areas need metres")
        t = self.transform
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return abs(t.a * t.e - t.b * t.d) * unit**2

    def pixel_area_m2_rows(self) -> np.ndarray:
        """float64 (height,) area in m² of one pixel of each row: constant for projected
        grids, geodesic (WGS 84 ellipsoid) for geographic ones."""
        if self.is_projected:
            return np.full(self.height, self.pixel_area_m2)
        geod = Geod(ellps="WGS84")
        t = self.transform
        x0, x1 = t.c, t.c + t.a
        out = np.empty(self.height)
        for r in range(self.height):
            ytop, ybot = t.f + t.e * r, t.f + t.e * (r + 1)
            area, _ = geod.polygon_area_perimeter([x0, x1, x1, x0], [ybot, ybot, ytop, ytop])
            out[r] = abs(area)
        return out

    def profile(self, **extra: object) -> dict:
        """A rasterio profile (crs/transform/width/height) plus ``extra`` keys."""
        return {
            "crs": self.crs,
            "transform": self.transform,
            "width": self.width,
            "height": self.height,
            **extra,
        }


@dataclass(frozen=True)
class Tile:
    """One square tile in its UTM zone.

    Attributes:
        tile_id: ``<epsg>_<xmin>_<ymin>`` (metres).
        epsg: EPSG code of the tile's UTM zone, e.g. 32650.
        xmin, ymin: lower-left corner in metres.
        size_m: side length in metres (a multiple of 60 m).
    """

    tile_id: str
    epsg: int
    xmin: int
    ymin: int
    size_m: int

    @classmethod
    def from_id(cls, tile_id: str, size_m: int) -> Tile:
        """Parse ``<epsg>_<xmin>_<ymin>``.

        Raises:
            ValueError: if the id is malformed.
        """
        m = TILE_ID_RE.match(tile_id)
        if not m:
            raise ValueError(f"malformed tile id {tile_id!r}: expected <epsg>_<xmin>_<ymin>")
        return cls(tile_id, int(m["epsg"]), int(m["xmin"]), int(m["ymin"]), size_m)

    @classmethod
    def at(cls, epsg: int, xmin: int, ymin: int, size_m: int) -> Tile:
        return cls(f"{epsg}_{xmin}_{ymin}", epsg, xmin, ymin, size_m)

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in metres, tile CRS."""
        return (self.xmin, self.ymin, self.xmin + self.size_m, self.ymin + self.size_m)

    def geobox(self, res_m: float) -> GeoBox:
        """The tile's grid at ``res_m`` metres (10, 20 or 1)."""
        return GeoBox.from_bounds(self.crs, self.bounds, res_m)

    def footprint_lonlat(self) -> BaseGeometry:
        """Tile footprint as a shapely polygon in EPSG:4326 (lon, lat), densified."""
        poly = box(*self.bounds).segmentize(self.size_m / 8)
        tr = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        return shapely.transform(poly, tr.transform, interleaved=False)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone holding (lon, lat) in degrees."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def is_utm(crs: str) -> bool:
    """True when ``crs`` is a WGS 84 / UTM zone (EPSG 326xx or 327xx)."""
    epsg = CRS.from_user_input(crs).to_epsg() or 0
    return 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760


def _snap_down(v: float, step: int) -> int:
    return int(math.floor(v / step) * step)


def tiles_for_bbox(
    bbox: tuple[float, float, float, float], crs: str, tile_size_m: int
) -> list[Tile]:
    """Tiles covering a bbox given in a UTM CRS, snapped to multiples of the tile size.

    Args:
        bbox: (xmin, ymin, xmax, ymax) in metres of ``crs``.
        crs: a UTM CRS (``EPSG:326xx``/``EPSG:327xx``).
        tile_size_m: tile side in metres (multiple of 60).

    Raises:
        ValueError: if ``crs`` is not UTM, the bbox is empty or the size is invalid.
    """
    _check_size(tile_size_m)
    if not is_utm(crs):
        raise ValueError(f"tiles_for_bbox needs a UTM CRS, got {crs}; use tiles_for_aoi")
    xmin, ymin, xmax, ymax = bbox
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"empty bbox {bbox}")
    epsg = CRS.from_user_input(crs).to_epsg()
    out = []
    for y in range(_snap_down(ymin, tile_size_m), math.ceil(ymax), tile_size_m):
        for x in range(_snap_down(xmin, tile_size_m), math.ceil(xmax), tile_size_m):
            out.append(Tile.at(epsg, x, y, tile_size_m))
    return out


def tiles_for_aoi(aoi_lonlat: BaseGeometry, tile_size_m: int) -> list[Tile]:
    """Tiles covering an AOI polygon (EPSG:4326, lon/lat), each in its own UTM zone.

    The AOI is cut along the UTM zone boundaries; each zone's part is tiled in
    that zone's coordinates (tiles snap to multiples of ``tile_size_m``) and a
    tile is kept when it intersects that part. Every point of the AOI is thus
    covered by a tile of its own zone; along zone boundaries, tiles of the two
    zones overlap by less than one tile, which the mosaic resolves.

    Raises:
        ValueError: if the AOI is empty or invalid, or the size is invalid.
    """
    _check_size(tile_size_m)
    if aoi_lonlat.is_empty:
        raise ValueError("AOI is empty")
    if not aoi_lonlat.is_valid:
        from shapely.validation import explain_validity

        raise ValueError(f"AOI polygon is invalid: {explain_validity(aoi_lonlat)}")
    minlon, minlat, maxlon, maxlat = aoi_lonlat.bounds
    zones = range(
        int(math.floor((minlon + 180) / 6)) + 1, int(math.floor((maxlon + 180) / 6)) + 2
    )
    base = 32600 if (minlat + maxlat) / 2 >= 0 else 32700
    tiles: list[Tile] = []
    for zone in zones:
        epsg = base + (zone - 1) % 60 + 1
        zlon0 = -180 + (zone - 1) * 6
        zone_box = box(max(zlon0, minlon), minlat, min(zlon0 + 6, maxlon), maxlat)
        part = aoi_lonlat.intersection(zone_box)
        if part.is_empty:
            continue
        to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
        part_utm = shapely.transform(part.segmentize(0.05), to_utm.transform, interleaved=False)
        for t in tiles_for_bbox(part_utm.bounds, f"EPSG:{epsg}", tile_size_m):
            if part_utm.intersects(box(*t.bounds)):
                tiles.append(t)
    return tiles


def _check_size(tile_size_m: int) -> None:
    if tile_size_m <= 0 or tile_size_m % 60:
        raise ValueError(
            f"tile_size_m={tile_size_m} must be a positive multiple of 60 m "
            "(so the 10, 20 and 60 m grids all align)"
        )
