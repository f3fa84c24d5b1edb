"""Write label layers as an OSM-like ``.osm.pbf`` with pyosmium (lon/lat, WGS 84).

Buildings become closed ways tagged ``building=yes`` (+ ``height``), paved areas closed
ways (or ``type=multipolygon`` relations when they have holes) with their tags, roads
ways with ``highway`` / ``name`` / ``lanes`` / ``width``. Ids count up from 1 per type;
every object gets version 1 and the same timestamp so the file is reproducible.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import osmium
import shapely
from osmium.osm.mutable import Node, Relation, Way

from jointseg.io import atomic_path
from jointseg.simulate.labelnoise import LabelLayers

_META = {"version": 1, "timestamp": "2021-07-20T00:00:00Z", "uid": 1, "user": "jointseg-sim"}


class _Ids:
    """Nodes, ways and relations with running ids, kept until written in OSM order
    (all nodes, then ways, then relations: what readers with a node-location index need)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.ways: list[Way] = []
        self.rels: list[Relation] = []

    def ring(self, coords: np.ndarray, tags: dict[str, str]) -> int:
        """A way through ``coords`` (n, 2) lon/lat (closed when the ring is); its id."""
        closed = len(coords) > 2 and np.allclose(coords[0], coords[-1])
        pts = coords[:-1] if closed else coords
        first = len(self.nodes) + 1
        self.nodes.extend(Node(id=first + i, location=(float(lon), float(lat)), **_META)
                          for i, (lon, lat) in enumerate(pts))
        ids = list(range(first, first + len(pts)))
        if closed:
            ids.append(first)
        self.ways.append(Way(id=len(self.ways) + 1, nodes=ids, tags=tags, **_META))
        return len(self.ways)

    def area(self, poly: shapely.Polygon, tags: dict[str, str]) -> None:
        """A closed way, or a multipolygon relation when ``poly`` has holes."""
        if not poly.interiors:
            self.ring(np.asarray(poly.exterior.coords), tags)
            return
        members = [("w", self.ring(np.asarray(poly.exterior.coords), {}), "outer")]
        members += [("w", self.ring(np.asarray(r.coords), {}), "inner") for r in poly.interiors]
        self.rels.append(Relation(id=len(self.rels) + 1, members=members,
                                  tags={"type": "multipolygon", **tags}, **_META))

    def write(self, path: Path) -> None:
        """Write everything to ``path`` as PBF (whatever its suffix)."""
        writer = osmium.SimpleWriter(osmium.io.File(str(path), "pbf"), overwrite=True)
        try:
            for n in self.nodes:
                writer.add_node(n)
            for w in self.ways:
                writer.add_way(w)
            for r in self.rels:
                writer.add_relation(r)
        finally:
            writer.close()


def _tags(row: dict) -> dict[str, str]:
    """String tags of a row, without missing values."""
    out = {}
    for k, v in row.items():
        if v is None or (isinstance(v, float) and math.isnan(v)) or str(v) in ("<NA>", "nan"):
            continue
        out[k] = f"{v:g}" if isinstance(v, float) else str(v)
    return out


def _parts(geom: shapely.Geometry) -> list:
    """Single parts of a (multi-)geometry."""
    return list(geom.geoms) if hasattr(geom, "geoms") else [geom]


def write_osm_pbf(path: str | Path, layers: LabelLayers) -> Path:
    """Write ``layers`` (any CRS; reprojected to EPSG:4326) to ``path`` (.osm.pbf),
    atomically; returns the path."""
    path = Path(path)
    b, r, p = (gdf.to_crs("EPSG:4326") for gdf in (layers.buildings, layers.roads,
                                                     layers.paved))
    ids = _Ids()
    for g, h in zip(b.geometry, b["height"], strict=True):
        for part in _parts(g):
            ids.area(part, _tags({"building": "yes", "height": round(float(h))}))
    for g, row in zip(p.geometry, p.drop(columns="geometry").to_dict("records"), strict=True):
        for part in _parts(g):
            ids.area(part, _tags(row))
    for g, row in zip(r.geometry, r.drop(columns="geometry").to_dict("records"), strict=True):
        for part in _parts(g):
            ids.ring(np.asarray(part.coords), _tags(row))
    with atomic_path(path) as tmp:
        ids.write(tmp)
    return path
