"""PNG plots of a change analysis: ISA area per year with CIs, and the growth map.

* ``area_per_year.png``: ISA area of the region per year from the pixel count (after
  the consistency rule when applied) and, where an accuracy report gave one, the
  error-adjusted area with its 95 % CI as error bars.
* ``growth_map.png``: the year of first ISA (:mod:`jointseg.assess.change.maps`), one
  colour per year, never-ISA light grey, nodata white; subsampled by a stride to at
  most :data:`MAX_PLOT_PX` pixels a side (display only).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jointseg.assess.change.maps import NEVER_ISA, NODATA_YEAR
from jointseg.assess.report.plots import _pyplot, _save

MAX_PLOT_PX = 2000


def _tag(result: Mapping) -> str:
    return " [SIMULATED]" if result["simulated"] else ""


def area_plot(result: Mapping, path: Path) -> None:
    """ISA area per year (km²): pixel count, and error-adjusted ± 95 % CI where known."""
    plt = _pyplot()
    reg = result["groups"]["region"][result["region"]]
    years = [int(y) for y in reg["areas"]]
    areas = [reg["areas"][str(y)] for y in years]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(years, [a["isa_km2"] for a in areas], "o-", label="ISA-1 pixel count")
    adj = [(y, a["isa_km2_adjusted"], a["isa_km2_adjusted_ci"] or 0.0)
           for y, a in zip(years, areas, strict=True) if a.get("isa_km2_adjusted") is not None]
    if adj:
        ys, vs, cis = zip(*adj, strict=True)
        ax.errorbar(ys, vs, yerr=cis, fmt="s--", capsize=4,
                    label="error-adjusted (stratified sample), 95 % CI")
    ax.set_xticks(years)
    ax.set_xlabel("year")
    ax.set_ylabel("ISA area (km²)")
    ax.set_title(f"ISA area per year: {result['region']}{_tag(result)}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def growth_map_plot(result: Mapping, first_year: np.ndarray, path: Path) -> None:
    """Year of first ISA as a categorical map (one colour per year)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
    step = max(1, int(np.ceil(max(first_year.shape) / MAX_PLOT_PX)))
    img = first_year[::step, ::step]
    years = [int(y) for y in result["years"]]
    idx = np.zeros(img.shape, np.uint8)  # 0 nodata, 1 never, 2.. years
    idx[img == NEVER_ISA] = 1
    for k, y in enumerate(years):
        idx[img == y] = k + 2
    cols = ["#ffffff", "#e0e0e0", *plt.get_cmap("plasma")(np.linspace(0.05, 0.85, len(years)))]
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.imshow(idx, cmap=ListedColormap(cols), vmin=0, vmax=len(cols) - 1,
              interpolation="nearest")
    handles = [Patch(color=cols[1], label="never ISA")]
    handles += [Patch(color=cols[k + 2], label=f"ISA from {y}" if k else f"ISA by {y}")
                for k, y in enumerate(years)]
    if (img == NODATA_YEAR).any():
        handles.append(Patch(facecolor=cols[0], edgecolor="k", label="nodata"))
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    ax.set_axis_off()
    ax.set_title(f"Year of first ISA: {result['region']}{_tag(result)}")
    fig.tight_layout()
    _save(fig, path)


def write_change_plots(result: Mapping, first_year: np.ndarray,
                       out_dir: Path) -> dict[str, str]:
    """Write both plots into ``out_dir``; return ``{name: path}``."""
    out = {"area_per_year": out_dir / "area_per_year.png",
           "growth_map": out_dir / "growth_map.png"}
    area_plot(result, out["area_per_year"])
    growth_map_plot(result, first_year, out["growth_map"])
    return {k: str(v) for k, v in out.items()}
