"""The entrance of a change analysis: :func:`biennial_change` over yearly ISA maps.

It checks that the maps share one grid, runs one pass over them
(:mod:`jointseg.assess.change.scan`), writes the change maps, the change sample, the
plots and ``change.json`` / ``change.csv`` / ``change.md``, and returns the
``change.json`` dict (schema :data:`SCHEMA`). See :mod:`jointseg.assess.change`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
from pyproj import CRS

from jointseg.assess.change import scan as changescan
from jointseg.assess.change.accuracy import accuracy_entry
from jointseg.assess.change.maps import (
    CHANGE_CLASSES,
    CHANGE_KEYS,
    write_change_maps,
    write_first_year_map,
)
from jointseg.assess.change.report import write_change_csv, write_change_markdown
from jointseg.assess.change.sample import change_sample
from jointseg.assess.change.temporal import METHODS, TemporalSettings
from jointseg.assess.groups import GroupError, load_groups
from jointseg.assess.rasters import RasterError, read_grid
from jointseg.grid import GeoBox
from jointseg.io import write_json
from jointseg.provenance import raster_provenance, raster_tags

log = logging.getLogger(__name__)

SCHEMA = "jointseg.assess.change/1"


class ChangeError(ValueError):
    """The maps of a change analysis cannot be used together (grid, values, years)."""


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
        what = None
        if CRS.from_user_input(g.crs) != CRS.from_user_input(ref.crs):
            what = f"CRS {g.crs} differs from {ref.crs}"
        elif g.shape != ref.shape:
            what = f"shape {g.shape} differs from {ref.shape}"
        elif not g.transform.almost_equals(ref.transform, precision=1e-6):
            what = f"transform {tuple(g.transform)[:6]} differs from {tuple(ref.transform)[:6]}"
        if what:
            raise ChangeError(f"{p} ({label}): {what} of {first} ({first_label}); "
                              "change maps need one grid")
    return ref


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
    out = []
    for y0, y1 in changescan.periods_of(list(areas)):
        a0, a1 = areas[y0], areas[y1]
        out.append({"from": y0, "to": y1, "years": y1 - y0, "isa_km2_from": a0,
                    "isa_km2_to": a1, "abs_km2": a1 - a0,
                    "total_pct": None if a0 <= 0 else (a1 / a0 - 1.0) * 100.0,
                    "annual_pct": annual_growth_pct(a0, a1, y1 - y0)})
    return out


def _sample_area(report: Mapping | None, city: str | None) -> dict:
    """Error-adjusted ISA area ± CI (km²) of a report for the region or one city."""
    est = (report or {}).get("estimates", {})
    if est.get("status") != "ok":
        return {"area_method": "pixel count (no reference sample)",
                "isa_km2_adjusted": None, "isa_km2_adjusted_ci": None}
    block = est["all"] if city is None else est.get("city", {}).get(city)
    k = (block or {}).get("classes", {}).get("1", {})
    return {"area_method": "pixel count; Olofsson error-adjusted area from the stratified "
                           f"sample of {report['_source']}" if k else
                           "pixel count (no sample units in this group)",
            "isa_km2_adjusted": k.get("area"), "isa_km2_adjusted_ci": k.get("area_ci")}


def _group_results(tally: changescan.Tally, years: Sequence[int], px_km2: float,
                   reports: Mapping[int, Mapping]) -> dict[str, dict]:
    """``groups`` of ``change.json``: per kind and name, areas, growth and transitions."""
    out: dict[str, dict] = {}
    for kind, names in tally.kinds:
        out[kind] = {}
        for k, name in enumerate(names, start=1):
            city = None if kind == "region" else name
            areas = {y: {"isa_km2": int(tally.isa[y][kind][k]) * px_km2,
                         "isa_km2_raw": int(tally.raw[y][kind][k]) * px_km2,
                         "valid_km2": int(tally.valid[y][kind][k]) * px_km2,
                         **(_sample_area(reports.get(y), city) if kind != "zone" else
                            _sample_area(None, None))} for y in years}
            trans = {f"{y0}-{y1}": {f"{key}_km2": int(counts[c][kind][k]) * px_km2
                                    for c, key in zip(CHANGE_CLASSES, CHANGE_KEYS, strict=True)}
                     for (y0, y1), counts in tally.trans.items()}
            out[kind][name] = {
                "areas": {str(y): a for y, a in areas.items()},
                "growth": growth({y: a["isa_km2"] for y, a in areas.items()}),
                "transitions": trans,
            }
    return out


def _consistency_block(settings: TemporalSettings, probs: Mapping, cuts: Mapping,
                       tally: changescan.Tally, scan: changescan.ScanResult,
                       px_km2: float) -> dict:
    """``consistency`` of ``change.json``: the temporal method and its measured effect."""
    out = {"applied": settings.applied, "method": settings.method,
           "rule": METHODS[settings.method], "probabilities": bool(probs),
           "confident": settings.confident if settings.method == "carry" else None,
           "penalty": settings.penalty if settings.method == "monotone" else None,
           "evidence_cap": settings.evidence_cap if settings.method == "monotone" else None,
           "cuts": {str(y): c for y, c in cuts.items()} if settings.method == "monotone"
           else None,
           "changed_pixels": {str(y): n for y, n in tally.changed.items()}
           if settings.applied else None}
    if settings.applied:
        out["changed_pixels_total"] = int(sum(tally.changed.values()))
        out["changed_km2"] = out["changed_pixels_total"] * px_km2
    if settings.applied and "raw" in scan.accuracy:
        out["new_isa_f1"] = {f"{y0}-{y1}": {"with_rule": accuracy_entry(c, px_km2)["f1"],
                                            "without_rule": accuracy_entry(
                                                scan.accuracy["raw"][(y0, y1)], px_km2)["f1"]}
                             for (y0, y1), c in scan.accuracy["map"].items()}
    return out


def map_cuts(maps: Mapping[int, str | os.PathLike]) -> dict[int, float]:
    """The probability cut of each year's binary map (its ``THRESHOLD`` tag, else 0.5)."""
    out = {}
    for y, p in maps.items():
        try:
            out[int(y)] = float(raster_tags(p).get("THRESHOLD", 0.5))
        except ValueError:
            out[int(y)] = 0.5
    return out


