"""Simulated inputs for the ``jointseg chips`` tests: a landscape, its composite tile
(the DAG's ``_10m`` / ``_20m`` format), an HR image in any CRS / resolution / DN scale
with a known displacement, and label files. Everything here is simulated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS as CRSobj
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.features import shapes
from rasterio.warp import calculate_default_transform, reproject

from jointseg.bands import BANDS_20M, COMPOSITE_10M
from jointseg.grid import GeoBox
from jointseg.io import write_cog
from jointseg.products import QA_NO_OBSERVATION
from jointseg.simulate.chips import composite_region
from jointseg.simulate.hr import brightness, render_hr
from jointseg.simulate.landcover import Landscape, simulate_landscape
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.region import TAGS, scene_dates
from jointseg.simulate.sentinel2 import material_fractions, sun_position

CRS = "EPSG:32650"
ORIGIN = (660000, 3540000)  # lower-left, multiples of 60 m


@dataclass
class Scene:
    """A simulated region: 1 m grid, truth ISA (uint8), HR reflectance x 10000 (uint16
    R G B NIR), composite arrays (uint16 10 m COMPOSITE_10M, 20 m BANDS_20M)."""

    grid_1m: GeoBox
    isa: np.ndarray
    hr: np.ndarray
    s2_10m: np.ndarray
    s2_20m: np.ndarray


def simulate_town(size_m: int, rng: np.random.Generator, n_dates: int,
                  origin: tuple[int, int] = ORIGIN,
                  core_frac: float = 0.6) -> tuple[Landscape, Scene]:
    """Simulate a town core of ``size_m`` x ``size_m`` metres (multiple of 60) at
    ``origin`` (lower-left, EPSG:32650), drawing from ``rng``: its landscape and scene."""
    x0, y0 = origin
    grid = GeoBox.from_bounds(CRS, (x0, y0, x0 + size_m, y0 + size_m), 1)
    layout = LayoutParams.default(grid.shape, rng, centre_xy=(size_m / 2, size_m / 2),
                                  core_radius_m=core_frac * size_m, river=False)
    ls = simulate_landscape(grid.shape, rng, layout)
    cx, cy = grid.transform @ (size_m / 2, size_m / 2)
    _, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(cx, cy)
    date = dt.date(2021, 7, 20)
    tex = brightness(ls, rng, *sun_position(date, lat))
    hr = render_hr(ls, tex, date)
    s10, s20 = composite_region(material_fractions(ls.material, tex),
                                scene_dates(2021, n_dates, rng), rng, lat)
    qa = np.where(s10[-1] > 0, 0, QA_NO_OBSERVATION).astype(np.uint16)
    return ls, Scene(grid, ls.isa, hr, np.concatenate([s10, qa[None]]), s20)


def make_scene(size_m: int = 960, seed: int = 3, n_dates: int = 4) -> Scene:
    """Simulate a town core of ``size_m`` x ``size_m`` metres (multiple of 60)."""
    return simulate_town(size_m, np.random.default_rng(seed), n_dates)[1]


def write_composite(scene: Scene, out_dir: Path, twin: bool = True) -> Path:
    """Write ``<tile>_10m.tif`` (+ ``_20m.tif``) in the composite format; returns _10m."""
    g10 = scene.grid_1m.zoom_out(10)
    x0, y0 = (int(v) for v in g10.bounds[:2])
    stem = out_dir / f"32650_{x0}_{y0}"
    tags = {**TAGS, "JOINTSEG_PRODUCT": "composite"}
    p10 = write_cog(f"{stem}_10m.tif", scene.s2_10m, g10, nodata=0,
                    band_names=list(COMPOSITE_10M), tags=tags)
    if twin:
        write_cog(f"{stem}_20m.tif", scene.s2_20m, scene.grid_1m.zoom_out(20), nodata=0,
                  band_names=list(BANDS_20M), tags=tags)
    return Path(p10)


def write_hr(path: Path, scene: Scene, *, crs: str = "EPSG:4326", res_m: float = 0.75,
             shift_m: tuple[float, float] = (0.0, 0.0), gain: float = 30.0,
             offset: float = 150.0, bands: tuple[int, ...] = (0, 1, 2, 3),
             dtype: str = "uint8", window: tuple[slice, slice] | None = None,
             nodata: float | None = None) -> Path:
    """Write the scene's HR as DN = (reflectance x 10000 - offset) / gain in ``crs`` at
    about ``res_m``, displaced by ``shift_m`` = (dx_east, dy_north) metres (a feature at
    (x, y) appears at (x + dx, y + dy)); ``bands`` picks R G B NIR indices in file
    order; ``window`` (rows, cols) of the 1 m grid crops it."""
    grid = scene.grid_1m if window is None else scene.grid_1m[window]
    data = scene.hr if window is None else scene.hr[(slice(None), *window)]
    src_t = Affine.translation(*shift_m) @ grid.transform
    left, top = src_t.c, src_t.f
    res = res_m / 111_320.0 if CRSobj.from_user_input(crs).is_geographic else res_m
    dst_t, w, h = calculate_default_transform(
        grid.crs, crs, grid.width, grid.height, left=left, bottom=top - grid.height,
        right=left + grid.width, top=top, resolution=res)
    dn_max = np.iinfo(dtype).max
    with rasterio.open(path, "w", driver="GTiff", crs=crs, transform=dst_t, width=w,
                       height=h, count=len(bands), dtype=dtype, nodata=nodata,
                       tiled=True, compress="deflate") as ds:
        for i, bidx in enumerate(bands, start=1):
            out = np.zeros((h, w), np.float32)
            reproject(data[bidx].astype(np.float32), out, src_transform=src_t,
                      src_crs=grid.crs, src_nodata=0, dst_transform=dst_t, dst_crs=crs,
                      dst_nodata=0, resampling=Resampling.bilinear)
            dn = np.clip(np.rint((out - offset) / gain), 1, dn_max)
            dn[out == 0] = 0
            ds.write(dn.astype(dtype), i)
    return path


def isa_polygons(scene: Scene) -> gpd.GeoDataFrame:
    """The truth ISA as polygons (one per connected region), scene CRS."""
    geoms = [shapely.geometry.shape(g) for g, v in
             shapes(scene.isa, mask=scene.isa == 1, transform=scene.grid_1m.transform) if v == 1]
    return gpd.GeoDataFrame({"kind": ["isa"] * len(geoms)}, geometry=geoms, crs=CRS)


def write_labels(path: Path, gdf: gpd.GeoDataFrame, crs: str | None = None) -> Path:
    """Write label features by file extension (GeoPackage, GeoParquet, GeoJSON...)."""
    gdf = gdf.to_crs(crs) if crs else gdf
    if path.suffix == ".parquet":
        gdf.to_parquet(path)
    else:
        gdf.to_file(path)
    return path
