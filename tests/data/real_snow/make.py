"""Extract the real snow patch in this folder from eo-learn's ``REFERENCE_SCENES.npy`` (run once).

    git -C <eo-learn clone> show \
        303e7585:example_data/TestEOPatch/data/REFERENCE_SCENES.npy > ref.npy
    .venv/bin/python tests/data/real_snow/make.py ref.npy

Source: sentinel-hub/eo-learn (MIT, ``LICENSE_eo-learn``),
commit 303e75855880531d519264f847e7c6b2fb97104d,
``example_data/TestEOPatch/data/REFERENCE_SCENES.npy``: float32 (5, 101, 100, 13), five
Sentinel-2 **L1C** (top-of-atmosphere) scenes of the TestEOPatch, 13 bands B01..B12 (B8A after
B08, B10 included) as reflectance 0-1, all resampled to 10 m by Sentinel Hub, NaN where
the scene was masked. Frame 2 is the one taken 2017-01-11T10:03:51 (its NDVI equals frame 34
of ``data/NDVI.npy``, whose timestamp is in ``timestamps.json``). Grid: EPSG:32633, bbox
(``bbox.geojson``) x 465181.05-466180.53, y 5079244.89-5080254.63 (Slovenia).

What this script does, and nothing else:
* takes frame 2 and its first 100 of 101 rows (an even size for the 20 m grid);
* 10 m bands B02 B03 B04 B08: reflectance x 10000, rounded to uint16 DN;
* 20 m bands B05 B06 B07 B8A B11 B12: mean of each 2 x 2 block of the 10 m samples
  (Sentinel Hub had interpolated the native 20 m data to 10 m), then x 10000 to uint16 DN;
* NaN (masked in the source) becomes 0, the nodata DN (any NaN in a 2 x 2 block too);
* writes one GeoTIFF per band, ``<PATCH>/<PATCH>_<BAND>.tif``, with a 10 m / 20 m pixel
  anchored at the bbox's top-left corner (the source pixel is 9.995 x 9.997 m, so the
  grid is off by at most 0.5 m at the far edge).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).parent
PATCH = "S2_L1C_20170111T100351_SI_eolearn"
FRAME = 2
#: Band order of the source's last axis.
SOURCE_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
                "B11", "B12")
BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
CRS = "EPSG:32633"
LEFT, TOP = 465181.0522318204, 5080254.63349641


def to_dn(refl: np.ndarray) -> np.ndarray:
    """uint16 DN (reflectance x 10000, 0 = nodata) from float reflectance with NaN."""
    dn = np.where(np.isnan(refl), 0, np.clip(np.round(refl * 10000.0), 1, 65535))
    return dn.astype(np.uint16)


def write(path: Path, dn: np.ndarray, res: float) -> None:
    profile = {"driver": "GTiff", "dtype": "uint16", "count": 1, "height": dn.shape[0],
               "width": dn.shape[1], "crs": CRS, "transform": from_origin(LEFT, TOP, res, res),
               "nodata": 0, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(dn, 1)


def main(source: Path) -> None:
    print("source sha256", hashlib.sha256(source.read_bytes()).hexdigest())
    scene = np.load(source)[FRAME, :100, :100, :].astype(np.float64)  # (100, 100, 13)
    out = HERE / PATCH
    out.mkdir(exist_ok=True)
    for band in BANDS_10M:
        write(out / f"{PATCH}_{band}.tif", to_dn(scene[..., SOURCE_BANDS.index(band)]), 10.0)
    for band in BANDS_20M:
        b = scene[..., SOURCE_BANDS.index(band)].reshape(50, 2, 50, 2)
        write(out / f"{PATCH}_{band}.tif", to_dn(b.mean(axis=(1, 3))), 20.0)  # NaN propagates
    print("wrote", out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
