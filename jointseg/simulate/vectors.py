"""The vector geometry a simulated landscape was burnt from (pixel coords of its 1 m grid).

Roads are kept as centre lines with their true width and an OSM ``highway`` class,
buildings as the footprints placed by :mod:`~jointseg.simulate.buildings`, water as the
river and pond polygons. :mod:`~jointseg.simulate.sources` turns them into map-like
label sources (GeoPackage, ``.osm.pbf``) without polygonising rasters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import shapely

#: OSM ``highway`` class per simulated road type (jointseg.simulate.roads).
HIGHWAY_OF = {
    "arterial_30": "primary", "arterial_24": "primary", "arterial_20": "secondary",
    "street": "residential", "field_track": "track", "village_lane": "service",
    "link": "unclassified", "hill_road": "track",
}


@dataclass
class RoadLine:
    """One road centre line: ``geom`` (pixel coords, LineString or MultiLineString),
    true ``width_m``, OSM ``highway`` class, ``cap`` (``square`` | ``round``) and whether it
    bridges water (arterials do; minor roads stop at water)."""

    geom: shapely.Geometry
    width_m: float
    highway: str
    cap: str = "square"
    bridges: bool = False


@dataclass
class SceneVectors:
    """Vector truth of a simulated region (pixel coords of its 1 m grid, 1 px = 1 m)."""

    roads: list[RoadLine] = field(default_factory=list)
    buildings: list[shapely.Polygon] = field(default_factory=list)
    building_height_m: list[int] = field(default_factory=list)
    water: list[shapely.Polygon] = field(default_factory=list)
