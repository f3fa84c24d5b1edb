"""Products of the simulated region besides the scenes: a WorldCover-format map and STAC.

* :func:`worldcover_map`: a 10 m map in ESA WorldCover class codes, made the way
  a 10 m product errs (a pixel is built-up when its impervious fraction exceeds
  a noisy threshold around 0.4: thin roads are missed, mixed edge pixels
  over-counted), written in EPSG:4326 at WorldCover's 1/12000 degree pixel and
  named as ESA names the 3 x 3 degree tile that holds it.
* :func:`write_stac`: a ``sentinel-2-l2a`` Collection and one Item per scene,
  following Earth Search v1's conventions (asset keys, ``eo:bands``,
  ``raster:bands`` scale/offset, ``proj:*``, ``s2:processing_baseline``,
  ``earthsearch:boa_offset_applied``), hrefs on a given file-server base URL.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_geom
from shapely.geometry import box, mapping, shape

from jointseg.grid import GeoBox
from jointseg.io import write_cog, write_json
from jointseg.simulate.landcover import ISA_CLASSES, Landscape

SIM_TAGS = {
    "JOINTSEG_SIMULATED": "true",
    "JOINTSEG_NOTE": "SIMULATED by jointseg simulate: not a real observation",
}

#: our land-cover class -> ESA WorldCover class (10 tree, 30 grass, 40 crop, 60 bare, 80 water)
_TO_WORLDCOVER = {5: 10, 6: 30, 7: 40, 8: 80, 9: 60}
WORLDCOVER_RES_DEG = 1.0 / 12000.0

#: Earth Search v1 asset key -> (band id, common name, centre wavelength um, resolution m)
EARTH_SEARCH_ASSETS = {
    "blue": ("B02", "blue", 0.49, 10),
    "green": ("B03", "green", 0.56, 10),
    "red": ("B04", "red", 0.665, 10),
    "nir": ("B08", "nir", 0.842, 10),
    "rededge1": ("B05", "rededge", 0.705, 20),
    "rededge2": ("B06", "rededge", 0.74, 20),
    "rededge3": ("B07", "rededge", 0.783, 20),
    "nir08": ("B8A", "nir08", 0.865, 20),
    "swir16": ("B11", "swir16", 1.61, 20),
    "swir22": ("B12", "swir22", 2.19, 20),
    "scl": ("SCL", None, None, 20),
}


def worldcover_name(year: int, lon: float, lat: float) -> str:
    """Official WorldCover tile name holding (lon, lat): lower-left 3-degree corner."""
    lat0 = int(math.floor(lat / 3.0) * 3)
    lon0 = int(math.floor(lon / 3.0) * 3)
    ns = f"{'N' if lat0 >= 0 else 'S'}{abs(lat0):02d}"
    ew = f"{'E' if lon0 >= 0 else 'W'}{abs(lon0):03d}"
    version = "v100" if year == 2020 else "v200"
    return f"ESA_WorldCover_10m_{year}_{version}_{ns}{ew}_Map.tif"


def worldcover_map(
    land: Landscape, geobox_1m: GeoBox, year: int, out_dir: Path, rng: np.random.Generator
) -> Path:
    """Write the simulated WorldCover-format map of the region (EPSG:4326)."""
    f = 10
    h, w = land.landcover.shape
    lc = land.landcover.reshape(h // f, f, w // f, f)
    isa_frac = np.isin(lc, ISA_CLASSES).mean(axis=(1, 3))
    # dominant non-ISA class of each 10 m pixel
    counts = np.stack([(lc == c).sum(axis=(1, 3)) for c in _TO_WORLDCOVER])
    dominant = np.array(list(_TO_WORLDCOVER.values()), np.uint8)[counts.argmax(axis=0)]
    thr = 0.4 + 0.08 * rng.standard_normal(isa_frac.shape)
    wc_utm = np.where(isa_frac > thr, 50, dominant).astype(np.uint8)
    src_transform = geobox_1m.transform * rasterio.Affine.scale(f)
    left, bottom, right, top = geobox_1m.bounds
    dst_transform, width, height = calculate_default_transform(
        geobox_1m.crs,
        "EPSG:4326",
        w // f,
        h // f,
        left,
        bottom,
        right,
        top,
        resolution=WORLDCOVER_RES_DEG,
    )
    # snap to the WorldCover pixel lattice (multiples of 1/12000 degree)
    x0 = math.floor(dst_transform.c / WORLDCOVER_RES_DEG) * WORLDCOVER_RES_DEG
    y0 = math.ceil(dst_transform.f / WORLDCOVER_RES_DEG) * WORLDCOVER_RES_DEG
    dst_transform = rasterio.Affine(WORLDCOVER_RES_DEG, 0, x0, 0, -WORLDCOVER_RES_DEG, y0)
    dst = np.zeros((height + 1, width + 1), np.uint8)
    reproject(
        wc_utm,
        dst,
        src_transform=src_transform,
        src_crs=geobox_1m.crs,
        dst_transform=dst_transform,
        dst_crs="EPSG:4326",
        resampling=Resampling.nearest,
        src_nodata=0,
        dst_nodata=0,
    )
    gb = GeoBox("EPSG:4326", dst_transform, dst.shape[1], dst.shape[0])
    lon, lat = (
        dst_transform.c + dst.shape[1] * WORLDCOVER_RES_DEG / 2,
        dst_transform.f - dst.shape[0] * WORLDCOVER_RES_DEG / 2,
    )
    path = out_dir / "worldcover" / worldcover_name(year, lon, lat)
    write_cog(
        path,
        dst,
        gb,
        nodata=0,
        band_names=["Map"],
        tags={**SIM_TAGS, "product": "ESA WorldCover format (simulated 10 m errors)"},
        blocksize=256,
    )
    return path


def _datetime(date: dt.date) -> dt.datetime:
    return dt.datetime(date.year, date.month, date.day, 2, 35, 12, tzinfo=dt.UTC)


def scene_item(scene: dict, sim_dir: Path, base_url: str) -> pystac.Item:
    """A STAC Item (Earth Search v1 conventions) for one simulated scene record."""
    g10 = GeoBox.from_bounds(scene["crs"], tuple(scene["bounds"]), 10)
    geom = transform_geom(scene["crs"], "EPSG:4326", mapping(box(*g10.bounds)))
    date = dt.date.fromisoformat(scene["date"])
    offset_dn = scene["boa_offset_dn"]
    zone = int(scene["crs"].split(":")[1]) % 100
    item = pystac.Item(
        id=scene["id"],
        geometry=geom,
        bbox=list(shape(geom).bounds),
        datetime=_datetime(date),
        properties={
            "platform": scene["platform"],
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "eo:cloud_cover": round(100 * scene["cloud_fraction"], 2),
            "s2:processing_baseline": scene["processing_baseline"],
            # Earth Search sets this when *it* removed the offset from the pixels;
            # the simulated pixels keep ESA's +1000 from baseline 04.00 on, so: false.
            "earthsearch:boa_offset_applied": False,
            "proj:code": scene["crs"],
            "mgrs:utm_zone": zone,
            "mgrs:latitude_band": scene["mgrs"][2],
            "mgrs:grid_square": scene["mgrs"][3:],
            "simulated": True,
            "description": "SIMULATED Sentinel-2 L2A-like scene (jointseg simulate)",
        },
    )
    for key, (band, common, wl, res) in EARTH_SEARCH_ASSETS.items():
        gb = g10.with_res(res)
        rel = f"s2/{scene['id']}/{band}.tif"
        asset = {
            "href": f"{base_url.rstrip('/')}/{rel}",
            "type": pystac.MediaType.COG,
            "roles": ["data"],
            "title": band,
            "proj:shape": [gb.height, gb.width],
            "proj:transform": list(gb.transform)[:6],
            "raster:bands": [
                {
                    "nodata": 0,
                    "data_type": "uint8" if band == "SCL" else "uint16",
                    "spatial_resolution": res,
                    **(
                        {}
                        if band == "SCL"
                        else {
                            "scale": 0.0001,
                            "offset": -offset_dn / 10000.0,
                            "bits_per_sample": 15,
                        }
                    ),
                }
            ],
        }
        if common:
            asset["eo:bands"] = [{"name": band, "common_name": common, "center_wavelength": wl}]
        item.add_asset(key, pystac.Asset.from_dict(asset))
    item.stac_extensions = [
        "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    ]
    item.collection_id = "sentinel-2-l2a"
    return item


def write_stac(sim_dir: str | Path, file_base_url: str, meta: dict | None = None) -> list[Path]:
    """(Re)write ``stac/collection.json`` and ``stac/items/*.json`` of a simulation.

    Reads the scene records in ``simulation.json`` (or ``meta``); nothing is
    re-rendered, so tests can point the hrefs at a file server on another port.
    """
    sim_dir = Path(sim_dir)
    if meta is None:
        meta = json.loads((sim_dir / "simulation.json").read_text())
    items = [scene_item(s, sim_dir, file_base_url) for s in meta["scenes"]]
    bboxes = np.array([it.bbox for it in items])
    dates = [it.datetime for it in items]
    collection = pystac.Collection(
        id="sentinel-2-l2a",
        description="SIMULATED Sentinel-2 L2A-like scenes of the JointSeg demo region "
        "(Earth Search v1 conventions). Not real observations.",
        extent=pystac.Extent(
            pystac.SpatialExtent([[*bboxes[:, :2].min(0), *bboxes[:, 2:].max(0)]]),
            pystac.TemporalExtent([[min(dates), max(dates)]]),
        ),
        license="Apache-2.0",
        title="Sentinel-2 L2A (simulated)",
    )
    stac_dir = sim_dir / "stac"
    out = [stac_dir / "collection.json"]
    write_json(out[0], collection.to_dict(include_self_link=False))
    items_dir = stac_dir / "items"
    items_dir.mkdir(parents=True, exist_ok=True)
    keep = set()
    for it in items:
        d = it.to_dict(include_self_link=False, transform_hrefs=False)
        d["links"] = [
            {"rel": "collection", "href": "../collection.json", "type": "application/json"}
        ]
        p = items_dir / f"{it.id}.json"
        write_json(p, d)
        keep.add(p.name)
        out.append(p)
    for stale in items_dir.glob("*.json"):
        if stale.name not in keep:
            stale.unlink()
    return out