def _check_inputs(maps: Mapping, probs: Mapping | None,
                  truth: Mapping | None) -> tuple[list[int], dict, dict, GeoBox]:
    """Years, probability and reference maps by year and the common grid.

    Raises:
        ChangeError: see :func:`biennial_change`.
    """
    years = sorted(int(y) for y in maps)
    if len(years) < 2:
        raise ChangeError(f"change needs maps of two years or more, got {years}")
    probs = {int(y): p for y, p in (probs or {}).items()}
    truth = {int(y): p for y, p in (truth or {}).items()}
    extra = sorted(set(probs) - set(years))
    if extra:
        raise ChangeError(f"probability maps for years {extra} have no binary map")
    if truth and sorted(truth) != years:
        raise ChangeError(f"reference rasters for years {sorted(truth)}; the maps are of "
                          f"{years}: give one --truth per map year")
    labelled = {f"{y} map": maps[y] for y in years}
    labelled.update({f"{y} prob": probs[y] for y in sorted(probs)})
    return years, probs, truth, check_same_grid(labelled)


def read_reports(reports: Mapping[int, str | os.PathLike] | None,
                 years: Sequence[int]) -> dict[int, dict]:
    """Accuracy reports (``report.json``) by year, each with ``_source``.

    Raises:
        ChangeError: for an unreadable file, another schema or a year without a map.
    """
    out = {}
    for y, p in (reports or {}).items():
        try:
            d = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ChangeError(f"{p}: cannot read accuracy report ({exc})") from exc
        if not str(d.get("schema", "")).startswith("jointseg.accuracy_report"):
            raise ChangeError(f"{p}: not an accuracy report.json (schema "
                              f"{d.get('schema')!r})")
        if int(y) not in years:
            raise ChangeError(f"{p}: report of year {y}, which has no map")
        out[int(y)] = {**d, "_source": str(p)}
    return out


def _accuracy_block(scan: changescan.ScanResult, truth: Mapping, px_km2: float) -> dict | None:
    """``change_accuracy`` of ``change.json``: new-ISA agreement per period."""
    if not truth:
        return None
    return {"reference": {str(y): raster_provenance(p) for y, p in truth.items()},
            "what": "new ISA (non-ISA in the first year, ISA in the second), pixel counts "
                    "on the map grid over pixels valid in both years of map and reference",
            "periods": {f"{y0}-{y1}": accuracy_entry(c, px_km2)
                        for (y0, y1), c in scan.accuracy["map"].items()}}


def _outputs(out_dir: Path, scan: changescan.ScanResult, geobox: GeoBox, years: list[int],
             region: str, method: str, simulated: bool, truth: Mapping, px_km2: float,
             sample_opts: Mapping) -> dict:
    """Write the change COGs and the change sample; return their ``change.json`` blocks."""
    maps = write_change_maps(out_dir, scan.change, geobox, region, method, simulated)
    first = write_first_year_map(out_dir / "first_isa_year.tif", scan.first_year, geobox,
                                 years, region, method, simulated)
    sample = change_sample(scan.map_bits, scan.truth_bits, geobox, px_km2,
                           out_dir / "change_sample.gpkg", years=years, **sample_opts)
    sample["reference"] = "truth rasters (simulated)" if simulated and truth else (
        "truth rasters" if truth else None)
    return {"change_maps": maps, "first_isa_year": first, "change_sample": sample}


