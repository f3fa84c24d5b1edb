"""Biennial ISA change: area per year and group, growth rates, temporal consistency, change maps.

Input: one binary 1 m ISA map per year (the ``isa_1m.tif`` of each year, encoded as
in :mod:`jointseg.products`: uint8 1 = ISA, 0 = not, 255 = nodata), all on **one grid**
(same CRS, transform and shape; checked), optionally the ISA probability of each year
(``isa_prob_1m.tif``: uint8 DN, ``p = DN x PROB_SCALE``, 255 = nodata) on the same grid.
Band 1 of each file is read.

* **Areas**: ISA area (km²) = ISA pixel count x pixel area (m², from the projected
  map grid) / 1e6, for the whole region and per polygon group
  (:mod:`jointseg.assess.groups`: cities with a name field, zones such as upstream /
  midstream / downstream).
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
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import CRS
from tqdm import tqdm

from jointseg.assess.groups import GroupError, PolygonGroups, load_groups
from jointseg.assess.rasters import BLOCK_ROWS, RasterError, read_binary, read_grid
from jointseg.grid import GeoBox
from jointseg.io import atomic_path, write_cog, write_json
from jointseg.products import NODATA_U8, decode_prob
from jointseg.provenance import raster_provenance

log = logging.getLogger(__name__)

CHANGE_CLASSES: dict[int, str] = {0: "stable non-ISA", 1: "stable ISA", 2: "new ISA",
                                  3: "lost ISA"}
CHANGE_KEYS = ("stable_non_isa", "stable_isa", "new_isa", "lost_isa")
SCHEMA = "jointseg.assess.change/1"


class ChangeError(ValueError):
    """The maps of a change analysis cannot be used together (grid, values, years)."""


# ----------------------------------------------------------------------- grids


def check_same_grid(paths: Mapping[str, str | os.PathLike]) -> GeoBox:
    """The common grid of named rasters; all must share CRS, transform and shape.

    Args:
        paths: label (e.g. ``"2019 map"``) -> raster path.

    Raises:
        ChangeError: naming the first raster whose grid differs and how, or one that
            cannot be opened.
    """
    items = list(paths.items())
    if not items:
        raise ChangeError("no rasters given")
    first_label, first = items[0]
    try:
        grids = [(label, p, read_grid(p)[0]) for label, p in items]
    except RasterError as exc:
        raise ChangeError(str(exc)) from exc
    ref = grids[0][2]
    for label, p, g in grids[1:]:
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


def _pixel_area_m2(geobox: GeoBox) -> float:
    """Area of one pixel in m² of a projected grid (:attr:`GeoBox.pixel_area_m2`).

    Raises:
        ChangeError: for a geographic (degree) grid.
    """
    try:
        return geobox.pixel_area_m2
    except ValueError as exc:
        raise ChangeError(str(exc)) from exc


# ----------------------------------------------------------------- the rules


def consistent_step(
    state: np.ndarray, isa: np.ndarray, prob_u8: np.ndarray | None, confident: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Apply the temporal-consistency rule to one year.

    Args:
        state: uint8 last consistent value per pixel (0/1, 255 = never observed).
        isa: uint8 this year's map (0/1/255).
        prob_u8: this year's ISA probability DN (:func:`~jointseg.products.decode_prob`,
            255 = nodata), or None.
        confident: a loss (state 1 -> map 0) is kept only where p <= 1 - confident.

    Returns:
        (consistent map of this year, new state, number of suppressed losses).
    """
    loss = (state == 1) & (isa == 0)
    if prob_u8 is None:
        keep_loss = np.zeros_like(loss)
    else:
        # DN steps are 1/254 apart: a 1e-6 tolerance only absorbs float rounding
        keep_loss = decode_prob(prob_u8) <= (1.0 - confident) + 1e-6  # NaN (nodata) -> False
    suppress = loss & ~keep_loss
    out = isa.copy()
    out[suppress] = 1
    new_state = np.where(out != NODATA_U8, out, state).astype(np.uint8)
    return out, new_state, int(np.count_nonzero(suppress))


