"""Build the accuracy report of one ISA map: run the pieces in order, write the files.

See :mod:`jointseg.assess.report` for what the report holds.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jointseg.assess import compare, worldcover
from jointseg.assess.groups import GroupLoader, isa_area_by_group
from jointseg.assess.perclass import ClassTable, default_classes, per_class_rates
from jointseg.assess.rasters import read_grid
from jointseg.assess.report.comparisons import (
    OnGrid,
    comparison_rows,
    group_stats,
    threshold_sweep,
    worldcover_layers,
)
from jointseg.assess.report.inputs import (
    MapInputs,
    any_simulated,
    input_provenance,
    truth_label,
    worldcover_year_for,
)
from jointseg.assess.report.markdown import render_markdown
from jointseg.assess.report.plots import write_plots
from jointseg.assess.report.sample import (
    GroupLayers,
    SampleOptions,
    adjusted_area,
    sample_and_estimates,
)
from jointseg.assess.variance import DEFAULT_INTERVAL
from jointseg.io import atomic_path, write_json
from jointseg.products import NODATA_U8
from jointseg.provenance import raster_provenance as input_provenance_of
from jointseg.provenance import raster_tags

log = logging.getLogger(__name__)

SCHEMA = "jointseg.accuracy_report/1"


class ReportError(RuntimeError):
    """The inputs of a report do not fit together (a missing option, an empty map)."""


def _isa_areas(maps: MapInputs, on_wc: OnGrid, groups: GroupLoader, progress: bool) -> dict:
    """``isa_area`` pieces: the map's areas (whole and per group, km²), the baseline's and
    truth's ISA km², and WorldCover's built-up km² over the pixels compared with the map."""
    areas = isa_area_by_group(maps.map, groups(read_grid(maps.map)[0].crs), progress=progress)
    other_km2 = {f"{n}_km2": (isa_area_by_group(p)["all"]["isa_km2"] if p is not None else None)
                 for n, p in (("baseline", maps.baseline), ("truth", maps.truth))}
    lay = on_wc.layers
    both = (lay["map"] != NODATA_U8) & (lay["worldcover"] != NODATA_U8)
    wc_rows = on_wc.geobox.pixel_area_m2_rows()[:, None] / 1e6
    other_km2["worldcover_km2"] = float(
        np.sum(np.broadcast_to(wc_rows, both.shape)[both & (lay["worldcover"] == 1)]))
    return {"areas": areas, "other_km2": other_km2}


def _estimate_source(inputs: dict[str, dict], truth_path: object, labels_path: object) -> dict:
    """``reference`` and ``simulated`` of the estimates: labels from the truth raster
    (when no labelled file is given) or from a labelled sample."""
    from_truth = truth_path is not None and labels_path is None
    reference = (truth_label(inputs) if from_truth
                 else "labelled sample" if labels_path is not None else None)
    simulated = (from_truth and any_simulated(inputs, "truth")) or any_simulated(inputs, "map")
    return {"reference": reference, "simulated": bool(simulated)}


def _sweep(maps: MapInputs, inputs: dict[str, dict]) -> dict | None:
    """``threshold_sweep`` of ``report.json``: the probability map against the truth."""
    if maps.prob is None or maps.truth is None:
        return None
    return {"reference": truth_label(inputs),
            "simulated": any_simulated(inputs, "prob", "truth"),
            "rows": threshold_sweep(maps.prob, maps.truth)}


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


def _write_outputs(rep: dict, on_wc: OnGrid, out_dir: Path) -> None:
    """Plots, ``report.json``, ``confusion.csv`` and ``report.md`` (fills ``outputs``)."""
    rep["outputs"] = {
        "report.json": "report.json", "report.md": "report.md",
        "confusion.csv": "confusion.csv", "samples.gpkg": "samples.gpkg",
        **write_plots(rep, on_wc, out_dir)}
    write_json(out_dir / "report.json", rep)
    _write_confusion_csv(out_dir / "confusion.csv", rep)
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(render_markdown(rep))


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
    min_distance_m: float = 0.0,
    target_se: float = 0.01,
    floor: int = 50,
    seed: int = 0,
    design: str = "random",
    interval: str = DEFAULT_INTERVAL,
    allow_missing: bool = False,
    progress: bool = False,
    landcover_path: str | os.PathLike | None = None,
    landcover_classes: ClassTable | None = None,
) -> dict:
    """Write the accuracy report of one binary ISA map into ``out_dir``; return its dict.

    Args:
        map_path: binary 1 m ISA map (uint8 1/0, 255 nodata), projected CRS.
        worldcover_source: WorldCover folder / URL / template / single GeoTIFF.
        year: the map's year.
        out_dir: output folder.
        prob_path: ISA probability map (uint8 DN, :func:`jointseg.products.decode_prob`,
            255 nodata): threshold sweep against the truth, provenance.
        worldcover_year: WorldCover year (default ``year`` or the nearest published).
        truth_path: binary reference raster (1 ISA): pixel agreement and sample labels.
        labels_path: a labelled sample (GeoPackage/CSV from ``samples.gpkg``) to
            estimate from instead of drawing a new one.
        cities, city_field: polygon layer of cities and its name attribute.
        zones, zone_field: polygon layer of zones (sampling strata x zone).
        baseline_path: the bilinear baseline's binary map.
        region: region name (default: the map's ``REGION`` tag, else ``"region"``).
        threshold: ISA fraction threshold of the 10 m aggregation.
        min_distance_m, target_se, floor, seed, design: sampling design (see
            :func:`~jointseg.assess.sampling.design_sample`,
            :func:`~jointseg.assess.sampling.draw_sample`).
        interval: confidence interval (:data:`~jointseg.assess.variance.INTERVALS`).
        allow_missing: missing WorldCover tiles count as no data.
        progress: progress bars.
        landcover_path: a land-cover reference raster (class codes): per-class rates
            (:mod:`jointseg.assess.perclass`) for the map and the baseline.
        landcover_classes: its class table (default: :mod:`jointseg.landcover`'s).

    Raises:
        ReportError, CompareError, WorldCoverError, SamplingError, RasterError, GroupError:
        on unusable inputs (messages name the file and the problem).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    maps = MapInputs(map_path, prob_path, truth_path, baseline_path)
    map_geobox, _ = read_grid(map_path)
    if not map_geobox.is_projected:
        raise ReportError(f"{map_path}: CRS {map_geobox.crs} is not projected; "
                          "the report needs a metric (UTM) map")
    region = region or raster_tags(map_path).get("REGION") or "region"
    wc_year, wc_note = (worldcover_year, None) if worldcover_year else worldcover_year_for(year)
    log.info("report %s %s: hashing inputs", region, year)
    lonlat = map_geobox.lonlat_bounds()
    inputs = input_provenance(maps, worldcover_source, wc_year, lonlat)
    simulated_inputs = [k for k, v in inputs.items() if v.get("simulated")]

    log.info("report %s %s: reading WorldCover %d over the map", region, year, wc_year)
    wc = worldcover.read_worldcover_builtup(worldcover_source, wc_year, lonlat,
                                            allow_missing=allow_missing)
    on_wc = worldcover_layers(maps, wc, threshold, progress)
    comparisons, truth_comps = comparison_rows(maps, on_wc, inputs, wc_year, threshold,
                                               f"{region} {year}")
    layers = GroupLayers(cities, city_field, zones, zone_field)
    groups_in = GroupLoader(layers.specs())
    for g in groups_in(map_geobox.crs):
        inputs[f"{g.kind}_polygons"] = g.source
    by_group = group_stats(maps, on_wc, truth_comps, groups_in, progress)
    del truth_comps

    sample, estimates, _ = sample_and_estimates(
        map_path, out_dir / "samples.gpkg", truth_path, labels_path, layers,
        SampleOptions(min_distance_m, target_se, floor, seed, design, interval), progress)
    estimates.update(_estimate_source(inputs, truth_path, labels_path))
    isa = _isa_areas(maps, on_wc, groups_in, progress)
    per_class = None
    if landcover_path is not None:
        log.info("report %s %s: per-class rates against %s", region, year, landcover_path)
        inputs["landcover"] = input_provenance_of(landcover_path)
        per_class = per_class_rates(map_path, landcover_path,
                                    landcover_classes or default_classes(),
                                    baseline_path=baseline_path)
        per_class["simulated"] = any_simulated(inputs, "map", "landcover")

    rep = {
        "schema": SCHEMA,
        "region": region,
        "year": int(year),
        "worldcover_year": wc_year,
        "simulated": bool(simulated_inputs),
        "simulated_inputs": simulated_inputs,
        "inputs": inputs,
        "options": {"threshold": threshold, "design": design,
                    "min_distance_m": min_distance_m, "interval": interval,
                    "target_se": target_se, "floor": floor, "seed": seed,
                    "allow_missing": allow_missing},
        "comparisons": comparisons,
        "isa_area": {"map_km2": isa["areas"]["all"]["isa_km2"],
                     "map_valid_km2": isa["areas"]["all"]["valid_km2"],
                     **isa["other_km2"],
                     "worldcover_area_over": "WorldCover pixels compared with the map",
                     "source": "map", "simulated": any_simulated(inputs, "map"),
                     **adjusted_area(estimates)},
        "groups": by_group,
        "group_isa_area": {k: v for k, v in isa["areas"].items() if k != "all"},
        "sample": sample,
        "estimates": estimates,
        "threshold_sweep": _sweep(maps, inputs),
        "per_class": per_class,
        "notes": [wc_note] if wc_note else [],
        "outputs": {},
    }
    _write_outputs(rep, on_wc, out_dir)
    log.info("report %s %s written to %s", region, year, out_dir)
    return rep
