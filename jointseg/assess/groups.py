"""Polygon groups (cities, zones) and per-group pixel counts of binary maps.

A *group layer* is a polygon layer whose features are named by an attribute (a city's
name, a zone such as upstream / midstream / downstream). Features sharing a name form
one group. A pixel belongs to the polygon that covers its centre (the last one listed
where polygons overlap). Areas are pixel counts x pixel area of the map grid (m² from
:meth:`~jointseg.grid.GeoBox.pixel_area_m2`, reported in km²).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from tqdm import tqdm

from jointseg.assess.rasters import BLOCK_ROWS, read_binary, read_grid
from jointseg.grid import GeoBox
from jointseg.metrics import BinaryCounts
from jointseg.products import NODATA_U8
from jointseg.provenance import vector_provenance


class GroupError(ValueError):
    """A polygon layer of groups cannot be read or used (no name field, no CRS)."""


@dataclass(frozen=True)
class PolygonGroups:
    """A polygon layer whose features are groups (cities, zones), in a map CRS.

    Attributes:
        kind: ``"city"`` or ``"zone"`` (any label).
        names: group names in id order; the raster id of ``names[i]`` is ``i + 1``.
        shapes: (geometry, id) pairs in the map CRS for rasterisation.
        source: description of the layer (path and field) for provenance.
    """

    kind: str
    names: tuple[str, ...]
    shapes: tuple[tuple[object, int], ...]
    source: dict

    def ids(self, geobox: GeoBox) -> np.ndarray:
        """int32 (rows, cols) group id of every pixel of ``geobox`` (centre inside the
        polygon), 0 = no group."""
        if not self.shapes:
            return np.zeros(geobox.shape, np.int32)
        return rasterize(self.shapes, out_shape=geobox.shape, transform=geobox.transform,
                         fill=0, dtype="int32")

    def bincount(self, ids: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Counts (or sums of ``weights``) per group id, length ``len(names) + 1`` (0 first)."""
        return np.bincount(ids, weights=weights, minlength=len(self.names) + 1)


def load_groups(
    polygons: str | os.PathLike | gpd.GeoDataFrame, field: str, crs: str, kind: str
) -> PolygonGroups:
    """Read a polygon layer and index its features by the ``field`` value, in ``crs``.

    Raises:
        GroupError: if the layer cannot be read, has no ``field`` column or no CRS.
    """
    label = "<GeoDataFrame>" if isinstance(polygons, gpd.GeoDataFrame) else str(polygons)
    try:
        gdf = polygons if isinstance(polygons, gpd.GeoDataFrame) else gpd.read_file(polygons)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise GroupError(f"{label}: cannot read polygons ({exc})") from exc
    if field not in gdf.columns:
        raise GroupError(f"{label}: no column {field!r}; columns are "
                         f"{[c for c in gdf.columns if c != 'geometry']}")
    if gdf.crs is None:
        raise GroupError(f"{label}: polygon layer has no CRS")
    gdf = gdf.to_crs(crs)
    names = tuple(dict.fromkeys(str(v) for v in gdf[field]))
    index = {n: i + 1 for i, n in enumerate(names)}
    shapes = tuple((geom, index[str(v)]) for geom, v in zip(gdf.geometry, gdf[field],
                                                               strict=True)
                   if geom is not None and not geom.is_empty)
    source = (vector_provenance(polygons, field) if not isinstance(polygons, gpd.GeoDataFrame)
              else {"path": label, "field": field})
    return PolygonGroups(kind, names, shapes, source)


class GroupLoader:
    """Polygon groups (cities, zones) loaded once per target CRS.

    Args:
        specs: (layer, name field, kind) per group layer.
    """

    def __init__(self, specs: Sequence[tuple[object, str, str]]) -> None:
        self.specs = list(specs)
        self.cache: dict[str, list[PolygonGroups]] = {}

    def __call__(self, crs: str) -> list[PolygonGroups]:
        """The group layers in ``crs`` (loaded on first use)."""
        if crs not in self.cache:
            self.cache[crs] = [load_groups(layer, field, crs, kind)
                               for layer, field, kind in self.specs]
        return self.cache[crs]


