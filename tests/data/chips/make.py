"""Make the tiny synthetic paired-chip fixture (run: python tests/data/chips/make.py).

Six 160 m chips (16 x 16 px at 10 m) of a toy town: rectangles of roof and road
(impervious, bright in RGB, dull in NIR) on vegetation and bare soil. hr.tif is the
1 m scene; s2_10m/s2_20m are its 10 / 20 m box averages with a little noise and a
COUNT band; label.tif is the impervious mask with a 255 ignore border row. Four
chips are in UTM 50N (split train/val), two in EPSG:3035 (any CRS must work).
Entirely synthetic: no real imagery.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from jointseg.bands import BANDS_20M, MODEL_INPUT_10M, SR_BANDS
from jointseg.grid import GeoBox
from jointseg.io import write_cog

HERE = Path(__file__).parent
SIZE_M = 160
# reflectance x 10000 of (vegetation, soil, roof, road): R G B NIR, then B05..B12
SPECTRA = np.array([
    [400, 700, 350, 3500, 1200, 2800, 3300, 3500, 1800, 900],
    [1800, 1500, 1100, 2400, 2000, 2300, 2400, 2500, 3000, 2500],
    [2600, 2400, 2300, 2700, 2600, 2700, 2750, 2800, 2900, 2700],
    [1300, 1300, 1250, 1500, 1400, 1450, 1500, 1550, 1700, 1600],
], dtype=np.float64)


def scene(rng: np.random.Generator, n: int = 160) -> np.ndarray:
    """(n, n) class map: 0 vegetation, 1 soil, 2 roof, 3 road."""
    cls = np.where(rng.random((n // 20, n // 20)) < 0.3, 1, 0).repeat(20, 0).repeat(20, 1)
    for _ in range(2):  # roads
        if rng.random() < 0.5:
            r = int(rng.integers(0, n - 6))
            cls[r:r + int(rng.integers(4, 8))] = 3
        else:
            c = int(rng.integers(0, n - 6))
            cls[:, c:c + int(rng.integers(4, 8))] = 3
    for _ in range(int(rng.integers(6, 14))):  # roofs
        h, w = rng.integers(6, 22, size=2)
        r, c = int(rng.integers(0, n - h)), int(rng.integers(0, n - w))
        cls[r:r + h, c:c + w] = 2
    return cls


def box_mean(a: np.ndarray, f: int) -> np.ndarray:
    b, h, w = a.shape
    return a.reshape(b, h // f, f, w // f, f).mean(axis=(2, 4))


def write_chip(root: Path, chip_id: str, crs: str, xmin: float, ymin: float,
               rng: np.random.Generator) -> None:
    cls = scene(rng)
    spec = SPECTRA[cls].transpose(2, 0, 1) * rng.normal(1.0, 0.03, (1, *cls.shape))
    bounds = (xmin, ymin, xmin + SIZE_M, ymin + SIZE_M)
    hr = spec[[0, 1, 2, 3]]  # R G B NIR
    s10 = box_mean(spec[[2, 1, 0, 3]], 10) + rng.normal(0, 30, (4, 16, 16))  # B02 B03 B04 B08
    count = rng.integers(8, 16, (1, 16, 16)).astype(np.float64)
    s20 = box_mean(spec[4:10], 20) + rng.normal(0, 30, (6, 8, 8))
    label = (cls >= 2).astype(np.uint8)
    label[0] = 255
    out = root / chip_id
    u16 = lambda a: np.clip(np.rint(a), 1, 65535).astype(np.uint16)  # noqa: E731
    grid_1m = GeoBox.from_bounds(crs, bounds, 1)
    write_cog(out / "s2_10m.tif", u16(np.concatenate([s10, count])), grid_1m.zoom_out(10),
              nodata=0, band_names=list(MODEL_INPUT_10M), blocksize=256)
    write_cog(out / "s2_20m.tif", u16(s20), grid_1m.zoom_out(20), nodata=0,
              band_names=list(BANDS_20M), blocksize=256)
    write_cog(out / "hr.tif", u16(hr), grid_1m, nodata=0, band_names=list(SR_BANDS),
              blocksize=256)
    write_cog(out / "label.tif", label, grid_1m, nodata=255, blocksize=256)


def main() -> None:
    rng = np.random.default_rng(20260101)
    rows = []
    for k in range(6):
        crs, x0, y0 = ("EPSG:32650", 663000, 3543000) if k < 4 else ("EPSG:3035", 4321000,
                                                                      3210000)
        chip_id = f"chip{k:02d}"
        xmin, ymin = x0 + 160 * k, y0
        write_chip(HERE, chip_id, crs, xmin, ymin, rng)
        rows.append([chip_id, "val" if k in (3, 5) else "train", crs, xmin, ymin, SIZE_M])
    with (HERE / "index.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["chip_id", "split", "crs", "xmin", "ymin", "size_m"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
