"""Orchestration: simulate a whole demo region over several years (truth, HR, S2 scenes,
WorldCover, STAC; urban growth between the years from :mod:`.growth`), and optionally a
training region apart from it whose S2 scenes join the same catalogue and whose HR image
and map labels are written as a user's sources (:mod:`.sources`)."""

from __future__ import annotations

import datetime as dt
import logging
import math
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pyproj import Transformer
from tqdm import tqdm

from jointseg.bands import BANDS_10M, BANDS_20M, SCL, SR_BANDS
from jointseg.grid import GeoBox
from jointseg.io import write_cog, write_json
from jointseg.simulate.districts import write_districts
from jointseg.simulate.growth import BASE_YEAR, LAST_YEAR, landscape_in, plan_growth
from jointseg.simulate.hr import HrView, brightness, hr_date, render_hr
from jointseg.simulate.landcover import Landscape, simulate_landscape
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.materials import CLASSES
from jointseg.simulate.sentinel2 import (
    BOA_OFFSET_DATE,
    material_fractions,
    render_scene,
    sun_position,
)
from jointseg.simulate.stac import NOTE, write_stac
from jointseg.simulate.worldcover import worldcover_map, worldcover_name

log = logging.getLogger(__name__)

DEFAULT_BBOX = (663000.0, 3543000.0, 669000.0, 3549000.0)
MGRS_TILE = "50SPA"
#: MGRS tile named in the training region's scene ids (distinct ids in one catalogue)
TRAIN_MGRS_TILE = "50SNA"
TAGS = {"JOINTSEG_SIMULATED": "true", "JOINTSEG_NOTE": NOTE}
#: the epochs the demo simulates (the paper's biennial years)
DEMO_YEARS = (2017, 2019, 2021, 2023)
#: WorldCover editions (2020 v100, 2021 v200), made from those years' landscapes
WORLDCOVER_YEARS = (2020, 2021)


def region_grid(bbox: tuple[float, float, float, float], crs: str) -> GeoBox:
    """The region's 1 m grid: ``bbox`` snapped outwards to multiples of 60 m."""
    x0, y0 = math.floor(bbox[0] / 60) * 60, math.floor(bbox[1] / 60) * 60
    x1, y1 = math.ceil(bbox[2] / 60) * 60, math.ceil(bbox[3] / 60) * 60
    return GeoBox.from_bounds(crs, (x0, y0, x1, y1), 1)


def scene_dates(year: int, n_dates: int, rng: np.random.Generator) -> list[dt.date]:
    """``n_dates`` dates spread over ``year`` on a 5-day revisit lattice (jittered)."""
    start = dt.date(year, 1, 1)
    out = []
    for i in range(n_dates):
        day = int((i + 0.5) * 365 / n_dates) + int(rng.integers(-2, 3)) * 5
        out.append(start + dt.timedelta(days=int(np.clip(day, 0, 364))))
    return sorted(set(out))


def cloud_plan(n: int, rng: np.random.Generator) -> list[float]:
    """Target thick-cloud fraction per date: one heavy, a couple partial, the rest clear."""
    plan = [float(rng.uniform(0.0, 0.03)) for _ in range(n)]
    order = rng.permutation(n)
    if n >= 1:
        plan[order[0]] = float(rng.uniform(0.5, 0.7))
    for j in order[1:3] if n >= 5 else []:
        plan[j] = float(rng.uniform(0.12, 0.3))
    return plan


