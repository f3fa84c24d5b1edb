"""Coverage of the accuracy report's 95 % confidence intervals, by repeated sampling
against the demo's simulated truth (issue 20).

For each demo year the map (``<results>/<year>/isa_1m.tif``) is the population and the
simulated truth (``<sim_dir>/<year>/truth/isa_1m.tif``) labels every pixel, so the
true ISA area, user's / producer's / overall accuracy are known for the whole region
and each simulated district (``<sim_dir>/districts.gpkg``, field ``name``). Each
replicate draws the report's design (:func:`jointseg.assess.sampling.design_sample`
with the demo's ``accuracy`` settings, strata = map class, stratified random: n_h
pixels uniformly without replacement, as ``draw_sample(method="random")``, drawn here
from the arrays in memory for speed) and estimates with
:func:`jointseg.assess.estimators.estimates_by_group` (domains = districts). Reported
per interval (``agresti-coull``, the default, and ``wald``): the share of replicates
whose CI holds the true value (coverage) for ISA area, UA, PA and OA, per region and
per district, and the bias of the standard errors (mean SE / SD of the estimates - 1).

Also checked on the reports that ``make demo-change`` wrote (``--reports``): every
stratum reached its allocation; sample points are as close to built-up land as their
stratum is (mean map-ISA density within ``--radius-m`` of the points / over the
stratum); the error-adjusted ISA area's CI holds the true area.

    nice -n 10 .venv/bin/python benchmarks/accuracy_coverage.py [--replicates 200]

``--change-methods``: the temporal change methods
(:mod:`jointseg.assess.change.temporal`) on the four years' maps and probabilities,
new-ISA precision / recall / F1 and mapped / reference new-ISA area per period
against the simulated truth (as ``change.json``'s ``change_accuracy``), for
``independent``, ``carry`` and ``monotone`` at several penalties.

Last line: ``coverage=<ISA area, all years, default interval> bias_se=<...>
replicates=<n per year>``. Everything here is simulated.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import yaml
from rasterio.features import rasterize
from scipy import ndimage

from jointseg.assess.change.accuracy import new_isa_counts
from jointseg.assess.change.biennial import map_cuts
from jointseg.assess.change.temporal import TemporalSettings, fit_block
from jointseg.assess.estimators import estimates_by_group
from jointseg.assess.sampling import design_sample
from jointseg.assess.variance import INTERVALS, Z95
from jointseg.config import schema_default
from jointseg.metrics import BinaryCounts, binary_metrics

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("area", "ua", "pa", "oa")


def _read(path: Path) -> tuple[np.ndarray, rasterio.Affine, str]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs.to_string()


def demo_accuracy_settings() -> dict:
    """The demo's ``accuracy`` settings: config/demo.yaml over the schema's defaults."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text()).get("accuracy") or {}
    return {k: demo.get(k, schema_default(f"accuracy.{k}"))
            for k in ("target_se", "floor", "seed")}


