"""The figures of an accuracy report (matplotlib, Agg backend), written atomically as PNG.

* ``confusion.png``: confusion heat maps (rows = reference, columns = map) of the main
  comparisons and the sample's estimated error matrix in area proportions;
* ``cities.png``: ISA area and F1 per city (else per zone, else for the region);
* ``agreement.png``: map vs WorldCover built-up on the WorldCover grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jointseg.assess.report.comparisons import OnGrid
from jointseg.io import atomic_path
from jointseg.products import NODATA_U8

MAX_PLOT_PX = 2000
AGREEMENT_CODES = {0: "neither", 1: "map only", 2: "WorldCover only", 3: "both ISA"}
AREA_SERIES = (("ISA-1 (1 m)", "map_isa_km2", "map_km2"),
               ("bilinear baseline (1 m)", "baseline_isa_km2", "baseline_km2"),
               ("truth (1 m)", "truth_isa_km2", "truth_km2"),
               ("WorldCover (10 m)", "worldcover_isa_km2", "worldcover_km2"))
F1_SERIES = (("ISA-1 vs WorldCover", "map_vs_worldcover"),
             ("baseline vs WorldCover", "baseline_vs_worldcover"),
             ("ISA-1 vs truth (1 m)", "map_vs_truth_1m"),
             ("baseline vs truth (1 m)", "baseline_vs_truth_1m"),
             ("WorldCover vs truth (10 m)", "worldcover_vs_truth_10m"))


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _tag(rep: Mapping) -> str:
    return " [SIMULATED]" if rep["simulated"] else ""


def confusion_plot(rep: Mapping, path: Path) -> None:
    """Heat maps of the main comparisons' counts and of the sample estimate."""
    plt = _pyplot()
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
    fig.suptitle(f"{rep['region']} {rep['year']}: confusion{_tag(rep)}")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    _save(fig, path)


def _group_series(rep: Mapping) -> tuple[str | None, list[str], dict, dict]:
    """(kind, names, area series, F1 series) of the per-group plot; series without any
    value are dropped."""
    kind = "city" if "city" in rep["groups"] else "zone" if "zone" in rep["groups"] else None
    if kind:
        g = rep["groups"][kind]
        names = list(g)
        areas = {lbl: [g[n].get(key) for n in names] for lbl, key, _ in AREA_SERIES}
        f1 = {lbl: [(g[n].get(key) or {}).get("f1") for n in names] for lbl, key in F1_SERIES}
    else:
        names = [rep["region"]]
        a = rep["isa_area"]
        areas = {lbl: [a.get(key)] for lbl, _, key in AREA_SERIES}
        by_id = {c["id"]: c for c in rep["comparisons"]}
        f1 = {lbl: [(by_id.get(cid) or {}).get("f1")] for lbl, cid in F1_SERIES}
    areas = {k: v for k, v in areas.items() if any(x is not None for x in v)}
    f1 = {k: v for k, v in f1.items() if any(x is not None for x in v)}
    return kind, names, areas, f1


def groups_plot(rep: Mapping, path: Path) -> None:
    """Bars of ISA area (km²) and F1 per city, zone or the whole region."""
    plt = _pyplot()
    kind, names, area_series, f1_series = _group_series(rep)
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
    fig.suptitle(f"{rep['region']} {rep['year']}: per {kind or 'region'}{_tag(rep)}")
    fig.tight_layout()
    _save(fig, path)


def agreement_plot(rep: Mapping, on_wc: OnGrid, path: Path) -> None:
    """Map of agreement codes (:data:`AGREEMENT_CODES`) of the map vs WorldCover on the
    WorldCover grid (lon/lat degrees), decimated to at most :data:`MAX_PLOT_PX` pixels."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
    m, r = on_wc.layers["map"], on_wc.layers["worldcover"]
    codes = np.where((m != NODATA_U8) & (r != NODATA_U8), m.astype(np.int16) + 2 * r, -1)
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
                 f"{rep['worldcover_year']} built-up at 10 m{_tag(rep)}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def write_plots(rep: Mapping, on_wc: OnGrid, out_dir: Path) -> dict[str, str]:
    """Write confusion.png, cities.png and agreement.png; returns {name: file name}."""
    confusion_plot(rep, out_dir / "confusion.png")
    groups_plot(rep, out_dir / "cities.png")
    agreement_plot(rep, on_wc, out_dir / "agreement.png")
    return {"confusion.png": "confusion.png", "cities.png": "cities.png",
            "agreement.png": "agreement.png"}
