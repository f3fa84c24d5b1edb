"""OSM labels from a real extract (Kouvola, Finland; (c) OpenStreetMap contributors,
ODbL; pyrosm's test data, see tests/data/trainingdata/make.py)."""

from __future__ import annotations

from pathlib import Path

import osmium
import pytest
from osmium.osm.mutable import Node, Way
from pyproj import Transformer

from jointseg.grid import GeoBox
from jointseg.trainingdata.labels import label_raster, open_labels
from jointseg.trainingdata.osm import read_osm

PBF = Path(__file__).parent / "data" / "trainingdata" / "kouvola.osm.pbf"


def test_real_extract_buildings_and_highways() -> None:
    gdf, header = read_osm(PBF)
    assert header == pytest.approx((26.93, 60.52, 26.97, 60.54), abs=1e-4)
    lines = gdf[gdf.geom_type == "LineString"]
    polys = gdf[gdf.geom_type.str.contains("Polygon")]
    assert len(polys) > 1000 and len(lines) > 100
    assert {"residential", "secondary", "motorway"} <= set(lines.highway)
    src = open_labels(PBF)
    assert src.kind == "osm" and src.coverage.bounds == pytest.approx(header, abs=1e-6)
    # 1 km square in the extract's centre, UTM 35N at 1 m
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32635", always_xy=True).transform(26.95, 60.53)
    x, y = round(x), round(y)
    grid = GeoBox.from_bounds("EPSG:32635", (x - 500, y - 500, x + 500, y + 500), 1)
    lab = label_raster([src], grid)
    assert (lab != 255).all()
    isa = (lab == 1).mean()
    assert 0.02 < isa < 0.6, isa


def _write_pbf(path: Path) -> None:
    """A hand-made extract: a parking lot, an unpaved parking lot, a footway-free path."""
    with osmium.SimpleWriter(str(path)) as w:
        nodes = [(1, 24.0, 60.0), (2, 24.001, 60.0), (3, 24.001, 60.0005), (4, 24.0, 60.0005),
                 (5, 24.002, 60.0), (6, 24.003, 60.0), (7, 24.003, 60.0005),
                 (8, 24.002, 60.0005), (9, 24.0, 60.001), (10, 24.003, 60.001)]
        for i, lon, lat in nodes:
            w.add_node(Node(id=i, location=(lon, lat), version=1))
        w.add_way(Way(id=1, nodes=[1, 2, 3, 4, 1], tags={"amenity": "parking"}, version=1))
        w.add_way(Way(id=2, nodes=[5, 6, 7, 8, 5],
                      tags={"amenity": "parking", "surface": "gravel"}, version=1))
        w.add_way(Way(id=3, nodes=[9, 10], tags={"highway": "path"}, version=1))


def test_tag_table(tmp_path: Path) -> None:
    path = tmp_path / "t.osm.pbf"
    _write_pbf(path)
    gdf, bounds = read_osm(path)
    assert bounds == pytest.approx((24.0, 60.0, 24.003, 60.001))  # no header: all nodes
    assert len(gdf) == 2  # the paved parking (polygon) and the path (line, width 0 later)
    src = open_labels(path)
    assert src.n_dropped == 1  # the path
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32635", always_xy=True).transform(24.0, 60.0)
    x, y = round(x), round(y)
    grid = GeoBox.from_bounds("EPSG:32635", (x - 20, y - 20, x + 200, y + 130), 1)
    lab = label_raster([src], grid)
    # the paved lot (about 55 x 56 m) is 1, the gravel lot east of it is not
    assert 2500 < int((lab == 1).sum()) < 3600
    assert (lab[85:120, 140:175] == 0).all()
