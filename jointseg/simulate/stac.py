"""STAC Collection + Items for a simulated region, after Earth Search's sentinel-2-l2a (v1)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import pystac
import rasterio
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping

from jointseg.bands import SCL
from jointseg.io import write_json

log = logging.getLogger(__name__)

ASSETS: dict[str, tuple[str, str, float, float]] = {
    # key: (band, common name, centre um, fwhm um)
    "blue": ("B02", "blue", 0.49, 0.098), "green": ("B03", "green", 0.56, 0.045),
    "red": ("B04", "red", 0.665, 0.038), "nir": ("B08", "nir", 0.842, 0.145),
    "rededge1": ("B05", "rededge", 0.704, 0.019), "rededge2": ("B06", "rededge", 0.74, 0.018),
    "rededge3": ("B07", "rededge", 0.783, 0.028), "nir08": ("B8A", "nir08", 0.865, 0.033),
    "swir16": ("B11", "swir16", 1.61, 0.143), "swir22": ("B12", "swir22", 2.19, 0.242),
}
EXT = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
]
NOTE = "SIMULATED data (JointSeg demo region), not real Sentinel-2 observations."


def processing_baseline(date: dt.date) -> str:
    """ESA processing baseline in force on ``date`` (approximate history)."""
    if date < dt.date(2021, 3, 30):
        return "02.14"
    if date < dt.date(2022, 1, 25):
        return "03.00"
    if date < dt.date(2022, 12, 13):
        return "04.00"
    return "05.09"


def write_stac(out_dir: str | Path, file_base_url: str) -> list[dict]:
    """(Re)write ``stac/collection.json``, ``stac/items.json`` and ``stac/items/<id>.json``
    of an existing simulation (reads ``simulation.json`` and the COG headers)."""
    out_dir = Path(out_dir)
    sim = json.loads((out_dir / "simulation.json").read_text())
    base = file_base_url.rstrip("/")
    items = []
    for sc in sim["scenes"] + [s for t in sim.get("training_regions", []) for s in t["scenes"]]:
        d = _scene_item(out_dir, sc, base)
        _check_round_trip(d)
        items.append(d)
    write_json(out_dir / "stac" / "collection.json", _collection(items))
    write_json(out_dir / "stac" / "items.json", {"type": "FeatureCollection", "features": items})
    for d in items:
        write_json(out_dir / "stac" / "items" / f"{d['id']}.json", d)
    _prune_stale(out_dir, {d["id"] for d in items})
    return items


def _prune_stale(out_dir: Path, ids: set[str]) -> None:
    """Remove scenes (``s2/<id>/``) and item files of an earlier simulation into the same
    folder that this one did not write, so no search can find them."""
    for path in sorted((out_dir / "stac" / "items").glob("*.json")):
        if path.stem not in ids:
            path.unlink()
    for path in sorted((out_dir / "s2").glob("*")):
        if path.is_dir() and path.name not in ids:
            log.info("removing stale scene %s (not in simulation.json)", path)
            shutil.rmtree(path)


def _scene_item(out_dir: Path, sc: dict, base: str) -> dict:
    """The STAC Item dict of one simulated scene (``sc``: its ``simulation.json`` entry),
    with asset hrefs under ``base``; footprint in lon/lat from the B02 COG's bounds."""
    sid = sc["id"]
    mgrs = sc.get("mgrs_tile", "50SPA")
    with rasterio.open(out_dir / "s2" / sid / "B02.tif") as ds:
        epsg = ds.crs.to_epsg()
        bounds = ds.bounds
    tr = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    geom = shapely.transform(box(*bounds).segmentize(500), tr.transform, interleaved=False)
    date = dt.date.fromisoformat(sc["datetime"][:10])
    # Earth Search sets this flag when *it* has subtracted ESA's offset from the
    # pixels (harmonised COGs). The simulated DN keep the +1000 from baseline
    # 04.00 on, like Earth Search's unharmonised items: flag false, and the offset
    # is declared in raster:bands (-0.1 with scale 1e-4).
    applied = False
    pb = processing_baseline(date)
    props = {
        "platform": sc["platform"], "constellation": "sentinel-2",
        "instruments": ["msi"], "eo:cloud_cover": round(100 * sc["cloud_fraction"], 2),
        "s2:processing_baseline": pb, "s2:product_type": "S2MSI2A",
        "earthsearch:boa_offset_applied": applied,
        "proj:code": f"EPSG:{epsg}", "mgrs:utm_zone": int(mgrs[:2]),
        "mgrs:latitude_band": mgrs[2], "mgrs:grid_square": mgrs[3:],
        "view:sun_elevation": sc["sun_elevation"],
        "view:sun_azimuth": sc["sun_azimuth"], "simulated": True,
        "jointseg:note": NOTE,
    }
    item = pystac.Item(
        id=sid, geometry=mapping(geom), bbox=list(geom.bounds),
        datetime=dt.datetime.fromisoformat(sc["datetime"].replace("Z", "+00:00")),
        properties=props, stac_extensions=list(EXT), collection="sentinel-2-l2a",
    )
    for key, (band, common, cw, fw) in [*ASSETS.items(), ("scl", (SCL, "", 0, 0))]:
        with rasterio.open(out_dir / "s2" / sid / f"{band}.tif") as ds:
            shape, transform, res = [ds.height, ds.width], list(ds.transform)[:6], ds.res[0]
        rb = {"nodata": 0, "data_type": "uint8" if band == SCL else "uint16",
              "spatial_resolution": res}
        extra = {"proj:shape": shape, "proj:transform": transform}
        if band != SCL:
            rb.update(scale=0.0001, offset=-0.1 if pb >= "04.00" else 0.0)
            extra["eo:bands"] = [{"name": band, "common_name": common,
                                  "center_wavelength": cw, "full_width_half_max": fw}]
            roles = ["data", "reflectance"]
        else:
            roles = ["data"]
        extra["raster:bands"] = [rb]
        item.add_asset(key, pystac.Asset(
            href=f"{base}/s2/{sid}/{band}.tif",
            media_type="image/tiff; application=geotiff; profile=cloud-optimized",
            title=f"{band} - {int(res)}m", roles=roles, extra_fields=extra))
    item.add_link(pystac.Link("collection", f"{base}/stac/collection.json",
                              media_type="application/json"))
    return item.to_dict(include_self_link=False)


