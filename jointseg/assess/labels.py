"""Reference labels of a sample, and the design-based estimates made from them.

A sample drawn by :mod:`jointseg.assess.sampling` carries, once labelled, a column
``reference`` (1 = ISA, 0 = not), typed in by a person or read from a reference raster
(:func:`label_from_raster`). :func:`read_labels` reads and checks a labelled file,
:func:`assign_groups` adds the city (or any polygon name) holding each point and
:func:`estimate_from_labels` turns the labels into
:class:`~jointseg.assess.estimators.StratifiedEstimate` for the whole map and per
group (zone, city).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from pyproj import Transformer
from rasterio.windows import Window

from jointseg.assess.estimators import StratifiedEstimate, estimates_by_group
from jointseg.assess.sampling import MAP_CLASSES, SamplingError
from jointseg.assess.variance import DEFAULT_INTERVAL

log = logging.getLogger(__name__)

REQUIRED_LABEL_COLUMNS = ("stratum", "map_class", "reference", "stratum_pixels")
AREA_UNITS = {"m2": 1.0, "ha": 1e4, "km2": 1e6}


def label_from_raster(
    points: gpd.GeoDataFrame,
    reference_path: str | os.PathLike,
    *,
    isa_values: Sequence[int] = (1,),
    column: str = "reference",
) -> gpd.GeoDataFrame:
    """Add ``column`` = 1 (value in ``isa_values``) / 0 read at each point; None at nodata.

    The points are transformed to the raster's CRS; points outside the raster or on
    its nodata get None (and a warning).
    """
    out = points.copy()
    with rasterio.open(reference_path) as ds:
        tr = Transformer.from_crs(points.crs, ds.crs, always_xy=True)
        xs, ys = tr.transform(points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
        rows, cols = rasterio.transform.rowcol(ds.transform, xs, ys)
        rows, cols = np.asarray(rows), np.asarray(cols)
        inside = (rows >= 0) & (rows < ds.height) & (cols >= 0) & (cols < ds.width)
        vals = np.full(len(points), -1, np.int64)
        for i in np.flatnonzero(inside):
            vals[i] = int(ds.read(1, window=Window(int(cols[i]), int(rows[i]), 1, 1))[0, 0])
        nodata = ds.nodata
    ref: list[int | None] = []
    for ok, v in zip(inside, vals, strict=True):
        if not ok or (nodata is not None and v == nodata):
            ref.append(None)
        else:
            ref.append(int(v in isa_values))
    n_missing = sum(r is None for r in ref)
    if n_missing:
        log.warning("%s: %d of %d points outside the raster or on nodata", reference_path,
                    n_missing, len(ref))
    out[column] = pd.array(ref, dtype="Int64")
    return out


def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read a labelled sample (GeoPackage or CSV) and check its columns.

    Raises:
        SamplingError: if a required column is missing (names the file, the missing
            columns and what is expected) or ``reference`` holds values other than 0/1.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise SamplingError(f"{path}: cannot read labels ({exc})") from exc
    missing = [c for c in REQUIRED_LABEL_COLUMNS if c not in df.columns]
    if missing:
        raise SamplingError(
            f"{path}: missing columns {missing}; expected {list(REQUIRED_LABEL_COLUMNS)} "
            "(as written by `jointseg sample`, with reference = 1 ISA / 0 not ISA)")
    vals = set(pd.to_numeric(df["reference"], errors="coerce").dropna().astype(int).tolist())
    if not vals <= {0, 1}:
        raise SamplingError(f"{path}: column reference holds {sorted(vals)}; expected 0 or 1")
    return df


def assign_groups(
    labels: pd.DataFrame, polygons: str | os.PathLike | gpd.GeoDataFrame, name_field: str,
    *, column: str = "group",
) -> gpd.GeoDataFrame:
    """Add ``column`` = ``name_field`` of the polygon (city, admin unit) holding each point."""
    poly = polygons if isinstance(polygons, gpd.GeoDataFrame) else gpd.read_file(polygons)
    if name_field not in poly.columns:
        raise SamplingError(f"{polygons}: no column {name_field!r}; columns are "
                            f"{list(poly.columns)}")
    pts = labels if isinstance(labels, gpd.GeoDataFrame) else gpd.GeoDataFrame(
        labels, geometry=gpd.points_from_xy(labels["x"], labels["y"]))
    joined = gpd.sjoin(pts, poly[[name_field, "geometry"]].to_crs(pts.crs), how="left",
                       predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    out = pts.copy()
    out[column] = joined[name_field].reindex(pts.index).to_numpy()
    return out


def estimate_from_labels(
    labels: pd.DataFrame,
    *,
    group_column: str | None = None,
    area_unit: str = "km2",
    z: float = 1.96,
    interval: str = DEFAULT_INTERVAL,
) -> dict[str, StratifiedEstimate]:
    """Olofsson/Stehman estimates from a labelled sample: ``"all"`` plus one per group.

    Uses the ``stratum``, ``map_class``, ``reference`` and ``stratum_pixels`` columns
    (and ``pixel_area_m2`` for areas; without it, or NaN for a geographic map, areas are
    in pixels). Units without a reference label are dropped (a note says how many).

    Raises:
        SamplingError: on inconsistent ``stratum_pixels`` or an unknown area unit.
    """
    df = labels[pd.notna(labels["reference"])]
    dropped = len(labels) - len(df)
    sizes = df.groupby("stratum")["stratum_pixels"].agg(["min", "max"])
    if (sizes["min"] != sizes["max"]).any():
        raise SamplingError("stratum_pixels differs within a stratum: "
                            f"{sizes[sizes['min'] != sizes['max']].index.tolist()}")
    all_sizes = labels.groupby("stratum")["stratum_pixels"].first().to_dict()
    px_m2 = (float(labels["pixel_area_m2"].iloc[0])
             if "pixel_area_m2" in labels.columns and len(labels) else float("nan"))
    if np.isfinite(px_m2) and area_unit != "pixels":
        if area_unit not in AREA_UNITS:
            raise SamplingError(f"area unit {area_unit!r}: expected one of "
                                f"{[*AREA_UNITS, 'pixels']}")
        scale = px_m2 / AREA_UNITS[area_unit]
    else:
        scale, area_unit = 1.0, "pixels"
    groups = df[group_column].to_numpy() if group_column else np.array([None] * len(df))
    out = estimates_by_group(
        df["stratum"].astype(str).to_numpy(), df["map_class"].astype(int).to_numpy(),
        df["reference"].astype(int).to_numpy(), groups,
        {str(k): float(v) for k, v in all_sizes.items()}, list(MAP_CLASSES),
        area_scale=scale, area_unit=area_unit, z=z, interval=interval)
    if dropped:
        for est in out.values():
            est.notes.append(f"{dropped} sample units without a reference label were dropped")
    return out
