"""Read another ISA product onto the assessment grid as an ISA fraction.

A product is configured as ``{name, kind, path, year}`` (:class:`ProductSpec`):
``path`` is a file, a GDAL VRT, an http(s) URL (read through ``/vsicurl/``) or a list
of them (tiles, e.g. ESRI or Dynamic World tiles of two UTM zones); ``{year}`` in it is
replaced by the product year. The product is read on its native grid over the
assessment grid's footprint, its values are turned into an ISA fraction
(:func:`~.formats.isa_fraction`) there, and the fraction is reprojected onto the
assessment grid with ``average`` resampling:

* a product as fine as the grid (10 m) gives the area-weighted share of its ISA
  pixels in each grid cell;
* a coarser product (GAIA 30 m, GHS-BUILT-S 100 m) is **not sharpened**: each grid
  cell gets the fraction of the product cell(s) it lies in, so its coarse
  resolution shows in the comparison as it would to a user.

Cells less than half covered by valid product pixels are NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from jointseg.assess.compare import CompareError, fraction_on_grid, read_product_window
from jointseg.assess.otherproducts.formats import (
    ProductFormat,
    ProductFormatError,
    isa_fraction,
    product_format,
)
from jointseg.grid import GeoBox

log = logging.getLogger(__name__)

MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class ProductSpec:
    """One configured product (config ``accuracy.products`` item).

    Attributes:
        name: row name in tables (default: the kind's label).
        kind: product kind (:data:`~.formats.FORMATS`).
        paths: file, VRT or URL templates (``{year}`` = product year).
        year: the product's year (GAIA: the year whose ISA is read); None = the
            assessment year.
    """

    name: str
    kind: str
    paths: tuple[str, ...]
    year: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ProductSpec:
        """From ``{name, kind, path, year}`` (``path`` a string or a list).

        Raises:
            ProductFormatError: for a missing ``kind``/``path`` or an unknown kind.
        """
        missing = [k for k in ("kind", "path") if not d.get(k)]
        if missing:
            raise ProductFormatError(f"product {d.get('name', '?')!r}: missing {missing}; "
                                     "expected {name, kind, path, year}")
        fmt = product_format(str(d["kind"]))
        p = d["path"]
        paths = tuple(str(x) for x in (p if isinstance(p, list | tuple) else [p]))
        year = d.get("year")
        return cls(str(d.get("name") or fmt.label), fmt.kind, paths,
                   None if year is None else int(year))  # type: ignore[arg-type]

    @property
    def format(self) -> ProductFormat:
        """The product's published format."""
        return product_format(self.kind)

    def product_year(self, year: int) -> int:
        """The product year used for an assessment of ``year``."""
        return self.year if self.year is not None else year

    def hrefs(self, year: int) -> list[str]:
        """Paths (``/vsicurl/`` for URLs) for an assessment of ``year``."""
        out = []
        for p in self.paths:
            p = p.format(year=self.product_year(year))
            out.append(f"/vsicurl/{p}" if p.startswith(("http://", "https://")) else p)
        return out


def fill_value(fmt: ProductFormat) -> int:
    """A value meaning 'outside the file' that the product never uses for data."""
    if fmt.nodata is not None:
        return fmt.nodata
    return next(v for v in (255, 254, 253) if v not in (fmt.valid_values or ()))


def _native_fraction(href: str, spec: ProductSpec, grid: GeoBox,
                     year: int) -> tuple[np.ndarray, GeoBox]:
    """ISA fraction of one file on its native grid over ``grid`` (float32, NaN = no data)."""
    fmt = spec.format
    fill = fill_value(fmt)
    values, native, file_nodata = read_product_window(href, grid.lonlat_bounds(), fill=fill)
    nodata = [fill]
    if file_nodata is not None:
        if file_nodata in fmt.isa_values:
            log.warning("%s: declared nodata %d means ISA in %s; ignored", href, file_nodata,
                        fmt.label)
        else:
            nodata.append(file_nodata)
    cell = None
    if spec.kind == "ghs_built_s":
        if not native.is_projected:
            raise ProductFormatError(f"{href}: GHS-BUILT-S must be on a projected grid "
                                     f"(published: ESRI:54009), got {native.crs}")
        cell = native.pixel_area_m2
    return isa_fraction(values, spec.kind, spec.product_year(year), nodata=nodata,
                        cell_area_m2=cell), native


def load_fraction(spec: ProductSpec, grid: GeoBox, year: int) -> np.ndarray:
    """ISA fraction of a product on ``grid`` (float32 in [0, 1], NaN = no data).

    Files of a multi-file product fill each other's gaps (first file first).

    Raises:
        CompareError: if a file cannot be opened (names it).
        ProductFormatError: for a year the product does not cover, or a bad grid.
    """
    first, last = spec.format.years
    py = spec.product_year(year)
    if not first <= py <= last and spec.kind != "gaia":
        raise ProductFormatError(f"{spec.name}: {spec.format.label} exists for {first}-{last}, "
                                 f"not {py}")
    out = np.full(grid.shape, np.nan, np.float32)
    for href in spec.hrefs(year):
        frac, native = _native_fraction(href, spec, grid, year)
        on_grid = fraction_on_grid(frac, native, grid, min_coverage=MIN_COVERAGE)
        gap = np.isnan(out)
        out[gap] = on_grid[gap]
        log.info("%s (%s): %s -> %.1f %% of the grid valid", spec.name, spec.kind, href,
                 100 * np.isfinite(on_grid).mean())
    return out


__all__ = ["CompareError", "ProductSpec", "load_fraction"]
