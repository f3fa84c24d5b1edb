"""``report.md``: the human-readable accuracy report, rendered from the report dict.

Sections: the simulated-data banner (when any input is simulated), inputs, pixel
agreement, ISA area, threshold sweep, per city / zone, the reference sample and the
design-based estimates with 95 % CIs, and the plots.
"""

from __future__ import annotations

from collections.abc import Mapping

from jointseg.assess.perclass import markdown_table

SIMULATED_BANNER = (
    "> **SIMULATED DATA.** Inputs marked simulated below (tag `JOINTSEG_SIMULATED=true`) "
    "come from the project's simulator. Every figure computed from them measures the "
    "method on synthetic scenes; it is **not** a real-world accuracy of ISA-1."
)


def _f(v: object, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pm(v: object, ci: object, digits: int = 4) -> str:
    return "n/a" if v is None else f"{_f(v, digits)} ± {_f(ci, digits)}"


def _inputs(rep: Mapping) -> list[str]:
    L = ["## Inputs", "", "| input | path | sha256 | simulated |", "|---|---|---|---|"]
    for name, d in rep["inputs"].items():
        if name == "worldcover":
            for f in d["files"]:
                L.append(f"| worldcover {d['year']} | `{f['path']}` | "
                         f"{f.get('sha256', 'n/a')[:16]} | {f.get('simulated', False)} |")
        else:
            L.append(f"| {name} | `{d['path']}` | {str(d.get('sha256', 'n/a'))[:16]} | "
                     f"{d.get('simulated', False)} |")
    return L + ["", *[f"- note: {n}" for n in rep["notes"]], ""]


def _agreement(rep: Mapping) -> list[str]:
    L = ["## Agreement (pixel counts)", "",
         "Agreement of two rasters pixel by pixel; not a design-based accuracy estimate "
         "(the reference has errors of its own, pixels are not a probability sample). "
         "Precision = user's accuracy of ISA, recall = producer's accuracy of ISA.", "",
         "| product | reference | grid | precision | recall | F1 | OA | kappa | IoU | pixels "
         "| simulated |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in rep["comparisons"]:
        L.append(f"| {c['product']} | {c['reference']} | {c['grid']} | {_f(c['precision'])} | "
                 f"{_f(c['recall'])} | {_f(c['f1'])} | {_f(c['oa'])} | {_f(c['kappa'])} | "
                 f"{_f(c['iou'])} | {c['n_pixels']} | {c['simulated']} |")
    return L


def _area(rep: Mapping) -> list[str]:
    a = rep["isa_area"]
    return [
        "", "## ISA area", "",
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


def _sweep(rep: Mapping) -> list[str]:
    sw = rep["threshold_sweep"]
    if not sw:
        return []
    L = [f"## Probability threshold sweep (vs {sw['reference']}, 1 m)", "",
         "| threshold | precision | recall | F1 | IoU |", "|---|---|---|---|---|"]
    L += [f"| {r['threshold']:g} | {_f(r['precision'])} | {_f(r['recall'])} | "
          f"{_f(r['f1'])} | {_f(r['iou'])} |" for r in sw["rows"]]
    return L + [""]


def _groups(rep: Mapping) -> list[str]:
    L: list[str] = []
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
    return L


def _sample(rep: Mapping) -> list[str]:
    s = rep["sample"]
    L = ["## Reference sample", "", f"- file: `{s['path']}`, {s['n_points']} points, "
         f"{s['n_labelled']} labelled ({s.get('labels') or 'no labels yet'})"]
    if s.get("design"):
        d = s["design"]
        how = s.get("method_description") or s.get("method") or "stratified"
        L += [f"- design: {how}; Olofsson et al. (2014) eq. 13 target n = {d['n_target']} "
              f"(target SE {d['target_se']}), floor {d['floor']} per stratum, allocated "
              f"{d['n_allocated']}, seed {s['seed']}",
              f"- allocation: {s.get('allocation', 'n/a')}",
              "", "| stratum | pixels | allocated | drawn |", "|---|---|---|---|"]
        L += [f"| {t['label']} | {t['pixels']} | {t['n']} | {t['n_drawn']} |"
              for t in d["strata"]]
    return L


def _estimates(rep: Mapping) -> list[str]:
    est = rep["estimates"]
    L = ["", "## Design-based estimates (Olofsson et al. 2014)", ""]
    if est["status"] != "ok":
        return L + [f"Status: **{est['status']}**."
                    + (f" {est['how']}." if est.get("how") else ""), ""]
    if est["simulated"]:
        L += ["Estimates use labels from simulated data: they check the estimator "
              "pipeline, not the real-world accuracy.", ""]
    interval = est["all"].get("interval_method", "design-based estimate ± z SE")
    L += [f"Reference: {est['reference']}. 95 % confidence intervals: {interval}.", "",
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
    return L + ["", *[f"- {n}" for n in notes]]


def _per_class(rep: Mapping) -> list[str]:
    pc = rep.get("per_class")
    return ["", *markdown_table(pc, pc["simulated"])] if pc else []


def render_markdown(rep: Mapping) -> str:
    """The human-readable ``report.md`` of a report dict."""
    L: list[str] = []
    if rep["simulated"]:
        L += [SIMULATED_BANNER, "",
              f"Simulated inputs: {', '.join(f'`{s}`' for s in rep['simulated_inputs'])}.", ""]
    L += [f"# ISA-1 accuracy report: {rep['region']} {rep['year']}", ""]
    for section in (_inputs, _agreement, _per_class, _area, _sweep, _groups, _sample,
                    _estimates):
        L += section(rep)
    L += ["", "## Plots", "", "![confusion](confusion.png)", "", "![per group](cities.png)", "",
          "![agreement with WorldCover](agreement.png)", ""]
    return "\n".join(L)