def simulate_region(
    out_dir: str | Path,
    bbox: tuple[float, float, float, float] = DEFAULT_BBOX,
    crs: str = "EPSG:32650",
    years: Sequence[int] = DEMO_YEARS,
    seed: int = 42,
    n_dates: int = 8,
    file_base_url: str = "http://127.0.0.1:8752",
    core_radius_m: float | None = None,
    progress: bool = True,
    training: dict | None = None,
    hr_years: Sequence[int] | None = None,
    workers: int = 1,
) -> dict:
    """Simulate the demo region in every one of ``years`` under ``out_dir`` and return
    the ``simulation.json`` dict.

    One landscape (the :data:`~jointseg.simulate.growth.BASE_YEAR` state) grows by the
    events of :func:`~jointseg.simulate.growth.plan_growth`; each year gets its truth
    (``<year>/truth/{isa,landcover}_1m.tif``, one 1 m grid for all years), its S2 scenes
    (``s2/<id>``, dates in that year, the BOA offset from 2022-01-25 on) and, for
    ``hr_years``, its HR image (``<year>/hr/hr_1m.tif``). WorldCover 2020 (v100) and 2021
    (v200) are made from those years' landscapes; one STAC catalogue holds every scene.

    Args:
        bbox: (xmin, ymin, xmax, ymax) metres in ``crs`` (snapped out to 60 m).
        crs: a UTM CRS (the default region is in EPSG:32650, MGRS 50SPA).
        years: years to simulate (2017 .. growth.LAST_YEAR).
        seed: everything is deterministic from it (each year's dates and scenes from
            ``(seed, year)``, so adding a year leaves the others unchanged).
        n_dates: number of S2 dates spread over each year.
        file_base_url: root URL (serving ``out_dir``) for the STAC asset hrefs.
        core_radius_m: urbanness e-folding distance; 0.4 x region size by default.
        training: a training region ``{"bbox", "seed", "label_noise", "year"}`` (bbox in
            ``crs``, apart from ``bbox``; year defaults to the last of ``years``)
            simulated into ``out_dir/train``; its scenes join the catalogue.
        hr_years: years whose 1 m HR image is written (default: the last year only).
        workers: processes rendering years in parallel (fork; 1 = in this process).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    years = sorted({int(y) for y in years})
    if not years or years[0] < BASE_YEAR or years[-1] > LAST_YEAR:
        raise ValueError(f"years {years}: the simulated region spans {BASE_YEAR}-{LAST_YEAR}")
    hr_years = set(years[-1:] if hr_years is None else hr_years)
    grid = region_grid(bbox, crs)
    seeds = np.random.SeedSequence(seed).spawn(6)
    rng_lc, rng_growth = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[5])
    layout = LayoutParams.default(grid.shape, rng_lc, core_radius_m=core_radius_m)
    ls = simulate_landscape(grid.shape, rng_lc, layout)
    growth = plan_growth(ls, rng_growth)
    log.info("landscape and growth done in %.1f s", time.perf_counter() - t0)
    cx, cy = grid.transform @ (grid.width / 2, grid.height / 2)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx, cy)

    tasks = [("year", y, y in hr_years) for y in years]
    tasks += [("worldcover", y, False) for y in WORLDCOVER_YEARS]
    if training:
        tasks.append(("training", None, False))
    _SHARED.update(out_dir=out_dir, ls=ls, growth=growth, grid=grid, seed=seed, lat=lat,
                   lon=lon, n_dates=n_dates, progress=progress and workers == 1, crs=crs,
                   training={**(training or {}),
                             "year": (training or {}).get("year") or years[-1]})
    try:
        results = _run(tasks, workers)
    finally:
        _SHARED.clear()
    per_year = {str(y): r for (kind, y, _), r in zip(tasks, results, strict=True)
                if kind == "year"}
    train = [r for (kind, _, _), r in zip(tasks, results, strict=True) if kind == "training"]
    sim = {
        "simulated": True, "note": NOTE, "seed": seed, "bbox": list(grid.bounds), "crs": crs,
        "years": years, "mgrs_tile": MGRS_TILE, "per_year": per_year,
        "scenes": [sc for r in per_year.values() for sc in r["scenes"]],
        "worldcover_years": list(WORLDCOVER_YEARS),
        "growth": {"base_year": BASE_YEAR, "events": growth.summary()},
        "parameters": {
            "layout": {k: getattr(layout, k) for k in layout.__dataclass_fields__},
            "psf_sigma_px": 0.45, "fraction_res_m": 5, "worldcover_builtup_threshold": 0.4,
        },
        "classes": {str(k): v for k, v in CLASSES.items()},
        "districts": "districts.gpkg",
        "training_regions": train,
    }
    write_districts(out_dir / "districts.gpkg", grid,
                    np.random.default_rng(np.random.SeedSequence([seed, 2])))
    write_json(out_dir / "simulation.json", sim)
    write_stac(out_dir, file_base_url)
    log.info("region simulated (%d years) in %.1f s", len(years), time.perf_counter() - t0)
    return sim


#: What the year tasks share (set before the worker processes fork, cleared after).
_SHARED: dict = {}


def _run(tasks: list[tuple], workers: int) -> list:
    """Run :func:`_task` over ``tasks``, in ``workers`` forked processes when > 1."""
    if workers <= 1 or len(tasks) <= 1:
        return [_task(t) for t in tasks]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(min(workers, len(tasks)), maxtasksperchild=1) as pool:
        return pool.map(_task, tasks, chunksize=1)


def _task(task: tuple) -> dict | None:
    """One year's truth, HR and scenes, one WorldCover year or the training region."""
    kind, year, with_hr = task
    s = _SHARED
    if kind == "training":
        return simulate_training_region(s["out_dir"], crs=s["crs"], n_dates=s["n_dates"],
                                        progress=s["progress"], **s["training"])
    ls = landscape_in(s["ls"], s["growth"], year)
    if kind == "worldcover":
        rng = np.random.default_rng(np.random.SeedSequence([s["seed"], year, 1]))
        wc, wc_geo = worldcover_map(ls.landcover, s["grid"], rng)
        write_cog(s["out_dir"] / "worldcover" / worldcover_name(year, s["lat"], s["lon"]), wc,
                  wc_geo, nodata=0, band_names=["Map"], tags={**TAGS, "YEAR": str(year)})
        return None
    return _simulate_year(s["out_dir"], ls, s["grid"], year, s["seed"], s["n_dates"], s["lat"],
                          with_hr, s["progress"])


