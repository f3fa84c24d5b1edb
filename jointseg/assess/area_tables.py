"""Tables 4-5 of the paper and the change-accuracy table, from accuracy reports and
change files: ISA area per city per year, growth between years, accuracy of new ISA.

4. :func:`area_table`: ISA area per city per year;
5. :func:`growth_table`: growth by region, zone and city between years;

and :func:`change_accuracy_table` (``change_accuracy``): F1 of new ISA per period against
the reference and the change sample's new-ISA area (from change files with a reference).

Numbers are copied from the ``report.json`` and ``change.json`` files, except growth
rates from report areas (:func:`jointseg.assess.change.growth`) when no change file
exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jointseg.assess.change import growth
from jointseg.assess.table import Table, report_row

GROWTH_ADJUSTED = ("abs_km2_adjusted", "abs_km2_adjusted_ci", "new_isa_km2_adjusted",
                   "new_isa_km2_adjusted_ci")


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
        t.rows.append(report_row(rep, city="(whole region)", isa1_km2=a["map_km2"],
                                 isa1_error_adjusted_km2=a.get("error_adjusted_km2"),
                                 isa1_error_adjusted_ci_km2=a.get("error_adjusted_ci_km2"),
                                 worldcover_km2=a.get("worldcover_km2"),
                                 truth_km2=a.get("truth_km2"),
                                 method="map pixel count", simulated=rep["simulated"],
                                 source=rep["_source"]))
        for city, d in rep.get("groups", {}).get("city", {}).items():
            ce = est.get("city", {}).get(city) if est.get("status") == "ok" else None
            k = ce["classes"]["1"] if ce else {}
            t.rows.append(report_row(rep, city=city, isa1_km2=d.get("map_isa_km2"),
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
