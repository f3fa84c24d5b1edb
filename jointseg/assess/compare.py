"""Put a 1 m ISA map and a reference product on one grid, ready for agreement metrics.

A 1 m binary map (uint8 1 = ISA, 0 = not, 255 = nodata) is first aggregated to an
**ISA fraction** on the 10 m grid aligned to it (each 10 m pixel = mean of its 10 x 10
valid 1 m pixels, NaN where none is valid). Then:

* against **WorldCover** (EPSG:4326, 1/12000 degree) or another gridded product, the
  fraction is reprojected onto the product's native grid over the map's footprint
  with ``average`` resampling and binarised at a threshold (default 0.5, as GAIA);
  reference pixels less than ``min_coverage`` covered by valid map pixels are nodata;
* against a **binary** reference at any resolution (e.g. the simulator's 1 m truth),
  the reference is read onto the map's own grid with nearest neighbour.

Products are described by :class:`Product` (a path or URL pattern with ``{year}``,
the class values that mean ISA, nodata values), so GAIA, GHSL-built or the bilinear
baseline's own map are compared the same way. The result is a :class:`Comparison`:
two uint8 0/1/255 arrays on one :class:`~jointseg.grid.GeoBox`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds
from tqdm import tqdm

from jointseg.assess import worldcover
from jointseg.assess.rasters import RasterError, read_binary, read_grid
from jointseg.grid import GeoBox
from jointseg.metrics import BinaryCounts, binary_counts
from jointseg.products import NODATA_U8

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_COVERAGE = 0.5
STRIP_ROWS_10M = 256


class CompareError(RuntimeError):
    """A map or reference cannot be read or does not fit the comparison."""


@dataclass(frozen=True)
class Comparison:
    """A map and a reference on one grid.

    Attributes:
        map_isa: uint8 1 = ISA, 0 = not, 255 = nodata.
        ref_isa: uint8 1 = ISA, 0 = not, 255 = nodata.
        geobox: the common grid.
        grid: ``"reference"`` or ``"map"``: whose grid this is.
        reference: a short description of the reference.
    """

    map_isa: np.ndarray
    ref_isa: np.ndarray
    geobox: GeoBox
    grid: str
    reference: str

    def counts(self) -> BinaryCounts:
        """Agreement counts over pixels valid in both."""
        return binary_counts(self.map_isa, self.ref_isa)


@dataclass(frozen=True)
class Product:
    """A gridded ISA or land-cover product to compare against.

    Attributes:
        name: short name (``"gaia"``, ``"ghsl"``, ``"bilinear"``).
        source: path or URL pattern; ``{year}`` is replaced by the year.
        isa_values: pixel values that mean ISA (e.g. (50,) for WorldCover, (1,) binary).
        nodata: pixel values that mean no data (besides the file's nodata).
    """

    name: str
    source: str
    isa_values: tuple[int, ...]
    nodata: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, object], name: str | None = None) -> Product:
        """From ``{"path": ..., "isa_values": [...], "nodata": [...]}`` (``name`` optional).

        Raises:
            CompareError: if ``path`` or ``isa_values`` is missing.
        """
        missing = [k for k in ("path", "isa_values") if k not in d]
        if missing:
            raise CompareError(f"product {name or d.get('name', '?')!r}: missing keys {missing}; "
                               "expected path (pattern with {year}), isa_values, nodata")
        nod = d.get("nodata", [])
        return cls(
            name=str(name or d.get("name", Path(str(d["path"])).stem)),
            source=str(d["path"]),
            isa_values=tuple(int(v) for v in d["isa_values"]),  # type: ignore[union-attr]
            nodata=tuple(int(v) for v in ([nod] if isinstance(nod, int) else nod)),  # type: ignore[union-attr]
        )

    def href(self, year: int) -> str:
        """Path (or ``/vsicurl/`` URL) of the product for ``year``."""
        src = self.source.format(year=year)
        return f"/vsicurl/{src}" if src.startswith(("http://", "https://")) else src


# ------------------------------------------------------------------- map side


def _read_map(map_path: str | os.PathLike) -> tuple[GeoBox, int]:
    """Grid and nodata value (default 255) of a map (:func:`~jointseg.assess.rasters.read_grid`).

    Raises:
        CompareError: if the map cannot be opened.
    """
    try:
        return read_grid(map_path)
    except RasterError as exc:
        raise CompareError(str(exc)) from exc


def read_map(map_path: str | os.PathLike) -> tuple[GeoBox, np.ndarray]:
    """Grid and whole binary map (uint8 1 = ISA, 0 = not, 255 = nodata) of ``map_path``.

    Raises:
        CompareError: if the map cannot be opened or holds values other than 0/1/nodata.
    """
    geobox, nodata = _read_map(map_path)
    try:
        with rasterio.open(map_path) as ds:
            return geobox, read_binary(ds, nodata)
    except RasterError as exc:
        raise CompareError(str(exc)) from exc


def aggregate_fraction(isa: np.ndarray, factor: int = 10, nodata: int = NODATA_U8) -> np.ndarray:
    """Mean of valid pixels over ``factor`` x ``factor`` blocks: float32, NaN where none valid.

    ``isa`` is uint8 0/1 with ``nodata``; its shape is padded with nodata to a multiple
    of ``factor`` (the block grid starts at the array's upper-left corner).

    Raises:
        CompareError: if ``isa`` holds values other than 0, 1 and ``nodata``.
    """
    bad = np.setdiff1d(np.unique(isa), [0, 1, nodata])
    if bad.size:
        raise CompareError(f"binary map holds values {bad.tolist()}; expected 0, 1, {nodata}")
    rows, cols = isa.shape
    r10, c10 = math.ceil(rows / factor), math.ceil(cols / factor)
    padded = np.full((r10 * factor, c10 * factor), nodata, np.uint8)
    padded[:rows, :cols] = isa
    blocks = padded.reshape(r10, factor, c10, factor)
    valid = (blocks != nodata).sum(axis=(1, 3))
    ones = (blocks == 1).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid > 0, ones / np.maximum(valid, 1), np.nan).astype(np.float32)


def map_fraction(
    map_path: str | os.PathLike, factor: int = 10, *, progress: bool = False
) -> tuple[np.ndarray, GeoBox]:
    """ISA fraction of a binary map on its aligned coarse grid (``factor`` x its pixel).

    Reads the map in strips of ``STRIP_ROWS_10M`` coarse rows. Returns the float32
    fraction (NaN = no valid pixel) and its grid (same origin and CRS as the map).
    """
    geobox, nodata = _read_map(map_path)
    r10, c10 = math.ceil(geobox.height / factor), math.ceil(geobox.width / factor)
    out = np.full((r10, c10), np.nan, np.float32)
    strips = list(geobox.row_windows(STRIP_ROWS_10M * factor))
    with rasterio.open(map_path) as ds:
        for win in tqdm(strips, desc=f"aggregate {Path(map_path).name}", unit="strip",
                        disable=not progress):
            r0 = win.row_off // factor
            out[r0:r0 + math.ceil(win.height / factor)] = (
                aggregate_fraction(ds.read(1, window=win), factor, nodata))
    # the map grid padded to whole coarse pixels, then zoomed out (same origin)
    coarse = replace(geobox, width=c10 * factor, height=r10 * factor).zoom_out(factor)
    log.info("%s: ISA fraction on %d x %d grid of %g units", map_path, r10, c10, coarse.res_m)
    return out, coarse


def fraction_on_grid(
    fraction: np.ndarray, src_geobox: GeoBox, dst_geobox: GeoBox,
    *, min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> np.ndarray:
    """Reproject an ISA fraction with ``average``; NaN where valid cover < ``min_coverage``.

    Coverage is the average of a valid-pixel indicator on a grid padded by 2 pixels
    of zeros, so destination pixels on the edge of the map get their true coverage.
    """
    pad = 2
    frac = np.pad(fraction, pad, constant_values=np.nan)
    valid = np.isfinite(frac).astype(np.float32)
    src = src_geobox[Window(-pad, -pad, src_geobox.width + 2 * pad, src_geobox.height + 2 * pad)]
    common = dict(src_transform=src.transform, src_crs=src.crs, dst_transform=dst_geobox.transform,
                  dst_crs=dst_geobox.crs, resampling=Resampling.average)
    out = np.full(dst_geobox.shape, np.nan, np.float32)
    reproject(frac, out, src_nodata=np.nan, dst_nodata=np.nan, **common)
    cover = np.zeros(dst_geobox.shape, np.float32)
    reproject(valid, cover, src_nodata=None, dst_nodata=None, init_dest_nodata=False, **common)
    out[cover < min_coverage] = np.nan
    return out


def binarise(fraction: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """uint8 1 where fraction >= ``threshold``, 0 below, 255 where NaN."""
    out = np.full(fraction.shape, NODATA_U8, np.uint8)
    ok = np.isfinite(fraction)
    out[ok] = (fraction[ok] >= threshold).astype(np.uint8)
    return out


# -------------------------------------------------------------- reference side


def classes_to_isa(
    values: np.ndarray, isa_values: Sequence[int], nodata_values: Sequence[int] = ()
) -> np.ndarray:
    """uint8 1 where ``values`` is in ``isa_values``, 255 in ``nodata_values``, else 0."""
    out = np.isin(values, list(isa_values)).astype(np.uint8)
    if len(nodata_values):
        out[np.isin(values, list(nodata_values))] = NODATA_U8
    return out


def read_on_grid(
    path: str | os.PathLike, dst_geobox: GeoBox, *, fill: int = NODATA_U8
) -> tuple[np.ndarray, int | None]:
    """Band 1 of ``path`` on ``dst_geobox`` with nearest neighbour; returns (data, nodata).

    Pixels outside the file, or at its nodata, get ``fill``.
    """
    try:
        with rasterio.open(path) as ds:
            src_nodata = ds.nodata
            dtype = ds.dtypes[0]
            out = np.full(dst_geobox.shape, fill, dtype)
            reproject(rasterio.band(ds, 1), out, src_nodata=src_nodata, dst_nodata=fill,
                      dst_transform=dst_geobox.transform, dst_crs=dst_geobox.crs,
                      resampling=Resampling.nearest)
    except RasterioIOError as exc:
        raise CompareError(f"{path}: cannot open reference ({exc})") from exc
    return out, (None if src_nodata is None else int(src_nodata))


def read_product_window(
    href: str, bounds_lonlat: tuple[float, float, float, float], *, fill: int = NODATA_U8
) -> tuple[np.ndarray, GeoBox, int | None]:
    """Band 1 of a product on its native grid cut to ``bounds_lonlat`` (snapped outwards).

    Pixels beyond the file's extent get ``fill``. Returns (values, grid, file nodata).
    """
    try:
        with rasterio.open(href) as ds:
            b = transform_bounds("EPSG:4326", ds.crs, *bounds_lonlat, densify_pts=21)
            win = from_bounds(*b, transform=ds.transform)
            c0, r0 = math.floor(win.col_off + 1e-6), math.floor(win.row_off + 1e-6)
            c1 = math.ceil(win.col_off + win.width - 1e-6)
            r1 = math.ceil(win.row_off + win.height - 1e-6)
            window = Window(c0, r0, c1 - c0, r1 - r0)
            values = ds.read(1, window=window, boundless=True, fill_value=fill)
            grid = GeoBox.of(ds)[window]
            return values, grid, (None if ds.nodata is None else int(ds.nodata))
    except RasterioIOError as exc:
        raise CompareError(f"{href}: cannot open product ({exc})") from exc


# ------------------------------------------------------------------ comparisons


def compare_with_worldcover(
    map_path: str | os.PathLike,
    source: str | os.PathLike,
    year: int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    factor: int = 10,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    allow_missing: bool = False,
    progress: bool = False,
) -> Comparison:
    """Map vs WorldCover built-up (class 50) on the WorldCover grid over the map.

    The map's ISA fraction (``factor`` x its pixel) is averaged onto the native
    WorldCover grid covering the map and binarised at ``threshold``; WorldCover 0 and
    map nodata are excluded (255).
    """
    fraction, fgrid = map_fraction(map_path, factor, progress=progress)
    ref = worldcover.read_worldcover_builtup(source, year, fgrid.lonlat_bounds(),
                                             allow_missing=allow_missing)
    frac_ref = fraction_on_grid(fraction, fgrid, ref.geobox, min_coverage=min_coverage)
    return Comparison(binarise(frac_ref, threshold), ref.isa, ref.geobox, "reference",
                      f"ESA WorldCover {year} built-up (class 50) from {source}")


def compare_with_product(
    map_path: str | os.PathLike,
    product: Product,
    year: int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    factor: int = 10,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    progress: bool = False,
) -> Comparison:
    """Map vs a single-raster product (``product.source`` with ``{year}``) on its grid."""
    fraction, fgrid = map_fraction(map_path, factor, progress=progress)
    href = product.href(year)
    values, grid, nodata = read_product_window(href, fgrid.lonlat_bounds(), fill=NODATA_U8)
    nod = [*product.nodata, NODATA_U8] + ([nodata] if nodata is not None else [])
    ref = classes_to_isa(values, product.isa_values, nod)
    frac_ref = fraction_on_grid(fraction, fgrid, grid, min_coverage=min_coverage)
    return Comparison(binarise(frac_ref, threshold), ref, grid, "reference",
                      f"{product.name} {year} ISA values {list(product.isa_values)} from {href}")


def compare_with_binary(
    map_path: str | os.PathLike,
    reference_path: str | os.PathLike,
    *,
    isa_values: Sequence[int] = (1,),
    nodata_values: Sequence[int] = (),
) -> Comparison:
    """Map vs a binary (or class) reference read onto the map's grid with nearest.

    The reference's own nodata and ``nodata_values`` become 255; ``isa_values`` mean
    ISA, anything else not. Works for any map on any grid (e.g. the bilinear baseline).
    """
    geobox, map_isa = read_map(map_path)
    sentinel = _unused_value(reference_path)
    values, nodata = read_on_grid(reference_path, geobox, fill=sentinel)
    nod = list(nodata_values) + [sentinel] + ([nodata] if nodata is not None else [])
    ref = classes_to_isa(values, isa_values, nod)
    return Comparison(map_isa, ref, geobox, "map", f"binary reference {reference_path}")


def _unused_value(path: str | os.PathLike) -> int:
    """A fill value for pixels outside the reference: its nodata, else 255 (uint8 codes)."""
    try:
        with rasterio.open(path) as ds:
            return int(ds.nodata) if ds.nodata is not None else NODATA_U8
    except RasterioIOError as exc:
        raise CompareError(f"{path}: cannot open reference ({exc})") from exc
