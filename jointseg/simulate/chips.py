"""Simulated paired training chips (the format of docs/architecture.md).

Each training region is its own simulated landscape (its own seed, so its own
town layout) with a randomly chosen urban extent, from dense core to open
countryside. Its Sentinel-2 input is a clear-sky median composite of several
dates (what the pipeline's composite gives), its target a 1 m HR image and the
1 m impervious-surface truth. Regions, not chips, are assigned to splits, so no
two splits share a landscape.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jointseg.grid import GeoBox
from jointseg.io import atomic_path, write_cog
from jointseg.simulate.landcover import LayoutParams, simulate_landscape
from jointseg.simulate.products import SIM_TAGS
from jointseg.simulate.sentinel2 import clear_composite, hr_image, texture

log = logging.getLogger(__name__)

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
#: lower-left corner of region i: x0 + i * spacing (metres, EPSG:32650)
_X0, _Y0, _SPACING = 700000, 3500000, 20000


def simulate_chips(
    out_dir: str | Path,
    seed: int = 1000,
    n_regions: int = 4,
    region_size_m: int = 1920,
    chip_size_m: int = 320,
    year: int = 2021,
    val_regions: int = 1,
    test_regions: int = 0,
    n_dates: int = 5,
    crs: str = "EPSG:32650",
    progress: bool = True,
) -> Path:
    """Simulate ``n_regions`` training regions and cut them into paired chips.

    Args:
        out_dir: dataset root (``index.csv`` + one folder per chip).
        seed: region i uses seed ``seed + i``.
        n_regions: number of simulated regions.
        region_size_m: side of each region (multiple of ``chip_size_m``).
        chip_size_m: chip side, a multiple of 20 m.
        year: year of the simulated acquisitions (phenology).
        val_regions, test_regions: the last regions go to ``val`` then ``test``.
        n_dates: clear dates in each composite.

    Returns:
        Path of ``index.csv`` (written last).
    """
    if chip_size_m % 20 or region_size_m % chip_size_m:
        raise ValueError(
            f"chip_size_m={chip_size_m} must be a multiple of 20 dividing "
            f"region_size_m={region_size_m}"
        )
    if val_regions + test_regions >= n_regions:
        raise ValueError("need at least one training region")
    out_dir = Path(out_dir)
    rows = []
    n_train = n_regions - val_regions - test_regions
    for i in tqdm(range(n_regions), desc="regions", disable=not progress):
        split = "train" if i < n_train else ("val" if i < n_train + val_regions else "test")
        rng = np.random.default_rng(seed + i)
        size = region_size_m
        # urban extent from village-scale to a city covering the region
        radius = float(rng.uniform(0.12, 0.7) * size)
        centre = (float(rng.uniform(0.2, 0.8) * size), float(rng.uniform(0.2, 0.8) * size))
        layout = LayoutParams.default((size, size), rng, centre_xy=centre, core_radius_m=radius)
        land = simulate_landscape((size, size), rng, layout)
        tex = texture(land, rng)
        s2, count = clear_composite(land, tex, year, n_dates, rng)
        hr = hr_image(land, tex, rng)
        x0, y0 = _X0 + i * _SPACING, _Y0
        log.info("region %d (%s, seed %d): ISA %.0f %%", i, split, seed + i, 100 * land.isa.mean())
        n = size // chip_size_m
        for r in range(n):
            for c in range(n):
                xmin = x0 + c * chip_size_m
                ymin = y0 + (n - 1 - r) * chip_size_m
                chip_id = f"r{seed + i}_{r:02d}_{c:02d}"
                _write_chip(out_dir / chip_id, crs, xmin, ymin, chip_size_m, r, c, s2, count,
                            hr, land.isa)
                rows.append((chip_id, split, crs, xmin, ymin, chip_size_m))
    index = out_dir / "index.csv"
    with atomic_path(index) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("chip_id", "split", "crs", "xmin", "ymin", "size_m"))
        w.writerows(rows)
    return index


def _write_chip(chip_dir, crs, xmin, ymin, size_m, r, c, s2, count, hr, isa) -> None:
    g1 = GeoBox.from_bounds(crs, (xmin, ymin, xmin + size_m, ymin + size_m), 1.0)
    tags = {**SIM_TAGS, "CHIP": chip_dir.name}

    def cut(a: np.ndarray, res: int) -> np.ndarray:
        k = size_m // res
        return a[..., r * k : (r + 1) * k, c * k : (c + 1) * k]

    s10 = np.stack([cut(s2[b], 10) for b in BANDS_10M] + [cut(count, 10)])
    s20 = np.stack([cut(s2[b], 20) for b in BANDS_20M])
    write_cog(chip_dir / "s2_10m.tif", s10, g1.with_res(10), nodata=0,
              band_names=[*BANDS_10M, "COUNT"], tags=tags)
    write_cog(chip_dir / "s2_20m.tif", s20, g1.with_res(20), nodata=0,
              band_names=list(BANDS_20M), tags=tags)
    write_cog(chip_dir / "hr.tif", cut(hr, 1), g1, nodata=0, band_names=["R", "G", "B", "NIR"],
              tags=tags)
    write_cog(chip_dir / "label.tif", cut(isa, 1), g1, nodata=255, band_names=["isa"],
              tags=tags)