def _pixel_area_km2(geobox: GeoBox) -> float:
    """Area of one pixel of a projected grid in km².

    Raises:
        GroupError: for a geographic (degree) grid.
    """
    try:
        return geobox.pixel_area_m2 / 1e6
    except ValueError as exc:
        raise GroupError(str(exc)) from exc


def isa_area_by_group(
    map_path: str | os.PathLike,
    groups: Sequence[PolygonGroups] = (),
    *,
    progress: bool = False,
) -> dict:
    """ISA and valid area (km²) of one binary map (projected), whole grid and per group.

    Returns ``{"all": {"isa_km2", "valid_km2", "isa_pixels", "valid_pixels"},
    "<kind>": {name: {...}}}``; reads band 1 by :data:`BLOCK_ROWS` rows.

    Raises:
        RasterError: if the map cannot be read or is not binary.
        GroupError: if its grid is geographic.
    """
    geobox, nodata = read_grid(map_path)
    px_km2 = _pixel_area_km2(geobox)
    isa = {"all": np.zeros(1, np.int64)}
    valid = {"all": np.zeros(1, np.int64)}
    for g in groups:
        isa[g.kind] = np.zeros(len(g.names) + 1, np.int64)
        valid[g.kind] = np.zeros(len(g.names) + 1, np.int64)
    with rasterio.open(map_path) as ds:
        for win in tqdm(list(geobox.row_windows(BLOCK_ROWS)),
                        desc=f"area {Path(map_path).name}", disable=not progress):
            m = read_binary(ds, nodata, win)
            isa["all"] += np.count_nonzero(m == 1)
            valid["all"] += np.count_nonzero(m != NODATA_U8)
            for g in groups:
                ids = g.ids(geobox[win])
                isa[g.kind] += g.bincount(ids[m == 1])
                valid[g.kind] += g.bincount(ids[m != NODATA_U8])

    def entry(i: int, v: int) -> dict:
        return {"isa_km2": i * px_km2, "valid_km2": v * px_km2, "isa_pixels": int(i),
                "valid_pixels": int(v)}

    out: dict = {"all": entry(int(isa["all"][0]), int(valid["all"][0]))}
    for g in groups:
        out[g.kind] = {n: entry(int(isa[g.kind][k + 1]), int(valid[g.kind][k + 1]))
                       for k, n in enumerate(g.names)}
    return out


def group_counts(
    map_isa: np.ndarray, ref_isa: np.ndarray, geobox: GeoBox, groups: Sequence[PolygonGroups]
) -> dict[str, dict[str, dict]]:
    """Per polygon group: agreement counts and ISA areas (km²) of two layers on one grid.

    ``map_isa`` and ``ref_isa`` are uint8 0/1/255 on ``geobox`` (any CRS: pixel areas
    are geodesic on geographic grids). Returns ``{kind: {name: {"counts": BinaryCounts,
    "map_isa_km2", "ref_isa_km2", "compared_km2"}}}``, areas over pixels valid in both.
    """
    area_rows = geobox.pixel_area_m2_rows() / 1e6
    acc = {g.kind: np.zeros((7, len(g.names) + 1)) for g in groups}
    for win in geobox.row_windows(BLOCK_ROWS):
        rows = slice(win.row_off, win.row_off + win.height)
        m, r = map_isa[rows], ref_isa[rows]
        valid = (m != NODATA_U8) & (r != NODATA_U8)
        w = np.broadcast_to(area_rows[rows, None], m.shape)
        sel = [valid & (m == 0) & (r == 0), valid & (m == 1) & (r == 0),
               valid & (m == 0) & (r == 1), valid & (m == 1) & (r == 1)]
        for g in groups:
            ids = g.ids(geobox[win])
            a = acc[g.kind]
            for k, s in enumerate(sel):
                a[k] += g.bincount(ids[s])
            for k, s in ((4, valid & (m == 1)), (5, valid & (r == 1)), (6, valid)):
                a[k] += g.bincount(ids[s], weights=w[s])
    out: dict[str, dict[str, dict]] = {}
    for g in groups:
        a = acc[g.kind]
        out[g.kind] = {
            name: {"counts": BinaryCounts(*(int(a[k, i]) for k in range(4))),
                   "map_isa_km2": float(a[4, i]), "ref_isa_km2": float(a[5, i]),
                   "compared_km2": float(a[6, i])}
            for i, name in enumerate(g.names, start=1)}
    return out