def _collection(items: list[dict]) -> dict:
    """The Collection dict whose extent encloses ``items`` (Item dicts)."""
    boxes = [i["bbox"] for i in items]
    times = sorted(i["properties"]["datetime"] for i in items)
    coll = pystac.Collection(
        id="sentinel-2-l2a",
        description=("Sentinel-2 L2A-like scenes, following Earth Search v1 conventions. "
                     + NOTE + " simulated: true"),
        extent=pystac.Extent(
            pystac.SpatialExtent([[min(b[0] for b in boxes), min(b[1] for b in boxes),
                                   max(b[2] for b in boxes), max(b[3] for b in boxes)]]),
            pystac.TemporalExtent([[dt.datetime.fromisoformat(times[0].replace("Z", "+00:00")),
                                    dt.datetime.fromisoformat(times[-1].replace("Z", "+00:00"))]]),
        ),
        license="CC-BY-4.0", extra_fields={"simulated": True},
    )
    return coll.to_dict(include_self_link=False)


def _check_round_trip(d: dict) -> None:
    """Raise ValueError when an Item dict does not survive pystac parsing unchanged."""
    back = pystac.Item.from_dict(json.loads(json.dumps(d))).to_dict(include_self_link=False)
    for key in ("id", "properties", "assets", "geometry", "bbox"):
        if json.dumps(back[key], sort_keys=True) != json.dumps(d[key], sort_keys=True):
            raise ValueError(f"STAC item {d['id']}: {key!r} does not round-trip through pystac")
