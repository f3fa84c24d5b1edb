"""The paper's tables, filled from whatever report and change files a run produced.

Inputs are the ``report.json`` files of :func:`jointseg.assess.report.build.accuracy_report`
(schema ``jointseg.accuracy_report/1``) and the ``change.json`` files of
:func:`jointseg.assess.change.biennial_change` (schema ``jointseg.assess.change/1``).
Tables, in the layout of the paper's:

1. ``table1_products``: product comparison, P/R/F1 (ISA-1, WorldCover and any other
   product, against each reference: the truth, WorldCover, the labelled sample);
2. ``table2_baseline``: JointSeg vs the bilinear baseline, P/R/F1/IoU on the same
   reference and grid, with the F1 gain in points;
3. ``table3_cities``: per-city comparisons;
4. ``table4_isa_area``: ISA area per city per year;
5. ``table5_growth``: growth by region, zone and city between years;

and ``change_accuracy``: F1 of new ISA per period against the reference and the
change sample's new-ISA area (from change files with a reference).

Every row carries ``source`` (the JSON file it came from) and ``simulated``; each
table's caption says what was measured on what. A table without data says "no data
in this run". Numbers are copied, not recomputed, except growth rates from report
areas (:func:`jointseg.assess.change.growth`) when no change file exists.

A set of tables names the **epochs** it holds (the years of its reports and change
files): a line under each Markdown title, an ``epochs`` column in each CSV, and
``index.json``. A folder of tables is never replaced by tables of other epochs
(:func:`write_tables` refuses); the workflow writes one folder per set of years,
``results/paper_tables/<y1>-<y2>-.../``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jointseg.assess.change import growth
from jointseg.assess.otherproducts.table import products_rows
from jointseg.io import atomic_path, write_json

log = logging.getLogger(__name__)

NO_DATA = "no data in this run"
REPORT_SCHEMA = "jointseg.accuracy_report"
CHANGE_SCHEMA = "jointseg.assess.change"
#: Schema of the ``index.json`` of a set of tables.
INDEX_SCHEMA = "jointseg.paper_tables/1"
#: The file stems of the paper's tables, in order (and :data:`CHANGE_ACCURACY_TABLE`).
PAPER_TABLES = ("table1_products", "table2_baseline", "table3_cities", "table4_isa_area",
                "table5_growth")


class TableError(ValueError):
    """An input JSON cannot be read or is not a report/change file."""


@dataclass
class Table:
    """One table: a file stem, a title, a caption stating its data, columns and rows."""

    name: str
    title: str
    caption: str
    columns: list[str]
    rows: list[dict] = field(default_factory=list)
    #: the years of the inputs the table was built from (all of them, not only its rows')
    epochs: list[int] = field(default_factory=list)

    def sources(self) -> list[str]:
        """Distinct ``source`` values of the rows, in order."""
        return list(dict.fromkeys(str(r.get("source")) for r in self.rows))


# ---------------------------------------------------------------------- inputs


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file as a dict with ``_source`` = its path.

    Raises:
        TableError: if it cannot be read or parsed.
    """
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TableError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(d, dict):
        raise TableError(f"{path}: expected a JSON object")
    d["_source"] = str(path)
    return d


def sort_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[dict], list[dict]]:
    """Read JSON files and split them into (reports, changes) by their ``schema`` key.

    Raises:
        TableError: for a file with another or no schema (names the file).
    """
    reports, changes = [], []
    for p in dict.fromkeys(str(p) for p in paths):
        d = read_json(p)
        schema = str(d.get("schema", ""))
        if schema.startswith(REPORT_SCHEMA):
            reports.append(d)
        elif schema.startswith(CHANGE_SCHEMA):
            changes.append(d)
        else:
            raise TableError(f"{p}: schema {schema or 'missing'!r}; expected "
                             f"{REPORT_SCHEMA}/1 (report.json) or {CHANGE_SCHEMA}/1 (change.json)")
    reports.sort(key=lambda r: (str(r.get("region")), int(r.get("year", 0))))
    return reports, changes


def epochs_of(reports: Sequence[Mapping], changes: Sequence[Mapping] = ()) -> list[int]:
    """The years the inputs hold: each report's ``year`` and each change file's ``years``."""
    years = {int(r["year"]) for r in reports if r.get("year") is not None}
    years.update(int(y) for ch in changes for y in ch.get("years", []))
    return sorted(years)


def epochs_label(epochs: Sequence[int]) -> str:
    """``2017-2019-2021-2023``: the name of a set of years (a folder name in the DAG)."""
    return "-".join(str(y) for y in sorted(epochs)) or "none"


