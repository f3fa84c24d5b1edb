"""Simulate the demo region: truth, HR image, Sentinel-2 scenes, WorldCover map, STAC.

Everything written here is SIMULATED (tag ``JOINTSEG_SIMULATED=true``); see
``docs/simulation.md`` for the physics and its limits.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jointseg.grid import GeoBox
from jointseg.io import write_cog, write_json
from jointseg.simulate.landcover import CLASSES, LayoutParams, simulate_landscape
from jointseg.simulate.products import SIM_TAGS, worldcover_map, write_stac
from jointseg.simulate.sentinel2 import (
    hr_image,
    plan_acquisitions,
    render_scene,
    texture,
)
from jointseg.simulate.spectra import BAND_RES_M, S2_BANDS

log = logging.getLogger(__name__)

DEFAULT_BBOX = (663000.0, 3543000.0, 669000.0, 3549000.0)
DEFAULT_CRS = "EPSG:32650"


def mgrs_square(epsg: int, x: float, y: float) -> str:
    """MGRS grid-zone + 100 km square (e.g. ``50SPA``) of a UTM point (north only)."""
    zone = epsg % 100
    lat_bands = "CDEFGHJKLMNPQRSTUVWX"
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True).transform(x, y)
    band = lat_bands[int((lat + 80) // 8)]
    col_sets = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
    col = col_sets[(zone - 1) % 3][int(x // 100000) - 1]
    rows = "ABCDEFGHJKLMNPQRSTUV"
    row = rows[(int(y // 100000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone}{band}{col}{row}"


def simulate_region(
    out_dir: str | Path,
    bbox: tuple[float, float, float, float] = DEFAULT_BBOX,
    crs: str = DEFAULT_CRS,
    year: int = 2021,
    seed: int = 42,
    n_dates: int = 8,
    file_base_url: str = "http://127.0.0.1:8752",
    progress: bool = True,
) -> dict:
    """Render the simulated region into ``out_dir`` and return ``simulation.json``'s dict.

    Args:
        out_dir: destination (e.g. ``resources/demo``).
        bbox: (xmin, ymin, xmax, ymax) in metres of ``crs``; multiples of 20 m.
        crs: a UTM CRS, e.g. ``EPSG:32650``.
        year: acquisition year of the scenes.
        seed: all randomness derives from it (same seed, same bytes).
        n_dates: number of Sentinel-2 acquisitions.
        file_base_url: URL under which a file server publishes ``out_dir``.
    """
    out_dir = Path(out_dir)
    g1 = GeoBox.from_bounds(crs, tuple(bbox), 1.0)
    if g1.width % 20 or g1.height % 20:
        raise ValueError(f"bbox {bbox} must be a whole number of 20 m pixels")
    rng = np.random.default_rng(seed)
    log.info("simulating %d x %d m in %s (seed %d, year %d)", g1.width, g1.height, crs, seed, year)
    layout = LayoutParams.default(g1.shape, rng)
    land = simulate_landscape(g1.shape, rng, layout)
    tex = texture(land, rng)
    class_tags = {**SIM_TAGS, "CLASSES": json.dumps({str(k): v for k, v in CLASSES.items()})}
    write_cog(
        out_dir / "truth" / "landcover_1m.tif",
        land.landcover,
        g1,
        nodata=0,
        band_names=["landcover"],
        tags=class_tags,
    )
    write_cog(
        out_dir / "truth" / "isa_1m.tif",
        land.isa,
        g1,
        nodata=255,
        band_names=["isa"],
        tags={**SIM_TAGS, "CLASSES": '{"0": "not impervious", "1": "impervious"}'},
    )
    write_cog(
        out_dir / "hr" / "hr_1m.tif",
        hr_image(land, tex, rng),
        g1,
        nodata=0,
        band_names=["R", "G", "B", "NIR"],
        scales=[1e-4] * 4,
        tags={**SIM_TAGS, "SENSOR": "Jilin-1-like 1 m multispectral (simulated)"},
        overview_resampling="average",
    )
    epsg = int(crs.split(":")[1])
    mgrs = mgrs_square(epsg, (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
    acqs = plan_acquisitions(year, n_dates, rng, mgrs)
    scenes = []
    for acq in tqdm(acqs, desc="scenes", disable=not progress):
        log.info(
            "scene %s: cloud %.0f %%, cirrus %.2f, BOA offset %d DN",
            acq.scene_id,
            100 * acq.cloud_fraction,
            acq.cirrus,
            acq.boa_offset_dn,
        )
        bands, scl_20m, clouds = render_scene(land, tex, acq, rng)
        sdir = out_dir / "s2" / acq.scene_id
        tags = {
            **SIM_TAGS,
            "DATETIME": acq.date.isoformat(),
            "PROCESSING_BASELINE": acq.processing_baseline,
            "BOA_ADD_OFFSET": str(-acq.boa_offset_dn),
        }
        for band in S2_BANDS:
            gb = g1.with_res(BAND_RES_M[band])
            write_cog(
                sdir / f"{band}.tif",
                bands[band],
                gb,
                nodata=0,
                band_names=[band],
                tags=tags,
                scales=[1e-4],
                offsets=[-acq.boa_offset_dn / 1e4],
                overview_resampling="average",
            )
        g20 = g1.with_res(20)
        write_cog(sdir / "SCL.tif", scl_20m, g20, nodata=0, band_names=["SCL"], tags=tags)
        write_cog(
            out_dir / "truth" / "clouds" / f"{acq.scene_id}.tif",
            clouds,
            g20,
            band_names=["cloud"],
            tags={**SIM_TAGS, "CLASSES": '{"0": "clear", "1": "cloud", "2": "shadow"}'},
        )
        true_cloud = float((clouds == 1).mean())
        scenes.append(
            {
                "id": acq.scene_id,
                "date": acq.date.isoformat(),
                "platform": acq.platform,
                "crs": crs,
                "bounds": list(g1.bounds),
                "mgrs": mgrs,
                "cloud_fraction": true_cloud,
                "cirrus": acq.cirrus,
                "shift_m": list(acq.shift_m),
                "swath_edge": acq.swath_edge,
                "processing_baseline": acq.processing_baseline,
                "boa_offset_dn": acq.boa_offset_dn,
            }
        )
    wc = worldcover_map(land, g1, year, out_dir, rng)
    meta = {
        "simulated": True,
        "note": "Everything in this folder is SIMULATED by `jointseg simulate region`: "
        "not real observations. See docs/simulation.md.",
        "seed": seed,
        "year": year,
        "crs": crs,
        "bbox": list(bbox),
        "n_dates": n_dates,
        "file_base_url": file_base_url,
        "layout": {
            "centre_xy": list(layout.centre_xy),
            "core_radius_m": layout.core_radius_m,
            "street_angle_deg": layout.street_angle_deg,
        },
        "class_fractions": {CLASSES[k]: float((land.landcover == k).mean()) for k in CLASSES if k},
        "isa_fraction": float(land.isa.mean()),
        "worldcover": str(wc.relative_to(out_dir)),
        "scenes": scenes,
    }
    # STAC first, simulation.json last: its presence marks a complete simulation
    write_stac(out_dir, file_base_url, meta)
    write_json(out_dir / "simulation.json", meta)
    return meta
