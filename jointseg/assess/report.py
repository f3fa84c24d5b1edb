"""The accuracy report of one ISA map: agreement, reference sample, estimates, plots.

:func:`accuracy_report` assembles, for one region and year, from the library pieces:

* **agreement with ESA WorldCover** built-up on its native 10 m grid
  (:mod:`jointseg.assess.compare`: the 1 m map aggregated to an ISA fraction, averaged onto
  the WorldCover pixels, binarised at ``threshold``), for the map and the bilinear
  baseline's map when given;
* **agreement with a binary truth** when given (e.g. the simulator's 1 m truth):
  on the map's 1 m grid, and on the WorldCover grid for ISA-1, the baseline and
  WorldCover itself (the truth aggregated the same way as the maps), so products
  of different resolution are compared against one reference;
* per **city** and per **zone** (polygon layers): ISA areas and the same agreements;
* a **stratified random sample** (:mod:`jointseg.assess.sampling`), labelled from the truth
  raster when given or from a labelled file, else written for labelling, and the
  **Olofsson / Stehman estimates** with 95 % CIs and the error-adjusted ISA area;
* the plots ``confusion.png``, ``cities.png`` and ``agreement.png``.

Outputs in ``out_dir``: ``report.md``, ``report.json``, ``confusion.csv``,
``samples.gpkg`` and the PNGs, all written atomically. ``report.json`` records the
provenance of every input (path, sha256, identifying tags, ``simulated``) and, per
figure, which inputs it came from. When any input is tagged ``JOINTSEG_SIMULATED``
the report says so at the top: such figures are not real-world accuracy.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS, Geod
from rasterio.windows import Window

from jointseg.assess import compare, sampling, worldcover
from jointseg.assess.change import PolygonGroups, isa_area_by_group, load_groups
from jointseg.grid import GeoBox
from jointseg.io import atomic_path, write_json
from jointseg.metrics import BinaryCounts, binary_counts, binary_metrics
from jointseg.products import NODATA_U8 as NODATA
from jointseg.provenance import ProvenanceError, raster_provenance, raster_tags

log = logging.getLogger(__name__)

SCHEMA = "jointseg.accuracy_report/1"
BLOCK_ROWS = 1024
MAX_PLOT_PX = 2000
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SIMULATED_BANNER = (
    "> **SIMULATED DATA.** Inputs marked simulated below (tag `JOINTSEG_SIMULATED=true`) "
    "come from the project's simulator. Every figure computed from them measures the "
    "method on synthetic scenes; it is **not** a real-world accuracy of ISA-1."
)
PRODUCT_NAMES = {"map": "ISA-1 (JointSeg)", "baseline": "bilinear baseline"}
AGREEMENT_CODES = {0: "neither", 1: "map only", 2: "WorldCover only", 3: "both ISA"}


class ReportError(RuntimeError):
    """The inputs of a report do not fit together (a missing option, an empty map)."""


@dataclass(frozen=True)
class OnGrid:
    """Binary layers (uint8 0/1/255) on one grid, keyed by input name."""

    layers: dict[str, np.ndarray]
    geobox: GeoBox


# ------------------------------------------------------------------ helpers


def _clean(v: object) -> object:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def metrics_of(counts: BinaryCounts) -> dict:
    """P/R/F1/OA/kappa/IoU + counts of a BinaryCounts, NaN -> None."""
    return {k: _clean(v) for k, v in binary_metrics(counts).items()}


def swap(counts: BinaryCounts) -> BinaryCounts:
    """Exchange map and reference roles (FP <-> FN)."""
    return BinaryCounts(counts.tn, counts.fn, counts.fp, counts.tp)


def pixel_area_km2_rows(geobox: GeoBox) -> np.ndarray:
    """Area (km²) of one pixel in each row: constant for projected grids, geodesic
    (WGS 84 ellipsoid) for geographic ones."""
    crs = CRS.from_user_input(geobox.crs)
    t = geobox.transform
    if crs.is_projected:
        return np.full(geobox.height, abs(t.a * t.e - t.b * t.d) / 1e6)
    geod = Geod(ellps="WGS84")
    x0, x1 = t.c, t.c + t.a
    out = np.empty(geobox.height)
    for r in range(geobox.height):
        ytop, ybot = t.f + t.e * r, t.f + t.e * (r + 1)
        area, _ = geod.polygon_area_perimeter([x0, x1, x1, x0], [ybot, ybot, ytop, ytop])
        out[r] = abs(area) / 1e6
    return out


def group_counts(
    map_isa: np.ndarray, ref_isa: np.ndarray, geobox: GeoBox, groups: Sequence[PolygonGroups]
) -> dict[str, dict[str, dict]]:
    """Per polygon group: agreement counts and ISA areas (km²) of two layers on one grid.

    Returns ``{kind: {name: {"counts": BinaryCounts, "map_isa_km2", "ref_isa_km2",
    "compared_km2"}}}``, areas over pixels valid in both layers.
    """
    area_rows = pixel_area_km2_rows(geobox)
    acc: dict[str, np.ndarray] = {}
    for g in groups:
        acc[g.kind] = np.zeros((7, len(g.names) + 1))
    for row0 in range(0, geobox.height, BLOCK_ROWS):
        m = map_isa[row0:row0 + BLOCK_ROWS]
        r = ref_isa[row0:row0 + BLOCK_ROWS]
        valid = (m != NODATA) & (r != NODATA)
        w = np.broadcast_to(area_rows[row0:row0 + m.shape[0], None], m.shape)
        sel = [valid & (m == 0) & (r == 0), valid & (m == 1) & (r == 0),
               valid & (m == 0) & (r == 1), valid & (m == 1) & (r == 1)]
        for g in groups:
            ids = g.ids(m.shape, geobox.transform @ Affine.translation(0, row0))
            n = len(g.names) + 1
            a = acc[g.kind]
            for k, s in enumerate(sel):
                a[k] += np.bincount(ids[s], minlength=n)
            a[4] += np.bincount(ids[valid & (m == 1)], weights=w[valid & (m == 1)], minlength=n)
            a[5] += np.bincount(ids[valid & (r == 1)], weights=w[valid & (r == 1)], minlength=n)
            a[6] += np.bincount(ids[valid], weights=w[valid], minlength=n)
    out: dict[str, dict[str, dict]] = {}
    for g in groups:
        a = acc[g.kind]
        out[g.kind] = {
            name: {"counts": BinaryCounts(*(int(a[k, i]) for k in range(4))),
                   "map_isa_km2": float(a[4, i]), "ref_isa_km2": float(a[5, i]),
                   "compared_km2": float(a[6, i])}
            for i, name in enumerate(g.names, start=1)}
    return out


def worldcover_year_for(year: int) -> tuple[int, str | None]:
    """WorldCover year used for a map year: the same, else the nearest published one."""
    if year in worldcover.VERSIONS:
        return year, None
    wc = min(worldcover.VERSIONS, key=lambda y: (abs(y - year), -y))
    return wc, (f"ESA WorldCover exists for {sorted(worldcover.VERSIONS)} only; the {year} "
                f"map is compared with WorldCover {wc}")


def worldcover_provenance(
    source: str | os.PathLike, year: int, bounds_lonlat: tuple[float, float, float, float]
) -> dict:
    """Source and the tile files a WorldCover read used (path, sha256, simulated)."""
    src = str(source)
    if "{" not in src and src.lower().endswith((".tif", ".tiff", ".vrt")):
        hrefs = [src]
    else:
        hrefs = [worldcover.tile_href(src, t, year)
                 for t in worldcover.worldcover_tile_ids(bounds_lonlat)]
    files = []
    for h in hrefs:
        try:
            files.append(raster_provenance(h, sha256=Path(h).is_file()))
        except ProvenanceError as exc:
            files.append({"path": h, "error": str(exc), "simulated": False})
    return {"source": src, "year": year, "version": worldcover.version_for(year),
            "files": files, "simulated": any(f["simulated"] for f in files)}


def _binary_on(path: str | os.PathLike, geobox: GeoBox, threshold: float,
               progress: bool) -> np.ndarray:
    """A 1 m binary map on a 10 m-class grid: ISA fraction averaged, then binarised."""
    frac, fgrid = compare.map_fraction(path, 10, progress=progress)
    return compare.binarise(compare.fraction_on_grid(frac, fgrid, geobox), threshold)


def threshold_sweep(prob_path: str | os.PathLike, truth_path: str | os.PathLike,
                    thresholds: Sequence[float] = THRESHOLDS) -> list[dict]:
    """P/R/F1 of the probability map binarised at each threshold against a binary truth.

    The truth is read onto the probability map's grid (nearest); p = DN x band scale,
    255 = nodata; ISA where p >= threshold.
    """
    geobox, _ = compare.read_map_geobox(prob_path)
    truth, nod = compare.read_on_grid(truth_path, geobox, fill=NODATA)
    ref = compare.classes_to_isa(truth, (1,), [NODATA] + ([nod] if nod is not None else []))
    counts = {t: BinaryCounts(0, 0, 0, 0) for t in thresholds}
    with rasterio.open(prob_path) as ds:
        scale = ds.scales[0] or 1.0
        pnod = NODATA if ds.nodata is None else int(ds.nodata)
        for row0 in range(0, geobox.height, BLOCK_ROWS):
            win = Window(0, row0, geobox.width, min(BLOCK_ROWS, geobox.height - row0))
            dn = ds.read(1, window=win)
            r = ref[row0:row0 + dn.shape[0]]
            for t in thresholds:
                m = np.where(dn == pnod, NODATA, dn.astype(np.float64) * scale >= t - 1e-9)
                counts[t] = counts[t] + binary_counts(m.astype(np.uint8), r)
    return [{"threshold": t, **metrics_of(counts[t])} for t in thresholds]


# --------------------------------------------------------------------- main


def accuracy_report(
    map_path: str | os.PathLike,
    worldcover_source: str | os.PathLike,
    year: int,
    out_dir: str | os.PathLike,
    *,
    prob_path: str | os.PathLike | None = None,
    worldcover_year: int | None = None,
    truth_path: str | os.PathLike | None = None,
    labels_path: str | os.PathLike | None = None,
    cities: str | os.PathLike | None = None,
    city_field: str = "name",
    zones: str | os.PathLike | None = None,
    zone_field: str = "zone",
    baseline_path: str | os.PathLike | None = None,
    region: str | None = None,
    threshold: float = compare.DEFAULT_THRESHOLD,
    min_distance_m: float = 3000.0,
    target_se: float = 0.01,
    floor: int = 50,
    seed: int = 0,
    allow_missing: bool = False,
    progress: bool = False,
) -> dict:
    """Write the accuracy report of one binary ISA map into ``out_dir``; return its dict.

    Args:
        map_path: binary 1 m ISA map (uint8 1/0, 255 nodata), projected CRS.
        worldcover_source: WorldCover folder / URL / template / single GeoTIFF.
        year: the map's year.
        out_dir: output folder.
        prob_path: ISA probability map (uint8 DN x scale, 255 nodata): threshold sweep
            against the truth, provenance.
        worldcover_year: WorldCover year (default ``year`` or the nearest published).
        truth_path: binary reference raster (1 ISA): pixel agreement and sample labels.
        labels_path: a labelled sample (GeoPackage/CSV from ``samples.gpkg``) to
            estimate from instead of drawing a new one.
        cities, city_field: polygon layer of cities and its name attribute.
        zones, zone_field: polygon layer of zones (sampling strata x zone).
        baseline_path: the bilinear baseline's binary map.
        region: region name (default: the map's ``REGION`` tag, else ``"region"``).
        threshold: ISA fraction threshold of the 10 m aggregation.
        min_distance_m, target_se, floor, seed: sampling design (see
            :func:`~jointseg.assess.sampling.design_sample`,
            :func:`~jointseg.assess.sampling.draw_sample`).
        allow_missing: missing WorldCover tiles count as no data.
        progress: progress bars.

    Raises:
        ReportError, CompareError, WorldCoverError, SamplingError, ChangeError: on
        unusable inputs (messages name the file and the problem).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    map_geobox, _ = compare.read_map_geobox(map_path)
    if not CRS.from_user_input(map_geobox.crs).is_projected:
        raise ReportError(f"{map_path}: CRS {map_geobox.crs} is not projected; "
                          "the report needs a metric (UTM) map")
    tags = raster_tags(map_path)
    region = region or tags.get("REGION") or "region"
    wc_year, wc_note = (worldcover_year, None) if worldcover_year else worldcover_year_for(year)
    notes = [wc_note] if wc_note else []

    # ---- provenance of every input
    log.info("report %s %s: hashing inputs", region, year)
    inputs: dict[str, dict] = {"map": raster_provenance(map_path)}
    for name, p in (("prob", prob_path), ("truth", truth_path), ("baseline", baseline_path)):
        if p is not None:
            inputs[name] = raster_provenance(p)
    lonlat = compare.map_bounds_lonlat(map_geobox)
    inputs["worldcover"] = worldcover_provenance(worldcover_source, wc_year, lonlat)
    simulated_inputs = [k for k, v in inputs.items() if v.get("simulated")]
    truth_label = None
    if truth_path is not None:
        truth_label = "simulated truth" if inputs["truth"]["simulated"] else "reference truth"

    def sim(*names: str) -> bool:
        return any(inputs.get(n, {}).get("simulated", False) for n in names)

    # ---- WorldCover grid: every binary layer aggregated onto it
    log.info("report %s %s: reading WorldCover %d over the map", region, year, wc_year)
    wc = worldcover.read_worldcover_builtup(worldcover_source, wc_year, lonlat,
                                            allow_missing=allow_missing)
    layers = {"worldcover": wc.isa, "map": _binary_on(map_path, wc.geobox, threshold, progress)}
    if baseline_path is not None:
        layers["baseline"] = _binary_on(baseline_path, wc.geobox, threshold, progress)
    if truth_path is not None:
        layers["truth"] = _binary_on(truth_path, wc.geobox, threshold, progress)
    on_wc = OnGrid(layers, wc.geobox)
    wc_name = f"ESA WorldCover {wc_year} built-up"

    comparisons: list[dict] = []

    def add(cid: str, product: str, product_input: str, reference: str, reference_input: str,
            grid: str, counts: BinaryCounts) -> None:
        comparisons.append({
            "id": cid, "product": product, "product_input": product_input,
            "reference": reference, "reference_input": reference_input, "grid": grid,
            "simulated": sim(product_input, reference_input), **metrics_of(counts)})
        log.info("report %s %s: %s F1 %s", region, year, cid,
                 comparisons[-1]["f1"] if comparisons[-1]["f1"] is None
                 else f"{comparisons[-1]['f1']:.4f}")

    wc_grid = f"WorldCover 10 m grid (EPSG:4326, threshold {threshold:g})"
    for name in ("map", "baseline"):
        if name in layers:
            add(f"{name}_vs_worldcover", PRODUCT_NAMES[name], name, wc_name, "worldcover",
                wc_grid, binary_counts(layers[name], layers["worldcover"]))
    truth_comps: dict[str, compare.Comparison] = {}
    if truth_path is not None:
        for name, p in (("map", map_path), ("baseline", baseline_path)):
            if p is not None:
                comp = truth_comps[name] = compare.compare_with_binary(p, truth_path)
                add(f"{name}_vs_truth_1m", PRODUCT_NAMES[name], name, truth_label, "truth",
                    f"{name} 1 m grid", comp.counts())
        for name in ("map", "baseline", "worldcover"):
            if name in layers:
                product = wc_name.replace(" built-up", "") if name == "worldcover" \
                    else PRODUCT_NAMES[name]
                add(f"{name}_vs_truth_10m", product, name, truth_label, "truth", wc_grid,
                    binary_counts(layers[name], layers["truth"]))

    # ---- per city / zone
    specs = [(layer, field, kind) for layer, field, kind in
             ((cities, city_field, "city"), (zones, zone_field, "zone")) if layer is not None]
    groups_in = _GroupCache(specs)
    for g in groups_in(map_geobox.crs):
        inputs[f"{g.kind}_polygons"] = g.source
    by_group = _group_stats(map_path, baseline_path, truth_path, on_wc, truth_comps, groups_in,
                            progress)
    del truth_comps
    groups_map = groups_in(map_geobox.crs)

    # ---- sample and estimates
    sample, estimates, pts = _sample_and_estimates(
        map_path, out_dir / "samples.gpkg", truth_path, labels_path, cities, city_field, zones,
        zone_field, min_distance_m, target_se, floor, seed, progress)
    estimates["reference"] = (truth_label if truth_path is not None and labels_path is None
                              else "labelled sample" if labels_path is not None else None)
    estimates["simulated"] = bool(truth_path is not None and labels_path is None
                                  and sim("truth")) or sim("map")
    areas = isa_area_by_group(map_path, groups_map, progress=progress)
    other_km2 = {f"{n}_km2": (isa_area_by_group(p)["all"]["isa_km2"] if p is not None else None)
                 for n, p in (("baseline", baseline_path), ("truth", truth_path))}
    both = (layers["map"] != NODATA) & (layers["worldcover"] != NODATA)
    wc_rows = pixel_area_km2_rows(wc.geobox)[:, None]
    other_km2["worldcover_km2"] = float(
        np.sum(np.broadcast_to(wc_rows, both.shape)[both & (layers["worldcover"] == 1)]))

    sweep = None
    if prob_path is not None and truth_path is not None:
        sweep = {"reference": truth_label, "simulated": sim("prob", "truth"),
                 "rows": threshold_sweep(prob_path, truth_path)}

    rep = {
        "schema": SCHEMA,
        "region": region,
        "year": int(year),
        "worldcover_year": wc_year,
        "simulated": bool(simulated_inputs),
        "simulated_inputs": simulated_inputs,
        "inputs": inputs,
        "options": {"threshold": threshold, "min_distance_m": min_distance_m,
                    "target_se": target_se, "floor": floor, "seed": seed,
                    "allow_missing": allow_missing},
        "comparisons": comparisons,
        "isa_area": {"map_km2": areas["all"]["isa_km2"],
                     "map_valid_km2": areas["all"]["valid_km2"],
                     **other_km2,
                     "worldcover_area_over": "WorldCover pixels compared with the map",
                     "source": "map", "simulated": sim("map"),
                     **_adjusted_area(estimates)},
        "groups": by_group,
        "group_isa_area": {k: v for k, v in areas.items() if k != "all"},
        "sample": sample,
        "estimates": estimates,
        "threshold_sweep": sweep,
        "notes": notes,
        "outputs": {},
    }
    rep["outputs"] = {
        "report.json": "report.json", "report.md": "report.md",
        "confusion.csv": "confusion.csv", "samples.gpkg": "samples.gpkg",
        **_plots(rep, on_wc, out_dir, pts)}
    write_json(out_dir / "report.json", rep)
    _write_confusion_csv(out_dir / "confusion.csv", rep)
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(render_markdown(rep))
    log.info("report %s %s written to %s", region, year, out_dir)
    return rep


class _GroupCache:
    """Polygon groups (cities, zones) loaded once per target CRS."""

    def __init__(self, specs: Sequence[tuple[object, str, str]]) -> None:
        self.specs = list(specs)
        self.cache: dict[str, list[PolygonGroups]] = {}

    def __call__(self, crs: str) -> list[PolygonGroups]:
        if crs not in self.cache:
            self.cache[crs] = [load_groups(layer, field, crs, kind)
                               for layer, field, kind in self.specs]
        return self.cache[crs]


def _group_stats(map_path, baseline_path, truth_path, on_wc: OnGrid,
                 truth_comps: Mapping[str, compare.Comparison], groups_in: _GroupCache,
                 progress: bool) -> dict:
    """Per city/zone: ISA areas (each map on its own grid) and agreements (P/R/F1...)."""
    groups_wc = groups_in(on_wc.geobox.crs)
    if not groups_wc:
        return {}
    out: dict[str, dict[str, dict]] = {g.kind: {n: {} for n in g.names} for g in groups_wc}
    lay = on_wc.layers

    def put(key: str, stats: dict) -> None:
        for kind, members in stats.items():
            for name, s in members.items():
                out[kind][name][key] = {**metrics_of(s["counts"]),
                                        "map_isa_km2": s["map_isa_km2"],
                                        "ref_isa_km2": s["ref_isa_km2"],
                                        "compared_km2": s["compared_km2"]}

    put("map_vs_worldcover", group_counts(lay["map"], lay["worldcover"], on_wc.geobox, groups_wc))
    if "baseline" in lay:
        put("baseline_vs_worldcover",
            group_counts(lay["baseline"], lay["worldcover"], on_wc.geobox, groups_wc))
    if "truth" in lay:
        put("worldcover_vs_truth_10m",
            group_counts(lay["worldcover"], lay["truth"], on_wc.geobox, groups_wc))
        for name, comp in truth_comps.items():
            put(f"{name}_vs_truth_1m", group_counts(comp.map_isa, comp.ref_isa, comp.geobox,
                                                    groups_in(comp.geobox.crs)))
    for name, p in (("map", map_path), ("baseline", baseline_path), ("truth", truth_path)):
        if p is None:
            continue
        areas = isa_area_by_group(p, groups_in(compare.read_map_geobox(p)[0].crs),
                                  progress=progress)
        for kind, members in areas.items():
            if kind == "all":
                continue
            for gname, a in members.items():
                out[kind][gname][f"{name}_isa_km2"] = a["isa_km2"]
                out[kind][gname][f"{name}_valid_km2"] = a["valid_km2"]
    for members in out.values():
        for d in members.values():
            d["worldcover_isa_km2"] = d["map_vs_worldcover"]["ref_isa_km2"]
    return out


def _sample_and_estimates(map_path, gpkg_path: Path, truth_path, labels_path, cities,
                          city_field: str, zones, zone_field: str, min_distance_m: float,
                          target_se: float, floor: int, seed: int, progress: bool):
    """Draw (or read) the reference sample, label it, write it, estimate from it."""
    import geopandas as gpd

    map_geobox, _ = compare.read_map_geobox(map_path)
    if labels_path is not None:
        pts = sampling.read_labels(labels_path)
        if not isinstance(pts, gpd.GeoDataFrame) or pts.crs is None:
            pts = gpd.GeoDataFrame(pts.drop(columns="geometry", errors="ignore"),
                                   geometry=gpd.points_from_xy(pts["x"], pts["y"]),
                                   crs=map_geobox.crs)
        sample = {"source": "labels", "labels": str(labels_path)}
    else:
        design = sampling.design_sample(map_path, zones=zones, zone_field=zone_field,
                                        target_se=target_se, floor=floor)
        pts = sampling.draw_sample(map_path, design, min_distance_m=min_distance_m, seed=seed,
                                   progress=progress)
        if truth_path is not None:
            pts = sampling.label_from_raster(pts, truth_path)
        d = design.to_dict()
        got = pts.groupby("stratum").size().to_dict() if len(pts) else {}
        for s in d["strata"]:
            s["n_drawn"] = int(got.get(s["label"], 0))
        sample = {"source": "drawn", "design": d, "min_distance_m": min_distance_m, "seed": seed,
                  "labels": "truth raster" if truth_path is not None else None}
    if cities is not None and len(pts):
        pts = sampling.assign_groups(pts, cities, city_field, column="city")
    sampling.write_sample(gpkg_path, pts)
    sample["path"] = gpkg_path.name
    sample["n_points"] = int(len(pts))
    has_ref = "reference" in pts.columns and bool(pts["reference"].notna().any())
    sample["n_labelled"] = int(pts["reference"].notna().sum()) if has_ref else 0
    if not has_ref:
        return sample, {"status": "awaiting reference labels",
                        "how": "fill column `reference` (1 ISA, 0 not) of samples.gpkg, then "
                               "rerun with --labels samples.gpkg"}, pts
    if sample.get("design"):
        # strata without a labelled unit are absent from the labels, and the estimators
        # would silently drop their area: refuse instead
        labelled = pts[pts["reference"].notna()].groupby("stratum").size().to_dict()
        empty = [t["label"] for t in sample["design"]["strata"]
                 if t["pixels"] > 0 and labelled.get(t["label"], 0) == 0]
        if empty:
            msg = (f"not estimable: strata {empty} have mapped pixels but no labelled sample "
                   f"unit (is --min-distance-m {min_distance_m:g} too large for this map?)")
            log.warning(msg)
            return sample, {"status": msg}, pts
    est: dict = {"status": "ok"}
    try:
        by_zone = sampling.estimate_from_labels(pts, group_column="zone" if zones else None)
        est["all"] = by_zone.pop("all").to_dict()
        est["zone"] = {k: v.to_dict() for k, v in by_zone.items()}
        if cities is not None:
            by_city = sampling.estimate_from_labels(pts, group_column="city")
            by_city.pop("all")
            est["city"] = {k: v.to_dict() for k, v in by_city.items()}
    except ValueError as exc:  # SamplingError too: e.g. a stratum without units
        log.warning("estimates not possible: %s", exc)
        est = {"status": f"not estimable: {exc}"}
    return sample, est, pts


def _adjusted_area(estimates: Mapping) -> dict:
    """Error-adjusted ISA area ± 95 % CI (km²) from the ``all`` estimate, or None."""
    if estimates.get("status") != "ok":
        return {"error_adjusted_km2": None, "error_adjusted_ci_km2": None,
                "error_adjusted_unit": None}
    c = estimates["all"]["classes"]["1"]
    return {"error_adjusted_km2": c["area"], "error_adjusted_ci_km2": c["area_ci"],
            "error_adjusted_unit": estimates["all"]["area_unit"]}


# -------------------------------------------------------------------- outputs


def _write_confusion_csv(path: Path, rep: Mapping) -> None:
    """Long table: one row per comparison (counts and scores), plus the estimated
    error matrix in area proportions when there are estimates."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["comparison", "product", "reference", "grid", "simulated", "tn", "fp", "fn",
                "tp", "precision", "recall", "f1", "oa", "kappa", "iou"])
    for c in rep["comparisons"]:
        w.writerow([c["id"], c["product"], c["reference"], c["grid"], c["simulated"],
                    *(c[k] for k in ("tn", "fp", "fn", "tp")),
                    *("" if c[k] is None else repr(c[k])
                      for k in ("precision", "recall", "f1", "oa", "kappa", "iou"))])
    est = rep["estimates"]
    if est.get("status") == "ok":
        p = est["all"]["error_matrix_area_proportions"]  # rows map, cols reference
        # same layout as the count rows: tn = map 0 ref 0, fp = map 1 ref 0, ...
        w.writerow(["sample_estimate_area_proportions", "ISA-1 (JointSeg)", est["reference"],
                    "sample points", est["simulated"], repr(p[0][0]), repr(p[1][0]),
                    repr(p[0][1]), repr(p[1][1]), "", "", "", "", "", ""])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _savefig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _plots(rep: Mapping, on_wc: OnGrid, out_dir: Path, pts) -> dict[str, str]:
    """confusion.png, cities.png, agreement.png; returns {name: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    sim = " [SIMULATED]" if rep["simulated"] else ""
    # confusion heat maps, rows = reference, columns = map
    panels = []
    for c in rep["comparisons"]:
        if c["id"] in ("map_vs_worldcover", "map_vs_truth_1m", "baseline_vs_truth_1m"):
            panels.append((f"{c['product']}\nvs {c['reference']}\n({c['grid'].split(' (')[0]})",
                           np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]], float), "count"))
    est = rep["estimates"]
    if est.get("status") == "ok":
        p = np.array(est["all"]["error_matrix_area_proportions"], float).T
        panels.append((f"sample estimate\n(area proportions, {est['reference']})", p, "prop"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False)
    for ax, (title, m, kind) in zip(axes[0], panels, strict=True):
        share = m / m.sum() if m.sum() else m
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(m):
            txt = f"{int(v):,}\n{share[i, j]:.1%}" if kind == "count" else f"{v:.4f}"
            ax.text(j, i, txt, ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks([0, 1], ["map 0", "map 1"])
        ax.set_yticks([0, 1], ["ref 0", "ref 1"])
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"{rep['region']} {rep['year']}: confusion{sim}")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    _savefig(fig, out_dir / "confusion.png")
    plt.close(fig)

    # per-city bars
    kind = "city" if "city" in rep["groups"] else "zone" if "zone" in rep["groups"] else None
    if kind:
        names = list(rep["groups"][kind])
        g = rep["groups"][kind]
        area_series = {lbl: [g[n].get(key) for n in names] for lbl, key in (
            ("ISA-1 (1 m)", "map_isa_km2"), ("bilinear baseline (1 m)", "baseline_isa_km2"),
            ("truth (1 m)", "truth_isa_km2"), ("WorldCover (10 m)", "worldcover_isa_km2"))}
        f1_series = {lbl: [(g[n].get(key) or {}).get("f1") for n in names] for lbl, key in (
            ("ISA-1 vs WorldCover", "map_vs_worldcover"),
            ("baseline vs WorldCover", "baseline_vs_worldcover"),
            ("ISA-1 vs truth (1 m)", "map_vs_truth_1m"),
            ("baseline vs truth (1 m)", "baseline_vs_truth_1m"),
            ("WorldCover vs truth (10 m)", "worldcover_vs_truth_10m"))}
    else:
        names = [rep["region"]]
        a = rep["isa_area"]
        area_series = {"ISA-1 (1 m)": [a["map_km2"]],
                       "bilinear baseline (1 m)": [a.get("baseline_km2")],
                       "truth (1 m)": [a.get("truth_km2")],
                       "WorldCover (10 m)": [a.get("worldcover_km2")]}
        by_id = {c["id"]: c for c in rep["comparisons"]}
        f1_series = {lbl: [(by_id.get(cid) or {}).get("f1")] for lbl, cid in (
            ("ISA-1 vs WorldCover", "map_vs_worldcover"),
            ("baseline vs WorldCover", "baseline_vs_worldcover"),
            ("ISA-1 vs truth (1 m)", "map_vs_truth_1m"),
            ("baseline vs truth (1 m)", "baseline_vs_truth_1m"),
            ("WorldCover vs truth (10 m)", "worldcover_vs_truth_10m"))}
    area_series = {k: v for k, v in area_series.items() if any(x is not None for x in v)}
    f1_series = {k: v for k, v in f1_series.items() if any(x is not None for x in v)}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(names) + 6), 5.5))
    for ax, series, ylabel in ((ax1, area_series, "ISA area (km²)"), (ax2, f1_series, "F1")):
        x = np.arange(len(names))
        width = 0.8 / max(len(series), 1)
        for k, (lbl, vals) in enumerate(series.items()):
            ax.bar(x + (k - (len(series) - 1) / 2) * width,
                   [np.nan if v is None else v for v in vals], width, label=lbl)
        ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax2.set_ylim(0, 1)
    fig.suptitle(f"{rep['region']} {rep['year']}: per {kind or 'region'}{sim}")
    fig.tight_layout()
    _savefig(fig, out_dir / "cities.png")
    plt.close(fig)

    # agreement map on the WorldCover grid
    m, r = on_wc.layers["map"], on_wc.layers["worldcover"]
    codes = np.where((m != NODATA) & (r != NODATA), m.astype(np.int16) + 2 * r, -1)
    step = max(1, math.ceil(max(codes.shape) / MAX_PLOT_PX))  # nearest decimation for plots
    masked = np.ma.masked_less(codes[::step, ::step], 0)
    left, bottom, right, top = on_wc.geobox.bounds
    h, w = codes.shape
    fig, ax = plt.subplots(figsize=(8, 8 * h / max(w, 1) * 0.9 + 1))
    colors = ["#ececec", "#d7301f", "#2b8cbe", "#252525"]
    ax.imshow(masked, cmap=ListedColormap(colors), vmin=-0.5, vmax=3.5,
              extent=(left, right, bottom, top), interpolation="nearest")
    counts = {c: int(np.count_nonzero(codes == c)) for c in AGREEMENT_CODES}
    ax.legend(handles=[Patch(color=colors[c], label=f"{n} ({counts[c]:,} px)")
                       for c, n in AGREEMENT_CODES.items()], loc="lower left", fontsize=8)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_title(f"{rep['region']} {rep['year']}: ISA-1 vs ESA WorldCover "
                 f"{rep['worldcover_year']} built-up at 10 m{sim}", fontsize=10)
    fig.tight_layout()
    _savefig(fig, out_dir / "agreement.png")
    plt.close(fig)
    return {"confusion.png": "confusion.png", "cities.png": "cities.png",
            "agreement.png": "agreement.png"}