class Year:
    """One year's population: map strata, truth labels and district ids per pixel."""

    def __init__(self, map_path: Path, truth_path: Path, districts: gpd.GeoDataFrame | None,
                 settings: dict) -> None:
        m, transform, crs = _read(map_path)
        t, t_transform, _ = _read(truth_path)
        if t.shape != m.shape or t_transform != transform:
            raise SystemExit(f"{truth_path}: not on the grid of {map_path}")
        self.px_km2 = abs(transform.a * transform.e) / 1e6
        valid = (m != 255) & (t != 255)  # units without a label are dropped by the report
        self.map = m
        self.idx = {c: np.flatnonzero((m == c).ravel()) for c in (0, 1)}
        self.truth = np.where(valid, t, 255).ravel()
        self.names: list[str] = []
        self.district = np.zeros(m.size, np.int32)
        if districts is not None:
            d = districts.to_crs(crs)
            self.names = [str(n) for n in d["name"]]
            self.district = rasterize(
                ((g, i + 1) for i, g in enumerate(d.geometry)), out_shape=m.shape,
                transform=transform, fill=0, dtype="int32").ravel()
        design = design_sample(map_path, target_se=settings["target_se"],
                               floor=settings["floor"])
        self.alloc = {s.map_class: s.n for s in design.strata}
        self.sizes = {str(s.map_class): float(s.pixels) for s in design.strata}
        self.true = {"all": self._truth(np.ones(m.size, bool) & (m.ravel() != 255))}
        for k, n in enumerate(self.names, start=1):
            self.true[n] = self._truth((self.district == k) & (m.ravel() != 255))

    def _truth(self, dom: np.ndarray) -> dict[str, float]:
        """True ISA area (km², map-valid pixels with a truth label, scaled to all map-valid
        pixels as the report's estimator does), UA, PA and OA of the map in a domain."""
        m, t = self.map.ravel()[dom], self.truth[dom]
        lab = t != 255
        m, t = m[lab], t[lab]
        tp = np.count_nonzero((m == 1) & (t == 1))
        return {"area": np.count_nonzero(t == 1) * dom.sum() / max(lab.sum(), 1) * self.px_km2,
                "ua": tp / max(np.count_nonzero(m == 1), 1),
                "pa": tp / max(np.count_nonzero(t == 1), 1),
                "oa": np.count_nonzero(m == t) / max(m.size, 1)}

    def replicate(self, rng: np.random.Generator, interval: str) -> dict[str, dict]:
        """Estimates (value, SE) per domain and target of one stratified random sample."""
        units = np.concatenate([rng.choice(self.idx[c], size=self.alloc[c], replace=False)
                                for c in (0, 1)])
        ref = self.truth[units]
        keep = ref != 255
        units, ref = units[keep], ref[keep]
        mc = self.map.ravel()[units].astype(int)
        groups = np.array([self.names[k - 1] if k else None
                           for k in self.district[units].tolist()], dtype=object)
        est = estimates_by_group(mc.astype(str), mc, ref.astype(int), groups, self.sizes,
                                 [0, 1], area_scale=self.px_km2, area_unit="km2",
                                 interval=interval)
        return {dom: {"area": (e.area[1], e.area_se[1]), "ua": (e.ua[1], e.ua_se[1]),
                      "pa": (e.pa[1], e.pa_se[1]), "oa": (e.oa, e.oa_se)}
                for dom, e in est.items()}


def coverage(year: Year, reps: int, interval: str, seed: int) -> dict[str, dict]:
    """Per domain and target: coverage, bias of SE, mean estimate and truth."""
    rng = np.random.default_rng(seed)
    runs = [year.replicate(rng, interval) for _ in range(reps)]
    out: dict[str, dict] = {}
    for dom, true in year.true.items():
        out[dom] = {}
        for k in TARGETS:
            vals = np.array([r[dom][k] for r in runs if dom in r], np.float64)
            if not len(vals):
                continue
            v, se = vals[:, 0], vals[:, 1]
            ok = np.isfinite(v) & np.isfinite(se)
            v, se = v[ok], se[ok]
            out[dom][k] = {"coverage": float(np.mean(np.abs(v - true[k]) <= Z95 * se)),
                           "bias_se": float(se.mean() / v.std(ddof=1) - 1)
                           if v.std(ddof=1) > 0 else None,
                           "mean": float(v.mean()), "true": float(true[k]), "n": int(ok.sum())}
    return out


