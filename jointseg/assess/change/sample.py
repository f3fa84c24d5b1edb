"""Stratified change sample: error-adjusted new-ISA area of every period with a CI.

**Strata** are the map's trajectories over all years (after the temporal method):
stable non-ISA, stable ISA, new ISA in period i (one stratum per consecutive period)
and, when the map has any, ``other`` (a trajectory that loses ISA). Nodata pixels (in
any year) are not sampled.

**Allocation**: the total size follows Olofsson et al. (2014) eq. 13
(:func:`jointseg.assess.sampling.sample_size`) from the strata's area shares, the
conjectured user's accuracies :data:`EXPECTED_UA` and a target standard error of
overall accuracy; then every stratum gets at least ``floor`` units (the rare change
strata: Olofsson et al. recommend 50-100) and the rest is shared in proportion to
area (:func:`jointseg.assess.sampling.allocate`), capped at the stratum's size.
Units are pixels drawn uniformly without replacement within each stratum (seeded):
inclusion probability n_h / N_h.

**Labels** are the reference trajectory at each point (from the reference rasters per
year, e.g. the simulated truth); without reference the sample is written for
labelling and no estimate is made. **Estimates** per period (consecutive years and
first -> last), with :func:`~jointseg.assess.estimators.stratified_estimates` (strata
= trajectories, map class = map new ISA in the period, reference = reference new ISA):
error-adjusted new-ISA area (km²) with its 95 % CI, user's and producer's accuracy of
new ISA, and net growth (new minus lost ISA, :func:`stratified_total`) with its CI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely.geometry import Point

from jointseg.assess.estimators import stratified_estimates, stratified_total
from jointseg.assess.sampling import allocate, sample_size, write_sample
from jointseg.assess.variance import DEFAULT_INTERVAL, INTERVALS
from jointseg.grid import GeoBox
from jointseg.products import NODATA_U8

log = logging.getLogger(__name__)

EXPECTED_UA = {"stable": 0.95, "new": 0.70, "other": 0.50}
ALLOCATION = ("n from Olofsson et al. (2014) eq. 13 with conjectured user's accuracies "
              "{ua} and target SE {se} of overall accuracy; each stratum at least {floor} "
              "units (capped at its pixel count), the rest proportional to area")
TRANSITIONS = ("stable_non_isa", "stable_isa", "new_isa", "lost_isa")


def trajectory_strata(years: Sequence[int]) -> list[tuple[int, str, str]]:
    """(trajectory bits, label, kind) of the monotone trajectories: never ISA, ISA from
    the i-th year on (new in period i), ISA throughout."""
    full = (1 << len(years)) - 1
    out = [(0, "stable non-ISA", "stable")]
    for i in range(1, len(years)):
        out.append((full & ~((1 << i) - 1), f"new ISA {years[i - 1]}-{years[i]}", "new"))
    out.append((full, "stable ISA", "stable"))
    return out


def design(bits: np.ndarray, years: Sequence[int], *, target_se: float, floor: int) -> dict:
    """Strata (trajectories present), their pixel counts and allocated sample sizes."""
    valid = bits != NODATA_U8
    counts = np.bincount(bits[valid].ravel(), minlength=256)
    strata = [(b, label, kind, int(counts[b])) for b, label, kind in trajectory_strata(years)]
    known = {b for b, *_ in strata}
    other = int(sum(counts[b] for b in range(255) if b not in known))
    strata = [s for s in strata if s[3] > 0]
    if other:
        strata.append((-1, "other (loses ISA)", "other", other))
    sizes = np.array([s[3] for s in strata], np.float64)
    n = sample_size(sizes, [EXPECTED_UA[s[2]] for s in strata], target_se)
    alloc = allocate(n, sizes, floor, caps=sizes.astype(np.int64))
    return {"n_target": n, "n_allocated": int(alloc.sum()), "target_se": target_se,
            "floor": floor, "expected_ua": EXPECTED_UA,
            "allocation": ALLOCATION.format(ua=EXPECTED_UA, se=target_se, floor=floor),
            "strata": [{"code": k, "bits": b, "label": label, "pixels": size, "n": int(a)}
                       for k, ((b, label, _, size), a) in enumerate(zip(strata, alloc,
                                                                        strict=True))]}


def stratum_codes(bits: np.ndarray, des: dict) -> np.ndarray:
    """uint8 stratum code of every pixel (255 = not sampled)."""
    codes = np.full(bits.shape, NODATA_U8, np.uint8)
    known = [s for s in des["strata"] if s["bits"] >= 0]
    other = [s for s in des["strata"] if s["bits"] < 0]
    valid = bits != NODATA_U8
    if other:
        codes[valid] = other[0]["code"]
    for s in known:
        codes[bits == s["bits"]] = s["code"]
    return codes


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


def draw(bits: np.ndarray, des: dict, geobox: GeoBox, seed: int,
         reference: np.ndarray | None) -> gpd.GeoDataFrame:
    """Sample points (pixel centres, grid CRS) with map and reference trajectories."""
    rng = np.random.default_rng(seed)
    codes = stratum_codes(bits, des)
    recs = []
    for s in des["strata"]:
        for idx in _draw_class(codes, s["code"], s["n"], rng):
            r, col = divmod(int(idx), codes.shape[1])
            x, y = geobox.transform @ (col + 0.5, r + 0.5)
            ref = None if reference is None else int(reference.flat[idx])
            recs.append({"stratum": s["label"], "map_bits": int(bits.flat[idx]),
                         "reference_bits": None if ref in (None, NODATA_U8) else ref,
                         "stratum_pixels": s["pixels"], "stratum_n": s["n"],
                         "inclusion_probability": s["n"] / s["pixels"], "row": r, "col": col,
                         "geometry": Point(x, y)})
    gdf = gpd.GeoDataFrame(recs, geometry="geometry", crs=geobox.crs)
    gdf["reference_bits"] = gdf["reference_bits"].astype("Int64")
    return gdf


def transition(bits: np.ndarray, i0: int, i1: int) -> np.ndarray:
    """Index into :data:`TRANSITIONS` of years i0 -> i1 of trajectory bits."""
    b0, b1 = (bits >> i0) & 1, (bits >> i1) & 1
    return np.select([(b0 == 0) & (b1 == 0), (b0 == 1) & (b1 == 1), (b0 == 0) & (b1 == 1)],
                     [0, 1, 2], 3)


def estimate(points: gpd.GeoDataFrame, des: dict, years: Sequence[int], px_km2: float,
             interval: str = DEFAULT_INTERVAL) -> dict:
    """Per period: error-adjusted new-ISA area and net growth (km²) with 95 % CIs."""
    lab = points.dropna(subset=["reference_bits"])
    sizes = {s["label"]: s["pixels"] for s in des["strata"]}
    strata = lab["stratum"].to_numpy(object)
    mb, rb = lab["map_bits"].to_numpy(np.int64), lab["reference_bits"].to_numpy(np.int64)
    pairs = list(zip(range(len(years) - 1), range(1, len(years)), strict=True))
    if len(years) > 2:
        pairs.append((0, len(years) - 1))
    out = {}
    try:
        for i0, i1 in pairs:
            m_new = (transition(mb, i0, i1) == 2).astype(int)
            r_tr = transition(rb, i0, i1)
            est = stratified_estimates(strata, m_new, (r_tr == 2).astype(int), sizes, [0, 1],
                                       area_scale=px_km2, area_unit="km2", interval=interval)
            net, net_se = stratified_total(strata, r_tr, sizes, {2: 1.0, 3: -1.0},
                                           [0, 1, 2, 3], interval=interval)
            out[f"{years[i0]}-{years[i1]}"] = {
                "new_isa_km2": float(est.area[1]), "new_isa_ci_km2": float(est.ci(est.area_se[1])),
                "new_isa_map_km2": float(est.map_area[1]),
                "new_isa_users_accuracy": _nan(est.ua[1]),
                "new_isa_producers_accuracy": _nan(est.pa[1]),
                "net_growth_km2": net * px_km2, "net_growth_ci_km2": est.z * net_se * px_km2}
    except ValueError as exc:
        return {"status": "not estimated", "reason": str(exc)}
    return {"status": "ok", "n_labelled": int(len(lab)),
            "n_unlabelled": int(len(points) - len(lab)), "interval": interval,
            "interval_method": INTERVALS[interval], "periods": out}


def _nan(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def change_sample(bits: np.ndarray, reference: np.ndarray | None, geobox: GeoBox,
                  px_km2: float, out_path: str | os.PathLike, *, years: Sequence[int],
                  target_se: float, floor: int, seed: int,
                  interval: str = DEFAULT_INTERVAL) -> dict:
    """Design, draw, write (GeoPackage) and, with a reference, estimate a change sample."""
    years = sorted(years)
    if not (bits != NODATA_U8).any():
        return {"status": "no valid pixels", "years": years}
    des = design(bits, years, target_se=target_se, floor=floor)
    points = draw(bits, des, geobox, seed, reference)
    write_sample(out_path, points)
    log.info("change sample: %d points in %d strata -> %s", len(points), len(des["strata"]),
             out_path)
    est = (estimate(points, des, years, px_km2, interval) if reference is not None
           else {"status": "no reference: sample written for labelling, no estimate"})
    return {"years": years, "design": des, "seed": seed,
            "strata_are": "map trajectories over all years (after the temporal method)",
            "points": str(Path(out_path)), **est}
