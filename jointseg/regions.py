"""Regions of interest: from config (bbox + CRS, or an AOI file) to tiles.

A region is either a bbox in a UTM CRS (tiled directly in that zone), a bbox
in any other CRS, or a polygon file (GeoJSON/GeoPackage, any CRS); the latter
two are converted to lon/lat and tiled per UTM zone by
:func:`jointseg.grid.tiles_for_aoi`.
"""

from __future__ import annotations

from pathlib import Path

import shapely
from pyproj import Transformer
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from jointseg.grid import Tile, is_utm, tiles_for_aoi, tiles_for_bbox


class RegionError(ValueError):
    """A region definition cannot be turned into tiles."""


def read_aoi(path: str | Path) -> BaseGeometry:
    """Union of all polygons in a vector file, in EPSG:4326 (lon, lat).

    Raises:
        RegionError: missing file, no CRS, no features, empty or invalid polygons.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise RegionError(f"{path}: AOI file not found")
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises many types
        raise RegionError(f"{path}: cannot read AOI: {exc}".splitlines()[0]) from None
    if gdf.empty:
        raise RegionError(f"{path}: AOI has no features")
    if gdf.crs is None:
        raise RegionError(f"{path}: AOI has no CRS")
    invalid = gdf[~gdf.geometry.is_valid]
    if len(invalid):
        from shapely.validation import explain_validity

        raise RegionError(
            f"{path}: AOI feature {invalid.index[0]} is invalid: "
            f"{explain_validity(invalid.geometry.iloc[0])}"
        )
    geom = gdf.to_crs("EPSG:4326").geometry.union_all()
    if geom.is_empty or geom.area == 0:
        raise RegionError(f"{path}: AOI polygon is empty")
    return geom


def region_geometry_lonlat(region: dict, base_dir: Path | None = None) -> BaseGeometry:
    """The region's footprint in EPSG:4326 (lon, lat)."""
    if "aoi" in region:
        p = Path(region["aoi"])
        return read_aoi(p if p.is_absolute() or base_dir is None else base_dir / p)
    poly = box(*region["bbox"])
    crs = region.get("bbox_crs", "EPSG:4326")
    if crs == "EPSG:4326":
        return poly
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return shapely.transform(
        poly.segmentize(max(poly.length / 64, 1e-3)), tr.transform, interleaved=False
    )


def region_tiles(region: dict, tile_size_m: int, base_dir: Path | None = None) -> list[Tile]:
    """Tiles of a region config entry, sorted by id.

    Raises:
        RegionError: if the region cannot be tiled.
    """
    try:
        if "bbox" in region and is_utm(region.get("bbox_crs", "EPSG:4326")):
            tiles = tiles_for_bbox(tuple(region["bbox"]), region["bbox_crs"], tile_size_m)
        else:
            tiles = tiles_for_aoi(region_geometry_lonlat(region, base_dir), tile_size_m)
    except ValueError as exc:
        raise RegionError(str(exc)) from None
    if not tiles:
        raise RegionError("region covers no tile")
    return sorted(tiles, key=lambda t: t.tile_id)