def change_codes(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """uint8 change classes of two 0/1/255 maps: 0 stable non, 1 stable ISA, 2 new, 3 lost."""
    out = np.full(before.shape, NODATA_U8, np.uint8)
    ok = (before != NODATA_U8) & (after != NODATA_U8)
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


class _Tally:
    """Pixel counts per year / pair, per group kind (index 0 = no group) and group id."""

    def __init__(self, kinds: Sequence[tuple[str, tuple[str, ...]]], years: Sequence[int],
                 pairs: Sequence[tuple[int, int]]) -> None:
        self.kinds = list(kinds)

        def zeros() -> dict[str, np.ndarray]:
            return {kind: np.zeros(len(names) + 1, np.int64) for kind, names in self.kinds}

        self.isa = {y: zeros() for y in years}
        self.raw = {y: zeros() for y in years}
        self.valid = {y: zeros() for y in years}
        self.trans = {p: {c: zeros() for c in CHANGE_CLASSES} for p in pairs}
        self.suppressed = dict.fromkeys(years, 0)

    def add_year(self, y: int, ids: Mapping[str, np.ndarray], cur: np.ndarray,
                 raw: np.ndarray) -> None:
        """Count ISA (after the rule and raw) and valid pixels of one year's block."""
        for kind, _ in self.kinds:
            k, size = ids[kind], self.isa[y][kind].size
            self.isa[y][kind] += np.bincount(k[cur == 1], minlength=size)
            self.raw[y][kind] += np.bincount(k[raw == 1], minlength=size)
            self.valid[y][kind] += np.bincount(k[cur != NODATA_U8], minlength=size)

    def add_pair(self, p: tuple[int, int], ids: Mapping[str, np.ndarray],
                 codes: np.ndarray) -> None:
        """Count the change classes of one pair's block."""
        for c in CHANGE_CLASSES:
            for kind, _ in self.kinds:
                self.trans[p][c][kind] += np.bincount(
                    ids[kind][codes == c], minlength=self.trans[p][c][kind].size)


def _scan(
    maps: Mapping[int, str | os.PathLike], probs: Mapping[int, str | os.PathLike],
    geobox: GeoBox, groups: Sequence[PolygonGroups], tally: _Tally, *,
    consistency: bool, confident: float, progress: bool,
) -> dict[tuple[int, int], np.ndarray]:
    """Read every year block by block, apply the rule, count into ``tally``; return the
    uint8 change codes of each consecutive pair on ``geobox``.

    Raises:
        RasterError: if a map is not binary.
    """
    years = sorted(maps)
    pairs = list(tally.trans)
    change = {p: np.full(geobox.shape, NODATA_U8, np.uint8) for p in pairs}
    datasets = {y: rasterio.open(maps[y]) for y in years}
    prob_ds = {y: rasterio.open(probs[y]) for y in probs}
    try:
        nodatas = {y: read_grid(maps[y])[1] for y in years}
        for win in tqdm(list(geobox.row_windows(BLOCK_ROWS)), desc="change", unit="block",
                        disable=not progress):
            sub = geobox[win]
            ids = {"region": np.ones(sub.shape, np.int32), **{g.kind: g.ids(sub) for g in groups}}
            state = np.full(sub.shape, NODATA_U8, np.uint8)
            final: dict[int, np.ndarray] = {}
            for y in years:
                raw = cur = read_binary(datasets[y], nodatas[y], win)
                if consistency:
                    p = prob_ds[y].read(1, window=win) if y in prob_ds else None
                    cur, state, n_sup = consistent_step(state, raw, p, confident)
                    tally.suppressed[y] += n_sup
                final[y] = cur
                tally.add_year(y, ids, cur, raw)
            for p in pairs:
                codes = change_codes(final[p[0]], final[p[1]])
                change[p][win.row_off:win.row_off + win.height] = codes
                tally.add_pair(p, ids, codes)
            log.info("change: rows %d-%d of %d done", win.row_off, win.row_off + win.height,
                     geobox.height)
    finally:
        for ds in [*datasets.values(), *prob_ds.values()]:
            ds.close()
    return change


def _write_change_maps(
    out_dir: Path, change: Mapping[tuple[int, int], np.ndarray], geobox: GeoBox, region: str,
    consistency: bool, simulated: bool,
) -> dict[str, str]:
    """Write ``change_<y0>_<y1>.tif`` per pair (uint8 COG); return ``{"y0-y1": path}``."""
    tags = {"JOINTSEG_PRODUCT": "isa_change", "REGION": region,
            "CLASSES": json.dumps(CHANGE_CLASSES), "CONSISTENCY": str(consistency).lower(),
            "ENCODING": "0 stable non-ISA, 1 stable ISA, 2 new ISA, 3 lost ISA, 255 nodata"}
    if simulated:
        tags["JOINTSEG_SIMULATED"] = "true"
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


def _group_results(tally: _Tally, years: Sequence[int], px_km2: float) -> dict[str, dict]:
    """``groups`` of ``change.json``: per kind and name, areas, growth and transitions."""
    out: dict[str, dict] = {}
    for kind, names in tally.kinds:
        out[kind] = {}
        for k, name in enumerate(names, start=1):
            areas = {y: {"isa_km2": int(tally.isa[y][kind][k]) * px_km2,
                         "isa_km2_raw": int(tally.raw[y][kind][k]) * px_km2,
                         "valid_km2": int(tally.valid[y][kind][k]) * px_km2} for y in years}
            trans = {f"{y0}-{y1}": {f"{key}_km2": int(counts[c][kind][k]) * px_km2
                                    for c, key in zip(CHANGE_CLASSES, CHANGE_KEYS, strict=True)}
                     for (y0, y1), counts in tally.trans.items()}
            out[kind][name] = {
                "areas": {str(y): a for y, a in areas.items()},
                "growth": growth({y: a["isa_km2"] for y, a in areas.items()}),
                "transitions": trans,
            }
    return out


def _consistency_block(consistency: bool, confident: float, probs: Mapping,
                       suppressed: Mapping[int, int]) -> dict:
    """``consistency`` of ``change.json``: whether and how the rule was applied."""
    return {
        "applied": consistency, "confident": confident if consistency else None,
        "probabilities": bool(probs),
        "rule": "ISA -> non-ISA kept only where p(ISA) <= 1 - confident; otherwise the "
                "earlier ISA is carried forward" if consistency else None,
        "suppressed_losses_pixels": {str(y): n for y, n in suppressed.items()}
        if consistency else None,
    }


# ------------------------------------------------------------------------ main


def _check_inputs(maps: Mapping, probs: Mapping | None,
                  confident: float) -> tuple[list[int], dict[int, object], GeoBox]:
    """Years, probability maps by year and the common grid of a change analysis.

    Raises:
        ChangeError: see :func:`biennial_change`.
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
    return years, probs, check_same_grid(labelled)


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
        maps: year -> binary 1 m ISA map; two years or more, one projected grid.
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
        ChangeError: fewer than two years, grids that differ or are geographic,
            non-binary maps, unusable polygon layers, a probability year without a
            map, or a bad ``confident``.
    """
    years, probs, geobox = _check_inputs(maps, probs, confident)
    maps = {int(y): p for y, p in maps.items()}
    px_m2 = _pixel_area_m2(geobox)
    try:
        groups = [load_groups(layer, field, geobox.crs, kind) for layer, field, kind in
                  ((cities, city_field, "city"), (zones, zone_field, "zone"))
                  if layer is not None]
    except GroupError as exc:
        raise ChangeError(str(exc)) from exc
    pairs = list(zip(years[:-1], years[1:], strict=True))
    tally = _Tally([("region", (region,))] + [(g.kind, g.names) for g in groups], years, pairs)
    if consistency and not probs:
        log.warning("consistency without probability maps: ISA is never lost (strict rule)")
    try:
        change = _scan(maps, probs, geobox, groups, tally, consistency=consistency,
                       confident=confident, progress=progress)
    except RasterError as exc:
        raise ChangeError(str(exc)) from exc

    inputs = {str(y): {"map": raster_provenance(maps[y]),
                       **({"prob": raster_provenance(probs[y])} if y in probs else {})}
              for y in years}
    simulated = any(v["simulated"] for d in inputs.values() for v in d.values())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result_groups = _group_results(tally, years, px_m2 / 1e6)
    result = {
        "schema": SCHEMA,
        "region": region,
        "years": years,
        "simulated": simulated,
        "inputs": inputs,
        "polygons": {g.kind: g.source for g in groups},
        "pixel_area_m2": px_m2,
        "grid": {"crs": geobox.crs, "transform": list(geobox.transform)[:6],
                 "width": geobox.width, "height": geobox.height},
        "consistency": _consistency_block(consistency, confident, probs, tally.suppressed),
        "change_maps": _write_change_maps(out_dir, change, geobox, region, consistency,
                                          simulated),
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

