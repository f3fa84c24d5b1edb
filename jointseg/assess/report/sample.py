"""The reference sample of an accuracy report and the design-based estimates made from it.

Without a labelled file a stratified probability sample is drawn on the map
(:mod:`jointseg.assess.sampling`, design ``random`` or ``spread``), labelled from the
truth raster when there is one, and written as ``samples.gpkg``; with a labelled file
that file is used. The ``sample`` block says in one line whether every stratum reached
its allocation (``allocation``). Estimates (:mod:`jointseg.assess.labels`) are made
only when every stratum with mapped pixels has a labelled unit, with the interval of
:data:`jointseg.assess.variance.INTERVALS` named in ``interval``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd

from jointseg.assess import labels, sampling
from jointseg.assess.rasters import read_grid
from jointseg.assess.variance import DEFAULT_INTERVAL

log = logging.getLogger(__name__)

AWAITING = {"status": "awaiting reference labels",
            "how": "fill column `reference` (1 ISA, 0 not) of samples.gpkg, then "
                   "rerun with --labels samples.gpkg"}


@dataclass(frozen=True)
class SampleOptions:
    """The sampling design of a report (see :func:`~jointseg.assess.sampling.design_sample`
    and :func:`~jointseg.assess.sampling.draw_sample`).

    Attributes:
        min_distance_m: cell side (m) of the ``spread`` design.
        target_se: target standard error of overall accuracy (eq. 13).
        floor: minimum units per stratum.
        seed: random seed of the draw.
        design: ``random`` or ``spread`` (:data:`~jointseg.assess.sampling.DESIGNS`).
        interval: confidence interval (:data:`~jointseg.assess.variance.INTERVALS`).
    """

    min_distance_m: float = 0.0
    target_se: float = 0.01
    floor: int = 50
    seed: int = 0
    design: str = "random"
    interval: str = DEFAULT_INTERVAL


@dataclass(frozen=True)
class GroupLayers:
    """The polygon layers of a report: cities (name field) and zones (zone field)."""

    cities: str | os.PathLike | None = None
    city_field: str = "name"
    zones: str | os.PathLike | None = None
    zone_field: str = "zone"

    def specs(self) -> list[tuple[object, str, str]]:
        """(layer, field, kind) of the given layers (for
        :class:`~jointseg.assess.groups.GroupLoader`)."""
        return [(layer, f, kind) for layer, f, kind in
                ((self.cities, self.city_field, "city"), (self.zones, self.zone_field, "zone"))
                if layer is not None]


def _points(map_path: str | os.PathLike, truth_path: str | os.PathLike | None,
            labels_path: str | os.PathLike | None, groups: GroupLayers, opts: SampleOptions,
            progress: bool) -> tuple[dict, gpd.GeoDataFrame]:
    """The ``sample`` block of ``report.json`` and its points: read or drawn (and labelled)."""
    if labels_path is not None:
        pts = labels.read_labels(labels_path)
        if not isinstance(pts, gpd.GeoDataFrame) or pts.crs is None:
            pts = gpd.GeoDataFrame(pts.drop(columns="geometry", errors="ignore"),
                                   geometry=gpd.points_from_xy(pts["x"], pts["y"]),
                                   crs=read_grid(map_path)[0].crs)
        return {"source": "labels", "labels": str(labels_path)}, pts
    design = sampling.design_sample(map_path, zones=groups.zones, zone_field=groups.zone_field,
                                    target_se=opts.target_se, floor=opts.floor)
    pts = sampling.draw_sample(map_path, design, method=opts.design,
                               min_distance_m=opts.min_distance_m, seed=opts.seed,
                               progress=progress)
    if truth_path is not None:
        pts = labels.label_from_raster(pts, truth_path)
    d = design.to_dict()
    got = pts.groupby("stratum").size().to_dict() if len(pts) else {}
    for s in d["strata"]:
        s["n_drawn"] = int(got.get(s["label"], 0))
    return {"source": "drawn", "design": d, "method": opts.design,
            "method_description": sampling.DESIGNS[opts.design],
            "min_distance_m": opts.min_distance_m if opts.design == "spread" else None,
            "allocation": allocation_line(d),
            "seed": opts.seed, "labels": "truth raster" if truth_path is not None else None}, pts


def allocation_line(design: Mapping) -> str:
    """One line: every stratum reached its allocation, or which did not and why."""
    short = [t for t in design["strata"] if t["n_drawn"] < max(t["n"], 1)]
    census = [t for t in design["strata"] if t["n"] < design["floor"] and t["n"] == t["pixels"]]
    if short:
        return "allocation not reached: " + "; ".join(
            f"stratum {t['label']} {t['n_drawn']} of {t['n']}" for t in short)
    if census:
        return ("every stratum reached its allocation; " + "; ".join(
            f"stratum {t['label']} holds only {t['pixels']} pixels (< floor "
            f"{design['floor']}): all taken" for t in census))
    return "every stratum reached its allocation"


def _empty_strata(sample: Mapping, pts: gpd.GeoDataFrame) -> list[str]:
    """Strata of a drawn design with mapped pixels but no labelled unit (the estimators
    would silently drop their area)."""
    if not sample.get("design"):
        return []
    labelled = pts[pts["reference"].notna()].groupby("stratum").size().to_dict()
    return [t["label"] for t in sample["design"]["strata"]
            if t["pixels"] > 0 and labelled.get(t["label"], 0) == 0]


def _estimates(pts: gpd.GeoDataFrame, groups: GroupLayers, interval: str) -> dict:
    """``estimates`` of ``report.json``: ``all``, per zone and per city, or why not."""
    est: dict = {"status": "ok"}
    try:
        by_zone = labels.estimate_from_labels(pts, group_column="zone" if groups.zones else None,
                                              interval=interval)
        est["all"] = by_zone.pop("all").to_dict()
        est["zone"] = {k: v.to_dict() for k, v in by_zone.items()}
        if groups.cities is not None:
            by_city = labels.estimate_from_labels(pts, group_column="city", interval=interval)
            by_city.pop("all")
            est["city"] = {k: v.to_dict() for k, v in by_city.items()}
    except ValueError as exc:  # SamplingError too: e.g. a stratum without units
        log.warning("estimates not possible: %s", exc)
        est = {"status": f"not estimable: {exc}"}
    return est


def sample_and_estimates(
    map_path: str | os.PathLike, gpkg_path: Path, truth_path: str | os.PathLike | None,
    labels_path: str | os.PathLike | None, groups: GroupLayers, opts: SampleOptions,
    progress: bool = False,
) -> tuple[dict, dict, gpd.GeoDataFrame]:
    """Draw (or read) the reference sample, label it, write it to ``gpkg_path``, estimate.

    Returns the ``sample`` and ``estimates`` blocks of ``report.json`` and the points.
    """
    sample, pts = _points(map_path, truth_path, labels_path, groups, opts, progress)
    if groups.cities is not None and len(pts):
        pts = labels.assign_groups(pts, groups.cities, groups.city_field, column="city")
    sampling.write_sample(gpkg_path, pts)
    sample["path"] = gpkg_path.name
    sample["n_points"] = int(len(pts))
    has_ref = "reference" in pts.columns and bool(pts["reference"].notna().any())
    sample["n_labelled"] = int(pts["reference"].notna().sum()) if has_ref else 0
    if not has_ref:
        return sample, dict(AWAITING), pts
    empty = _empty_strata(sample, pts)
    if empty:
        msg = (f"not estimable: strata {empty} have mapped pixels but no labelled sample "
               "unit (label them, or draw the sample again)")
        log.warning(msg)
        return sample, {"status": msg}, pts
    return sample, _estimates(pts, groups, opts.interval), pts


def adjusted_area(estimates: Mapping) -> dict:
    """Error-adjusted ISA area ± 95 % CI (km²) from the ``all`` estimate, or None."""
    if estimates.get("status") != "ok":
        return {"error_adjusted_km2": None, "error_adjusted_ci_km2": None,
                "error_adjusted_unit": None}
    c = estimates["all"]["classes"]["1"]
    return {"error_adjusted_km2": c["area"], "error_adjusted_ci_km2": c["area_ci"],
            "error_adjusted_unit": estimates["all"]["area_unit"]}
