"""SIMULATED stand-ins of other ISA products, made from the demo's simulated 1 m truth.

Each stand-in is written in its product's published format (CRS, pixel size, value
encoding, nodata: :mod:`jointseg.assess.otherproducts.formats`), so the loaders read
them exactly as they read the real files, and carries ``JOINTSEG_SIMULATED=true``.
The truth is degraded with each product's typical errors:

* **resolution**: the 1 m truth is averaged onto the product's own grid (GAIA 30 m,
  GHS-BUILT-S 100 m, the others 10 m), so narrow roads and small buildings fall below
  half a cell;
* **omission**: a cell is ISA when its ISA share reaches a product-specific detection
  threshold above 0.5 for products known to miss sparse built-up land, and WSF also
  drops most cells in sparse rural surroundings (Marconcini et al. 2020 discuss its
  omission of small rural settlements);
* **commission**: around dense built-up land (towns), neighbours of ISA cells are
  called ISA with a product-specific probability (blooming of coarse and
  Landsat-based maps);
* **noise**: a small share of cells is flipped at random.

The rates are set so that the simulated errors are of the order of the published
accuracies (GAIA: overall accuracy above 90 %, Gong et al. 2020; GISA-10m: about 86 %,
Huang et al. 2022; ESRI 10 m: about 85 %, Karra et al. 2021; Dynamic World: about 74 %
agreement with expert labels over all classes, Brown et al. 2022); they are not fitted
to them, and nothing measured on these stand-ins is real-world accuracy.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.warp import transform_bounds
from scipy import ndimage

from jointseg.assess.compare import fraction_on_grid, map_fraction
from jointseg.assess.otherproducts.formats import (
    GAIA_FIRST_YEAR,
    GAIA_LAST_YEAR,
    ProductFormat,
    gaia_code,
    product_format,
)
from jointseg.grid import GeoBox
from jointseg.io import write_cog

log = logging.getLogger(__name__)

NOTE = ("SIMULATED stand-in of {label} made from the JointSeg demo's simulated truth "
        "(format as published: {citation}); not the real product.")
MOLLWEIDE = "ESRI:54009"


@dataclass(frozen=True)
class ErrorModel:
    """Typical errors of a product, applied to the truth's ISA share on its grid.

    Attributes:
        threshold: ISA share at or above which a cell is detected as ISA.
        rural_omission: share of ISA cells dropped where the surrounding ~300 m holds
            under 10 % ISA (sparse rural settlement).
        commission: probability that a non-ISA neighbour of ISA in a town (surrounding
            ISA >= 30 %) is called ISA.
        noise: share of cells flipped at random.
    """

    threshold: float
    rural_omission: float
    commission: float
    noise: float


ERRORS: dict[str, ErrorModel] = {
    "gaia": ErrorModel(0.5, 0.2, 0.35, 0.01),
    "gisa": ErrorModel(0.55, 0.3, 0.15, 0.02),
    "wsf": ErrorModel(0.6, 0.7, 0.2, 0.01),
    "esri_lc": ErrorModel(0.45, 0.2, 0.3, 0.02),
    "dynamic_world": ErrorModel(0.5, 0.3, 0.2, 0.04),
    "ghs_built_s": ErrorModel(0.0, 0.3, 0.0, 0.0),
}

#: file name (under the products folder) and fixed product year (None: one per truth year)
LAYOUT: dict[str, tuple[str, int | None]] = {
    "gaia": ("gaia/GAIA_1985_2018.tif", None),
    "gisa": ("gisa/GISA-10m_2016.tif", 2016),
    "wsf": ("wsf/WSF2019_v1.tif", 2019),
    "esri_lc": ("esri_lc/esri_lc_{year}.tif", None),
    "dynamic_world": ("dynamic_world/dynamic_world_{year}.tif", None),
    "ghs_built_s": ("ghs_built_s/GHS_BUILT_S_E2020_GLOBE_R2023A_54009_100.tif", 2020),
}
#: non-ISA class written by the land-cover stand-ins (their other classes are not simulated)
OTHER_CLASS = {"esri_lc": 5, "dynamic_world": 4}  # crops in both legends


def product_grid(fmt: ProductFormat, grid: GeoBox) -> GeoBox:
    """The product's native grid covering ``grid`` (its lattice: origin on whole pixels)."""
    if fmt.crs == "UTM":
        crs, b = grid.crs, grid.bounds
    else:
        crs = fmt.crs
        b = transform_bounds(grid.crs, crs, *grid.bounds, densify_pts=21)
    r = fmt.res
    left, top = math.floor(b[0] / r) * r, math.ceil(b[3] / r) * r
    width, height = math.ceil((b[2] - left) / r), math.ceil((top - b[1]) / r)
    return GeoBox(crs, Affine(r, 0, left, 0, -r, top), width, height)


def degrade(share: np.ndarray, err: ErrorModel, rng: np.random.Generator) -> np.ndarray:
    """bool ISA of a product from the truth's ISA share on its grid (NaN = outside)."""
    share = np.nan_to_num(share, nan=0.0)
    isa = share >= err.threshold
    density = ndimage.uniform_filter(share, size=max(3, round(share.shape[0] / 20)))
    isa &= ~((density < 0.1) & (rng.random(share.shape) < err.rural_omission))
    town = density >= 0.3
    ring = ndimage.binary_dilation(isa) & ~isa & town
    isa |= ring & (rng.random(share.shape) < err.commission)
    return isa ^ (rng.random(share.shape) < err.noise)


