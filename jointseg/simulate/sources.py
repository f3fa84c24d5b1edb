"""A simulated training region written as a user's *sources*: HR image + map labels.

What a mapping agency would hand to ``jointseg chips`` (docs/training-data.md), made
from a simulated landscape so that the truth is known:

* ``hr/hr.tif``: the 1 m HR image resampled to EPSG:4326 at ~0.75 m, 8-bit DN with its
  own gain and offset per band, and displaced by a geolocation error of a few metres;
* ``labels/buildings.gpkg``, ``labels/roads.gpkg`` (centre lines with OSM ``highway``,
  ``name``, some ``lanes`` / ``width``), ``labels/paved.gpkg`` (all EPSG:4326) and the
  same features as ``labels/region.osm.pbf``, with OSM-like noise
  (:mod:`~jointseg.simulate.labelnoise`);
* ``sources.json``: the true shift, DN gain / offset, noise parameters and file list,
  ``"simulated": true``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.warp import Resampling, reproject, transform_bounds

from jointseg.bands import SR_BANDS
from jointseg.config import schema_default
from jointseg.grid import GeoBox
from jointseg.io import atomic_path, write_cog, write_json
from jointseg.simulate.hr import brightness, render_hr
from jointseg.simulate.labelnoise import (
    LabelLayers,
    noise_level,
    noisy_layers,
)
from jointseg.simulate.landcover import Landscape
from jointseg.simulate.osmwrite import write_osm_pbf
from jointseg.simulate.sentinel2 import sun_position
from jointseg.simulate.stac import NOTE

log = logging.getLogger(__name__)

TAGS = {"JOINTSEG_SIMULATED": "true", "JOINTSEG_NOTE": NOTE}
M_PER_DEG = 111_320.0


@dataclass
class SourcesInfo:
    """Paths and true parameters of written sources (see ``sources.json``)."""

    out_dir: Path
    hr: Path
    buildings: Path
    roads: Path
    paved: Path
    osm_pbf: Path
    sources_json: Path
    hr_shift_m: tuple[float, float]
    gain: list[float]
    offset: list[float]
    label_noise: str

    @property
    def labels(self) -> list[Path]:
        """The vector label files (GeoPackages) that together make the labels."""
        return [self.buildings, self.roads, self.paved]


def hr_dn_params(hr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (gain, offset) of a vendor-like 8-bit stretch of uint16 (bands, rows, cols)
    reflectance x 10000: DN = gain x value + offset, the 99.5th percentile near 235 DN,
    gain varied by +-8 % and offset 5-20 DN per band."""
    offset = rng.uniform(5.0, 20.0, hr.shape[0])
    p995 = np.array([np.percentile(b[::7, ::7], 99.5) for b in hr], dtype=float)
    gain = (235.0 - offset) / np.maximum(p995, 1.0) * rng.uniform(0.92, 1.08, hr.shape[0])
    return gain, offset


def lonlat_grid(grid: GeoBox, res_m: float) -> GeoBox:
    """An EPSG:4326 grid over ``grid``'s footprint with pixels of about ``res_m`` metres
    (degrees of latitude / longitude at the centre latitude)."""
    w, s, e, n = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds)
    ry = res_m / M_PER_DEG
    rx = res_m / (M_PER_DEG * math.cos(math.radians((s + n) / 2)))
    width, height = math.ceil((e - w) / rx), math.ceil((n - s) / ry)
    return GeoBox("EPSG:4326", Affine(rx, 0.0, w, 0.0, -ry, n), width, height)


def write_hr(path: Path, hr: np.ndarray, grid: GeoBox, shift_m: tuple[float, float],
             gain: np.ndarray, offset: np.ndarray, res_m: float) -> GeoBox:
    """Write uint16 ``hr`` (SR_BANDS reflectance x 10000 on the 1 m UTM ``grid``) as an
    8-bit EPSG:4326 GeoTIFF at ~``res_m`` m, its content displaced by ``shift_m``
    (east, north metres), DN = gain x value + offset (1-255, 0 = nodata); returns its grid."""
    dst = lonlat_grid(grid, res_m)
    src_transform = Affine.translation(*shift_m) @ grid.transform
    out = np.zeros((hr.shape[0], dst.height, dst.width), np.uint8)
    for b in range(hr.shape[0]):
        dn = hr[b].astype(np.float32) * np.float32(gain[b]) + np.float32(offset[b])
        band = np.full((dst.height, dst.width), np.nan, np.float32)
        reproject(dn, band, src_transform=src_transform, src_crs=grid.crs,
                  dst_transform=dst.transform, dst_crs=dst.crs, resampling=Resampling.bilinear,
                  dst_nodata=np.nan)
        ok = np.isfinite(band)
        out[b][ok] = np.clip(np.round(band[ok]), 1, 255).astype(np.uint8)
    write_cog(path, out, dst, nodata=0, band_names=list(SR_BANDS),
              tags={**TAGS, "DN": "gain x reflectance x 10000 + offset (sources.json)"})
    return dst


