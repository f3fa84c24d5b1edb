"""Reference sampling: stratified random design, spaced points, labels read back.

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
(1 = ISA, 0 = not), from a person or read from a reference raster, and
:func:`estimate_from_labels` turns it into :class:`~jointseg.assess.accuracy.StratifiedEstimate`
for the whole map and per zone or per city.
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
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.windows import Window
from tqdm import tqdm

from jointseg.assess.accuracy import StratifiedEstimate, estimates_by_group
from jointseg.grid import GeoBox
from jointseg.io import atomic_path

log = logging.getLogger(__name__)

MAP_CLASSES = (0, 1)
STRIP_ROWS = 1024
REQUIRED_LABEL_COLUMNS = ("stratum", "map_class", "reference", "stratum_pixels")
AREA_UNITS = {"m2": 1.0, "ha": 1e4, "km2": 1e6}


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
        """Area of one map pixel in CRS units squared (m² for projected maps)."""
        t = self.geobox.transform
        return abs(t.a * t.e - t.b * t.d)

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


def _read_zones(zones: str | os.PathLike | gpd.GeoDataFrame, zone_field: str,
                crs: str) -> gpd.GeoDataFrame:
    gdf = zones if isinstance(zones, gpd.GeoDataFrame) else gpd.read_file(zones)
    if zone_field not in gdf.columns:
        raise SamplingError(f"{zones if not isinstance(zones, gpd.GeoDataFrame) else 'zones'}: "
                            f"no column {zone_field!r}; columns are {list(gdf.columns)}")
    if gdf.crs is None:
        raise SamplingError(f"{zones}: zone layer has no CRS")
    return gdf.to_crs(crs)


class _Strata:
    """Stratum codes of a map, computed strip by strip (never the whole map at once)."""

    def __init__(self, map_path: str | os.PathLike, zones: object, zone_field: str) -> None:
        self.path = map_path
        with rasterio.open(map_path) as ds:
            self.geobox = GeoBox.of(ds)
            self.nodata = 255 if ds.nodata is None else int(ds.nodata)
        self.zone_gdf = None
        self.zone_names: tuple[str, ...] = ()
        if zones is not None:
            self.zone_gdf = _read_zones(zones, zone_field, self.geobox.crs)
            self.zone_names = tuple(sorted({str(v) for v in self.zone_gdf[zone_field]}))
            self.zone_field = zone_field
        self.n_zones = max(len(self.zone_names), 1)

    def code(self, map_class: int, zone_idx: int) -> int:
        return 1 + MAP_CLASSES.index(map_class) + len(MAP_CLASSES) * zone_idx

    def strips(self) -> range:
        return range(0, self.geobox.height, STRIP_ROWS)

    def read_strip(self, ds: rasterio.io.DatasetReader, row0: int) -> np.ndarray:
        """uint16 stratum codes of rows ``row0 .. row0 + STRIP_ROWS``."""
        nrows = min(STRIP_ROWS, self.geobox.height - row0)
        win = Window(0, row0, self.geobox.width, nrows)
        m = ds.read(1, window=win)
        bad = np.setdiff1d(np.unique(m), [*MAP_CLASSES, self.nodata])
        if bad.size:
            raise SamplingError(f"{self.path}: map holds values {bad.tolist()}; "
                                f"expected {list(MAP_CLASSES)} and nodata {self.nodata}")
        if self.zone_gdf is not None:
            index = {z: i + 1 for i, z in enumerate(self.zone_names)}
            shapes = [(geom, index[str(z)]) for geom, z in
                      zip(self.zone_gdf.geometry, self.zone_gdf[self.zone_field], strict=True)
                      if geom is not None and not geom.is_empty]
            zone = rasterize(shapes, out_shape=m.shape, transform=ds.window_transform(win),
                             fill=0, dtype="uint16")
        else:
            zone = np.ones(m.shape, np.uint16)
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


# ------------------------------------------------------------------- labels


def label_from_raster(
    points: gpd.GeoDataFrame,
    reference_path: str | os.PathLike,
    *,
    isa_values: Sequence[int] = (1,),
    column: str = "reference",
) -> gpd.GeoDataFrame:
    """Add ``column`` = 1 (value in ``isa_values``) / 0 read at each point; None at nodata.

    The points are transformed to the raster's CRS; points outside the raster or on
    its nodata get None (and a warning).
    """
    out = points.copy()
    with rasterio.open(reference_path) as ds:
        tr = Transformer.from_crs(points.crs, ds.crs, always_xy=True)
        xs, ys = tr.transform(points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
        rows, cols = rasterio.transform.rowcol(ds.transform, xs, ys)
        rows, cols = np.asarray(rows), np.asarray(cols)
        inside = (rows >= 0) & (rows < ds.height) & (cols >= 0) & (cols < ds.width)
        vals = np.full(len(points), -1, np.int64)
        for i in np.flatnonzero(inside):
            vals[i] = int(ds.read(1, window=Window(int(cols[i]), int(rows[i]), 1, 1))[0, 0])
        nodata = ds.nodata
    ref: list[int | None] = []
    for ok, v in zip(inside, vals, strict=True):
        if not ok or (nodata is not None and v == nodata):
            ref.append(None)
        else:
            ref.append(int(v in isa_values))
    n_missing = sum(r is None for r in ref)
    if n_missing:
        log.warning("%s: %d of %d points outside the raster or on nodata", reference_path,
                    n_missing, len(ref))
    out[column] = pd.array(ref, dtype="Int64")
    return out


def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read a labelled sample (GeoPackage or CSV) and check its columns.

    Raises:
        SamplingError: if a required column is missing (names the file, the missing
            columns and what is expected) or ``reference`` holds values other than 0/1.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise SamplingError(f"{path}: cannot read labels ({exc})") from exc
    missing = [c for c in REQUIRED_LABEL_COLUMNS if c not in df.columns]
    if missing:
        raise SamplingError(
            f"{path}: missing columns {missing}; expected {list(REQUIRED_LABEL_COLUMNS)} "
            "(as written by `jointseg sample`, with reference = 1 ISA / 0 not ISA)")
    vals = set(pd.to_numeric(df["reference"], errors="coerce").dropna().astype(int).tolist())
    if not vals <= {0, 1}:
        raise SamplingError(f"{path}: column reference holds {sorted(vals)}; expected 0 or 1")
    return df


def assign_groups(
    labels: pd.DataFrame, polygons: str | os.PathLike | gpd.GeoDataFrame, name_field: str,
    *, column: str = "group",
) -> gpd.GeoDataFrame:
    """Add ``column`` = ``name_field`` of the polygon (city, admin unit) holding each point."""
    poly = polygons if isinstance(polygons, gpd.GeoDataFrame) else gpd.read_file(polygons)
    if name_field not in poly.columns:
        raise SamplingError(f"{polygons}: no column {name_field!r}; columns are "
                            f"{list(poly.columns)}")
    pts = labels if isinstance(labels, gpd.GeoDataFrame) else gpd.GeoDataFrame(
        labels, geometry=gpd.points_from_xy(labels["x"], labels["y"]))
    joined = gpd.sjoin(pts, poly[[name_field, "geometry"]].to_crs(pts.crs), how="left",
                       predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    out = pts.copy()
    out[column] = joined[name_field].reindex(pts.index).to_numpy()
    return out


def estimate_from_labels(
    labels: pd.DataFrame,
    *,
    group_column: str | None = None,
    area_unit: str = "km2",
    z: float = 1.96,
) -> dict[str, StratifiedEstimate]:
    """Olofsson/Stehman estimates from a labelled sample: ``"all"`` plus one per group.

    Uses the ``stratum``, ``map_class``, ``reference`` and ``stratum_pixels`` columns
    (and ``pixel_area_m2`` for areas, else areas are in pixels). Units without a
    reference label are dropped (a note says how many).

    Raises:
        SamplingError: on inconsistent ``stratum_pixels`` or an unknown area unit.
    """
    df = labels[pd.notna(labels["reference"])]
    dropped = len(labels) - len(df)
    sizes = df.groupby("stratum")["stratum_pixels"].agg(["min", "max"])
    if (sizes["min"] != sizes["max"]).any():
        raise SamplingError("stratum_pixels differs within a stratum: "
                            f"{sizes[sizes['min'] != sizes['max']].index.tolist()}")
    all_sizes = labels.groupby("stratum")["stratum_pixels"].first().to_dict()
    if "pixel_area_m2" in labels.columns and area_unit != "pixels":
        if area_unit not in AREA_UNITS:
            raise SamplingError(f"area unit {area_unit!r}: expected one of "
                                f"{[*AREA_UNITS, 'pixels']}")
        scale = float(labels["pixel_area_m2"].iloc[0]) / AREA_UNITS[area_unit]
    else:
        scale, area_unit = 1.0, "pixels"
    groups = df[group_column].to_numpy() if group_column else np.array([None] * len(df))
    out = estimates_by_group(
        df["stratum"].astype(str).to_numpy(), df["map_class"].astype(int).to_numpy(),
        df["reference"].astype(int).to_numpy(), groups,
        {str(k): float(v) for k, v in all_sizes.items()}, list(MAP_CLASSES),
        area_scale=scale, area_unit=area_unit, z=z)
    if dropped:
        for est in out.values():
            est.notes.append(f"{dropped} sample units without a reference label were dropped")
    return out