def _simulate_year(out_dir: Path, ls: Landscape, grid: GeoBox, year: int, seed: int,
                   n_dates: int, lat: float, with_hr: bool, progress: bool) -> dict:
    """Write ``year``'s truth, HR image (``with_hr``) and S2 scenes from its landscape
    ``ls``; returns its ``simulation.json`` entry."""
    t0 = time.perf_counter()
    rng_tex, rng_dates, rng_s2 = (np.random.default_rng(s)
                                  for s in np.random.SeedSequence([seed, year]).spawn(3))
    _write_truth(out_dir / str(year), ls, grid)
    date = hr_date(year)
    tex = brightness(ls, rng_tex, *sun_position(date, lat))
    view = HrView.draw(rng_tex)
    if with_hr:
        write_cog(out_dir / str(year) / "hr" / "hr_1m.tif", render_hr(ls, tex, date, view),
                  grid, nodata=0, band_names=list(SR_BANDS),
                  tags={**TAGS, "DATE": date.isoformat(),
                        "VIEW_ZENITH_DEG": f"{view.zenith_deg:.2f}",
                        "VIEW_AZIMUTH_DEG": f"{view.azimuth_deg:.2f}"},
                  scales=[1e-4] * len(SR_BANDS))
    fractions = material_fractions(ls.material, tex)
    isa_km2 = float(ls.isa.sum()) * grid.pixel_area_m2 / 1e6
    del ls, tex
    dates = scene_dates(year, n_dates, rng_dates)
    plan = cloud_plan(len(dates), rng_dates)
    scenes = _write_scenes(out_dir, fractions, grid, dates, plan, lat, rng_s2, progress)
    log.info("year %d simulated in %.1f s", year, time.perf_counter() - t0)
    return {"year": year, "dates": [d.isoformat() for d in dates], "scenes": scenes,
            "hr_date": date.isoformat() if with_hr else None,
            "hr_view_deg": [round(view.zenith_deg, 2), round(view.azimuth_deg, 2)],
            "truth": f"{year}/truth/isa_1m.tif", "landcover": f"{year}/truth/landcover_1m.tif",
            "isa_km2": round(isa_km2, 4), "cloud_plan": [round(c, 4) for c in plan]}


def simulate_training_region(out_dir: Path, bbox: tuple[float, float, float, float], crs: str,
                             year: int, seed: int, n_dates: int, label_noise: str = "osm",
                             progress: bool = True) -> dict:
    """Simulate a training region (town core on its west side, countryside to the east)
    under ``out_dir/train``: 1 m truth, sources (HR + noisy labels, ``train/sources``) and
    S2 scenes in ``out_dir/s2`` (ids with :data:`TRAIN_MGRS_TILE`). Returns its
    ``simulation.json`` entry (``scenes`` as the demo's)."""
    from jointseg.simulate.sources import write_training_sources

    t0 = time.perf_counter()
    grid = region_grid(bbox, crs)
    rng_lc, rng_tex, rng_dates, rng_s2, rng_src = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5))
    size = min(grid.height, grid.width)
    layout = LayoutParams.default(grid.shape, rng_lc, centre_xy=(0.25 * grid.width,
                                                                 0.5 * grid.height),
                                  core_radius_m=0.3 * size)
    ls = simulate_landscape(grid.shape, rng_lc, layout)
    tdir = out_dir / "train"
    _write_truth(tdir, ls, grid)
    cx, cy = grid.transform @ (grid.width / 2, grid.height / 2)
    lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx, cy)[1]
    date = hr_date(year)
    tex = brightness(ls, rng_tex, *sun_position(date, lat))
    hr = render_hr(ls, tex, date, HrView.draw(rng_tex))
    info = write_training_sources(ls, grid, tdir / "sources", rng_src, year=year,
                                  label_noise=label_noise, hr=hr)
    fractions = material_fractions(ls.material, tex)
    del ls, tex
    dates = scene_dates(year, n_dates, rng_dates)
    plan = cloud_plan(len(dates), rng_dates)
    scenes = _write_scenes(out_dir, fractions, grid, dates, plan, lat, rng_s2, progress,
                           TRAIN_MGRS_TILE)
    log.info("training region simulated in %.1f s", time.perf_counter() - t0)
    return {"seed": seed, "bbox": list(grid.bounds), "crs": crs, "label_noise": label_noise,
            "mgrs_tile": TRAIN_MGRS_TILE, "dates": [d.isoformat() for d in dates],
            "sources": str(info.sources_json.relative_to(out_dir)),
            "hr_shift_m": list(info.hr_shift_m), "scenes": scenes,
            "layout": {k: getattr(layout, k) for k in layout.__dataclass_fields__}}