def _shares(fractions: Mapping[int, tuple[np.ndarray, GeoBox]],
            grid: GeoBox) -> dict[int, np.ndarray]:
    """ISA share of each year's 10 m truth fraction on ``grid`` (float32, NaN = outside)."""
    return {y: fraction_on_grid(f, g, grid) for y, (f, g) in sorted(fractions.items())}


def _nearest(years: list[int], year: int) -> int:
    return min(years, key=lambda y: (abs(y - year), y))


def _write(path: Path, data: np.ndarray, grid: GeoBox, fmt: ProductFormat,
           year: int | str, nodata: int | None) -> Path:
    tags = {"JOINTSEG_SIMULATED": "true", "PRODUCT": fmt.label, "PRODUCT_YEAR": str(year),
            "JOINTSEG_NOTE": NOTE.format(label=fmt.label, citation=fmt.citation)}
    return write_cog(path, data.astype(fmt.dtype), grid, nodata=nodata, tags=tags)


def _gaia(shares: dict[int, np.ndarray], err: ErrorModel,
          rng: np.random.Generator) -> np.ndarray:
    """GAIA year-of-change codes (uint8, 0 = never ISA by 2018) from yearly shares.

    Truth years up to 2018 set the year of change (ISA stays ISA, as in GAIA); when no
    truth year is that early the earliest one stands in for 2018. Cells already ISA in
    the first year get a random year of change between 1985 and it.
    """
    years = [y for y in shares if y <= GAIA_LAST_YEAR] or [min(shares)]
    first = {y: min(y, GAIA_LAST_YEAR) for y in years}
    code = np.zeros(next(iter(shares.values())).shape, np.uint8)
    seen = np.zeros(code.shape, bool)
    for i, y in enumerate(sorted(years)):
        isa = degrade(shares[y], err, rng) | seen
        new = isa & ~seen
        if i == 0:
            yrs = rng.integers(GAIA_FIRST_YEAR, first[y] + 1, size=code.shape)
            code[new] = gaia_code(yrs[new])
        else:
            code[new] = gaia_code(first[y])
        seen = isa
    return code


def simulate_products(
    truths: Mapping[int, str | os.PathLike], out_dir: str | os.PathLike, *, seed: int = 0,
) -> dict[str, list[Path]]:
    """Write every stand-in under ``out_dir`` (layout :data:`LAYOUT`); returns kind -> files.

    Args:
        truths: year -> simulated 1 m binary truth (uint8 1 = ISA), all on one grid.
        out_dir: the products folder (e.g. ``resources/demo/products``).
        seed: random seed (one stream per product).
    """
    if not truths:
        raise ValueError("no truth raster given")
    fractions = {int(y): map_fraction(p, 10) for y, p in truths.items()}
    grid10 = next(iter(fractions.values()))[1]
    out_dir, written = Path(out_dir), {}
    for i, (kind, (name, fixed_year)) in enumerate(LAYOUT.items()):
        fmt, err = product_format(kind), ERRORS[kind]
        rng = np.random.default_rng([seed, i])
        grid = product_grid(fmt, grid10)
        shares = _shares(fractions, grid)
        if kind == "gaia":
            files = [_write(out_dir / name, _gaia(shares, err, rng), grid, fmt, "1985-2018", None)]
        elif fixed_year is not None:
            share = shares[_nearest(list(shares), fixed_year)]
            files = [_write(out_dir / name, _encode(kind, share, err, rng, grid), grid, fmt,
                            fixed_year, fmt.nodata)]
        else:
            files = [_write(out_dir / name.format(year=y), _encode(kind, s, err, rng, grid),
                            grid, fmt, y, fmt.nodata) for y, s in shares.items()]
        written[kind] = files
        log.info("simulated %s: %s on %s", fmt.label, [str(f) for f in files], grid.crs)
    return written


def _encode(kind: str, share: np.ndarray, err: ErrorModel, rng: np.random.Generator,
            grid: GeoBox) -> np.ndarray:
    """Values of one product year in its published encoding."""
    fmt = product_format(kind)
    outside = np.isnan(share)
    if kind == "ghs_built_s":
        keep = degrade(share, err, rng)  # threshold 0: only the rural omission drops cells
        noisy = np.clip(np.nan_to_num(share) * rng.normal(1.0, 0.15, share.shape), 0, 1)
        m2 = np.rint(noisy * keep * grid.pixel_area_m2)
        return np.where(outside, fmt.nodata, m2)
    isa = degrade(share, err, rng)
    if kind in OTHER_CLASS:
        out = np.where(isa, fmt.isa_values[0], OTHER_CLASS[kind])
        if fmt.nodata is not None:
            out[outside] = fmt.nodata
        return out
    return np.where(isa, fmt.isa_values[0], 0)


def stand_in_specs(out_dir: str | os.PathLike) -> list[dict]:
    """Config items (``accuracy.products`` format) of the stand-ins under ``out_dir``."""
    return [{"name": product_format(kind).label, "kind": kind,
             "path": str(Path(out_dir) / name), "year": year}
            for kind, (name, year) in LAYOUT.items()]


def stand_in_files(out_dir: str | os.PathLike, years: Sequence[int]) -> list[str]:
    """Every file :func:`simulate_products` writes for truths of ``years``."""
    names = [name for name, _ in LAYOUT.values()]
    return list(dict.fromkeys(str(Path(out_dir) / n.format(year=y)) for n in names
                              for y in years))
