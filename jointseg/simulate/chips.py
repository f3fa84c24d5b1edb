"""Paired training chips (docs/architecture.md, "Paired training chips") from simulated regions.

Each region is its own simulated town (seed, urbanness: core, suburb or rural in turn).
Several low-cloud dates are rendered like the demo scenes; pixels under true cloud or
shadow are dropped and the rest are median-composited (COUNT = clear dates used), as
the pipeline's composite stage would see them. Splits are per region.

``label.tif`` is the clean 1 m truth (``label_noise="clean"``) or the region's OSM-like
label sources rasterised (``osm`` | ``heavy``: :mod:`~jointseg.simulate.labelnoise`,
drawn from a generator of their own so the images are the same at every level).
Beside it each chip has ``truth.tif`` (the clean 0/1 truth) and ``landcover.tif`` (uint8
class codes, :data:`~jointseg.simulate.materials.CLASSES`) for evaluation; training
reads neither.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pyproj import Transformer
from scipy import ndimage
from tqdm import tqdm

from jointseg.bands import BANDS_10M, BANDS_20M, MODEL_INPUT_10M, SR_BANDS
from jointseg.config import schema_default
from jointseg.grid import GeoBox
from jointseg.io import atomic_path, write_cog, write_json
from jointseg.simulate.hr import HrView, brightness, hr_date, render_hr
from jointseg.simulate.labelnoise import noise_level, noisy_layers, rasterise_layers
from jointseg.simulate.landcover import simulate_landscape
from jointseg.simulate.layout import LayoutParams
from jointseg.simulate.materials import CLASSES
from jointseg.simulate.region import TAGS, scene_dates
from jointseg.simulate.sentinel2 import (
    SCL_SNOW,
    material_fractions,
    render_scene,
    sun_position,
)

log = logging.getLogger(__name__)

CRS = "EPSG:32650"
ORIGIN = (640020, 3510000)  # lower-left of region 0 (multiples of 60 m)
KINDS = ("core", "suburb", "rural")
#: Bumped when the simulated scenes change, so cached chip sets are not reused: written
#: to ``simulator.json`` beside ``index.csv`` and tagged on every chip.
SIMULATOR_VERSION = "2026.12-geometry-radiometry-hrvar"


def default_splits(n_regions: int, val_regions: int = 1, test_regions: int = 0) -> list[str]:
    """Per-region split names: the last regions go to test, then val, the rest train."""
    if val_regions + test_regions >= n_regions:
        raise ValueError(f"{n_regions} regions leave none for training "
                         f"({val_regions} val + {test_regions} test)")
    n_train = n_regions - val_regions - test_regions
    return ["train"] * n_train + ["val"] * val_regions + ["test"] * test_regions


def composite_region(fractions: np.ndarray, dates: list[dt.date], rng: np.random.Generator,
                     lat: float) -> tuple[np.ndarray, np.ndarray]:
    """Median composite of cloud-masked dates: (uint16 B02 B03 B04 B08 COUNT at 10 m,
    uint16 B05..B12 at 20 m), harmonised DN (reflectance x 10000), 0 where no clear date."""
    s10, s20, m10, m20 = [], [], [], []
    for date in dates:
        sc = render_scene(fractions, date, rng, float(rng.uniform(0.0, 0.12)), lat, 0)
        bad = ndimage.binary_dilation(sc.truth_clouds > 0, iterations=2)
        # snow is masked too, as the pipeline's cloudmask does (SCL 11, 20 m -> 10 m)
        bad |= np.kron(sc.scl == SCL_SNOW, np.ones((2, 2), dtype=bool))[:bad.shape[0],
                                                                         :bad.shape[1]]
        s10.append(np.stack([sc.dn[b] for b in BANDS_10M]).astype(np.float32))
        s20.append(np.stack([sc.dn[b] for b in BANDS_20M]).astype(np.float32))
        m10.append(bad)
        m20.append(bad.reshape(bad.shape[0] // 2, 2, bad.shape[1] // 2, 2).any((1, 3)))
    out = []
    for stack, masks in ((np.stack(s10), np.stack(m10)), (np.stack(s20), np.stack(m20))):
        stack[np.broadcast_to(masks[:, None], stack.shape)] = np.nan
        count = (~masks).sum(0)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(stack, axis=0)
        med = np.where(np.isnan(med), 0, np.round(med)).astype(np.uint16)
        out.append((med, count.astype(np.uint16)))
    (c10, n10), (c20, _) = out
    return np.concatenate([c10, n10[None]]), c20


def simulate_chips(
    out_dir: str | Path,
    seed: int,
    n_regions: int,
    region_size_m: int = 1920,
    chip_size_m: int = 320,
    year: int = 2021,
    splits: Sequence[str] | None = None,
    n_dates: int = 5,
    progress: bool = True,
    label_noise: str = "clean",
) -> Path:
    """Write a paired chip dataset under ``out_dir``; returns the path of ``index.csv``.

    Args:
        seed: base seed; region ``i`` uses ``SeedSequence([seed, i])``.
        n_regions: number of simulated regions (towns), cycling core/suburb/rural.
        region_size_m: region side (multiple of ``chip_size_m`` and of 60 m).
        chip_size_m: chip side (multiple of 20 m).
        splits: split per region; :func:`default_splits` (last region val) when omitted.
        n_dates: dates composited per region.
        label_noise: ``clean`` (label = truth) | ``osm`` | ``heavy`` (label = noisy sources
            rasterised; :data:`~jointseg.simulate.labelnoise.LEVELS`).
    """
    noise_level(label_noise)
    if chip_size_m % 20 or region_size_m % chip_size_m or region_size_m % 60:
        raise ValueError(f"chip_size_m={chip_size_m} must be a multiple of 20 m and divide "
                         f"region_size_m={region_size_m}, itself a multiple of 60 m")
    splits = list(splits) if splits is not None else default_splits(n_regions)
    if len(splits) != n_regions or not set(splits) <= {"train", "val", "test"}:
        raise ValueError(f"splits {splits} must name train/val/test once per region")
    out_dir = Path(out_dir)
    rows = []
    for i in tqdm(range(n_regions), desc="chip regions", disable=not progress):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        xmin = ORIGIN[0] + i * (region_size_m + 480)
        grid = GeoBox.from_bounds(
            CRS, (xmin, ORIGIN[1], xmin + region_size_m, ORIGIN[1] + region_size_m), 1)
        kind = KINDS[i % 3]
        noise_rng = np.random.default_rng(np.random.SeedSequence([seed, i, 1]))
        s2_10, s2_20, hr, layers = simulate_chip_region(grid, kind, year, n_dates, rng,
                                                        label_noise, noise_rng)
        isa = layers[0]
        log.info("chip region %d (%s, %s): ISA %.1f %%, label ISA %.1f %% (%s)", i, kind,
                 splits[i], 100 * layers[1].mean(), 100 * isa.mean(), label_noise)
        tags = {**TAGS, "REGION": str(i), "SPLIT": splits[i], "KIND": kind,
                "JOINTSEG_SIMULATOR_VERSION": SIMULATOR_VERSION}
        n = region_size_m // chip_size_m
        for r in range(n):
            for c in range(n):
                g1 = grid[r * chip_size_m:(r + 1) * chip_size_m,
                          c * chip_size_m:(c + 1) * chip_size_m]
                chip_id = write_chip(out_dir, g1, (r, c), s2_10, s2_20, hr, isa, tags)
                write_truth(out_dir / chip_id, g1, (r, c), layers[1], layers[2], tags)
                x0, y0 = (int(v) for v in g1.bounds[:2])
                rows.append((chip_id, splits[i], CRS, x0, y0, chip_size_m))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["chip_id", "split", "crs", "xmin", "ymin", "size_m"])
    w.writerows(rows)
    write_json(out_dir / "simulator.json", {"simulator_version": SIMULATOR_VERSION,
                                            "seed": seed, "kinds": [KINDS[i % 3] for i in
                                                                    range(n_regions)]})
    index = out_dir / "index.csv"
    with atomic_path(index) as tmp:
        tmp.write_text(buf.getvalue())
    return index


def simulate_chip_region(grid: GeoBox, kind: str, year: int, n_dates: int,
                         rng: np.random.Generator, label_noise: str = "clean",
                         noise_rng: np.random.Generator | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                    tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Simulate one chip region (a town of ``kind`` core | suburb | rural) on its 1 m
    ``grid`` (UTM). Returns (uint16 composite MODEL_INPUT_10M at 10 m, uint16 BANDS_20M
    at 20 m, uint16 SR_BANDS HR x 10000 at 1 m, (uint8 0/1 label, uint8 0/1 clean truth,
    uint8 land-cover codes) at 1 m); the label is the truth when ``label_noise`` is
    clean, else the noisy label sources drawn with ``noise_rng`` and rasterised."""
    s = grid.width
    centre, radius = {
        "core": ((s / 2, s / 2), 0.5 * s),
        "suburb": ((s * 1.3, s / 2), 0.9 * s),
        "rural": ((s * 3.0, -s), 0.8 * s),
    }[kind]
    layout = LayoutParams.default(grid.shape, rng, centre_xy=centre, core_radius_m=radius,
                                  river=bool(rng.random() < 0.4))
    ls = simulate_landscape(grid.shape, rng, layout)
    cx, cy = grid.transform @ (grid.width / 2, grid.height / 2)
    _, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(cx, cy)
    date = hr_date(year)
    tex = brightness(ls, rng, *sun_position(date, lat))
    hr = render_hr(ls, tex, date, HrView.draw(rng))
    fractions = material_fractions(ls.material, tex)
    s2_10, s2_20 = composite_region(fractions, scene_dates(year, n_dates, rng), rng, lat)
    truth = ls.isa
    label = truth
    if label_noise != "clean":
        layers = noisy_layers(ls.vectors, ls.landcover, ls.urbanness, grid,
                              noise_level(label_noise), noise_rng or rng)
        label = rasterise_layers(layers, grid, schema_default("training_data.chips.highway_widths"))
    return s2_10, s2_20, hr, (label, truth, ls.landcover)


