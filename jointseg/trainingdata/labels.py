"""Label sources: raster masks, vector files and OSM extracts -> a 1 m label raster.

Formats (by file name): raster masks ``.tif .tiff .vrt`` (1 impervious, 0 not; any
other value and nodata are "not covered"); vectors read with geopandas / pyogrio
``.gpkg .geojson .json .shp .fgb`` and GeoParquet ``.parquet .geoparquet``; OSM
``.osm.pbf`` (:mod:`jointseg.trainingdata.osm`). Vector polygons are impervious
(building footprints, paved areas); lines are roads buffered to their width: a
``width`` attribute (m), else ``lanes`` x 3.5 m, else the width of their ``highway``
class (:data:`HIGHWAY_WIDTH_M`, overridable), else :data:`DEFAULT_LINE_WIDTH_M`.
Invalid geometries are repaired with ``shapely.make_valid`` and counted.

Coverage (what a source says something about): a raster's valid pixels; a vector
file's ``coverage`` layer (polygons) when it has one, else the bounding box of all its
features; an OSM file's header box, else its features' bounding box. Inside coverage
and outside every feature is 0; pixels no source covers are 255. Sources combine as a
union: 1 where any source says 1, else 0 where any covers, else 255.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import rasterio.errors
import shapely
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import reproject
from scipy import ndimage
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from jointseg.config import schema_default
from jointseg.grid import GeoBox
from jointseg.products import NODATA_U8
from jointseg.trainingdata.osm import read_osm
from jointseg.trainingdata.settings import TrainingDataError

RASTER_EXT = (".tif", ".tiff", ".vrt")
VECTOR_EXT = (".gpkg", ".geojson", ".json", ".shp", ".fgb")
PARQUET_EXT = (".parquet", ".geoparquet")
OSM_EXT = (".osm.pbf", ".pbf")
#: Width (m) of one lane when a road has ``lanes`` but no ``width``.
LANE_WIDTH_M = 3.5
#: The config schema's per-class road widths (``training_data.chips.highway_widths``):
#: one definition for the workflow, the CLI and the library.
_SCHEMA_WIDTHS: dict[str, float] = schema_default("training_data.chips.highway_widths")
#: Width (m) of a line with neither ``width``, ``lanes`` nor a known ``highway`` class.
DEFAULT_LINE_WIDTH_M = float(_SCHEMA_WIDTHS["default"])
#: Paved width (m) per OSM ``highway`` class, 0 drops the class (paths, ways not built):
#: the schema's classes plus the link roads, paths and other classes it leaves out.
#: The config's ``training_data.chips.highway_widths`` (its ``default`` key replaces
#: :data:`DEFAULT_LINE_WIDTH_M`) overrides it per class.
HIGHWAY_WIDTH_M: dict[str, float] = {
    "motorway_link": 7.0, "trunk_link": 7.0, "primary_link": 7.0, "secondary_link": 7.0,
    "tertiary_link": 7.0, "pedestrian": 6.0, "busway": 7.0, "road": 7.0, "raceway": 10.0,
    "cycleway": 2.0, "footway": 2.0, "steps": 2.0, "platform": 3.0, "path": 0.0,
    "bridleway": 0.0, "construction": 0.0, "proposed": 0.0, "abandoned": 0.0,
    "corridor": 0.0, "elevator": 0.0,
    **{k: float(v) for k, v in _SCHEMA_WIDTHS.items() if k != "default"},
}
_NUMBER = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)")


@dataclass
class LabelSource:
    """One opened label source.

    Attributes:
        path: the file.
        kind: ``raster``, ``vector`` or ``osm``.
        crs: the source's CRS.
        coverage: what the source covers, in ``crs``.
        features: vectors only: ``geometry`` + ``width_m`` (NaN for polygons), in ``crs``.
        n_features, n_repaired, n_dropped: features read, repaired by ``make_valid``,
            dropped (empty, points, width 0).
    """

    path: Path
    kind: str
    crs: str
    coverage: BaseGeometry
    features: gpd.GeoDataFrame | None = None
    n_features: int = 0
    n_repaired: int = 0
    n_dropped: int = 0

    def coverage_in(self, crs: str) -> BaseGeometry:
        """The coverage polygon in another CRS."""
        return gpd.GeoSeries([self.coverage], crs=self.crs).to_crs(crs).iloc[0]

    def summary(self) -> dict:
        """JSON-ready description for qa.json."""
        return {"path": str(self.path), "kind": self.kind, "crs": self.crs,
                "features": self.n_features, "repaired": self.n_repaired,
                "dropped": self.n_dropped}


def label_kind(path: Path) -> str:
    """``raster``, ``vector``, ``parquet`` or ``osm`` from the file name.

    Raises:
        TrainingDataError: for an unknown format.
    """
    name = path.name.lower()
    for kind, exts in (("osm", OSM_EXT), ("raster", RASTER_EXT), ("vector", VECTOR_EXT),
                       ("parquet", PARQUET_EXT)):
        if name.endswith(exts):
            return kind
    known = " ".join(RASTER_EXT + VECTOR_EXT + PARQUET_EXT + OSM_EXT)
    raise TrainingDataError(f"{path}: unknown label format (expected one of {known})")


def open_labels(path: Path, highway_widths: dict[str, float] | None = None) -> LabelSource:
    """Open a label source and check it.

    Raises:
        TrainingDataError: unknown format, unreadable, no CRS, nothing inside.
    """
    path = Path(path)
    kind = label_kind(path)
    if not path.exists():
        raise TrainingDataError(f"{path}: label file not found")
    try:
        if kind == "raster":
            return _open_raster(path)
        if kind == "osm":
            gdf, header_box = read_osm(path)
            cov = box(*header_box) if header_box else None
            return _vector_source(path, "osm", gdf, cov, highway_widths)
        gdf, cov = _read_vector(path, kind)
        return _vector_source(path, "vector", gdf, cov, highway_widths)
    except TrainingDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingDataError(f"{path}: cannot read labels ({first})") from None


def _open_raster(path: Path) -> LabelSource:
    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise TrainingDataError(f"{path}: label raster has no CRS")
        return LabelSource(path, "raster", ds.crs.to_string(), box(*ds.bounds))


def _read_vector(path: Path, kind: str) -> tuple[gpd.GeoDataFrame, BaseGeometry | None]:
    """All layers but ``coverage`` concatenated, and the ``coverage`` layer's union."""
    if kind == "parquet":
        return gpd.read_parquet(path), None
    layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    frames = [gpd.read_file(path, layer=n) for n in layers if n != "coverage"]
    cov = None
    if "coverage" in layers and len(layers) > 1:
        cov_df = gpd.read_file(path, layer="coverage")
        frames = [f.to_crs(cov_df.crs) if f.crs else f for f in frames]
        cov = shapely.union_all(cov_df.geometry.values)
    crs = frames[0].crs if frames else None
    frames = [f.to_crs(crs) if f.crs and crs and f.crs != crs else f for f in frames]
    gdf = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs) if frames else (
        gpd.GeoDataFrame(geometry=[]))
    return gdf, cov


