"""Compare other ISA products, the JointSeg map and the baseline on the same pixels.

Everything is put on the JointSeg map's aligned 10 m grid (:func:`map_fraction`): the
1 m maps as ISA fractions of their 10 x 10 blocks, each product through
:func:`~.load.load_fraction`, the reference either as a raster (a 1 m truth,
aggregated the same way) or as labelled sample points. Fractions are binarised at
``threshold`` (0.5: the >50 % impervious rule GAIA uses). Only pixels (or points) that
are valid in the reference, the map, the baseline and **every** product are counted,
so all rows of Table 1 are measured on the same pixels.

With labelled points the counts are plain sample counts (not weighted by the sample
design): the rows compare products with each other on the same points, they are not
design-based accuracy estimates (the accuracy report gives those for the map).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import rasterio
from pyproj import Transformer

from jointseg.assess.compare import binarise, fraction_on_grid, map_fraction
from jointseg.assess.labels import read_labels
from jointseg.assess.otherproducts.load import ProductSpec, load_fraction
from jointseg.grid import GeoBox
from jointseg.metrics import binary_counts, binary_metrics
from jointseg.products import NODATA_U8

log = logging.getLogger(__name__)

SCHEMA = "jointseg.assess.products/1"
GRID_RES_M = 10.0
JOINTSEG = "ISA-1 (JointSeg)"
BASELINE = "bilinear baseline"


def is_simulated(path: str | os.PathLike) -> bool:
    """True when a raster carries the tag ``JOINTSEG_SIMULATED=true``."""
    try:
        with rasterio.open(path) as ds:
            return ds.tags().get("JOINTSEG_SIMULATED", "").lower() == "true"
    except rasterio.errors.RasterioIOError:
        return False


def _factor(path: str | os.PathLike) -> int:
    """Aggregation factor from a map's pixel size to about 10 m (1 m -> 10)."""
    with rasterio.open(path) as ds:
        return max(1, round(GRID_RES_M / abs(ds.transform.a)))


def raster_fraction(path: str | os.PathLike, grid: GeoBox) -> np.ndarray:
    """ISA fraction of a binary raster (1 = ISA) on ``grid`` (float32, NaN = no data)."""
    frac, fgrid = map_fraction(path, _factor(path))
    return fraction_on_grid(frac, fgrid, grid)


def _point_cells(labels_path: str | os.PathLike, grid: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """(flat cell index or -1 outside, reference 0/1/255) of each labelled point."""
    pts = read_labels(labels_path)
    tr = Transformer.from_crs(pts.crs, grid.crs, always_xy=True)
    xs, ys = tr.transform(pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy())
    cols, rows = ~grid.transform * (np.asarray(xs), np.asarray(ys))
    rows, cols = np.floor(rows).astype(int), np.floor(cols).astype(int)
    inside = (rows >= 0) & (rows < grid.height) & (cols >= 0) & (cols < grid.width)
    cells = np.where(inside, rows * grid.width + cols, -1)
    ref = pts["reference"].to_numpy()
    ref = np.where(np.isin(ref, [0, 1]), ref, NODATA_U8).astype(np.uint8)
    return cells, ref


def _row(name: str, kind: str, isa: np.ndarray, ref: np.ndarray, common: np.ndarray,
         **extra: object) -> dict:
    """Metrics of one binary layer against the reference over the common pixels."""
    m = binary_metrics(binary_counts(np.where(common, isa, NODATA_U8),
                                     np.where(common, ref, NODATA_U8)))
    return {"name": name, "kind": kind, **extra, **m}


def assess_products(
    map_path: str | os.PathLike,
    products: Sequence[ProductSpec],
    year: int,
    *,
    truth: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    baseline: str | os.PathLike | None = None,
    threshold: float = 0.5,
) -> dict:
    """Table 1 rows: every product, the map and the baseline vs one reference.

    Args:
        map_path: the JointSeg 1 m binary map (uint8 1/0/255).
        products: the other products to compare.
        year: the map's year.
        truth: a binary reference raster (e.g. the simulated 1 m truth), or
        labels: a labelled sample (``reference`` column); exactly one of the two.
        baseline: the bilinear baseline's 1 m map, compared alongside.
        threshold: ISA fraction at or above which a 10 m cell is ISA.

    Returns:
        A JSON-ready dict (schema :data:`SCHEMA`) with one entry per row in ``rows``,
        each with precision, recall, f1, oa, iou, counts and ``f1_gain_points`` =
        100 x (F1 of JointSeg - F1 of the row).

    Raises:
        ValueError: unless exactly one of ``truth`` and ``labels`` is given.
    """
    if (truth is None) == (labels is None):
        raise ValueError("give exactly one reference: a truth raster or a labelled sample")
    frac, grid = map_fraction(map_path, _factor(map_path))
    layers = {JOINTSEG: ("jointseg", binarise(frac, threshold), str(map_path),
                         is_simulated(map_path), year)}
    if baseline is not None:
        layers[BASELINE] = ("baseline", binarise(raster_fraction(baseline, grid), threshold),
                            str(baseline), is_simulated(baseline), year)
    for spec in products:
        hrefs = spec.hrefs(year)
        layers[spec.name] = (spec.kind, binarise(load_fraction(spec, grid, year), threshold),
                             ";".join(hrefs), all(is_simulated(h) for h in hrefs),
                             spec.product_year(year))
    if truth is not None:
        ref = binarise(raster_fraction(truth, grid), threshold)
        ref_desc = {"kind": "raster", "path": str(truth), "simulated": is_simulated(truth)}
        stack = [v[1] for v in layers.values()]
    else:
        cells, ref = _point_cells(labels, grid)
        ok = cells >= 0
        ref_desc = {"kind": "labelled sample (unweighted point counts)", "path": str(labels),
                    "simulated": False}
        stack = [np.where(ok, v[1].ravel()[np.maximum(cells, 0)], NODATA_U8)
                 for v in layers.values()]
        layers = {k: (v[0], s, *v[2:]) for (k, v), s in zip(layers.items(), stack, strict=True)}
    common = ref != NODATA_U8
    for a in stack:
        common &= a != NODATA_U8
    rows = [_row(name, kind, isa, ref, common, path=path, simulated=sim, product_year=py)
            for name, (kind, isa, path, sim, py) in layers.items()]
    f1_map = rows[0]["f1"]
    for r in rows:
        r["f1_gain_points"] = (None if math.isnan(f1_map) or math.isnan(r["f1"])
                               else 100 * (f1_map - r["f1"]))
    log.info("products vs %s: %d common %s", ref_desc["path"], int(common.sum()),
             "pixels" if truth is not None else "points")
    return {"schema": SCHEMA, "year": int(year), "threshold": threshold,
            "grid": {"crs": grid.crs, "res_m": grid.res_m, "shape": list(grid.shape)},
            "reference": ref_desc, "n_common": int(common.sum()),
            "simulated": bool(ref_desc["simulated"] or any(r["simulated"] for r in rows)),
            "rows": rows}
