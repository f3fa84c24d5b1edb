"""Reference sampling: a stratified probability sample (Olofsson et al. 2014; Stehman 2014).

Follows the good practices of Olofsson et al. (2014): a probability sample stratified
by the map classes (here ISA 1 / not 0) crossed with optional *zones* (polygons with a
zone attribute, e.g. upstream / midstream / downstream or urban core / rural
mountain). The total size comes from their eq. 13,

    n = (sum_i W_i S_i / S(O))^2,   S_i = sqrt(U_i (1 - U_i)),

with W_i the mapped area share of stratum i, U_i a conjectured user's accuracy of
its map class and S(O) the target standard error of overall accuracy. It is
allocated proportionally to area, raised to a per-stratum floor (e.g. 50) with the
rest shared proportionally among the larger strata, capped at the stratum's pixels.

**Designs** (:data:`DESIGNS`), both giving every pixel of stratum h the inclusion
probability pi_h = n_h / N_h, so the estimators' weights N_h / n_h are the design's
and every stratum gets its allocation:

* ``random`` (default): n_h pixel centres drawn uniformly without replacement.
* ``spread``: spatially balanced (GRTS-type, Stevens & Olsen 2004): cells of side
  ``min_distance_m`` in a randomised hierarchical order, n_h taken systematically along
  it (a cell holding N_hc stratum pixels is hit n_h N_hc / N_h times in expectation),
  each hit a distinct pixel drawn uniformly within its cell. Points of a stratum lie
  about ``min_distance_m`` apart where the stratum is large enough; it is no minimum
  distance. There is no rejection rule: one that rejects points near accepted ones
  favours isolated pixels and biases the sample (issue 20).

The draw is deterministic for a seed. The sample is a GeoPackage of points in the map
CRS with columns ``point_id, stratum, zone, map_class, stratum_pixels, stratum_n,
weight, inclusion_probability, x, y, pixel_area_m2, design`` (weight = pixels
represented by the unit, N_h / n_h). After labelling it carries ``reference`` (1 =
ISA, 0 = not), from a person or read from a reference raster; reading labels and
estimating from them is :mod:`jointseg.assess.labels`.

References:
    Stevens, D. L., Olsen, A. R. (2004). Spatially balanced sampling of natural
    resources. J. Am. Stat. Assoc. 99, 262-278.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from tqdm import tqdm

from jointseg.assess.groups import GroupError, load_groups
from jointseg.assess.rasters import RasterError, read_binary, read_grid
from jointseg.grid import GeoBox
from jointseg.io import atomic_path

log = logging.getLogger(__name__)

MAP_CLASSES = (0, 1)
STRIP_ROWS = 1024


class SamplingError(ValueError):
    """A sampling design, a sample file or a label file is invalid."""


# ------------------------------------------------------------------- design


def sample_size(
    weights: Sequence[float], expected_ua: Sequence[float], target_se: float = 0.01
) -> int:
    """Olofsson et al. (2014) eq. 13: n = (sum W_i S_i / S(O))^2, rounded up.

    Args:
        weights: mapped area share W_i of each stratum (normalised here).
        expected_ua: conjectured user's accuracy U_i of each stratum (0..1).
        target_se: target standard error S(O) of overall accuracy.
    """
    w = np.asarray(weights, np.float64)
    u = np.asarray(expected_ua, np.float64)
    if w.shape != u.shape or (w < 0).any() or w.sum() <= 0:
        raise SamplingError(f"weights {w.tolist()} and expected UA {u.tolist()} do not match")
    if ((u < 0) | (u > 1)).any() or target_se <= 0:
        raise SamplingError("expected user's accuracies must be in [0, 1] and target_se > 0")
    w = w / w.sum()
    return int(math.ceil(round((np.sum(w * np.sqrt(u * (1 - u))) / target_se) ** 2, 9)))


def allocate(
    n_total: int, sizes: Sequence[float], floor: int = 50,
    caps: Sequence[int] | None = None,
) -> np.ndarray:
    """Proportional allocation of ``n_total`` units, each stratum raised to ``floor``.

    Strata whose proportional share is below the floor get the floor (or their cap
    if lower); the rest of ``n_total`` is shared among the other strata in
    proportion to ``sizes`` (largest remainders), repeated until stable. The total
    exceeds ``n_total`` when the floors alone need more.

    Args:
        n_total: units to allocate.
        sizes: stratum sizes or area shares (only ratios matter).
        floor: minimum units per stratum.
        caps: maximum units per stratum (its pixel count); None = no cap.
    """
    sizes = np.asarray(sizes, np.float64)
    q = sizes.size
    big = np.iinfo(np.int64).max
    cap = np.full(q, big, np.int64) if caps is None else np.asarray(caps, np.int64)
    fixed = np.zeros(q, bool)
    alloc = np.zeros(q, np.int64)
    for _ in range(q + 1):
        fixed_n = np.minimum(floor, cap)
        alloc[fixed] = fixed_n[fixed]
        free = ~fixed & (sizes > 0)
        rest = max(n_total - int(alloc[fixed].sum()), 0)
        if free.any():
            share = rest * sizes[free] / sizes[free].sum()
            base = np.floor(share).astype(np.int64)
            order = np.argsort(-(share - base), kind="stable")[: rest - int(base.sum())]
            base[order] += 1
            alloc[free] = base
        low = free & (alloc < np.minimum(floor, cap))
        if not low.any():
            break
        fixed |= low
    return np.minimum(alloc, cap)


@dataclass(frozen=True)
class Stratum:
    """One stratum: a map class within a zone (``zone`` None without zones).

    Attributes:
        code: value in the stratum raster (1..; 0 = not sampled).
        label: ``"<map_class>"`` or ``"<map_class>|<zone>"``.
        map_class: the map value (0 or 1).
        zone: zone name or None.
        pixels: N_h, number of map pixels in the stratum.
        n: sample units allocated.
    """

    code: int
    label: str
    map_class: int
    zone: str | None
    pixels: int
    n: int


@dataclass(frozen=True)
class SampleDesign:
    """A stratified random sampling design over one map."""

    strata: tuple[Stratum, ...]
    n_target: int
    target_se: float
    expected_ua: dict[int, float]
    floor: int
    geobox: GeoBox
    zones: str | gpd.GeoDataFrame | None
    zone_field: str | None
    zone_names: tuple[str, ...]

    @property
    def pixel_area_m2(self) -> float:
        """Area of one map pixel in m² (:attr:`GeoBox.pixel_area_m2`); NaN for a
        geographic map, whose areas are then counted in pixels."""
        return self.geobox.pixel_area_m2 if self.geobox.is_projected else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "n_target": self.n_target, "n_allocated": int(sum(s.n for s in self.strata)),
            "target_se": self.target_se, "expected_ua": self.expected_ua, "floor": self.floor,
            "zones": None if self.zones is None else str(self.zones)
            if not isinstance(self.zones, gpd.GeoDataFrame) else "<GeoDataFrame>",
            "zone_field": self.zone_field,
            "pixel_area_m2": self.pixel_area_m2,
            "strata": [{"label": s.label, "map_class": s.map_class, "zone": s.zone,
                        "pixels": s.pixels, "n": s.n} for s in self.strata],
        }


class _Strata:
    """Stratum codes of a map, computed strip by strip (never the whole map at once)."""

    def __init__(self, map_path: str | os.PathLike, zones: object, zone_field: str) -> None:
        self.path = map_path
        try:
            self.geobox, self.nodata = read_grid(map_path)
            groups = None if zones is None else load_groups(zones, zone_field,
                                                            self.geobox.crs, "zone")
        except (RasterError, GroupError) as exc:
            raise SamplingError(str(exc)) from exc
        self.groups = groups
        self.zone_names: tuple[str, ...] = () if groups is None else tuple(sorted(groups.names))
        # group id (order in the layer) -> zone index + 1 (sorted names), 0 = no zone
        self.zone_of_id = np.array([0] + [self.zone_names.index(n) + 1
                                          for n in (groups.names if groups else ())], np.int32)
        self.n_zones = max(len(self.zone_names), 1)

    def code(self, map_class: int, zone_idx: int) -> int:
        return 1 + MAP_CLASSES.index(map_class) + len(MAP_CLASSES) * zone_idx

    def strips(self) -> list[int]:
        """First row of each strip of :data:`STRIP_ROWS` rows."""
        return [int(w.row_off) for w in self.geobox.row_windows(STRIP_ROWS)]

    def read_strip(self, ds: rasterio.io.DatasetReader, row0: int) -> np.ndarray:
        """uint16 stratum codes of rows ``row0 .. row0 + STRIP_ROWS`` (0 = not sampled)."""
        return self.read_block(ds, slice(row0, row0 + STRIP_ROWS), slice(0, self.geobox.width))

    def read_block(self, ds: rasterio.io.DatasetReader, rows: slice,
                   cols: slice) -> np.ndarray:
        """uint16 stratum codes of a block of the map (0 = not sampled).

        Raises:
            SamplingError: if the map holds values other than 0, 1 and nodata.
        """
        sub = self.geobox[rows, cols]
        try:
            m = read_binary(ds, self.nodata, self.geobox.window_of(sub))
        except RasterError as exc:
            raise SamplingError(str(exc)) from exc
        zone = (np.ones(m.shape, np.int32) if self.groups is None
                else self.zone_of_id[self.groups.ids(sub)])
        codes = np.zeros(m.shape, np.uint16)
        for c in MAP_CLASSES:
            sel = (m == c) & (zone > 0)
            codes[sel] = (1 + MAP_CLASSES.index(c) + len(MAP_CLASSES) * (zone[sel] - 1))
        return codes


def design_sample(
    map_path: str | os.PathLike,
    *,
    zones: str | os.PathLike | gpd.GeoDataFrame | None = None,
    zone_field: str = "zone",
    expected_ua: Mapping[int, float] | None = None,
    target_se: float = 0.01,
    floor: int = 50,
    n_total: int | None = None,
) -> SampleDesign:
    """Stratify a binary map (x zones), size the sample (eq. 13) and allocate it.

    Args:
        map_path: binary ISA map (uint8 1/0, nodata 255 or the file's nodata).
        zones: polygon layer (path or GeoDataFrame); pixels outside every zone are not
            sampled. None: strata are the map classes.
        zone_field: attribute holding the zone name.
        expected_ua: conjectured user's accuracy per map class (default 1: 0.8, 0: 0.95).
        target_se: target standard error of overall accuracy.
        floor: minimum units per stratum.
        n_total: override the eq. 13 size.
    """
    ua = {1: 0.8, 0: 0.95} if expected_ua is None else {int(k): v for k, v in expected_ua.items()}
    missing = [c for c in MAP_CLASSES if c not in ua]
    if missing:
        raise SamplingError(f"expected_ua lacks map classes {missing}")
    st = _Strata(map_path, zones, zone_field)
    n_codes = len(MAP_CLASSES) * st.n_zones
    counts = np.zeros(n_codes + 1, np.int64)
    with rasterio.open(map_path) as ds:
        for row0 in st.strips():
            counts += np.bincount(st.read_strip(ds, row0).ravel(), minlength=n_codes + 1)
    labels = []
    for zi in range(st.n_zones):
        for c in MAP_CLASSES:
            zone = st.zone_names[zi] if st.zone_names else None
            labels.append((st.code(c, zi), c, zone))
    sizes = np.array([counts[code] for code, _, _ in labels], np.float64)
    if sizes.sum() == 0:
        raise SamplingError(f"{map_path}: no valid map pixels to sample"
                            + (" inside the zones" if zones is not None else ""))
    u = [ua[c] for _, c, _ in labels]
    n_eq13 = sample_size(sizes, u, target_se)
    n = n_eq13 if n_total is None else int(n_total)
    alloc = allocate(n, sizes, floor, caps=sizes.astype(np.int64))
    strata = tuple(
        Stratum(code, str(c) if z is None else f"{c}|{z}", c, z, int(size), int(k))
        for (code, c, z), size, k in zip(labels, sizes, alloc, strict=True) if size > 0)
    log.info("%s: %d strata, eq. 13 n = %d, allocated %d", map_path, len(strata), n_eq13,
             sum(s.n for s in strata))
    return SampleDesign(strata, n, target_se, ua, floor, st.geobox, zones,
                        zone_field if zones is not None else None, st.zone_names)


# --------------------------------------------------------------------- draw

DESIGNS = {
    "random": "stratified random: within each stratum n_h pixels drawn uniformly without "
              "replacement, inclusion probability n_h / N_h for every pixel",
    "spread": "stratified spatially balanced (GRTS-type, Stevens & Olsen 2004): within each "
              "stratum the pixels are ordered by a randomised hierarchical (quadtree) "
              "address of cells of side min_distance_m and n_h are taken systematically "
              "along that order, then uniformly within the cell; inclusion probability "
              "n_h / N_h for every pixel, points spread about min_distance_m apart where "
              "the stratum allows (not a guaranteed minimum)",
}
MAX_SPREAD_CELLS = 4_000_000


def draw_sample(
    map_path: str | os.PathLike,
    design: SampleDesign,
    *,
    method: str = "random",
    min_distance_m: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """Draw the design's points: ``n_h`` pixel centres per stratum, seeded.

    Every pixel of stratum h has inclusion probability ``pi_h = n_h / N_h`` under both
    designs (:data:`DESIGNS`), so the estimators' weights ``N_h / n_h`` are the design's.
    ``"random"``: uniform without replacement. ``"spread"``: spatially balanced on cells
    of side ``min_distance_m`` (map CRS units); the plain stratified variance is then
    conservative. Every stratum gets its allocation (:func:`allocate` caps it at the
    stratum's pixels).

    Raises:
        SamplingError: for an unknown method, ``spread`` without ``min_distance_m``
            or with cells too small for the map.
    """
    if method not in DESIGNS:
        raise SamplingError(f"sampling design {method!r}: expected one of {sorted(DESIGNS)}")
    if method == "random" and min_distance_m > 0:
        log.info("design random draws without spacing: min_distance_m %g is not used",
                 min_distance_m)
    rng = np.random.default_rng(seed)
    st = _Strata(map_path, design.zones, design.zone_field or "zone")
    rows: list[dict] = []
    t = design.geobox.transform
    with rasterio.open(map_path) as ds:
        if method == "random":
            picks = _draw_random(ds, st, design, rng, progress)
        else:
            picks = _draw_spread(ds, st, design, rng, min_distance_m, progress)
    for s in design.strata:
        for col, row in picks[s.code]:
            x, y = t @ (col + 0.5, row + 0.5)
            rows.append({"stratum": s.label, "zone": s.zone, "map_class": s.map_class,
                         "stratum_pixels": s.pixels, "stratum_n": len(picks[s.code]),
                         "weight": s.pixels / len(picks[s.code]),
                         "inclusion_probability": len(picks[s.code]) / s.pixels,
                         "x": x, "y": y})
        log.info("stratum %s: %d of %d points (%s)", s.label, len(picks[s.code]), s.n, method)
    df = pd.DataFrame(rows, columns=["stratum", "zone", "map_class", "stratum_pixels",
                                     "stratum_n", "weight", "inclusion_probability", "x", "y"])
    df.insert(0, "point_id", np.arange(1, len(df) + 1))
    df["pixel_area_m2"] = design.pixel_area_m2
    df["design"] = method
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.x, df.y), crs=design.geobox.crs)


def _draw_random(ds: rasterio.io.DatasetReader, st: _Strata, design: SampleDesign,
                 rng: np.random.Generator, progress: bool) -> dict[int, list[tuple[int, int]]]:
    """(col, row) of n_h pixels per stratum code, uniform without replacement."""
    strip_rows = list(st.strips())
    per_strip = np.stack([np.bincount(st.read_strip(ds, r0).ravel(),
                                      minlength=len(MAP_CLASSES) * st.n_zones + 1)
                          for r0 in strip_rows])
    cum = np.cumsum(per_strip, axis=0)
    out = {}
    for s in tqdm(design.strata, desc="draw strata", disable=not progress):
        ranks = rng.choice(s.pixels, size=s.n, replace=False).astype(np.int64)
        out[s.code] = _resolve(ds, st, s.code, ranks, cum[:, s.code], strip_rows)
    return out


def grts_order(cells_r: np.ndarray, cells_c: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Randomised hierarchical (quadtree) addresses of cells (Stevens & Olsen 2004).

    At every level the four quadrants of each parent get a random order of their own,
    so cells close in the address are close in space and a systematic pass over the
    addresses spreads the sample. Returns the int64 address of each cell.
    """
    levels = max(1, int(math.ceil(math.log2(max(int(cells_r.max()), int(cells_c.max()),
                                                  1) + 1))))
    addr = np.zeros(cells_r.size, np.int64)
    for lv in range(levels, 0, -1):  # coarsest quadrant first
        parent = (cells_r >> lv) * (1 << 31) + (cells_c >> lv)
        quad = 2 * ((cells_r >> (lv - 1)) & 1) + ((cells_c >> (lv - 1)) & 1)
        uniq, inv = np.unique(parent, return_inverse=True)
        perms = rng.permuted(np.tile(np.arange(4), (uniq.size, 1)), axis=1)
        addr = addr * 4 + perms[inv.ravel(), quad]
    return addr


def _draw_spread(ds: rasterio.io.DatasetReader, st: _Strata, design: SampleDesign,
                 rng: np.random.Generator, min_distance_m: float,
                 progress: bool) -> dict[int, list[tuple[int, int]]]:
    """(col, row) of n_h pixels per stratum: GRTS order of cells, systematic, uniform
    within the cell. A cell holding N_hc pixels is hit n_h N_hc / N_h times in
    expectation (floor or ceil) and its hits are distinct pixels, so pi = n_h / N_h."""
    if min_distance_m <= 0:
        raise SamplingError("design spread needs min_distance_m > 0 (its cell side)")
    g = design.geobox
    c = max(1, int(round(min_distance_m / abs(g.res_m))))
    off_r, off_c = (int(v) for v in rng.integers(0, c, size=2))
    n_cr, n_cc = (g.height + off_r) // c + 1, (g.width + off_c) // c + 1
    if n_cr * n_cc > MAX_SPREAD_CELLS:
        raise SamplingError(f"design spread: min_distance_m {min_distance_m:g} gives "
                            f"{n_cr * n_cc} cells on this map (max {MAX_SPREAD_CELLS})")
    n_codes = len(MAP_CLASSES) * st.n_zones + 1
    counts = np.zeros((n_codes, n_cr * n_cc), np.int64)
    col_cell = (np.arange(g.width) + off_c) // c
    for r0 in st.strips():
        codes = st.read_strip(ds, r0)
        row_cell = (np.arange(r0, r0 + codes.shape[0]) + off_r) // c
        cell = (row_cell[:, None] * n_cc + col_cell[None, :]).ravel()
        counts += np.bincount(codes.ravel().astype(np.int64) * n_cr * n_cc + cell,
                              minlength=n_codes * n_cr * n_cc).reshape(n_codes, -1)
    out = {}
    for s in tqdm(design.strata, desc="draw strata", disable=not progress):
        cells = np.flatnonzero(counts[s.code])
        order = cells[np.argsort(grts_order(cells // n_cc, cells % n_cc, rng), kind="stable")]
        cum = np.cumsum(counts[s.code, order])
        step = s.pixels / s.n
        hits = np.bincount(np.searchsorted(cum, rng.uniform(0, step) + step * np.arange(s.n),
                                           side="right"), minlength=order.size)
        got: list[tuple[int, int]] = []
        for cell, k in zip(order[hits > 0].tolist(), hits[hits > 0].tolist(), strict=True):
            r0 = max(cell // n_cc * c - off_r, 0)
            c0 = max(cell % n_cc * c - off_c, 0)
            r1 = min((cell // n_cc + 1) * c - off_r, g.height)
            c1 = min((cell % n_cc + 1) * c - off_c, g.width)
            flat = np.flatnonzero(st.read_block(ds, slice(r0, r1), slice(c0, c1)) == s.code)
            for f in rng.choice(flat, size=k, replace=False).tolist():
                got.append((c0 + f % (c1 - c0), r0 + f // (c1 - c0)))
        out[s.code] = got
    return out


def _resolve(ds: rasterio.io.DatasetReader, st: _Strata, code: int, ranks: np.ndarray,
             cum: np.ndarray, strip_rows: list[int]) -> list[tuple[int, int]]:
    """(col, row) of the pixels with the given row-major ranks within stratum ``code``,
    returned in the order of ``ranks``."""
    strip_of = np.searchsorted(cum, ranks, side="right")
    pos: dict[int, tuple[int, int]] = {}
    for si in np.unique(strip_of):
        before = 0 if si == 0 else int(cum[si - 1])
        codes = st.read_strip(ds, strip_rows[si])
        flat = np.flatnonzero(codes.ravel() == code)
        for rk in ranks[strip_of == si].tolist():
            f = int(flat[rk - before])
            pos[rk] = (f % codes.shape[1], strip_rows[si] + f // codes.shape[1])
    return [pos[rk] for rk in ranks.tolist()]


def write_sample(path: str | os.PathLike, points: gpd.GeoDataFrame) -> Path:
    """Write sample points as a GeoPackage (layer ``samples``) atomically."""
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*extension should be 'gpkg'")
        points.to_file(tmp, driver="GPKG", layer="samples")
    return Path(path)