def _vector_source(path: Path, kind: str, gdf: gpd.GeoDataFrame, cov: BaseGeometry | None,
                   highway_widths: dict[str, float] | None) -> LabelSource:
    if gdf.crs is None:
        raise TrainingDataError(f"{path}: label vectors have no CRS")
    n = len(gdf)
    geoms = gdf.geometry.values
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    geoms = np.where(invalid, shapely.make_valid(geoms), geoms)
    table = {**HIGHWAY_WIDTH_M, **(highway_widths or {})}
    rows_geom, rows_w = [], []
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            continue
        parts = shapely.get_parts(g)
        polys = [p for p in parts if p.geom_type in ("Polygon", "MultiPolygon")]
        lines = [p for p in parts if p.geom_type in ("LineString", "MultiLineString")]
        if polys:
            rows_geom.append(shapely.union_all(polys))
            rows_w.append(np.nan)
        elif lines:
            w = line_width_m(gdf.iloc[i], table)
            if w > 0:
                rows_geom.append(shapely.union_all(lines))
                rows_w.append(w)
    feats = gpd.GeoDataFrame({"width_m": rows_w}, geometry=rows_geom, crs=gdf.crs)
    if cov is None:
        if feats.empty:
            raise TrainingDataError(f"{path}: no polygon or line features to label with")
        cov = box(*feats.total_bounds)
    return LabelSource(path, kind, gdf.crs.to_string(), cov, feats, n, int(invalid.sum()),
                       n - len(feats))