def write_truth(chip_dir: Path, g1: GeoBox, rc: tuple[int, int], truth: np.ndarray,
                landcover: np.ndarray, tags: dict[str, str]) -> None:
    """Write chip ``rc``'s clean ``truth.tif`` (uint8 0/1) and ``landcover.tif`` (uint8
    class codes, 0 = nodata) on its 1 m grid ``g1``, cut from the region's arrays."""
    r, c = rc
    k = g1.height
    win = np.s_[r * k:(r + 1) * k, c * k:(c + 1) * k]
    write_cog(chip_dir / "truth.tif", truth[win], g1, nodata=255, band_names=["isa"],
              tags={**tags, "VALUES": "1=impervious,0=not"})
    write_cog(chip_dir / "landcover.tif", landcover[win], g1, nodata=0,
              band_names=["landcover"],
              tags={**tags, "CLASSES": ",".join(f"{k}={v}" for k, v in CLASSES.items())})


def write_chip(out_dir: Path, g1: GeoBox, rc: tuple[int, int], s2_10: np.ndarray,
               s2_20: np.ndarray, hr: np.ndarray, isa: np.ndarray, tags: dict[str, str]) -> str:
    """Write chip (row ``rc[0]``, col ``rc[1]``) of a region's arrays, on its 1 m grid
    ``g1`` (and the 10 m / 20 m parents), to ``out_dir/<chip_id>/``; returns the chip id
    ``<epsg>_<xmin>_<ymin>``."""
    r, c = rc
    k1, k10, k20 = g1.height, g1.height // 10, g1.height // 20
    x0, y0 = (int(v) for v in g1.bounds[:2])
    chip_id = f"{g1.crs.split(':')[1]}_{x0}_{y0}"
    d = out_dir / chip_id
    comp = {**tags, "JOINTSEG_PRODUCT": "composite"}
    write_cog(d / "s2_10m.tif", s2_10[:, r * k10:(r + 1) * k10, c * k10:(c + 1) * k10],
              g1.zoom_out(10), nodata=0, band_names=list(MODEL_INPUT_10M), tags=comp,
              scales=[1e-4] * len(BANDS_10M) + [1.0])
    write_cog(d / "s2_20m.tif", s2_20[:, r * k20:(r + 1) * k20, c * k20:(c + 1) * k20],
              g1.zoom_out(20), nodata=0, band_names=list(BANDS_20M), tags=comp,
              scales=[1e-4] * len(BANDS_20M))
    write_cog(d / "hr.tif", hr[:, r * k1:(r + 1) * k1, c * k1:(c + 1) * k1], g1,
              nodata=0, band_names=list(SR_BANDS), tags=tags, scales=[1e-4] * len(SR_BANDS))
    write_cog(d / "label.tif", isa[r * k1:(r + 1) * k1, c * k1:(c + 1) * k1], g1,
              nodata=255, band_names=["isa"], tags=tags)
    return chip_id
