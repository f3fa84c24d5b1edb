"""Tabular and Markdown outputs of a change analysis (``change.csv``, ``change.md``)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

from jointseg.io import atomic_path

CSV_COLUMNS = ("region", "group_kind", "group", "year", "isa_km2", "isa_km2_raw", "valid_km2",
               "isa_km2_adjusted", "isa_km2_adjusted_ci", "area_method",
               "growth_km2_from_prev", "annual_growth_pct_from_prev", "simulated")


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
                             "year": y, **{k: a.get(k) for k in CSV_COLUMNS[4:10]},
                             "growth_km2_from_prev": None if s is None else s["abs_km2"],
                             "annual_growth_pct_from_prev": None if s is None
                             else s["annual_pct"], "simulated": result["simulated"]})
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


def _f(v: object, fmt: str = ".4f") -> str:
    return "" if v is None else format(v, fmt) if isinstance(v, float) else str(v)


def _area_lines(result: Mapping) -> list[str]:
    reg = result["groups"]["region"][result["region"]]
    lines = ["## ISA area per year (km²)", "",
             "| year | pixel count | error-adjusted | 95 % CI | method |", "|---|---|---|---|---|"]
    for y, a in reg["areas"].items():
        lines.append(f"| {y} | {_f(a['isa_km2'])} | {_f(a.get('isa_km2_adjusted'))} | "
                     f"{_f(a.get('isa_km2_adjusted_ci'))} | {a.get('area_method', '')} |")
    lines += ["", "## Growth", "", "| period | km² | total % | % / yr |", "|---|---|---|---|"]
    for s in reg["growth"]:
        lines.append(f"| {s['from']}-{s['to']} | {_f(s['abs_km2'])} | "
                     f"{_f(s['total_pct'], '.2f')} | {_f(s['annual_pct'], '.2f')} |")
    return lines + [""]


def _accuracy_lines(result: Mapping) -> list[str]:
    acc, cons = result.get("change_accuracy"), result["consistency"]
    lines = ["## Change accuracy (new ISA against the reference)", ""]
    if not acc:
        return lines + ["No reference per year was given: no change accuracy.", ""]
    f1 = cons.get("new_isa_f1") or {}
    lines += [acc["what"] + ".", "",
              "| period | precision | recall | F1 | F1 without rule | map km² | ref. km² |",
              "|---|---|---|---|---|---|---|"]
    for p, e in acc["periods"].items():
        lines.append(f"| {p} | {_f(e['precision'])} | {_f(e['recall'])} | {_f(e['f1'])} | "
                     f"{_f(f1.get(p, {}).get('without_rule'))} | {_f(e['map_new_isa_km2'])} | "
                     f"{_f(e['reference_new_isa_km2'])} |")
    return lines + [""]


def _sample_lines(result: Mapping) -> list[str]:
    s = result["change_sample"]
    lines = ["## Stratified change sample", ""]
    if "design" not in s:
        return lines + [f"{s['status']}.", ""]
    d = s["design"]
    lines += [f"Strata: {s['strata_are']}; allocation: {d['allocation']}.", "",
              "| stratum | pixels | n |", "|---|---|---|"]
    lines += [f"| {t['label']} | {t['pixels']} | {t['n']} |" for t in d["strata"]]
    lines.append("")
    if s.get("status") != "ok":
        return lines + [f"Estimate: {s['status']}"
                        f"{': ' + s['reason'] if 'reason' in s else ''}.", ""]
    lines += [f"Error-adjusted areas (km², 95 % CI: {s['interval_method']}), "
              f"n = {s['n_labelled']} labelled:", "",
              "| period | new ISA | mapped new ISA | UA new | PA new | net growth |",
              "|---|---|---|---|---|---|"]
    for p, e in s["periods"].items():
        lines.append(f"| {p} | {_f(e['new_isa_km2'])} ± {_f(e['new_isa_ci_km2'])} | "
                     f"{_f(e['new_isa_map_km2'])} | {_f(e['new_isa_users_accuracy'])} | "
                     f"{_f(e['new_isa_producers_accuracy'])} | {_f(e['net_growth_km2'])} ± "
                     f"{_f(e['net_growth_ci_km2'])} |")
    return lines + [""]


def write_change_markdown(path: str | os.PathLike, result: Mapping) -> Path:
    """``change.md``: areas, growth, consistency effect, accuracy, sample and plots."""
    cons = result["consistency"]
    lines = [f"# ISA change {result['years'][0]}-{result['years'][-1]}: {result['region']}", ""]
    if result["simulated"]:
        lines += ["**SIMULATED inputs: these numbers test the software, not real-world "
                  "accuracy or growth.**", ""]
    lines += _area_lines(result)
    lines += ["## Temporal consistency", "",
              (f"Method {cons['method']} ({cons['rule']}); it changed "
               f"{cons['changed_pixels_total']} pixels ({_f(cons['changed_km2'])} km²): per "
               f"year {cons['changed_pixels']}." if cons["applied"]
               else f"Method {cons['method']}: {cons['rule']}."), ""]
    lines += _accuracy_lines(result) + _sample_lines(result)
    lines += ["## Maps and plots", "", f"- year of first ISA: `{result['first_isa_year']}`",
              *[f"- change {p}: `{v}`" for p, v in result["change_maps"].items()]]
    lines += [f"\n![{k}]({Path(v).name})" for k, v in result.get("plots", {}).items()]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)
