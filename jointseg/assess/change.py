"""Biennial ISA change: area per year and group, growth rates, temporal consistency, change maps.

Input: one binary 1 m ISA map per year (uint8 1 = ISA, 0 = not, 255 = nodata, the
``isa_1m.tif`` of each year), all on **one grid** (same CRS, transform and shape;
checked), optionally the ISA probability of each year (``isa_prob_1m.tif``: uint8
DN, p = DN / 254, 255 = nodata) on the same grid.

* **Areas**: ISA area (km²) = ISA pixel count x pixel area (m², from the projected
  map grid) / 1e6, for the whole region and per polygon group (cities with a name
  field, zones such as upstream / midstream / downstream). A pixel belongs to the
  polygon that covers its centre (the last one listed where polygons overlap).
* **Growth** between two years y0 < y1: absolute ``A1 - A0`` km² and annualised
  ``((A1 / A0) ** (1 / (y1 - y0)) - 1) x 100`` % (undefined when ``A0 = 0``).
* **Temporal consistency** (optional, as GAIA): a pixel that was ISA in an earlier
  year stays ISA unless the later year's probability of non-ISA is confident, i.e.
  ``p <= 1 - confident``; otherwise the earlier ISA is carried forward. Years are
  processed in order; the state carries through nodata. Without probability maps no
  flip is confident, so ISA is never lost (GAIA's strict rule).
* **Change maps** per consecutive pair: uint8 0 = stable non-ISA, 1 = stable ISA,
  2 = new ISA, 3 = lost ISA, 255 = nodata in either year.

The inputs are read in blocks of :data:`BLOCK_ROWS` rows; the change maps (one byte
per pixel and pair) are held in memory until written as COGs.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.errors import RasterioIOError
from rasterio.features import rasterize
from rasterio.windows import Window
from tqdm import tqdm

from jointseg.grid import GeoBox
from jointseg.io import atomic_path, write_cog, write_json
from jointseg.provenance import raster_provenance, vector_provenance

log = logging.getLogger(__name__)

NODATA = 255
PROB_SCALE = 1.0 / 254.0
BLOCK_ROWS = 1024
CHANGE_CLASSES: dict[int, str] = {0: "stable non-ISA", 1: "stable ISA", 2: "new ISA",
                                  3: "lost ISA"}
CHANGE_KEYS = ("stable_non_isa", "stable_isa", "new_isa", "lost_isa")
SCHEMA = "jointseg.assess.change/1"


class ChangeError(ValueError):
    """The maps of a change analysis cannot be used together (grid, values, years)."""


# ----------------------------------------------------------------------- grids


def read_grid(path: str | os.PathLike) -> tuple[GeoBox, int]:
    """Grid and nodata (default 255) of a raster.

    Raises:
        ChangeError: if the file cannot be opened.
    """
    try:
        with rasterio.open(path) as ds:
            nodata = NODATA if ds.nodata is None else int(ds.nodata)
            return GeoBox.of(ds), nodata
    except RasterioIOError as exc:
        raise ChangeError(f"{path}: cannot open raster ({exc})") from exc


def check_same_grid(paths: Mapping[str, str | os.PathLike]) -> GeoBox:
    """The common grid of named rasters; all must share CRS, transform and shape.

    Args:
        paths: label (e.g. ``"2019 map"``) -> raster path.

    Raises:
        ChangeError: naming the first raster whose grid differs and how.
    """
    items = list(paths.items())
    if not items:
        raise ChangeError("no rasters given")
    first_label, first = items[0]
    ref, _ = read_grid(first)
    for label, p in items[1:]:
        g, _ = read_grid(p)
        if CRS.from_user_input(g.crs) != CRS.from_user_input(ref.crs):
            raise ChangeError(f"{p} ({label}): CRS {g.crs} differs from {ref.crs} of {first} "
                              f"({first_label}); change maps need one grid")
        if g.shape != ref.shape:
            raise ChangeError(f"{p} ({label}): shape {g.shape} differs from {ref.shape} of "
                              f"{first} ({first_label}); change maps need one grid")
        if not g.transform.almost_equals(ref.transform, precision=1e-6):
            raise ChangeError(f"{p} ({label}): transform {tuple(g.transform)[:6]} differs from "
                              f"{tuple(ref.transform)[:6]} of {first} ({first_label}); "
                              "change maps need one grid")
    return ref


def pixel_area_m2(geobox: GeoBox) -> float:
    """Area of one pixel in m² of a projected grid.

    Raises:
        ChangeError: for a geographic (degree) grid.
    """
    crs = CRS.from_user_input(geobox.crs)
    if not crs.is_projected:
        raise ChangeError(f"grid CRS {geobox.crs} is not projected; areas need metres")
    t = geobox.transform
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return abs(t.a * t.e - t.b * t.d) * unit**2


# ---------------------------------------------------------------------- groups


@dataclass(frozen=True)
class PolygonGroups:
    """A polygon layer whose features are groups (cities, zones), in a map CRS.

    Attributes:
        kind: ``"city"`` or ``"zone"`` (any label).
        names: group names in id order; the raster id of ``names[i]`` is ``i + 1``.
        shapes: (geometry, id) pairs in the map CRS for rasterisation.
        source: description of the layer (path and field) for provenance.
    """

    kind: str
    names: tuple[str, ...]
    shapes: tuple[tuple[object, int], ...]
    source: dict

    def ids(self, shape: tuple[int, int], transform: object) -> np.ndarray:
        """int32 group id of every pixel (centre inside the polygon), 0 = no group."""
        if not self.shapes:
            return np.zeros(shape, np.int32)
        return rasterize(self.shapes, out_shape=shape, transform=transform, fill=0,
                         dtype="int32")


def load_groups(
    polygons: str | os.PathLike | gpd.GeoDataFrame, field: str, crs: str, kind: str
) -> PolygonGroups:
    """Read a polygon layer and index its features by the ``field`` value.

    Features sharing a name form one group.

    Raises:
        ChangeError: if the layer has no ``field`` column or no CRS.
    """
    label = "<GeoDataFrame>" if isinstance(polygons, gpd.GeoDataFrame) else str(polygons)
    try:
        gdf = polygons if isinstance(polygons, gpd.GeoDataFrame) else gpd.read_file(polygons)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ChangeError(f"{label}: cannot read polygons ({exc})") from exc
    if field not in gdf.columns:
        raise ChangeError(f"{label}: no column {field!r}; columns are "
                          f"{[c for c in gdf.columns if c != 'geometry']}")
    if gdf.crs is None:
        raise ChangeError(f"{label}: polygon layer has no CRS")
    gdf = gdf.to_crs(crs)
    names = tuple(dict.fromkeys(str(v) for v in gdf[field]))
    index = {n: i + 1 for i, n in enumerate(names)}
    shapes = tuple((geom, index[str(v)]) for geom, v in zip(gdf.geometry, gdf[field],
                                                               strict=True)
                   if geom is not None and not geom.is_empty)
    source = (vector_provenance(polygons, field) if not isinstance(polygons, gpd.GeoDataFrame)
              else {"path": label, "field": field})
    return PolygonGroups(kind, names, shapes, source)


# ----------------------------------------------------------------- the rules


def check_binary(block: np.ndarray, nodata: int, path: str | os.PathLike) -> np.ndarray:
    """The block as uint8 0/1/255 (the file's ``nodata`` -> 255).

    Raises:
        ChangeError: if it holds values other than 0, 1 and ``nodata``.
    """
    bad = np.setdiff1d(np.unique(block), [0, 1, nodata])
    if bad.size:
        raise ChangeError(f"{path}: binary map holds values {bad.tolist()}; "
                          f"expected 0, 1 and nodata {nodata}")
    return np.where(block == nodata, NODATA, block).astype(np.uint8)


def consistent_step(
    state: np.ndarray, isa: np.ndarray, prob_u8: np.ndarray | None, confident: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Apply the temporal-consistency rule to one year.

    Args:
        state: uint8 last consistent value per pixel (0/1, 255 = never observed).
        isa: uint8 this year's map (0/1/255).
        prob_u8: this year's ISA probability DN (p = DN / 254, 255 = nodata), or None.
        confident: a loss (state 1 -> map 0) is kept only where p <= 1 - confident.

    Returns:
        (consistent map of this year, new state, number of suppressed losses).
    """
    loss = (state == 1) & (isa == 0)
    if prob_u8 is None:
        keep_loss = np.zeros_like(loss)
    else:
        # p <= 1 - confident  <=>  DN <= (1 - confident) * 254 (DN integer)
        limit = (1.0 - confident) * 254.0
        keep_loss = (prob_u8 != NODATA) & (prob_u8.astype(np.float64) <= limit + 1e-9)
    suppress = loss & ~keep_loss
    out = isa.copy()
    out[suppress] = 1
    new_state = np.where(out != NODATA, out, state).astype(np.uint8)
    return out, new_state, int(np.count_nonzero(suppress))


def change_codes(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """uint8 change classes of two 0/1/255 maps: 0 stable non, 1 stable ISA, 2 new, 3 lost."""
    out = np.full(before.shape, NODATA, np.uint8)
    ok = (before != NODATA) & (after != NODATA)
    b, a = before[ok], after[ok]
    out[ok] = np.select([(b == 0) & (a == 0), (b == 1) & (a == 1), (b == 0) & (a == 1)],
                        [0, 1, 2], 3).astype(np.uint8)
    return out


def annual_growth_pct(area0: float, area1: float, years: float) -> float | None:
    """Annualised growth ``((A1 / A0) ** (1 / years) - 1) x 100`` %; None when A0 = 0."""
    if area0 <= 0 or years <= 0:
        return None
    return ((area1 / area0) ** (1.0 / years) - 1.0) * 100.0


def growth(areas: Mapping[int, float]) -> list[dict]:
    """Growth between consecutive years and first -> last of ``{year: area_km2}``.

    Each entry: ``from, to, years, isa_km2_from, isa_km2_to, abs_km2, total_pct,
    annual_pct`` (percentages None when the earlier area is 0).
    """
    ys = sorted(areas)
    pairs = list(zip(ys[:-1], ys[1:], strict=True))
    if len(ys) > 2:
        pairs.append((ys[0], ys[-1]))
    out = []
    for y0, y1 in pairs:
        a0, a1 = areas[y0], areas[y1]
        out.append({"from": y0, "to": y1, "years": y1 - y0, "isa_km2_from": a0,
                    "isa_km2_to": a1, "abs_km2": a1 - a0,
                    "total_pct": None if a0 <= 0 else (a1 / a0 - 1.0) * 100.0,
                    "annual_pct": annual_growth_pct(a0, a1, y1 - y0)})
    return out


# ---------------------------------------------------------------------- counts


def isa_area_by_group(
    map_path: str | os.PathLike,
    groups: Sequence[PolygonGroups] = (),
    *,
    progress: bool = False,
) -> dict:
    """ISA and valid area (km²) of one binary map, whole grid and per polygon group.

    Returns ``{"all": {"isa_km2", "valid_km2", "isa_pixels", "valid_pixels"},
    "<kind>": {name: {...}}}``; streams by :data:`BLOCK_ROWS` rows.
    """
    geobox, nodata = read_grid(map_path)
    px_km2 = pixel_area_m2(geobox) / 1e6
    isa = {"all": np.zeros(1, np.int64)}
    valid = {"all": np.zeros(1, np.int64)}
    for g in groups:
        isa[g.kind] = np.zeros(len(g.names) + 1, np.int64)
        valid[g.kind] = np.zeros(len(g.names) + 1, np.int64)
    with rasterio.open(map_path) as ds:
        for row0 in tqdm(range(0, geobox.height, BLOCK_ROWS), desc=f"area {Path(map_path).name}",
                         disable=not progress):
            win = Window(0, row0, geobox.width, min(BLOCK_ROWS, geobox.height - row0))
            m = check_binary(ds.read(1, window=win), nodata, map_path)
            isa["all"] += np.count_nonzero(m == 1)
            valid["all"] += np.count_nonzero(m != NODATA)
            for g in groups:
                ids = g.ids(m.shape, geobox.transform @ Affine.translation(0, row0))
                isa[g.kind] += np.bincount(ids[m == 1], minlength=len(g.names) + 1)
                valid[g.kind] += np.bincount(ids[m != NODATA], minlength=len(g.names) + 1)

    def entry(i: int, v: int) -> dict:
        return {"isa_km2": i * px_km2, "valid_km2": v * px_km2, "isa_pixels": int(i),
                "valid_pixels": int(v)}

    out: dict = {"all": entry(int(isa["all"][0]), int(valid["all"][0]))}
    for g in groups:
        out[g.kind] = {n: entry(int(isa[g.kind][k + 1]), int(valid[g.kind][k + 1]))
                       for k, n in enumerate(g.names)}
    return out


# ------------------------------------------------------------------------ main


def biennial_change(
    maps: Mapping[int, str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    probs: Mapping[int, str | os.PathLike] | None = None,
    cities: str | os.PathLike | gpd.GeoDataFrame | None = None,
    city_field: str = "name",
    zones: str | os.PathLike | gpd.GeoDataFrame | None = None,
    zone_field: str = "zone",
    consistency: bool = False,
    confident: float = 0.8,
    region: str = "region",
    progress: bool = False,
) -> dict:
    """ISA area per year and group, growth, optional consistency rule, change maps.

    Writes into ``out_dir``: ``change_<y0>_<y1>.tif`` per consecutive pair (uint8
    COG, classes :data:`CHANGE_CLASSES`, 255 nodata), ``change.json`` and
    ``change.csv`` (one row per group and year). Returns the ``change.json`` dict.

    Args:
        maps: year -> binary 1 m ISA map; two years or more, one grid.
        out_dir: output folder.
        probs: year -> ISA probability map (same grid); needed by ``consistency`` to
            let confident losses through.
        cities, city_field: polygon layer and its name attribute (groups ``city``).
        zones, zone_field: polygon layer and its zone attribute (groups ``zone``).
        consistency: apply the temporal-consistency rule.
        confident: probability of non-ISA needed to accept a loss (0.5..1).
        region: region name written in the outputs.
        progress: progress bar over row blocks.

    Raises:
        ChangeError: fewer than two years, grids that differ, non-binary maps, a
            probability year without a map, or a bad ``confident``.
    """
    years = sorted(int(y) for y in maps)
    if len(years) < 2:
        raise ChangeError(f"change needs maps of two years or more, got {years}")
    probs = {int(y): p for y, p in (probs or {}).items()}
    extra = sorted(set(probs) - set(years))
    if extra:
        raise ChangeError(f"probability maps for years {extra} have no binary map")
    if not 0.5 <= confident <= 1.0:
        raise ChangeError(f"confident={confident}: expected 0.5 <= confident <= 1")
    labelled = {f"{y} map": maps[y] for y in years}
    labelled.update({f"{y} prob": probs[y] for y in sorted(probs)})
    geobox = check_same_grid(labelled)
    px_km2 = pixel_area_m2(geobox) / 1e6
    groups: list[PolygonGroups] = []
    if cities is not None:
        groups.append(load_groups(cities, city_field, geobox.crs, "city"))
    if zones is not None:
        groups.append(load_groups(zones, zone_field, geobox.crs, "zone"))
    kinds = [("region", (region,))] + [(g.kind, g.names) for g in groups]
    pairs = list(zip(years[:-1], years[1:], strict=True))

    def zeros() -> dict[str, np.ndarray]:
        return {kind: np.zeros(len(names) + 1, np.int64) for kind, names in kinds}

    isa_n = {y: zeros() for y in years}
    raw_n = {y: zeros() for y in years}
    valid_n = {y: zeros() for y in years}
    trans_n = {p: {c: zeros() for c in CHANGE_CLASSES} for p in pairs}
    suppressed = dict.fromkeys(years, 0)
    change = {p: np.full(geobox.shape, NODATA, np.uint8) for p in pairs}
    if consistency and not probs:
        log.warning("consistency without probability maps: ISA is never lost (strict rule)")

    datasets = {y: rasterio.open(maps[y]) for y in years}
    prob_ds = {y: rasterio.open(probs[y]) for y in probs}
    try:
        nodatas = {y: (NODATA if ds.nodata is None else int(ds.nodata))
                   for y, ds in datasets.items()}
        for row0 in tqdm(range(0, geobox.height, BLOCK_ROWS), desc="change", unit="block",
                         disable=not progress):
            win = Window(0, row0, geobox.width, min(BLOCK_ROWS, geobox.height - row0))
            shape = (int(win.height), geobox.width)
            ids = {"region": np.ones(shape, np.int32)}
            for g in groups:
                ids[g.kind] = g.ids(shape, geobox.transform @ Affine.translation(0, row0))
            state = np.full(shape, NODATA, np.uint8)
            final: dict[int, np.ndarray] = {}
            for y in years:
                raw = check_binary(datasets[y].read(1, window=win), nodatas[y], maps[y])
                cur = raw
                if consistency:
                    p = prob_ds[y].read(1, window=win) if y in prob_ds else None
                    cur, state, n_sup = consistent_step(state, raw, p, confident)
                    suppressed[y] += n_sup
                final[y] = cur
                for kind, _ in kinds:
                    k = ids[kind]
                    size = isa_n[y][kind].size
                    isa_n[y][kind] += np.bincount(k[cur == 1], minlength=size)
                    raw_n[y][kind] += np.bincount(k[raw == 1], minlength=size)
                    valid_n[y][kind] += np.bincount(k[cur != NODATA], minlength=size)
            for p in pairs:
                codes = change_codes(final[p[0]], final[p[1]])
                change[p][row0:row0 + shape[0]] = codes
                for c in CHANGE_CLASSES:
                    for kind, _ in kinds:
                        trans_n[p][c][kind] += np.bincount(
                            ids[kind][codes == c], minlength=trans_n[p][c][kind].size)
            log.info("change: rows %d-%d of %d done", row0, row0 + shape[0], geobox.height)
    finally:
        for ds in [*datasets.values(), *prob_ds.values()]:
            ds.close()

    inputs = {str(y): {"map": raster_provenance(maps[y]),
                       **({"prob": raster_provenance(probs[y])} if y in probs else {})}
              for y in years}
    simulated = any(v["simulated"] for d in inputs.values() for v in d.values())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    change_maps = {}
    tags = {"JOINTSEG_PRODUCT": "isa_change", "REGION": region,
            "CLASSES": json.dumps(CHANGE_CLASSES), "CONSISTENCY": str(consistency).lower(),
            "ENCODING": "0 stable non-ISA, 1 stable ISA, 2 new ISA, 3 lost ISA, 255 nodata"}
    if simulated:
        tags["JOINTSEG_SIMULATED"] = "true"
    for y0, y1 in pairs:
        path = out_dir / f"change_{y0}_{y1}.tif"
        write_cog(path, change[(y0, y1)], geobox, nodata=NODATA,
                  band_names=[f"isa_change_{y0}_{y1}"],
                  tags={**tags, "YEARS": f"{y0},{y1}"},
                  band_tags=[{f"CLASS_{c}": n for c, n in CHANGE_CLASSES.items()}])
        change_maps[f"{y0}-{y1}"] = str(path)
        log.info("wrote %s", path)

    result_groups: dict[str, dict] = {}
    for kind, names in kinds:
        result_groups[kind] = {}
        for k, name in enumerate(names, start=1):
            areas = {y: {"isa_km2": int(isa_n[y][kind][k]) * px_km2,
                         "isa_km2_raw": int(raw_n[y][kind][k]) * px_km2,
                         "valid_km2": int(valid_n[y][kind][k]) * px_km2} for y in years}
            trans = {f"{y0}-{y1}": {f"{key}_km2": int(trans_n[(y0, y1)][c][kind][k]) * px_km2
                                    for c, key in zip(CHANGE_CLASSES, CHANGE_KEYS, strict=True)}
                     for y0, y1 in pairs}
            result_groups[kind][name] = {
                "areas": {str(y): a for y, a in areas.items()},
                "growth": growth({y: a["isa_km2"] for y, a in areas.items()}),
                "transitions": trans,
            }
    result = {
        "schema": SCHEMA,
        "region": region,
        "years": years,
        "simulated": simulated,
        "inputs": inputs,
        "polygons": {g.kind: g.source for g in groups},
        "pixel_area_m2": pixel_area_m2(geobox),
        "grid": {"crs": geobox.crs, "transform": list(geobox.transform)[:6],
                 "width": geobox.width, "height": geobox.height},
        "consistency": {
            "applied": consistency, "confident": confident if consistency else None,
            "probabilities": bool(probs),
            "rule": "ISA -> non-ISA kept only where p(ISA) <= 1 - confident; otherwise the "
                    "earlier ISA is carried forward" if consistency else None,
            "suppressed_losses_pixels": {str(y): n for y, n in suppressed.items()}
            if consistency else None,
        },
        "change_maps": change_maps,
        "change_classes": {str(c): n for c, n in CHANGE_CLASSES.items()},
        "groups": result_groups,
    }
    write_json(out_dir / "change.json", result)
    write_change_csv(out_dir / "change.csv", result)
    log.info("%s: change %s, %s km² ISA in %d", out_dir, years,
             f"{result_groups['region'][region]['areas'][str(years[-1])]['isa_km2']:.3f}",
             years[-1])
    return result


CSV_COLUMNS = ("region", "group_kind", "group", "year", "isa_km2", "isa_km2_raw", "valid_km2",
               "growth_km2_from_prev", "annual_growth_pct_from_prev")


def change_rows(result: Mapping) -> list[dict]:
    """One row per group and year of a ``change.json`` dict (columns :data:`CSV_COLUMNS`)."""
    rows = []
    for kind, members in result["groups"].items():
        for name, g in members.items():
            steps = {(s["from"], s["to"]): s for s in g["growth"]}
            prev = None
            for y in sorted(int(k) for k in g["areas"]):
                a = g["areas"][str(y)]
                s = steps.get((prev, y)) if prev is not None else None
                rows.append({"region": result["region"], "group_kind": kind, "group": name,
                             "year": y, "isa_km2": a["isa_km2"], "isa_km2_raw": a["isa_km2_raw"],
                             "valid_km2": a["valid_km2"],
                             "growth_km2_from_prev": None if s is None else s["abs_km2"],
                             "annual_growth_pct_from_prev": None if s is None
                             else s["annual_pct"]})
                prev = y
    return rows


def write_change_csv(path: str | os.PathLike, result: Mapping) -> Path:
    """Write :func:`change_rows` as CSV atomically (full float precision, empty = none)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    for row in change_rows(result):
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                    for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return Path(path)


def parse_year_paths(items: Sequence[str], option: str = "--maps") -> dict[int, str]:
    """``["2017=a.tif", "2019=b.tif"]`` -> ``{2017: "a.tif", 2019: "b.tif"}``.

    Raises:
        ChangeError: for an item without ``YEAR=`` or a repeated year.
    """
    out: dict[int, str] = {}
    for item in items:
        year, sep, path = item.partition("=")
        if not sep or not year.strip().isdigit() or not path:
            raise ChangeError(f"{option} {item!r}: expected YEAR=PATH, e.g. 2019=isa_1m.tif")
        y = int(year)
        if y in out:
            raise ChangeError(f"{option}: year {y} given twice")
        out[y] = path
    return out