def report_checks(report_dir: Path, year: Year, radius_m: float) -> dict:
    """Done-when checks on a report ``make demo-change`` wrote."""
    rep = json.loads((report_dir / "report.json").read_text())
    pts = gpd.read_file(report_dir / "samples.gpkg")
    with rasterio.open(report_dir.parent / "isa_1m.tif") as ds:
        m, transform = ds.read(1), ds.transform
    isa = (m == 1).astype(np.float32)
    size = int(round(2 * radius_m / abs(transform.a))) + 1
    density = ndimage.uniform_filter(isa, size=size, mode="constant")
    rows, cols = rasterio.transform.rowcol(transform, pts.geometry.x, pts.geometry.y)
    at = density[np.asarray(rows), np.asarray(cols)]
    ratio = {}
    for c in (0, 1):
        sel = pts["map_class"].to_numpy(int) == c
        ratio[str(c)] = float(at[sel].mean() / density[m == c].mean())
    a = rep["isa_area"]
    true = year.true["all"]["area"]
    return {"allocation": rep["sample"].get("allocation"),
            "strata": {t["label"]: [t["n_drawn"], t["n"]]
                       for t in rep["sample"]["design"]["strata"]},
            "density_ratio": ratio, "area": a["error_adjusted_km2"],
            "area_ci": a["error_adjusted_ci_km2"], "true_area": true,
            "ci_holds": abs(a["error_adjusted_km2"] - true) <= a["error_adjusted_ci_km2"]}