# ---------------------------------------------------------------------- tables

METRICS = ("precision", "recall", "f1", "iou")


def _row(rep: Mapping, **kv: object) -> dict:
    return {"region": rep.get("region"), "year": rep.get("year"), **kv}


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
        t.rows += [_row(rep, precision_ci=None, recall_ci=None, **r)
                   for r in products_rows(rep["_source"])]
        for c in rep.get("comparisons", []):
            if c.get("product_input") == "baseline":
                continue
            t.rows.append(_row(rep, product=c["product"], reference=c["reference"],
                               grid=c["grid"], precision=c["precision"], precision_ci=None,
                               recall=c["recall"], recall_ci=None, f1=c["f1"],
                               oa=c.get("oa"), iou=c["iou"], n=c["n_pixels"],
                               simulated=c["simulated"],
                               source=rep["_source"]))
        est = rep.get("estimates", {})
        if est.get("status") == "ok":
            k = est["all"]["classes"]["1"]
            t.rows.append(_row(rep, product="ISA-1 (JointSeg)",
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
                t.rows.append(_row(rep, reference=c["reference"], grid=grid, method=method,
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
                t.rows.append(_row(rep, city=city, product=c["product"],
                                   reference=c["reference"], grid=c["grid"],
                                   **{k: g[k] for k in METRICS},
                                   product_isa_km2=g["map_isa_km2"],
                                   reference_isa_km2=g["ref_isa_km2"],
                                   simulated=c["simulated"], source=rep["_source"]))
    return t


def area_table(reports: Sequence[Mapping], changes: Sequence[Mapping]) -> Table:
    """Table 4: ISA area per city (and whole region) per year."""
    cols = ["region", "city", "year", "isa1_km2", "isa1_error_adjusted_km2",
            "isa1_error_adjusted_ci_km2", "worldcover_km2", "truth_km2", "method",
            "simulated", "source"]
    t = Table("table4_isa_area", "Table 4. ISA area per city per year (km²)",
              "isa1_km2 = ISA-1 pixel count x pixel area; from accuracy reports (method "
              "'map pixel count', with the sample's error-adjusted area when there is one; "
              "WorldCover over the 10 m pixels compared with the map) and from change files "
              "(method 'change', after the temporal-consistency rule when applied; the "
              "error-adjusted area ± 95 % CI from that year's stratified sample, empty when "
              "the year had none: pixel count only).", cols)
    for rep in reports:
        a = rep["isa_area"]
        est = rep.get("estimates", {})
        t.rows.append(_row(rep, city="(whole region)", isa1_km2=a["map_km2"],
                           isa1_error_adjusted_km2=a.get("error_adjusted_km2"),
                           isa1_error_adjusted_ci_km2=a.get("error_adjusted_ci_km2"),
                           worldcover_km2=a.get("worldcover_km2"), truth_km2=a.get("truth_km2"),
                           method="map pixel count", simulated=rep["simulated"],
                           source=rep["_source"]))
        for city, d in rep.get("groups", {}).get("city", {}).items():
            ce = est.get("city", {}).get(city) if est.get("status") == "ok" else None
            k = ce["classes"]["1"] if ce else {}
            t.rows.append(_row(rep, city=city, isa1_km2=d.get("map_isa_km2"),
                               isa1_error_adjusted_km2=k.get("area"),
                               isa1_error_adjusted_ci_km2=k.get("area_ci"),
                               worldcover_km2=d.get("worldcover_isa_km2"),
                               truth_km2=d.get("truth_isa_km2"), method="map pixel count",
                               simulated=rep["simulated"], source=rep["_source"]))
    for ch in changes:
        method = _change_method(ch)
        for kind, label in (("region", "(whole region)"), ("city", None)):
            for name, g in ch["groups"].get(kind, {}).items():
                for year, a in g["areas"].items():
                    t.rows.append({"region": ch["region"], "city": label or name,
                                   "year": int(year), "isa1_km2": a["isa_km2"],
                                   "isa1_error_adjusted_km2": a.get("isa_km2_adjusted"),
                                   "isa1_error_adjusted_ci_km2": a.get("isa_km2_adjusted_ci"),
                                   "worldcover_km2": None, "truth_km2": None,
                                   "method": method,
                                   "simulated": ch["simulated"], "source": ch["_source"]})
    return t


def _change_method(ch: Mapping) -> str:
    """``method`` of a change file's rows: ``change`` or ``change (<temporal method>)``."""
    cons = ch["consistency"]
    return f"change ({cons.get('method', 'carry')})" if cons["applied"] else "change"


def _sample_growth(ch: Mapping, y0: int, y1: int) -> dict:
    """Error-adjusted growth of a period from the change sample (net growth ± CI, new ISA
    ± CI, km²), or empty values when the change file has no estimate for it."""
    smp = ch.get("change_sample") or {}
    e = (smp.get("periods") or {}).get(f"{y0}-{y1}") if smp.get("status") == "ok" else None
    if not e:
        return dict.fromkeys(GROWTH_ADJUSTED)
    return {"abs_km2_adjusted": e["net_growth_km2"], "abs_km2_adjusted_ci": e["net_growth_ci_km2"],
            "new_isa_km2_adjusted": e["new_isa_km2"],
            "new_isa_km2_adjusted_ci": e["new_isa_ci_km2"]}


def _report_growth(a0: Mapping | None, a1: Mapping | None) -> dict:
    """Growth from two years' error-adjusted areas of independent samples: A1 - A0 ±
    sqrt(ci0² + ci1²) (95 % half-widths add in quadrature)."""
    if not a0 or not a1 or a0.get("area") is None or a1.get("area") is None:
        return dict.fromkeys(GROWTH_ADJUSTED)
    return {"abs_km2_adjusted": a1["area"] - a0["area"],
            "abs_km2_adjusted_ci": (a0["ci"] ** 2 + a1["ci"] ** 2) ** 0.5,
            "new_isa_km2_adjusted": None, "new_isa_km2_adjusted_ci": None}


GROWTH_ADJUSTED = ("abs_km2_adjusted", "abs_km2_adjusted_ci", "new_isa_km2_adjusted",
                   "new_isa_km2_adjusted_ci")


def growth_table(reports: Sequence[Mapping], changes: Sequence[Mapping]) -> Table:
    """Table 5: growth of ISA area by region, zone and city between years."""
    cols = ["region", "group_kind", "group", "from", "to", "years", "isa_km2_from",
            "isa_km2_to", "abs_km2", "total_pct", "annual_pct", *GROWTH_ADJUSTED,
            "adjusted_method", "method", "simulated", "source"]
    t = Table("table5_growth", "Table 5. ISA growth by region and zone",
              "Absolute growth (km²) and annualised growth ((A1/A0)^(1/years) - 1, %) between "
              "years of the mapped areas: from change files when present (method 'change'), "
              "otherwise from the ISA-1 areas of the accuracy reports of several years of one "
              "region. abs_km2_adjusted ± 95 % CI: error-adjusted growth; for the whole "
              "region from the change file's stratified change sample (net growth = new "
              "minus lost ISA, and new ISA, Olofsson et al. 2014 estimates per period), "
              "otherwise the difference of two years' error-adjusted areas (independent "
              "samples: CIs added in quadrature).", cols)
    for ch in changes:
        method = _change_method(ch)
        for kind in ("region", "zone", "city"):
            for name, g in ch["groups"].get(kind, {}).items():
                for s in g["growth"]:
                    adj = _sample_growth(ch, s["from"], s["to"]) if kind == "region" else {}
                    how = "change sample" if adj.get("abs_km2_adjusted") is not None else None
                    if how is None:
                        ar = {y: {"area": a.get("isa_km2_adjusted"),
                                  "ci": a.get("isa_km2_adjusted_ci")}
                              for y, a in g["areas"].items()}
                        adj = _report_growth(ar.get(str(s["from"])), ar.get(str(s["to"])))
                        how = ("difference of yearly error-adjusted areas"
                               if adj["abs_km2_adjusted"] is not None else None)
                    t.rows.append({"region": ch["region"], "group_kind": kind, "group": name,
                                   **{k: s[k] for k in ("from", "to", "years", "isa_km2_from",
                                                        "isa_km2_to", "abs_km2", "total_pct",
                                                        "annual_pct")},
                                   **{k: adj.get(k) for k in GROWTH_ADJUSTED},
                                   "adjusted_method": how,
                                   "method": method, "simulated": ch["simulated"],
                                   "source": ch["_source"]})
    if changes:
        return t
    by_region: dict[str, list[Mapping]] = {}
    for rep in reports:
        by_region.setdefault(str(rep.get("region")), []).append(rep)
    for region, reps in by_region.items():
        years = {int(r["year"]): r for r in reps}
        if len(years) < 2:
            continue
        series = {("region", region): {y: r["isa_area"]["map_km2"] for y, r in years.items()}}
        adjusted = {y: {"area": r["isa_area"].get("error_adjusted_km2"),
                        "ci": r["isa_area"].get("error_adjusted_ci_km2")}
                    for y, r in years.items()}
        for kind in ("zone", "city"):
            for y, r in years.items():
                for name, a in r.get("group_isa_area", {}).get(kind, {}).items():
                    series.setdefault((kind, name), {})[y] = a["isa_km2"]
        src = ";".join(years[y]["_source"] for y in sorted(years))
        sim = any(r["simulated"] for r in reps)
        for (kind, name), areas in series.items():
            for s in growth(areas):
                adj = (_report_growth(adjusted.get(s["from"]), adjusted.get(s["to"]))
                       if kind == "region" else dict.fromkeys(GROWTH_ADJUSTED))
                t.rows.append({"region": region, "group_kind": kind, "group": name, **s,
                               **adj, "adjusted_method": "difference of yearly "
                               "error-adjusted areas" if adj["abs_km2_adjusted"] is not None
                               else None,
                               "method": "accuracy reports (map pixel count)",
                               "simulated": sim, "source": src})
    return t


CHANGE_ACCURACY_TABLE = "change_accuracy"


def change_accuracy_table(changes: Sequence[Mapping]) -> Table:
    """Change accuracy per region and period: new-ISA precision / recall / F1 and the
    change sample's error-adjusted new-ISA area."""
    cols = ["region", "period", "method", "precision", "recall", "f1", "f1_without_rule",
            "map_new_isa_km2", "reference_new_isa_km2", "sample_new_isa_km2",
            "sample_new_isa_ci_km2", "sample_n", "consistency_changed_pixels", "simulated",
            "source"]
    t = Table(CHANGE_ACCURACY_TABLE, "Change accuracy: new ISA per period",
              "Agreement of the map's new ISA (non-ISA -> ISA) with the reference's per period "
              "(pixel counts on the map grid); method = the temporal method (change.method); "
              "f1_without_rule = the same on the yearly maps as they are. "
              "sample_new_isa_km2 ± CI: Olofsson et al. (2014) error-adjusted area of new ISA "
              "of the period from the stratified change sample (strata = map trajectories).",
              cols)
    for ch in changes:
        acc, cons, smp = ch.get("change_accuracy"), ch["consistency"], ch.get("change_sample", {})
        if not acc:
            continue
        per = (smp.get("periods") or {}) if smp.get("status") == "ok" else {}
        for period, e in acc["periods"].items():
            se = per.get(period) or {}
            t.rows.append({"region": ch["region"], "period": period,
                           "method": cons.get("method"),
                           **{k: e[k] for k in ("precision", "recall", "f1", "map_new_isa_km2",
                                                "reference_new_isa_km2")},
                           "f1_without_rule": (cons.get("new_isa_f1") or {}).get(
                               period, {}).get("without_rule"),
                           "sample_new_isa_km2": se.get("new_isa_km2"),
                           "sample_new_isa_ci_km2": se.get("new_isa_ci_km2"),
                           "sample_n": smp.get("n_labelled") if se else None,
                           "consistency_changed_pixels": cons.get("changed_pixels_total"),
                           "simulated": ch["simulated"], "source": ch["_source"]})
    return t


def build_tables(reports: Sequence[Mapping], changes: Sequence[Mapping] = ()) -> list[Table]:
    """The five paper tables and the change-accuracy table (a table may have no rows),
    each naming the epochs of all the inputs (:func:`epochs_of`)."""
    tables = [products_table(reports), baseline_table(reports), cities_table(reports),
              area_table(reports, changes), growth_table(reports, changes),
              change_accuracy_table(changes)]
    epochs = epochs_of(reports, changes)
    for t in tables:
        t.epochs = epochs
    return tables


# ---------------------------------------------------------------------- output


def _csv_value(v: object) -> object:
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else v


def _md_value(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def epochs_line(epochs: Sequence[int]) -> str:
    """The line that names a table's epochs."""
    return (f"Epochs: {', '.join(str(y) for y in epochs)} (the years of this run's reports "
            "and change files)." if epochs else "Epochs: none (no report or change file).")


def table_markdown(t: Table) -> str:
    """A table as Markdown: title, epochs, caption, sources, rows (or "no data in this
    run")."""
    lines = [f"## {t.title}", "", f"**{epochs_line(t.epochs)}**", "", t.caption, ""]
    if not t.rows:
        return "\n".join(lines + [f"*{NO_DATA}.*", ""])
    if any(r.get("simulated") for r in t.rows):
        lines += ["**Rows with simulated = True come from simulated data: they are not "
                  "real-world accuracy.**", ""]
    cols = [c for c in t.columns if c != "source"]
    lines += ["| " + " | ".join(cols) + " | source |", "|" + "---|" * (len(cols) + 1)]
    for r in t.rows:
        src = str(r.get("source", ""))
        lines.append("| " + " | ".join(_md_value(r.get(c)) for c in cols)
                     + f" | `{src}` |")
    return "\n".join(lines + [""])


def _change_links(changes: Sequence[Mapping], out_dir: Path) -> list[str]:
    """``index.md`` lines linking each region's change report and plots."""
    lines = []
    for ch in changes:
        files = {"change report": str(Path(ch["_source"]).with_name("change.md")),
                 **ch.get("plots", {})}
        lines.append(f"- {ch['region']} {ch['years'][0]}-{ch['years'][-1]}"
                     + (" (simulated)" if ch["simulated"] else "") + ": "
                     + ", ".join(f"[{k}]({os.path.relpath(v, out_dir)})"
                                 for k, v in files.items()))
    return ["", "## Change reports and plots", "", *lines] if lines else []


def check_epochs(out_dir: Path, epochs: Sequence[int]) -> None:
    """Refuse to write tables of ``epochs`` over a folder holding tables of other epochs.

    Raises:
        TableError: naming both sets of years, when ``out_dir/index.json`` names others.
    """
    index = out_dir / "index.json"
    if not index.exists():
        return
    try:
        held = [int(y) for y in json.loads(index.read_text())["epochs"]]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TableError(f"{index}: cannot read the epochs of the tables there ({exc}); "
                         "write to another folder or remove it") from exc
    if sorted(held) != sorted(epochs):
        raise TableError(f"{out_dir} holds the paper tables of {epochs_label(held)}; these "
                         f"inputs are of {epochs_label(epochs)}: write them to another folder "
                         f"(e.g. {out_dir.parent / epochs_label(epochs)})")


def _index_json(tables: Sequence[Table], epochs: Sequence[int]) -> dict:
    """``index.json``: the epochs, regions and every table's rows, files and sources."""
    regions = sorted({str(r["region"]) for t in tables for r in t.rows if r.get("region")})
    return {"schema": INDEX_SCHEMA, "epochs": list(epochs), "regions": regions,
            "simulated": any(r.get("simulated") for t in tables for r in t.rows),
            "tables": [{"name": t.name, "title": t.title, "epochs": list(t.epochs),
                        "rows": len(t.rows), "files": [f"{t.name}.csv", f"{t.name}.md"],
                        "sources": t.sources() if t.rows else []} for t in tables]}


def write_tables(tables: Sequence[Table], out_dir: str | os.PathLike,
                 changes: Sequence[Mapping] = ()) -> list[Path]:
    """Write ``<name>.csv`` and ``<name>.md`` per table, ``index.md`` and ``index.json``,
    atomically.

    CSV floats are written with full precision (``repr``); empty cells are None; each
    row's ``epochs`` names the years of the inputs (``2017 2019``). ``index.md`` links the
    change reports and plots of ``changes``; ``index.json`` (:data:`INDEX_SCHEMA`)
    names the epochs, regions and each table's rows and sources.

    Raises:
        TableError: when ``out_dir`` holds tables of other epochs (:func:`check_epochs`).
    """
    out_dir = Path(out_dir)
    epochs = sorted({y for t in tables for y in t.epochs})
    check_epochs(out_dir, epochs)
    written = []
    index = [f"# Paper tables: {epochs_label(epochs)}", "", epochs_line(epochs), "",
             "Reproduced from this run's data; each table names the files it came from.", ""]
    for t in tables:
        buf = io.StringIO()
        cols = [*t.columns, "epochs"]
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in t.rows:
            w.writerow({**{c: _csv_value(r.get(c)) for c in t.columns},
                        "epochs": " ".join(str(y) for y in t.epochs)})
        with atomic_path(out_dir / f"{t.name}.csv") as tmp:
            tmp.write_text(buf.getvalue())
        with atomic_path(out_dir / f"{t.name}.md") as tmp:
            tmp.write_text(table_markdown(t))
        written += [out_dir / f"{t.name}.csv", out_dir / f"{t.name}.md"]
        sim = any(r.get("simulated") for r in t.rows)
        index += [f"- [{t.title}]({t.name}.md) ([csv]({t.name}.csv)): "
                  + (f"{len(t.rows)} rows" if t.rows else NO_DATA)
                  + (" — includes simulated data" if sim else ""),
                  *[f"  - source: `{s}`" for s in t.sources()]]
        log.info("table %s: %d rows", t.name, len(t.rows))
    index += _change_links(changes, out_dir)
    with atomic_path(out_dir / "index.md") as tmp:
        tmp.write_text("\n".join(index) + "\n")
    write_json(out_dir / "index.json", _index_json(tables, epochs))
    return [*written, out_dir / "index.md", out_dir / "index.json"]