def _write_truth(out_dir: Path, ls: Landscape, grid: GeoBox) -> None:
    """Write ``truth/landcover_1m.tif`` (uint8 class codes) and ``truth/isa_1m.tif`` (0/1)
    on the region's 1 m ``grid``."""
    class_tags = {**TAGS, "CLASSES": ",".join(f"{k}={v}" for k, v in CLASSES.items())}
    write_cog(out_dir / "truth" / "landcover_1m.tif", ls.landcover, grid, nodata=0,
              band_names=["landcover"], tags=class_tags)
    write_cog(out_dir / "truth" / "isa_1m.tif", ls.isa, grid, band_names=["isa"],
              tags={**TAGS, "VALUES": "1=impervious,0=not"})


def _write_scenes(out_dir: Path, fractions: np.ndarray, grid: GeoBox, dates: list[dt.date],
                  plan: list[float], lat: float, rng: np.random.Generator,
                  progress: bool, mgrs: str = MGRS_TILE) -> list[dict]:
    """Render and write one scene per date (thick-cloud fraction from ``plan``); the first
    clear date after the first is cut by a swath edge. Returns the scene entries."""
    clear = [i for i, c in enumerate(plan) if c < 0.1 and i > 0]
    edge_i = clear[0] if len(dates) >= 4 and clear else -1  # one date at a swath edge
    scenes = []
    for i, (date, cover) in enumerate(tqdm(list(zip(dates, plan, strict=True)),
                                           desc="S2 dates", disable=not progress)):
        platform = "sentinel-2a" if i % 2 == 0 else "sentinel-2b"
        scenes.append(_write_scene(out_dir, fractions, grid, date, platform, cover, lat, rng,
                                   swath_edge=i == edge_i, mgrs=mgrs))
    return scenes


def _write_scene(out_dir: Path, fractions: np.ndarray, grid: GeoBox, date: dt.date,
                 platform: str, cover: float, lat: float, rng: np.random.Generator,
                 swath_edge: bool, mgrs: str = MGRS_TILE) -> dict:
    """Render one S2 date and write its band COGs (10 m / 20 m children of the 1 m
    ``grid``), SCL and cloud truth; returns the scene's ``simulation.json`` entry."""
    sid = f"S2{platform[-1].upper()}_{mgrs}_{date:%Y%m%d}_0_L2A"
    offset = 1000 if date >= BOA_OFFSET_DATE else 0
    sc = render_scene(fractions, date, rng, cover, lat, offset, swath_edge=swath_edge)
    g10, g20 = grid.zoom_out(10), grid.zoom_out(20)
    sdir = out_dir / "s2" / sid
    for b in (*BANDS_10M, *BANDS_20M):
        g = g10 if b in BANDS_10M else g20
        write_cog(sdir / f"{b}.tif", sc.dn[b], g, nodata=0, band_names=[b],
                  tags={**TAGS, "BOA_ADD_OFFSET": str(-offset)}, scales=[1e-4],
                  offsets=[-offset * 1e-4])
    write_cog(sdir / f"{SCL}.tif", sc.scl, g20, nodata=0, band_names=[SCL], tags=TAGS)
    write_cog(out_dir / "truth" / "clouds" / f"{sid}.tif", sc.truth_clouds, g10,
              band_names=["cloud"], tags={**TAGS, "VALUES": "0=clear,1=cloud,2=shadow"})
    log.info("scene %s: cloud %.1f %%, shift %s px", sid, 100 * sc.cloud_fraction, sc.shift_px)
    return {
        "id": sid, "datetime": f"{date.isoformat()}T02:55:00Z", "platform": platform,
        "cloud_fraction": round(sc.cloud_fraction, 4), "boa_offset_dn": offset,
        "shift_px_10m": [round(s, 4) for s in sc.shift_px],
        "sun_elevation": round(sc.sun_elev_deg, 2), "sun_azimuth": round(sc.sun_az_deg, 2),
        "swath_edge": swath_edge, "mgrs_tile": mgrs,
    }