def biennial_change(
    maps: Mapping[int, str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    probs: Mapping[int, str | os.PathLike] | None = None,
    truth: Mapping[int, str | os.PathLike] | None = None,
    reports: Mapping[int, str | os.PathLike] | None = None,
    cities: str | os.PathLike | gpd.GeoDataFrame | None = None,
    city_field: str = "name",
    zones: str | os.PathLike | gpd.GeoDataFrame | None = None,
    zone_field: str = "zone",
    temporal: TemporalSettings | None = None,
    region: str = "region",
    sample_target_se: float = 0.01,
    sample_floor: int = 50,
    seed: int = 0,
    plots: bool = True,
    progress: bool = False,
) -> dict:
    """ISA area per year and group, growth, consistency rule, change maps and accuracy.

    Writes into ``out_dir``: ``change_<y0>_<y1>.tif`` per consecutive pair,
    ``first_isa_year.tif``, ``change_sample.gpkg``, ``change.json``, ``change.csv``,
    ``change.md`` and (``plots``) ``area_per_year.png`` and ``growth_map.png``.
    Returns the ``change.json`` dict.

    Args:
        maps: year -> binary 1 m ISA map; two years or more, one projected grid.
        out_dir: output folder.
        probs: year -> ISA probability map (same grid): the evidence of the temporal
            method.
        truth: year -> reference binary raster (any grid, read with nearest), one per
            map year: change accuracy and the labels of the change sample.
        reports: year -> ``report.json`` of that year's accuracy report (CIs of areas).
        cities, city_field: polygon layer and its name attribute (groups ``city``).
        zones, zone_field: polygon layer and its zone attribute (groups ``zone``).
        temporal: the temporal method (:class:`~jointseg.assess.change.temporal.
            TemporalSettings`; None = ``independent``: each year's map as it is).
        region: region name written in the outputs.
        sample_target_se, sample_floor, seed: change sample design
            (:mod:`jointseg.assess.change.sample`).
        plots: write the PNG plots.
        progress: progress bar over row blocks.

    Raises:
        ChangeError: fewer than two years, grids that differ or are geographic,
            non-binary maps or references, unusable polygon layers or reports, or years
            that do not match.
    """
    settings = temporal or TemporalSettings(method="independent")
    years, probs, truth, geobox = _check_inputs(maps, probs, truth)
    maps = {int(y): p for y, p in maps.items()}
    reps = read_reports(reports, years)
    try:
        px_km2 = geobox.pixel_area_m2 / 1e6
        groups = [load_groups(layer, field, geobox.crs, kind) for layer, field, kind in
                  ((cities, city_field, "city"), (zones, zone_field, "zone"))
                  if layer is not None]
    except (ValueError, GroupError) as exc:
        raise ChangeError(str(exc)) from exc
    pairs = list(zip(years[:-1], years[1:], strict=True))
    tally = changescan.Tally([("region", (region,))] + [(g.kind, g.names) for g in groups],
                             years, pairs)
    if settings.applied and not probs:
        log.warning("temporal method %s without probability maps: evidence from the binary "
                    "maps only", settings.method)
    cuts = map_cuts(maps)
    try:
        scan = changescan.scan(maps, probs, geobox, groups, tally, truth=truth,
                               settings=settings, cuts=cuts, progress=progress)
    except RasterError as exc:
        raise ChangeError(str(exc)) from exc
    inputs = {str(y): {"map": raster_provenance(maps[y]),
                       **({"prob": raster_provenance(probs[y])} if y in probs else {}),
                       **({"report": reps[y]["_source"]} if y in reps else {})}
              for y in years}
    simulated = any(v["simulated"] for d in inputs.values() for v in d.values()
                    if isinstance(v, dict)) or any(r.get("simulated") for r in reps.values())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "schema": SCHEMA, "region": region, "years": years, "simulated": simulated,
        "inputs": inputs, "polygons": {g.kind: g.source for g in groups},
        "pixel_area_m2": px_km2 * 1e6,
        "grid": {"crs": geobox.crs, "transform": list(geobox.transform)[:6],
                 "width": geobox.width, "height": geobox.height},
        "consistency": _consistency_block(settings, probs, cuts, tally, scan, px_km2),
        "change_accuracy": _accuracy_block(scan, truth, px_km2),
        **_outputs(out_dir, scan, geobox, years, region, settings.method, simulated, truth,
                   px_km2, {"target_se": sample_target_se, "floor": sample_floor,
                            "seed": seed}),
        "change_classes": {str(c): n for c, n in CHANGE_CLASSES.items()},
        "groups": _group_results(tally, years, px_km2, reps),
    }
    if plots:
        from jointseg.assess.change.plots import write_change_plots

        result["plots"] = write_change_plots(result, scan.first_year, out_dir)
    write_json(out_dir / "change.json", result)
    write_change_csv(out_dir / "change.csv", result)
    write_change_markdown(out_dir / "change.md", result)
    log.info("%s: change %s, %.3f km² ISA in %d", out_dir, years,
             result["groups"]["region"][region]["areas"][str(years[-1])]["isa_km2"], years[-1])
    return result


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
