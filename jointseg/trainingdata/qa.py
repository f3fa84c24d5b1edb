"""QA of a chip directory: ``qa.json`` (schema ``jointseg.chips_qa/1``) and ``qa.png``.

``qa.json`` holds the settings, per HR file its co-registration blocks (shift in
metres ``[dx_east, dy_north]``, correlation, status) and radiometric fit per band
(gain, offset, r, n, mean ratio HR / composite), per label source the features read,
repaired and dropped, per accepted chip its split, HR file, ``hr_shift_m``, radiometry
(gain / offset / r per band), label coverage and ISA fraction, and every rejected chip
with its reason. With label refinement (:mod:`.refine`) each chip has ``label_refine``
(pixels added / removed, share of labelled pixels changed, ISA fraction of the map and
of the refined label) and ``summary.label_refine`` the totals and the teacher's c.
``qa.png`` is a one-page summary plot of the same.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jointseg.io import atomic_path, write_json

if TYPE_CHECKING:
    from jointseg.trainingdata.build import ChipReport

SCHEMA = "jointseg.chips_qa/1"
SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def qa_dict(report: ChipReport) -> dict:
    """The JSON document of ``qa.json``."""
    splits = Counter(c["split"] for c in report.chips)
    return {
        "schema": SCHEMA,
        "settings": report.settings.to_dict(),
        "summary": {"chips": len(report.chips), "rejected": len(report.rejected),
                    "splits": dict(splits), "label_refine": report.refine or None},
        "hr_files": report.hr_files,
        "label_sources": report.label_sources,
        "reference_sources": report.reference_sources,
        "chips": report.chips,
        "rejected": report.rejected,
    }


def write_qa(out_dir: Path, report: ChipReport) -> None:
    """Write ``qa.json`` and ``qa.png`` into ``out_dir`` (atomically)."""
    write_json(out_dir / "qa.json", qa_dict(report))
    with atomic_path(out_dir / "qa.png") as tmp:
        plot_qa(report, tmp)


def plot_qa(report: ChipReport, path: Path) -> None:
    """One-page PNG: fit scatter per band, chip map by split, shifts, ISA fractions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    _plot_fit(axes[0, 0], report)
    _plot_map(axes[0, 1], report)
    _plot_shifts(axes[1, 0], report)
    ax = axes[1, 1]
    ax.hist([c["isa_fraction"] for c in report.chips], bins=20, range=(0, 1), color="0.4")
    ax.set(xlabel="ISA fraction of chip", ylabel="chips",
           title=f"{len(report.chips)} chips, {len(report.rejected)} rejected")
    fig.suptitle(f"Training chips QA: {report.out_dir.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def _plot_fit(ax, report: ChipReport) -> None:  # noqa: ANN001 - matplotlib Axes
    colours = {"R": "tab:red", "G": "tab:green", "B": "tab:blue", "NIR": "tab:purple"}
    top = 0.0
    for name, bands in report.samples.items():
        for band, (hr, s2) in bands.items():
            ax.scatter(s2, hr, s=2, alpha=0.3, color=colours[band],
                       label=f"{name} {band}" if len(report.samples) > 1 else band)
            top = max(top, float(np.percentile(s2, 99.5)), float(np.percentile(hr, 99.5)))
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set(xlim=(0, top or 1), ylim=(0, top or 1), xlabel="composite (reflectance x 10000)",
           ylabel="HR harmonised, 10 m mean", title="Radiometric fit (10 m)")
    if report.samples:
        ax.legend(markerscale=4, fontsize=7)


def _plot_map(ax, report: ChipReport) -> None:  # noqa: ANN001
    from matplotlib.patches import Rectangle

    everything = report.chips + report.rejected
    if not everything:
        return
    x0 = min(c["xmin"] for c in everything)
    y0 = min(c["ymin"] for c in everything)
    size = report.settings.chip_size_m / 1000
    for c in everything:
        xy = ((c["xmin"] - x0) / 1000, (c["ymin"] - y0) / 1000)
        if "split" in c:
            ax.add_patch(Rectangle(xy, size, size, color=SPLIT_COLOURS[c["split"]], alpha=0.6,
                                   lw=0))
        else:
            ax.add_patch(Rectangle(xy, size, size, fill=False, hatch="xx", color="tab:red",
                                   lw=0.5))
    ax.autoscale_view()
    ax.set_aspect("equal")
    for name, colour in SPLIT_COLOURS.items():
        ax.plot([], [], "s", color=colour, label=name)
    ax.plot([], [], "s", mfc="none", color="tab:red", label="rejected")
    ax.legend(fontsize=7)
    ax.set(title="Chips by split (one CRS per tile)", xlabel=f"x - {x0} (km)",
           ylabel=f"y - {y0} (km)")


def _plot_shifts(ax, report: ChipReport) -> None:  # noqa: ANN001
    from matplotlib.patches import Circle

    for f in report.hr_files:
        for b in f["blocks"]:
            dx, dy = b["hr_shift_m"]
            ok = b["status"] == "ok"
            ax.plot(dx, dy, "o" if ok else "x", color="tab:blue" if ok else "tab:red")
            ax.annotate(Path(f["path"]).name, (dx, dy), fontsize=6)
    lim = report.settings.max_shift_m
    ax.add_patch(Circle((0, 0), lim, fill=False, ls="--", color="0.5"))
    ax.set(xlim=(-1.2 * lim, 1.2 * lim), ylim=(-1.2 * lim, 1.2 * lim), aspect="equal",
           xlabel="dx east (m)", ylabel="dy north (m)",
           title="HR shift per block (x = rejected; circle = max)")
    ax.axhline(0, color="0.8", lw=0.5)
    ax.axvline(0, color="0.8", lw=0.5)
