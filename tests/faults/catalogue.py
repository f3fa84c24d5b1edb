"""A tiny synthetic Sentinel-2 L2A catalogue for the fault and crash tests.

Two regions, one 600 m tile each (EPSG:32633, 20 km apart, so no scene covers
both), two scenes per region. Every scene has all eleven assets the pipeline
reads (B02..B12, B8A, SCL) as small tiled GeoTIFFs slightly larger than the tile,
and an Earth-Search-v1-style Item (baseline 03.00, no BOA offset). Pixel values
are seeded random DN, so byte-identical outputs mean the same bytes were read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pyproj import Transformer

from jointseg.grid import GeoBox, Tile
from tests.stackfactory import write_tif

EPSG = 32633
TILE_SIZE_M = 600
#: region name -> lower-left corner (m) of its single tile
REGIONS = {"north": (500040, 5000040), "south": (500040, 4980000)}
DATES = (("2021-06-01", 5.0), ("2021-07-11", 12.0))
ES_KEYS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B05": "rededge1",
           "B06": "rededge2", "B07": "rededge3", "B8A": "nir08", "B11": "swir16",
           "B12": "swir22", "SCL": "scl"}
RES_M = {b: 10 if b in ("B02", "B03", "B04", "B08") else 20 for b in ES_KEYS}
MARGIN_M = 120


def region_tile(region: str) -> Tile:
    """The one tile of ``region``."""
    x, y = REGIONS[region]
    return Tile.at(EPSG, x, y, TILE_SIZE_M)


def scene_id(region: str, date: str) -> str:
    return f"S2A_33TXX_{date.replace('-', '')}_{region}_L2A"


def write_assets(root: Path, seed: int = 7) -> list[tuple[str, str, float]]:
    """Write ``root/<scene>/<band>.tif`` for every scene; return (region, date, cloud)."""
    rng = np.random.default_rng(seed)
    scenes = []
    for region in REGIONS:
        t = region_tile(region)
        xmin, ymin = t.xmin - MARGIN_M, t.ymin - MARGIN_M
        size = TILE_SIZE_M + 2 * MARGIN_M
        for date, cloud in DATES:
            sid = scene_id(region, date)
            for band, res in RES_M.items():
                grid = GeoBox.from_bounds(f"EPSG:{EPSG}", (xmin, ymin, xmin + size, ymin + size),
                                          res)
                if band == "SCL":
                    data = rng.choice(np.array([4, 5, 6, 8], np.uint8), grid.shape,
                                      p=[0.5, 0.3, 0.1, 0.1])
                else:
                    data = rng.integers(200, 6000, grid.shape, dtype=np.uint16)
                write_tif(root / sid / f"{band}.tif", data, grid, nodata=0)
            scenes.append((region, date, cloud))
    return scenes


def items(scenes: list[tuple[str, str, float]], file_url: str) -> list[dict]:
    """Earth Search v1 Items for ``scenes`` with asset hrefs under ``file_url``."""
    to_ll = Transformer.from_crs(EPSG, 4326, always_xy=True)
    out = []
    for region, date, cloud in scenes:
        t = region_tile(region)
        x0, y0 = t.xmin - MARGIN_M, t.ymin - MARGIN_M
        x1, y1 = x0 + TILE_SIZE_M + 2 * MARGIN_M, y0 + TILE_SIZE_M + 2 * MARGIN_M
        ring = [list(to_ll.transform(x, y)) for x, y in
                ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
        sid = scene_id(region, date)
        assets = {key: {"href": f"{file_url}/{sid}/{band}.tif",
                        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                        "raster:bands": [{"nodata": 0, "scale": 0.0001, "offset": 0}],
                        "roles": ["data"]}
                  for band, key in ES_KEYS.items()}
        assets["scl"].pop("raster:bands")
        out.append({
            "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [], "id": sid,
            "collection": "sentinel-2-l2a",
            "bbox": [min(p[0] for p in ring), min(p[1] for p in ring),
                     max(p[0] for p in ring), max(p[1] for p in ring)],
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"datetime": f"{date}T10:00:00Z", "eo:cloud_cover": cloud,
                           "proj:epsg": EPSG, "s2:processing_baseline": "03.00",
                           "earthsearch:boa_offset_applied": False},
            "links": [], "assets": assets})
    return out