def _number(value: object) -> float | None:
    """A positive number from an attribute (``7``, ``"7.5 m"``), else None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value) if value > 0 else None
    m = _NUMBER.match(str(value))
    return float(m.group(1)) if m and float(m.group(1)) > 0 else None


def line_width_m(row: pd.Series, table: dict[str, float]) -> float:
    """Paved width (m) of a road feature: ``width``, else ``lanes`` x 3.5 m, else its
    ``highway`` class's width in ``table``, else ``table["default"]`` (or
    :data:`DEFAULT_LINE_WIDTH_M`)."""
    if (w := _number(row.get("width"))) is not None:
        return w
    if (lanes := _number(row.get("lanes"))) is not None:
        return lanes * LANE_WIDTH_M
    default = float(table.get("default", DEFAULT_LINE_WIDTH_M))
    hw = row.get("highway")
    if isinstance(hw, str) and hw:
        return float(table.get(hw, default))
    return default


def source_masks(src: LabelSource, grid: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """(covered, impervious) bool (rows, cols) masks of one source on ``grid`` (1 m)."""
    if src.kind == "raster":
        out = np.full(grid.shape, NODATA_U8, dtype=np.uint8)
        with rasterio.open(src.path) as ds:
            data = ds.read(1, masked=True).filled(NODATA_U8)
            data = np.where(np.isin(data, (0, 1)), data, NODATA_U8).astype(np.uint8)
            reproject(data, out, src_transform=ds.transform, src_crs=ds.crs,
                      src_nodata=NODATA_U8, dst_transform=grid.transform, dst_crs=grid.crs,
                      dst_nodata=NODATA_U8, resampling=Resampling.nearest)
        return out != NODATA_U8, out == 1
    frame = box(*grid.bounds)
    cov = src.coverage_in(grid.crs).intersection(frame)
    covered = _burn([cov], grid) if not cov.is_empty else np.zeros(grid.shape, bool)
    feats = src.features.to_crs(grid.crs)
    feats = feats[feats.intersects(frame.buffer(100.0))]
    lines = feats.width_m.notna().values
    geoms = list(feats.geometry.values[~lines])
    geoms += list(shapely.buffer(feats.geometry.values[lines], feats.width_m.values[lines] / 2,
                                 cap_style="flat"))
    isa = _burn(geoms, grid)
    return covered | isa, isa


def _burn(geoms: list[BaseGeometry], grid: GeoBox) -> np.ndarray:
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(grid.shape, dtype=bool)
    return rasterize(((g, 1) for g in geoms), out_shape=grid.shape, transform=grid.transform,
                     fill=0, dtype="uint8").astype(bool)


def label_raster(sources: list[LabelSource], grid: GeoBox) -> np.ndarray:
    """uint8 (rows, cols) union label on ``grid``: 1 impervious, 0 not, 255 uncovered."""
    covered = np.zeros(grid.shape, dtype=bool)
    isa = np.zeros(grid.shape, dtype=bool)
    for src in sources:
        c, i = source_masks(src, grid)
        covered |= c
        isa |= i
    return np.where(isa, 1, np.where(covered, 0, NODATA_U8)).astype(np.uint8)


def ignore_edges(label: np.ndarray, width_px: float) -> np.ndarray:
    """A copy of ``label`` (1/0/255) with 255 on the pixels within ``width_px`` of a 0/1
    edge, on both sides (the loss ignores them)."""
    out = label.copy()
    if width_px <= 0:
        return out
    near_0 = ndimage.distance_transform_edt(label != 0) <= width_px  # 1s near a 0
    near_1 = ndimage.distance_transform_edt(label != 1) <= width_px  # 0s near a 1
    out[((label == 1) & near_0) | ((label == 0) & near_1)] = NODATA_U8
    return out