def write_layers(label_dir: Path, layers: LabelLayers) -> tuple[Path, Path, Path, Path]:
    """Write the label layers as EPSG:4326 GeoPackages and an .osm.pbf under
    ``label_dir``; returns (buildings, roads, paved, osm_pbf) paths."""
    paths = []
    for name, gdf in (("buildings", layers.buildings), ("roads", layers.roads),
                      ("paved", layers.paved)):
        path = label_dir / f"{name}.gpkg"
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The filename extension", RuntimeWarning)
            gpd.GeoDataFrame(gdf).to_crs("EPSG:4326").to_file(tmp, driver="GPKG", layer=name)
        paths.append(path)
    pbf = write_osm_pbf(label_dir / "region.osm.pbf", layers)
    return paths[0], paths[1], paths[2], pbf


def write_training_sources(
    ls: Landscape,
    grid: GeoBox,
    out_dir: str | Path,
    rng: np.random.Generator,
    *,
    year: int,
    label_noise: str = "osm",
    hr: np.ndarray | None = None,
    hr_res_m: float = 0.75,
    shift_range_m: tuple[float, float] = (2.0, 6.0),
) -> SourcesInfo:
    """Write a simulated region ``ls`` (on its 1 m UTM ``grid``) as training sources under
    ``out_dir``; returns their paths and true parameters.

    Args:
        rng: all randomness (DN stretch, shift, label noise) comes from it.
        year: the HR acquisition year (20 July; only used when ``hr`` is rendered here).
        label_noise: ``clean`` | ``osm`` | ``heavy`` (:data:`labelnoise.LEVELS`).
        hr: the uint16 (4, rows, cols) HR image already rendered for ``ls``, or None.
        hr_res_m: the written HR's pixel size (m, approximate: degrees at the centre).
        shift_range_m: range of the geolocation error's magnitude (m), random direction.
    """
    params = noise_level(label_noise)
    out_dir = Path(out_dir)
    if ls.vectors is None:
        raise ValueError("landscape has no vector geometry (simulate_landscape keeps it)")
    if hr is None:
        cx, cy = grid.transform @ (grid.width / 2, grid.height / 2)
        lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(cx, cy)[1]
        hr_date = dt.date(year, 7, 20)
        hr = render_hr(ls, brightness(ls, rng, *sun_position(hr_date, lat)), hr_date)
    gain, offset = hr_dn_params(hr, rng)
    mag, ang = rng.uniform(*shift_range_m), rng.uniform(0, 2 * math.pi)
    shift = (round(mag * math.cos(ang), 3), round(mag * math.sin(ang), 3))
    hr_path = out_dir / "hr" / "hr.tif"
    hr_grid = write_hr(hr_path, hr, grid, shift, gain, offset, hr_res_m)
    layers = noisy_layers(ls.vectors, ls.landcover, ls.urbanness, grid, params, rng)
    b, r, p, pbf = write_layers(out_dir / "labels", layers)
    info = SourcesInfo(out_dir, hr_path, b, r, p, pbf, out_dir / "sources.json", shift,
                       [round(float(g), 6) for g in gain], [round(float(o), 3) for o in offset],
                       label_noise)
    rel = {k: str(v.relative_to(out_dir)) for k, v in
           (("hr", hr_path), ("buildings", b), ("roads", r), ("paved", p), ("osm_pbf", pbf))}
    write_json(info.sources_json, {
        "simulated": True, "note": NOTE, "crs_truth": grid.crs, "bbox_truth": list(grid.bounds),
        "hr_shift_m": list(shift), "hr_shift_convention": "HR content displaced by "
        "[dx_east, dy_north] metres from its true position",
        "hr_dn": {"bands": list(SR_BANDS), "gain": info.gain, "offset": info.offset,
                  "formula": "DN = gain x reflectance x 10000 + offset, clipped to 1..255"},
        "hr_grid": {"crs": hr_grid.crs, "res_deg": [hr_grid.transform.a, -hr_grid.transform.e],
                    "res_m_approx": hr_res_m, "shape": [hr_grid.height, hr_grid.width]},
        "label_noise": params.to_dict(),
        "highway_widths": schema_default("training_data.chips.highway_widths"),
        "counts": {"buildings_truth": len(ls.vectors.buildings),
                   "buildings": len(layers.buildings), "roads_truth": len(ls.vectors.roads),
                   "roads": len(layers.roads), "paved": len(layers.paved)},
        "files": rel,
    })
    log.info("sources %s: shift %s m, %d/%d buildings, %d/%d roads (%s)", out_dir, shift,
             len(layers.buildings), len(ls.vectors.buildings), len(layers.roads),
             len(ls.vectors.roads), label_noise)
    return info