def change_methods(results: Path, sim_dir: Path, years: list[int],
                   settings: list[TemporalSettings], block_rows: int = 1024) -> dict:
    """New-ISA precision / recall / F1 and areas per period of each temporal method."""
    maps = {y: results / str(y) / "isa_1m.tif" for y in years}
    cuts = map_cuts(maps)
    srcs = {y: (rasterio.open(maps[y]), rasterio.open(results / str(y) / "isa_prob_1m.tif"),
                rasterio.open(sim_dir / str(y) / "truth" / "isa_1m.tif")) for y in years}
    periods = list(zip(years[:-1], years[1:], strict=True))
    acc = {s.method + (f" penalty {s.penalty:g}" if s.method == "monotone" else ""):
           {p: BinaryCounts() for p in periods} for s in settings}
    try:
        h, w = srcs[years[0]][0].height, srcs[years[0]][0].width
        px_km2 = abs(srcs[years[0]][0].transform.a * srcs[years[0]][0].transform.e) / 1e6
        for r0 in range(0, h, block_rows):
            win = rasterio.windows.Window(0, r0, w, min(block_rows, h - r0))
            raws = {y: srcs[y][0].read(1, window=win) for y in years}
            probs = {y: srcs[y][1].read(1, window=win) for y in years}
            truth = {y: srcs[y][2].read(1, window=win) for y in years}
            for s, key in zip(settings, acc, strict=True):
                final = fit_block(raws, probs, cuts, s)
                for p in periods:
                    acc[key][p] = acc[key][p] + new_isa_counts(final[p[0]], final[p[1]],
                                                               truth[p[0]], truth[p[1]])
    finally:
        for trio in srcs.values():
            for ds in trio:
                ds.close()
    out = {}
    for key, per in acc.items():
        out[key] = {}
        for (y0, y1), c in per.items():
            m = binary_metrics(c)
            out[key][f"{y0}-{y1}"] = {"precision": float(m["precision"]),
                                      "recall": float(m["recall"]), "f1": float(m["f1"]),
                                      "map_km2": (c.tp + c.fp) * px_km2,
                                      "reference_km2": (c.tp + c.fn) * px_km2}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=REPO / "results" / "demo")
    ap.add_argument("--sim-dir", type=Path, default=REPO / "resources" / "demo")
    ap.add_argument("--years", default="2017,2019,2021,2023")
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--intervals", default="agresti-coull,wald")
    ap.add_argument("--radius-m", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="Write all numbers here.")
    ap.add_argument("--change-methods", action="store_true",
                    help="Also compare the temporal change methods (needs isa_prob_1m.tif).")
    ap.add_argument("--penalties", default="0,1,2,3,4")
    args = ap.parse_args()
    settings = demo_accuracy_settings()
    years = [int(y) for y in args.years.split(",")]
    intervals = args.intervals.split(",")
    for i in intervals:
        if i not in INTERVALS:
            raise SystemExit(f"interval {i!r}: expected one of {sorted(INTERVALS)}")
    dpath = args.sim_dir / "districts.gpkg"
    districts = gpd.read_file(dpath) if dpath.exists() else None
    print(f"SIMULATED demo; design stratified random (map class strata), {settings}; "
          f"{args.replicates} replicates per year")
    allres: dict = {}
    t0 = time.time()
    for y in years:
        year = Year(args.results / str(y) / "isa_1m.tif",
                    args.sim_dir / str(y) / "truth" / "isa_1m.tif", districts, settings)
        allres[y] = {"allocation": year.alloc, "truth": year.true}
        rep_dir = args.results / str(y) / "accuracy"
        if (rep_dir / "report.json").exists():
            chk = report_checks(rep_dir, year, args.radius_m)
            allres[y]["report"] = chk
            print(f"{y} report: {chk['allocation']}; density ratio (points / stratum, "
                  f"{args.radius_m:g} m) {chk['density_ratio']}; ISA area {chk['area']:.3f} ± "
                  f"{chk['area_ci']:.3f} km², true {chk['true_area']:.3f}: "
                  f"{'holds' if chk['ci_holds'] else 'MISSES'}")
        for interval in intervals if args.replicates > 0 else []:
            cov = coverage(year, args.replicates, interval, args.seed + y)
            allres[y][interval] = cov
            a = cov["all"]
            print(f"{y} {interval:13s} all: " + "  ".join(
                f"{k} {a[k]['coverage']:.3f} (se bias {a[k]['bias_se']:+.2f})" for k in TARGETS
                if k in a) + f"  [{time.time() - t0:.0f} s]")
            for dom, c in cov.items():
                if dom != "all" and "area" in c:
                    print(f"    {dom:>14s}: " + "  ".join(
                        f"{k} {c[k]['coverage']:.3f}" for k in TARGETS if k in c))
    summary = {}
    for interval in intervals if args.replicates > 0 else []:
        cov = [allres[y][interval]["all"]["area"] for y in years]
        dist = [c[k]["coverage"] for y in years for d, c in allres[y][interval].items()
                if d != "all" for k in TARGETS if k in c]
        summary[interval] = {
            "area_coverage": float(np.mean([c["coverage"] for c in cov])),
            "area_bias_se": float(np.mean([c["bias_se"] for c in cov])),
            "all_targets_coverage": float(np.mean([allres[y][interval]["all"][k]["coverage"]
                                                   for y in years for k in TARGETS
                                                   if k in allres[y][interval]["all"]])),
            "district_coverage_mean": float(np.mean(dist)) if dist else None,
            "district_coverage_min": float(np.min(dist)) if dist else None}
        print(f"summary {interval}: {summary[interval]}")
    change = None
    if args.change_methods:
        methods = [TemporalSettings("independent"), TemporalSettings("carry"),
                   *[TemporalSettings("monotone", penalty=float(p))
                     for p in args.penalties.split(",")]]
        change = change_methods(args.results, args.sim_dir, years, methods)
        for key, per in change.items():
            print(f"change {key:20s} " + "  ".join(
                f"{p}: P {e['precision']:.2f} R {e['recall']:.2f} F1 {e['f1']:.2f} "
                f"map {e['map_km2']:.2f} / ref {e['reference_km2']:.2f} km²"
                for p, e in per.items()))
    if args.json:
        args.json.write_text(json.dumps({"settings": settings, "summary": summary,
                                         "change_methods": change,
                                         "years": {str(k): v for k, v in allres.items()}},
                                        indent=1, default=float))
    if args.replicates <= 0:
        return
    main_i = intervals[0]
    print(f"coverage={summary[main_i]['area_coverage']:.3f} "
          f"bias_se={summary[main_i]['area_bias_se']:+.3f} replicates={args.replicates}")


if __name__ == "__main__":
    main()
