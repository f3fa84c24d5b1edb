"""Reference sampling: stratified random design (Olofsson et al. 2014), spaced seeded points.

Follows the good practices of Olofsson et al. (2014): a probability sample stratified
by the map classes (here ISA 1 / not 0) crossed with optional *zones* (polygons with a
zone attribute, e.g. upstream / midstream / downstream or urban core / rural
mountain). The total size comes from their eq. 13,

    n = (sum_i W_i S_i / S(O))^2,   S_i = sqrt(U_i (1 - U_i)),

with W_i the mapped area share of stratum i, U_i a conjectured user's accuracy of
its map class and S(O) the target standard error of overall accuracy. It is
allocated proportionally to area, raised to a per-stratum floor (e.g. 50) with the
rest shared proportionally among the larger strata.

Points are pixel centres drawn uniformly without replacement inside each stratum
(rarest stratum first) and rejected when closer than ``min_distance_m`` to an
accepted point of any stratum; the draw is deterministic for a seed. The sample is a
GeoPackage of points in the map CRS with columns ``point_id, stratum, zone,
map_class, stratum_pixels, stratum_n, weight, pixel_area_m2, x, y`` (weight = pixels
represented by the unit, N_h / n_h). After labelling it carries ``reference``
(1 = ISA, 0 = not), from a person or read from a reference raster; reading labels
and estimating from them is :mod:`jointseg.assess.labels`.
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
        """uint16 stratum codes of rows ``row0 .. row0 + STRIP_ROWS`` (0 = not sampled).

        Raises:
            SamplingError: if the map holds values other than 0, 1 and nodata.
        """
        sub = self.geobox[row0:row0 + STRIP_ROWS, :]
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


class _Spacing:
    """Accepted points on a hash grid of cell ``d``: O(1) minimum-distance checks."""

    def __init__(self, d: float) -> None:
        self.d = d
        self.cells: dict[tuple[int, int], list[tuple[float, float]]] = {}

    def ok(self, x: float, y: float) -> bool:
        if self.d <= 0:
            return True
        cx, cy = int(math.floor(x / self.d)), int(math.floor(y / self.d))
        for i in (cx - 1, cx, cx + 1):
            for j in (cy - 1, cy, cy + 1):
                for px, py in self.cells.get((i, j), ()):
                    if (px - x) ** 2 + (py - y) ** 2 < self.d**2:
                        return False
        return True

    def add(self, x: float, y: float) -> None:
        if self.d > 0:
            key = (int(math.floor(x / self.d)), int(math.floor(y / self.d)))
            self.cells.setdefault(key, []).append((x, y))


def draw_sample(
    map_path: str | os.PathLike,
    design: SampleDesign,
    *,
    min_distance_m: float = 3000.0,
    seed: int = 0,
    max_candidates_factor: int = 50,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """Draw the design's points: uniform pixel centres per stratum, spaced, seeded.

    Strata are filled rarest first. Candidates are drawn without replacement in
    random order (ranks of the stratum's pixels in row-major order, resolved strip by
    strip) and accepted when at least ``min_distance_m`` (map CRS units) from every
    accepted point. A stratum that cannot be filled after ``max_candidates_factor``
    x n candidates (or all its pixels) keeps fewer points, with a warning; its
    ``stratum_n`` column says how many it got.
    """
    rng = np.random.default_rng(seed)
    st = _Strata(map_path, design.zones, design.zone_field or "zone")
    # per strip counts of every code, to resolve ranks into pixels
    strip_rows = list(st.strips())
    with rasterio.open(map_path) as ds:
        per_strip = np.stack([np.bincount(st.read_strip(ds, r0).ravel(),
                                          minlength=len(MAP_CLASSES) * st.n_zones + 1)
                              for r0 in strip_rows])
    cum = np.cumsum(per_strip, axis=0)
    spacing = _Spacing(min_distance_m)
    rows: list[dict] = []
    t = design.geobox.transform
    strata = sorted(design.strata, key=lambda s: (s.pixels, s.code))
    with rasterio.open(map_path) as ds:
        for s in tqdm(strata, desc="draw strata", disable=not progress):
            got: list[tuple[float, float]] = []
            drawn = 0
            limit = min(s.pixels, max_candidates_factor * s.n + 1000)
            seen: set[int] = set()
            while len(got) < s.n and drawn < limit:
                batch = min(max(4 * (s.n - len(got)), 64, drawn), limit - drawn)  # doubles
                ranks = _new_ranks(rng, s.pixels, batch, seen)
                drawn += len(ranks)
                if not len(ranks):
                    break
                for col, row in _resolve(ds, st, s.code, ranks, cum[:, s.code], strip_rows):
                    x, y = t @ (col + 0.5, row + 0.5)
                    if len(got) < s.n and spacing.ok(x, y):
                        spacing.add(x, y)
                        got.append((x, y))
            if len(got) < s.n:
                log.warning("stratum %s: %d of %d points at >= %g m spacing after %d candidates",
                            s.label, len(got), s.n, min_distance_m, drawn)
            for x, y in got:
                rows.append({"stratum": s.label, "zone": s.zone, "map_class": s.map_class,
                             "stratum_pixels": s.pixels, "stratum_n": len(got),
                             "weight": s.pixels / len(got), "x": x, "y": y})
            log.info("stratum %s: %d points (%d candidates)", s.label, len(got), drawn)
    df = pd.DataFrame(rows, columns=["stratum", "zone", "map_class", "stratum_pixels",
                                     "stratum_n", "weight", "x", "y"])
    df.insert(0, "point_id", np.arange(1, len(df) + 1))
    df["pixel_area_m2"] = design.pixel_area_m2
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.x, df.y), crs=design.geobox.crs)


def _new_ranks(rng: np.random.Generator, pop: int, k: int, seen: set[int]) -> np.ndarray:
    """Up to ``k`` ranks in [0, pop) not in ``seen``, in random order; adds them to ``seen``."""
    out: list[int] = []
    while len(out) < k and len(seen) < pop:
        cand = rng.integers(0, pop, size=2 * (k - len(out)) + 8)
        for c in cand.tolist():
            if c not in seen:
                seen.add(c)
                out.append(c)
                if len(out) == k:
                    break
    return np.array(out, np.int64)


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
