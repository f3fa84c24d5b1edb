"""Stratified change sample: area of new ISA with a CI (Olofsson et al. 2014).

**Strata** are the map's change classes of the first -> last period
(:data:`jointseg.assess.change.maps.CHANGE_CLASSES`: stable non-ISA, stable ISA, new
ISA and, when the map has any, lost ISA); nodata pixels are not sampled.

**Allocation**: the total size follows Olofsson et al. (2014) eq. 13
(:func:`jointseg.assess.sampling.sample_size`) from the strata's area shares, the
conjectured user's accuracies :data:`EXPECTED_UA` and a target standard error of
overall accuracy; then every stratum gets at least ``floor`` units (the rare change
strata: Olofsson et al. recommend 50-100) and the rest is shared in proportion to
area (:func:`jointseg.assess.sampling.allocate`), capped at the stratum's size.
Units are pixels drawn uniformly without replacement within each stratum (seeded).

**Labels** are the reference change class at each point (from the reference rasters
per year, e.g. the simulated truth); without reference the sample is written for
labelling and no estimate is made. **Estimates**: :func:`olofsson_estimates` with
rows = map change class, columns = reference change class; error-adjusted area of each
class in km² with a 95 % CI, and user's / producer's accuracy of new ISA.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely.geometry import Point

from jointseg.assess.change.maps import CHANGE_CLASSES, CHANGE_KEYS, NEW_ISA
from jointseg.assess.estimators import olofsson_estimates
from jointseg.assess.sampling import allocate, sample_size, write_sample
from jointseg.grid import GeoBox
from jointseg.products import NODATA_U8

log = logging.getLogger(__name__)

EXPECTED_UA = {0: 0.95, 1: 0.90, 2: 0.70, 3: 0.50}
ALLOCATION = ("n from Olofsson et al. (2014) eq. 13 with conjectured user's accuracies "
              "{ua} and target SE {se} of overall accuracy; each stratum at least {floor} "
              "units (capped at its pixel count), the rest proportional to area")


def design(codes: np.ndarray, *, target_se: float, floor: int) -> dict:
    """Strata (change classes present), their pixel counts and allocated sample sizes."""
    counts = np.bincount(codes[codes != NODATA_U8].ravel(), minlength=len(CHANGE_CLASSES))
    classes = [c for c in CHANGE_CLASSES if counts[c] > 0]
    sizes = np.array([counts[c] for c in classes], np.float64)
    n = sample_size(sizes, [EXPECTED_UA[c] for c in classes], target_se)
    alloc = allocate(n, sizes, floor, caps=sizes.astype(np.int64))
    ua = {CHANGE_KEYS[c]: EXPECTED_UA[c] for c in classes}
    return {"n_target": n, "n_allocated": int(alloc.sum()), "target_se": target_se,
            "floor": floor, "expected_ua": ua,
            "allocation": ALLOCATION.format(ua=ua, se=target_se, floor=floor),
            "strata": [{"map_class": c, "label": CHANGE_CLASSES[c], "pixels": int(counts[c]),
                        "n": int(k)} for c, k in zip(classes, alloc, strict=True)]}


def _draw_class(codes: np.ndarray, c: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Flat indices of ``k`` pixels of class ``c`` drawn uniformly without replacement."""
    per_row = np.count_nonzero(codes == c, axis=1)
    cum = np.cumsum(per_row)
    ranks = np.sort(rng.choice(int(cum[-1]), size=k, replace=False))
    rows = np.searchsorted(cum, ranks, side="right")
    out = np.empty(k, np.int64)
    for i, (r, rank) in enumerate(zip(rows, ranks, strict=True)):
        before = cum[r] - per_row[r]
        out[i] = r * codes.shape[1] + np.flatnonzero(codes[r] == c)[rank - before]
    return out


def draw(codes: np.ndarray, des: dict, geobox: GeoBox, seed: int,
         reference: np.ndarray | None) -> gpd.GeoDataFrame:
    """Sample points (pixel centres, grid CRS) with map and reference change class."""
    rng = np.random.default_rng(seed)
    recs = []
    for s in des["strata"]:
        for idx in _draw_class(codes, s["map_class"], s["n"], rng):
            r, col = divmod(int(idx), codes.shape[1])
            x, y = geobox.transform @ (col + 0.5, r + 0.5)
            ref = None if reference is None else int(reference.flat[idx])
            recs.append({"stratum": s["label"], "map_class": s["map_class"],
                         "reference": None if ref in (None, NODATA_U8) else ref,
                         "stratum_pixels": s["pixels"], "row": r, "col": col,
                         "geometry": Point(x, y)})
    gdf = gpd.GeoDataFrame(recs, geometry="geometry", crs=geobox.crs)
    gdf["reference"] = gdf["reference"].astype("Int64")
    return gdf


def estimate(points: gpd.GeoDataFrame, des: dict, px_km2: float) -> dict:
    """Olofsson estimates over the change strata from the labelled points (km²)."""
    q = len(CHANGE_CLASSES)
    lab = points.dropna(subset=["reference"])
    n = np.zeros((q, q), np.int64)
    np.add.at(n, (lab["map_class"].to_numpy(int), lab["reference"].to_numpy(int)), 1)
    area = np.zeros(q)
    for s in des["strata"]:
        area[s["map_class"]] = s["pixels"]
    try:
        est = olofsson_estimates(n, area, classes=list(CHANGE_KEYS), area_scale=px_km2,
                                 area_unit="km2")
    except ValueError as exc:
        return {"status": "not estimated", "reason": str(exc)}
    d = est.to_dict()
    k = d["classes"][CHANGE_KEYS[NEW_ISA]]
    return {"status": "ok", "n_labelled": int(len(lab)),
            "n_unlabelled": int(len(points) - len(lab)), "counts": n.tolist(),
            "counts_layout": "rows = map change class, columns = reference change class "
                             f"({', '.join(CHANGE_KEYS)})",
            "new_isa_km2": k["area"], "new_isa_ci_km2": k["area_ci"],
            "new_isa_map_km2": k["map_area"], "new_isa_users_accuracy": k["users_accuracy"],
            "new_isa_producers_accuracy": k["producers_accuracy"], "estimates": d}


def change_sample(codes: np.ndarray, reference: np.ndarray | None, geobox: GeoBox,
                  px_km2: float, out_path: str | os.PathLike, *, target_se: float,
                  floor: int, seed: int, period: tuple[int, int]) -> dict:
    """Design, draw, write (GeoPackage) and, with a reference, estimate a change sample."""
    if not (codes != NODATA_U8).any():
        return {"status": "no valid pixels", "period": list(period)}
    des = design(codes, target_se=target_se, floor=floor)
    points = draw(codes, des, geobox, seed, reference)
    write_sample(out_path, points)
    log.info("change sample: %d points in %d strata -> %s", len(points), len(des["strata"]),
             out_path)
    est = (estimate(points, des, px_km2) if reference is not None
           else {"status": "no reference: sample written for labelling, no estimate"})
    return {"period": list(period), "design": des, "seed": seed,
            "points": str(Path(out_path)), **est}
