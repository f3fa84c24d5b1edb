"""The agreements of an accuracy report: layers on one grid, comparison rows, per group.

Every row of ``comparisons`` in ``report.json`` is one product against one reference
on one grid, with the pixel counts and :func:`jointseg.metrics.binary_metrics` scores
(NaN -> null): ISA-1 and the baseline against WorldCover on the WorldCover 10 m grid,
and against the truth on each map's 1 m grid and on the WorldCover grid.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio

from jointseg.assess import compare
from jointseg.assess.agreement import metrics_of
from jointseg.assess.groups import GroupLoader, group_counts, isa_area_by_group
from jointseg.assess.rasters import BLOCK_ROWS, read_grid
from jointseg.assess.report.inputs import MapInputs, any_simulated, truth_label
from jointseg.assess.worldcover import BinaryReference
from jointseg.grid import GeoBox
from jointseg.metrics import BinaryCounts, binary_counts
from jointseg.products import NODATA_U8, decode_prob

log = logging.getLogger(__name__)

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PRODUCT_NAMES = {"map": "ISA-1 (JointSeg)", "baseline": "bilinear baseline"}
#: Map ISA, then each reference layer, are read onto WorldCover's 10 m grid.
WC_LAYERS = ("map", "baseline", "truth")


@dataclass(frozen=True)
class OnGrid:
    """Binary layers (uint8 0/1/255) on one grid, keyed by input name."""

    layers: dict[str, np.ndarray]
    geobox: GeoBox


def binary_on(path: str | os.PathLike, geobox: GeoBox, threshold: float,
              progress: bool) -> np.ndarray:
    """A 1 m binary map on a 10 m-class grid (e.g. WorldCover's): its ISA fraction on the
    map's 10 m grid, averaged onto ``geobox``, binarised at ``threshold`` (uint8 0/1/255)."""
    frac, fgrid = compare.map_fraction(path, 10, progress=progress)
    return compare.binarise(compare.fraction_on_grid(frac, fgrid, geobox), threshold)


def worldcover_layers(maps: MapInputs, wc: BinaryReference, threshold: float,
                      progress: bool) -> OnGrid:
    """WorldCover built-up and every given binary map (map, baseline, truth) on WorldCover's
    grid."""
    layers = {"worldcover": wc.isa}
    for role, path in maps.given(*WC_LAYERS):
        layers[role] = binary_on(path, wc.geobox, threshold, progress)
    return OnGrid(layers, wc.geobox)


@dataclass
class ComparisonRows:
    """The ``comparisons`` rows of a report, with the simulated flag from ``inputs``."""

    inputs: dict[str, dict]
    label: str
    rows: list[dict] = field(default_factory=list)

    def add(self, cid: str, product: str, product_input: str, reference: str,
            reference_input: str, grid: str, counts: BinaryCounts) -> None:
        """Append one row: ids, names, grid, simulated flag, counts and scores."""
        self.rows.append({
            "id": cid, "product": product, "product_input": product_input,
            "reference": reference, "reference_input": reference_input, "grid": grid,
            "simulated": any_simulated(self.inputs, product_input, reference_input),
            **metrics_of(counts)})
        f1 = self.rows[-1]["f1"]
        log.info("report %s: %s F1 %s", self.label, cid, f1 if f1 is None else f"{f1:.4f}")


def comparison_rows(
    maps: MapInputs, on_wc: OnGrid, inputs: dict[str, dict], wc_year: int, threshold: float,
    label: str,
) -> tuple[list[dict], dict[str, compare.Comparison]]:
    """Every agreement row of a report, and the 1 m comparisons with the truth by role.

    Rows: ``<map|baseline>_vs_worldcover`` (WorldCover grid), and with a truth
    ``<map|baseline>_vs_truth_1m`` (each map's grid) and
    ``<map|baseline|worldcover>_vs_truth_10m`` (WorldCover grid).
    """
    out = ComparisonRows(inputs, label)
    lay = on_wc.layers
    wc_name = f"ESA WorldCover {wc_year} built-up"
    wc_grid = f"WorldCover 10 m grid (EPSG:4326, threshold {threshold:g})"
    for name in ("map", "baseline"):
        if name in lay:
            out.add(f"{name}_vs_worldcover", PRODUCT_NAMES[name], name, wc_name, "worldcover",
                    wc_grid, binary_counts(lay[name], lay["worldcover"]))
    truth_comps: dict[str, compare.Comparison] = {}
    if maps.truth is None:
        return out.rows, truth_comps
    truth = truth_label(inputs)
    for name, p in maps.given("map", "baseline"):
        comp = truth_comps[name] = compare.compare_with_binary(p, maps.truth)
        out.add(f"{name}_vs_truth_1m", PRODUCT_NAMES[name], name, truth, "truth",
                f"{name} 1 m grid", comp.counts())
    for name in ("map", "baseline", "worldcover"):
        if name in lay:
            product = (wc_name.replace(" built-up", "") if name == "worldcover"
                       else PRODUCT_NAMES[name])
            out.add(f"{name}_vs_truth_10m", product, name, truth, "truth", wc_grid,
                    binary_counts(lay[name], lay["truth"]))
    return out.rows, truth_comps


def threshold_sweep(prob_path: str | os.PathLike, truth_path: str | os.PathLike,
                    thresholds: Sequence[float] = THRESHOLDS) -> list[dict]:
    """P/R/F1 of the probability map binarised at each threshold against a binary truth.

    The truth is read onto the probability map's grid (nearest); band 1 is decoded with
    :func:`~jointseg.products.decode_prob` (the file's nodata, default 255, -> no data);
    ISA where p >= threshold.
    """
    geobox, pnod = read_grid(prob_path)
    truth, nod = compare.read_on_grid(truth_path, geobox, fill=NODATA_U8)
    ref = compare.classes_to_isa(truth, (1,), [NODATA_U8] + ([nod] if nod is not None else []))
    counts = {t: BinaryCounts(0, 0, 0, 0) for t in thresholds}
    with rasterio.open(prob_path) as ds:
        for win in geobox.row_windows(BLOCK_ROWS):
            p = decode_prob(ds.read(1, window=win), pnod)
            r = ref[win.row_off:win.row_off + win.height]
            for t in thresholds:
                m = np.where(np.isnan(p), NODATA_U8, p >= t - 1e-6).astype(np.uint8)
                counts[t] = counts[t] + binary_counts(m, r)
    return [{"threshold": t, **metrics_of(counts[t])} for t in thresholds]


def group_stats(maps: MapInputs, on_wc: OnGrid, truth_comps: Mapping[str, compare.Comparison],
                groups_in: GroupLoader, progress: bool) -> dict:
    """Per city/zone: agreements (P/R/F1... and areas over the compared pixels) and the
    ISA area of each map on its own grid."""
    groups_wc = groups_in(on_wc.geobox.crs)
    if not groups_wc:
        return {}
    out: dict[str, dict[str, dict]] = {g.kind: {n: {} for n in g.names} for g in groups_wc}

    def put(key: str, stats: dict) -> None:
        for kind, members in stats.items():
            for name, s in members.items():
                out[kind][name][key] = {**metrics_of(s["counts"]),
                                        **{k: v for k, v in s.items() if k != "counts"}}

    lay = on_wc.layers
    pairs = [("map_vs_worldcover", "map", "worldcover"),
             ("baseline_vs_worldcover", "baseline", "worldcover"),
             ("worldcover_vs_truth_10m", "worldcover", "truth")]
    for key, a, b in pairs:
        if a in lay and b in lay:
            put(key, group_counts(lay[a], lay[b], on_wc.geobox, groups_wc))
    for name, comp in truth_comps.items():
        put(f"{name}_vs_truth_1m", group_counts(comp.map_isa, comp.ref_isa, comp.geobox,
                                                groups_in(comp.geobox.crs)))
    for name, p in maps.given("map", "baseline", "truth"):
        areas = isa_area_by_group(p, groups_in(read_grid(p)[0].crs), progress=progress)
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
