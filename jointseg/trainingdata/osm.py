"""Impervious-surface labels from an OpenStreetMap ``.osm.pbf`` extract (pyosmium).

The tag table (also in docs/training-data.md) decides what is impervious:

=====================================  ==========================================
tags                                   kept as
=====================================  ==========================================
``building=*`` (not ``no``)            polygon
``amenity`` in :data:`PAVED_AMENITY`   polygon (parking, fuel, bus station...)
``landuse`` in :data:`PAVED_LANDUSE`   polygon (garages, railway yards)
``aeroway`` in :data:`PAVED_AEROWAY`   polygon; runway / taxiway ways as lines
``area:highway=*``; ``highway=*`` +    polygon (pedestrian squares, paved areas)
``area=yes``
an area with one of :data:`KEYS` and   polygon (e.g. ``landuse=industrial`` +
``surface`` in :data:`PAVED_SURFACES`  ``surface=paved``)
``highway=*`` ways                     line, buffered by its width (labels.py),
                                       except classes of width 0 (paths...)
=====================================  ==========================================

Any feature tagged ``surface`` in :data:`UNPAVED_SURFACES` or ``tracktype`` grade2-5
is dropped. Coverage is the file header's bounding box when it has one, else the
extent of all its nodes.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import osmium
import shapely

PAVED_AMENITY = frozenset({"parking", "fuel", "bus_station", "marketplace"})
PAVED_LANDUSE = frozenset({"garages", "railway"})
PAVED_AEROWAY = frozenset({"runway", "taxiway", "apron", "helipad"})
PAVED_SURFACES = frozenset({
    "paved", "asphalt", "concrete", "concrete:plates", "concrete:lanes", "paving_stones",
    "sett", "cobblestone", "unhewn_cobblestone", "metal", "bricks",
})
UNPAVED_SURFACES = frozenset({
    "unpaved", "gravel", "fine_gravel", "dirt", "earth", "ground", "grass", "sand", "mud",
    "compacted", "grass_paver", "woodchips", "pebblestone", "rock",
})
#: Track grades that are not paved (grade1 is "solid", usually paved).
UNPAVED_TRACKTYPES = frozenset({"grade2", "grade3", "grade4", "grade5"})
#: Keys that can make a feature impervious (the reader's pre-filter).
KEYS = ("building", "highway", "area:highway", "amenity", "landuse", "aeroway")
#: Default widths (m) of aeroway lines.
AEROWAY_WIDTH_M = {"runway": 45.0, "taxiway": 23.0}


def _polygon_kind(tags: osmium.osm.TagList) -> bool:
    """True when an area's tags make it an impervious polygon."""
    if tags.get("surface") in UNPAVED_SURFACES:
        return False
    building = tags.get("building")
    return bool(
        (building is not None and building != "no")
        or tags.get("amenity") in PAVED_AMENITY
        or tags.get("landuse") in PAVED_LANDUSE
        or tags.get("aeroway") in PAVED_AEROWAY
        or "area:highway" in tags
        or ("highway" in tags and tags.get("area") == "yes")
        or tags.get("surface") in PAVED_SURFACES
    )


def _line_attrs(tags: osmium.osm.TagList) -> dict | None:
    """Attributes of a way kept as a buffered line, or None."""
    if (tags.get("surface") in UNPAVED_SURFACES or tags.get("area") == "yes"
            or tags.get("tracktype") in UNPAVED_TRACKTYPES):
        return None
    if "highway" in tags:
        return {"highway": tags["highway"], "width": tags.get("width"),
                "lanes": tags.get("lanes")}
    aeroway = tags.get("aeroway")
    if aeroway in AEROWAY_WIDTH_M:
        return {"highway": None, "width": tags.get("width", str(AEROWAY_WIDTH_M[aeroway])),
                "lanes": None}
    return None


def read_osm(path: Path) -> tuple[gpd.GeoDataFrame, tuple[float, float, float, float] | None]:
    """Impervious features of an ``.osm.pbf`` file.

    Returns:
        (features in EPSG:4326 with columns ``geometry``, ``highway``, ``width``,
        ``lanes`` (strings or None; lines only), the header's bounding box
        (west, south, east, north), or the extent of all nodes when it has none).

    Raises:
        RuntimeError / OSError: from pyosmium when the file cannot be read.
    """
    reader = osmium.io.Reader(str(path))
    try:
        hbox = reader.header().box()
        header_box = ((hbox.bottom_left.lon, hbox.bottom_left.lat, hbox.top_right.lon,
                       hbox.top_right.lat) if hbox.valid() else None)
    finally:
        reader.close()
    wkb = osmium.geom.WKBFactory()
    rows: list[dict] = []
    fp = (osmium.FileProcessor(str(path)).with_locations().with_areas()
          .with_filter(osmium.filter.KeyFilter(*KEYS)))
    for obj in fp:
        try:
            if obj.is_area() and _polygon_kind(obj.tags):
                geom = shapely.from_wkb(wkb.create_multipolygon(obj))
                rows.append({"geometry": geom, "highway": None, "width": None, "lanes": None})
            elif obj.is_way() and (attrs := _line_attrs(obj.tags)) is not None:
                geom = shapely.from_wkb(wkb.create_linestring(obj))
                rows.append({"geometry": geom, **attrs})
        except (osmium.InvalidLocationError, RuntimeError):
            continue  # a way or area with missing nodes (clipped extract)
    if header_box is None:
        header_box = _node_bounds(path)
    gdf = gpd.GeoDataFrame(rows, columns=["geometry", "highway", "width", "lanes"],
                           geometry="geometry", crs="EPSG:4326")
    return gdf, header_box


def _node_bounds(path: Path) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of every node with a location, or None."""
    lon, lat = [], []
    for node in osmium.FileProcessor(str(path), osmium.osm.NODE):
        if node.location.valid():
            lon.append(node.location.lon)
            lat.append(node.location.lat)
    return (min(lon), min(lat), max(lon), max(lat)) if lon else None
