"""Change maps of yearly binary ISA maps: change classes per period, year of first ISA.

* **Change classes** of two 0/1/255 maps (uint8): 0 = stable non-ISA, 1 = stable ISA,
  2 = new ISA, 3 = lost ISA, 255 = nodata in either year.
* **Year of first ISA** (as GAIA's year-of-change product): uint16, the first year in
  which a pixel is ISA (after the consistency rule when it is applied); 0 = never ISA
  in a year it was observed; 65535 (:data:`NODATA_YEAR`) = never observed.

Both are written as COGs on the maps' grid (:func:`jointseg.io.write_cog`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jointseg.grid import GeoBox
from jointseg.io import write_cog
from jointseg.products import NODATA_U8

log = logging.getLogger(__name__)

CHANGE_CLASSES: dict[int, str] = {0: "stable non-ISA", 1: "stable ISA", 2: "new ISA",
                                  3: "lost ISA"}
CHANGE_KEYS = ("stable_non_isa", "stable_isa", "new_isa", "lost_isa")
NEW_ISA = 2
NEVER_ISA = 0
NODATA_YEAR = 65535


def change_codes(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """uint8 change classes of two 0/1/255 maps: 0 stable non, 1 stable ISA, 2 new, 3 lost."""
    out = np.full(before.shape, NODATA_U8, np.uint8)
    ok = (before != NODATA_U8) & (after != NODATA_U8)
    b, a = before[ok], after[ok]
    out[ok] = np.select([(b == 0) & (a == 0), (b == 1) & (a == 1), (b == 0) & (a == 1)],
                        [0, 1, 2], 3).astype(np.uint8)
    return out


def first_isa_year(series: Mapping[int, np.ndarray]) -> np.ndarray:
    """uint16 year of first ISA of ``{year: 0/1/255 map}``; 0 never ISA, 65535 never seen."""
    years = sorted(series)
    shape = series[years[0]].shape
    out = np.full(shape, NODATA_YEAR, np.uint16)
    for y in years:
        m = series[y]
        out[(out == NODATA_YEAR) & (m == 0)] = NEVER_ISA
        out[((out == NODATA_YEAR) | (out == NEVER_ISA)) & (m == 1)] = y
    return out


def _tags(region: str, method: str, simulated: bool) -> dict[str, str]:
    tags = {"REGION": region, "CONSISTENCY": method}
    if simulated:
        tags["JOINTSEG_SIMULATED"] = "true"
    return tags


def write_change_maps(
    out_dir: Path, change: Mapping[tuple[int, int], np.ndarray], geobox: GeoBox, region: str,
    method: str, simulated: bool,
) -> dict[str, str]:
    """Write ``change_<y0>_<y1>.tif`` per pair (uint8 COG); return ``{"y0-y1": path}``."""
    tags = {"JOINTSEG_PRODUCT": "isa_change", **_tags(region, method, simulated),
            "CLASSES": json.dumps(CHANGE_CLASSES),
            "ENCODING": "0 stable non-ISA, 1 stable ISA, 2 new ISA, 3 lost ISA, 255 nodata"}
    out = {}
    for (y0, y1), codes in change.items():
        path = out_dir / f"change_{y0}_{y1}.tif"
        write_cog(path, codes, geobox, nodata=NODATA_U8,
                  band_names=[f"isa_change_{y0}_{y1}"],
                  tags={**tags, "YEARS": f"{y0},{y1}"},
                  band_tags=[{f"CLASS_{c}": n for c, n in CHANGE_CLASSES.items()}])
        out[f"{y0}-{y1}"] = str(path)
        log.info("wrote %s", path)
    return out


def write_first_year_map(
    path: Path, first: np.ndarray, geobox: GeoBox, years: list[int], region: str,
    method: str, simulated: bool,
) -> str:
    """Write the uint16 year-of-first-ISA COG (0 never ISA, 65535 nodata); return its path."""
    tags = {"JOINTSEG_PRODUCT": "isa_first_year", **_tags(region, method, simulated),
            "YEARS": ",".join(str(y) for y in years),
            "ENCODING": f"year of first ISA among {years}; {NEVER_ISA} = never ISA; "
                        f"{NODATA_YEAR} = never observed"}
    write_cog(path, first, geobox, nodata=NODATA_YEAR, band_names=["isa_first_year"],
              tags=tags)
    log.info("wrote %s", path)
    return str(path)
