"""Tables 1-3 of the paper, from accuracy reports: products, JointSeg vs the baseline,
and per-city comparisons.

1. :func:`products_table`: product comparison, P/R/F1 (ISA-1, WorldCover and any other
   product, against each reference: the truth, WorldCover, the labelled sample);
2. :func:`baseline_table`: JointSeg vs the bilinear baseline, P/R/F1/IoU on the same
   reference and grid, with the F1 gain in points;
3. :func:`cities_table`: per-city comparisons.

Numbers are copied from the ``report.json`` files (``_source`` = their path, as
:func:`jointseg.assess.tables.read_json` reads them), not recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jointseg.assess.otherproducts.table import products_rows
from jointseg.assess.table import Table, report_row

METRICS = ("precision", "recall", "f1", "iou")


def products_table(reports: Sequence[Mapping]) -> Table:
    """Table 1: every product (not the baseline) against every reference, with the other
    ISA products of the products.json beside each report (:mod:`jointseg.assess.otherproducts`)."""
    cols = ["region", "year", "product", "reference", "grid", "precision", "precision_ci",
            "recall", "recall_ci", "f1", "oa", "iou", "n", "f1_gain_points", "simulated",
            "source"]
    t = Table("table1_products", "Table 1. Product comparison (precision, recall, F1)",
              "Agreement of each product with the reference of its row, from pixel counts on "
              "the grid named (ISA-1 aggregated to 10 m for the WorldCover grid), and "
              "design-based estimates from the stratified sample (with 95 % CI half-widths). "
              "Other ISA products (GAIA, GISA-10m, WSF 2019, ESRI LC, Dynamic World, "
              "GHS-BUILT-S) are compared with ISA-1 on the same 10 m pixels; f1_gain_points = "
              "100 x (F1 ISA-1 - F1 product) on those pixels. "
              "Rows with simulated = True are measured on simulated data (in the demo the "
              "other products are simulated stand-ins), not real-world accuracy.", cols)
    for rep in reports:
        t.rows += [report_row(rep, precision_ci=None, recall_ci=None, **r)
                   for r in products_rows(rep["_source"])]
        for c in rep.get("comparisons", []):
            if c.get("product_input") == "baseline":
                continue
            t.rows.append(report_row(rep, product=c["product"], reference=c["reference"],
                                     grid=c["grid"], precision=c["precision"], precision_ci=None,
                                     recall=c["recall"], recall_ci=None, f1=c["f1"],
                                     oa=c.get("oa"), iou=c["iou"], n=c["n_pixels"],
                                     simulated=c["simulated"],
                                     source=rep["_source"]))
        est = rep.get("estimates", {})
        if est.get("status") == "ok":
            k = est["all"]["classes"]["1"]
            t.rows.append(report_row(rep, product="ISA-1 (JointSeg)",
                                     reference=f"{est['reference']} (stratified sample)",
                                     grid="sample points (Olofsson estimates)",
                                     precision=k["users_accuracy"],
                                     precision_ci=k["users_accuracy_ci"],
                                     recall=k["producers_accuracy"],
                                     recall_ci=k["producers_accuracy_ci"], f1=k["f1"], iou=None,
                                     n=est["all"]["n_samples"], simulated=est["simulated"],
                                     source=rep["_source"]))
    return t


def baseline_table(reports: Sequence[Mapping]) -> Table:
    """Table 2: JointSeg vs the bilinear baseline on the same reference and grid."""
    cols = ["region", "year", "reference", "grid", "method", *METRICS,
            "f1_gain_points", "simulated", "source"]
    t = Table("table2_baseline", "Table 2. JointSeg vs bilinear-upsample segmentation",
              "Both maps against the same reference on the same kind of grid (1 m: each map's "
              "own grid; 10 m: the WorldCover grid). f1_gain_points = 100 x (F1 JointSeg - "
              "F1 baseline).", cols)
    for rep in reports:
        by_id = {c["id"]: c for c in rep.get("comparisons", [])}
        for cid, b in by_id.items():
            if not cid.startswith("baseline_vs_"):
                continue
            m = by_id.get("map_vs_" + cid.removeprefix("baseline_vs_"))
            if m is None:
                continue
            gain = None if m["f1"] is None or b["f1"] is None else 100 * (m["f1"] - b["f1"])
            grid = m["grid"].replace("map 1 m grid", "1 m (each map's grid)")
            for c, method, g in ((m, "JointSeg (ISA-1)", gain), (b, "bilinear baseline", None)):
                t.rows.append(report_row(rep, reference=c["reference"], grid=grid, method=method,
                                         **{k: c[k] for k in METRICS}, f1_gain_points=g,
                                         simulated=c["simulated"], source=rep["_source"]))
    return t


GROUP_KEYS = {
    "map_vs_worldcover": ("map_vs_worldcover", "map_isa_km2"),
    "baseline_vs_worldcover": ("baseline_vs_worldcover", None),
    "map_vs_truth_1m": ("map_vs_truth_1m", None),
    "baseline_vs_truth_1m": ("baseline_vs_truth_1m", None),
    "worldcover_vs_truth_10m": ("worldcover_vs_truth_10m", None),
}


def cities_table(reports: Sequence[Mapping]) -> Table:
    """Table 3: per-city comparisons of each product with each reference."""
    cols = ["region", "year", "city", "product", "reference", "grid", *METRICS,
            "product_isa_km2", "reference_isa_km2", "simulated", "source"]
    t = Table("table3_cities", "Table 3. Per-city comparison",
              "Per city polygon: agreement of each product with each reference (pixel counts "
              "inside the city), with the ISA areas both give over the compared pixels.", cols)
    for rep in reports:
        by_id = {c["id"]: c for c in rep.get("comparisons", [])}
        for city, d in rep.get("groups", {}).get("city", {}).items():
            for key in GROUP_KEYS:
                if key not in d or key not in by_id:
                    continue
                g, c = d[key], by_id[key]
                t.rows.append(report_row(rep, city=city, product=c["product"],
                                         reference=c["reference"], grid=c["grid"],
                                         **{k: g[k] for k in METRICS},
                                         product_isa_km2=g["map_isa_km2"],
                                         reference_isa_km2=g["ref_isa_km2"],
                                         simulated=c["simulated"], source=rep["_source"]))
    return t

