"""Label sources: formats, road widths, repairs, coverage and the union raster."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine

from jointseg.grid import GeoBox
from jointseg.trainingdata.labels import (
    HIGHWAY_WIDTH_M,
    ignore_edges,
    label_kind,
    label_raster,
    line_width_m,
    open_labels,
)
from jointseg.trainingdata.settings import TrainingDataError

DATA = Path(__file__).parent / "data" / "trainingdata"
GRID = GeoBox.from_bounds("EPSG:32650", (660000, 3540000, 660320, 3540320), 1)


def test_unknown_format_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match=r"labels\.csv: unknown label format"):
        label_kind(tmp_path / "labels.csv")
    bad = tmp_path / "labels.gpkg"
    bad.write_text("not a geopackage")
    with pytest.raises(TrainingDataError, match=r"labels\.gpkg: cannot read labels"):
        open_labels(bad)


def test_gpkg_and_geoparquet_agree_and_repair() -> None:
    gpkg = open_labels(DATA / "footprints.gpkg")
    parquet = open_labels(DATA / "footprints.parquet")
    assert gpkg.n_features == parquet.n_features == 9
    assert gpkg.n_repaired == parquet.n_repaired == 1  # the bow-tie
    assert gpkg.n_dropped == parquet.n_dropped == 1  # the highway=path line (width 0)
    a, b = label_raster([gpkg], GRID), label_raster([parquet], GRID)
    # the GeoPackage declares coverage = the whole grid; GeoParquet: features' bbox
    assert (a != 255).all()
    assert ((a == 1) == (b == 1)).all()
    # bow-tie repaired into two triangles of 30 x 60 / 2 m2 each = 1800 m2 together
    bowtie = a[320 - 180:320 - 120, 200:260]
    assert abs(int((bowtie == 1).sum()) - 1800) < 120


def test_road_widths() -> None:
    table = dict(HIGHWAY_WIDTH_M)
    assert line_width_m({"width": "8.5 m", "lanes": 4}, table) == 8.5
    assert line_width_m({"width": None, "lanes": "2"}, table) == 7.0
    assert line_width_m({"highway": "primary"}, table) == table["primary"]
    assert line_width_m({"highway": "unknown-class"}, {**table, "default": 5.0}) == 5.0
    assert line_width_m({}, table) == 7.0
    lab = label_raster([open_labels(DATA / "footprints.gpkg", {"primary": 12.0})], GRID)
    # the primary road at y = 20 m with width 8 (the attribute wins over the table)
    col = lab[:, 80]
    assert int((col[320 - 40:320] == 1).sum()) == 8


def test_formats_round_trip(tmp_path: Path) -> None:
    gdf = gpd.read_file(DATA / "footprints.gpkg", layer="labels")
    ref = label_raster([open_labels(DATA / "footprints.parquet")], GRID)
    for name in ("l.geojson", "l.fgb"):
        gdf.to_crs("EPSG:4326").to_file(tmp_path / name)
        lab = label_raster([open_labels(tmp_path / name)], GRID)
        assert ((lab == 1) != (ref == 1)).mean() < 0.01, name
    # a Shapefile holds one geometry type: buildings and roads in two files
    polys = gdf.geom_type.str.contains("Polygon")
    gdf[polys].to_file(tmp_path / "b.shp")
    gdf[~polys].to_file(tmp_path / "r.shp")
    lab = label_raster([open_labels(tmp_path / "b.shp"), open_labels(tmp_path / "r.shp")], GRID)
    assert ((lab == 1) != (ref == 1)).mean() < 0.01


def test_raster_mask_union_and_edges(tmp_path: Path) -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[40:60, 40:60] = 1
    mask[:, 90:] = 255  # nodata: not covered
    path = tmp_path / "mask.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100, height=100, count=1,
                       dtype="uint8", nodata=255, crs="EPSG:32650",
                       transform=Affine(1, 0, 660000, 0, -1, 3540320)) as ds:
        ds.write(mask, 1)
    src = open_labels(path)
    lab = label_raster([src], GRID)
    assert (lab[40:60, 40:60] == 1).all() and (lab[:40, :90] == 0).all()
    assert (lab[:100, 90:100] == 255).all() and (lab[100:, :] == 255).all()
    union = label_raster([src, open_labels(DATA / "footprints.gpkg")], GRID)
    assert (union[40:60, 40:60] == 1).all() and (union != 255).all()
    edged = ignore_edges(lab, 2.0)
    assert (edged[42:58, 42:58] == 1).all() and (edged[40:42, 40:60] == 255).all()
    assert (edged[38:40, 40:60] == 255).all() and (edged[20, 20] == 0)


def test_copy_of_fixture_without_coverage_layer_uses_bbox(tmp_path: Path) -> None:
    shutil.copy(DATA / "footprints.parquet", tmp_path / "f.parquet")
    src = open_labels(tmp_path / "f.parquet")
    assert src.coverage.bounds == pytest.approx(tuple(src.features.total_bounds))