def _f(v: object, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pm(v: object, ci: object, digits: int = 4) -> str:
    return "n/a" if v is None else f"{_f(v, digits)} ± {_f(ci, digits)}"


def render_markdown(rep: Mapping) -> str:
    """The human-readable ``report.md`` of a report dict."""
    L: list[str] = []
    if rep["simulated"]:
        L += [SIMULATED_BANNER, "",
              f"Simulated inputs: {', '.join(f'`{s}`' for s in rep['simulated_inputs'])}.", ""]
    L += [f"# ISA-1 accuracy report: {rep['region']} {rep['year']}", ""]
    L += ["## Inputs", "", "| input | path | sha256 | simulated |", "|---|---|---|---|"]
    for name, d in rep["inputs"].items():
        if name == "worldcover":
            for f in d["files"]:
                L.append(f"| worldcover {d['year']} | `{f['path']}` | "
                         f"{f.get('sha256', 'n/a')[:16]} | {f.get('simulated', False)} |")
        else:
            L.append(f"| {name} | `{d['path']}` | {str(d.get('sha256', 'n/a'))[:16]} | "
                     f"{d.get('simulated', False)} |")
    L += ["", *[f"- note: {n}" for n in rep["notes"]], ""]
    L += ["## Agreement (pixel counts)", "",
          "Agreement of two rasters pixel by pixel; not a design-based accuracy estimate "
          "(the reference has errors of its own, pixels are not a probability sample). "
          "Precision = user's accuracy of ISA, recall = producer's accuracy of ISA.", "",
          "| product | reference | grid | precision | recall | F1 | OA | kappa | IoU | pixels "
          "| simulated |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in rep["comparisons"]:
        L.append(f"| {c['product']} | {c['reference']} | {c['grid']} | {_f(c['precision'])} | "
                 f"{_f(c['recall'])} | {_f(c['f1'])} | {_f(c['oa'])} | {_f(c['kappa'])} | "
                 f"{_f(c['iou'])} | {c['n_pixels']} | {c['simulated']} |")
    a = rep["isa_area"]
    L += ["", "## ISA area", "",
          f"- mapped (ISA-1, 1 m pixel count): {_f(a['map_km2'])} km² of "
          f"{_f(a['map_valid_km2'])} km² mapped",
          *([f"- bilinear baseline: {_f(a['baseline_km2'])} km²"] if a.get("baseline_km2")
            is not None else []),
          *([f"- truth: {_f(a['truth_km2'])} km²"] if a.get("truth_km2") is not None else []),
          f"- WorldCover built-up over the compared 10 m pixels: {_f(a.get('worldcover_km2'))}"
          " km²",
          f"- error-adjusted (sample estimate): "
          f"{_pm(a['error_adjusted_km2'], a['error_adjusted_ci_km2'])} "
          f"{a['error_adjusted_unit'] or ''} (95 % CI)", ""]
    if rep["threshold_sweep"]:
        sw = rep["threshold_sweep"]
        L += [f"## Probability threshold sweep (vs {sw['reference']}, 1 m)", "",
              "| threshold | precision | recall | F1 | IoU |", "|---|---|---|---|---|"]
        L += [f"| {r['threshold']:g} | {_f(r['precision'])} | {_f(r['recall'])} | "
              f"{_f(r['f1'])} | {_f(r['iou'])} |" for r in sw["rows"]]
        L.append("")
    for kind, members in rep["groups"].items():
        L += [f"## Per {kind}", "",
              f"| {kind} | ISA-1 km² | WorldCover km² | truth km² | F1 vs WorldCover | "
              "F1 vs truth (1 m) |", "|---|---|---|---|---|---|"]
        for name, d in members.items():
            L.append(f"| {name} | {_f(d.get('map_isa_km2'))} | {_f(d.get('worldcover_isa_km2'))}"
                     f" | {_f(d.get('truth_isa_km2'))} | "
                     f"{_f((d.get('map_vs_worldcover') or {}).get('f1'))} | "
                     f"{_f((d.get('map_vs_truth_1m') or {}).get('f1'))} |")
        L.append("")
    s = rep["sample"]
    L += ["## Reference sample", "", f"- file: `{s['path']}`, {s['n_points']} points, "
          f"{s['n_labelled']} labelled ({s.get('labels') or 'no labels yet'})"]
    if s.get("design"):
        d = s["design"]
        L += [f"- design: Olofsson et al. (2014) eq. 13 target n = {d['n_target']} "
              f"(target SE {d['target_se']}), floor {d['floor']} per stratum, allocated "
              f"{d['n_allocated']}; minimum spacing {s['min_distance_m']:g} m, seed {s['seed']}",
              "", "| stratum | pixels | allocated | drawn |", "|---|---|---|---|"]
        L += [f"| {t['label']} | {t['pixels']} | {t['n']} | {t['n_drawn']} |"
              for t in d["strata"]]
    est = rep["estimates"]
    L += ["", "## Design-based estimates (Olofsson et al. 2014)", ""]
    if est["status"] != "ok":
        L += [f"Status: **{est['status']}**." + (f" {est['how']}." if est.get("how") else ""),
              ""]
    else:
        if est["simulated"]:
            L += ["Estimates use labels from simulated data: they check the estimator "
                  "pipeline, not the real-world accuracy.", ""]
        L += [f"Reference: {est['reference']}. 95 % confidence intervals.", "",
              "| domain | n | OA | UA (ISA) | PA (ISA) | F1 (ISA) | ISA area |",
              "|---|---|---|---|---|---|---|"]
        doms = [("all", est["all"])] + [(f"{k} {n}", e) for k in ("zone", "city")
                                        for n, e in est.get(k, {}).items()]
        for name, e in doms:
            c = e["classes"]["1"]
            L.append(f"| {name} | {e['n_samples']} | "
                     f"{_pm(e['overall_accuracy'], e['overall_accuracy_ci'])} | "
                     f"{_pm(c['users_accuracy'], c['users_accuracy_ci'])} | "
                     f"{_pm(c['producers_accuracy'], c['producers_accuracy_ci'])} | "
                     f"{_f(c['f1'])} | {_pm(c['area'], c['area_ci'])} {e['area_unit']} |")
        notes = sorted({n for _, e in doms for n in e["notes"]})
        L += ["", *[f"- {n}" for n in notes]]
    L += ["", "## Plots", "", "![confusion](confusion.png)", "", "![per group](cities.png)", "",
          "![agreement with WorldCover](agreement.png)", ""]
    return "\n".join(L)
