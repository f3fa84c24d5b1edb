"""The agreement report of one :class:`~jointseg.assess.compare.Comparison`.

``jointseg assess`` writes ``report.json`` (scores, counts, grid, options),
``report.md`` and ``confusion.csv`` from the pixel counts of a map against a
reference on one grid. The scores are :func:`jointseg.metrics.binary_metrics`:
agreement with a reference product, not a design-based accuracy estimate.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

from jointseg.assess.compare import Comparison
from jointseg.io import atomic_path, write_json
from jointseg.metrics import BinaryCounts, binary_metrics

log = logging.getLogger(__name__)


def metrics_of(counts: BinaryCounts) -> dict[str, object]:
    """JSON-ready :func:`~jointseg.metrics.binary_metrics` of counts: undefined (NaN)
    scores become None."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in binary_metrics(counts).items()}


def agreement_report(comp: Comparison, meta: Mapping[str, object] | None = None) -> dict:
    """The ``report.json`` dict of a comparison: metrics, counts, grid and ``meta``.

    Keys: precision, recall, f1, oa, kappa, iou, n_pixels, confusion
    (``[[tn, fp], [fn, tp]]``, rows = reference 0/1, columns = map 0/1), tn/fp/fn/tp,
    grid (crs, transform, width, height), reference, plus ``meta``. NaN -> null.
    """
    counts = comp.counts()
    out: dict[str, object] = metrics_of(counts)
    out["confusion"] = counts.confusion()
    out["confusion_layout"] = "rows = reference (0, 1), columns = map (0, 1)"
    out["grid"] = {"crs": comp.geobox.crs, "transform": list(comp.geobox.transform)[:6],
                   "width": comp.geobox.width, "height": comp.geobox.height,
                   "on": comp.grid}
    out["reference_description"] = comp.reference
    out.update(meta or {})
    return out


def _fmt(v: object) -> str:
    return "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def write_agreement_report(
    out_dir: str | os.PathLike, comp: Comparison, meta: Mapping[str, object] | None = None
) -> dict:
    """Write ``report.json``, ``report.md`` and ``confusion.csv`` into ``out_dir`` atomically.

    Returns the report dict plus the written paths under their file names.
    """
    out_dir = Path(out_dir)
    rep = agreement_report(comp, meta)
    write_json(out_dir / "report.json", rep)
    tn, fp = rep["confusion"][0]  # type: ignore[index]
    fn, tp = rep["confusion"][1]  # type: ignore[index]
    with atomic_path(out_dir / "confusion.csv") as tmp:
        tmp.write_text(f"reference,map_0,map_1\n0,{tn},{fp}\n1,{fn},{tp}\n")
    lines = [
        "# ISA map agreement", "",
        f"- map: `{rep.get('map', '?')}`",
        f"- reference: {comp.reference}",
        f"- grid: {comp.grid}'s grid, {comp.geobox.crs}, {comp.geobox.width} x "
        f"{comp.geobox.height} px of {comp.geobox.res_m:g} units",
        f"- compared pixels: {rep['n_pixels']}", "",
        "| metric | value |", "|---|---|",
        *(f"| {k} | {_fmt(rep[k])} |" for k in ("precision", "recall", "f1", "oa", "kappa",
                                                "iou")),
        "", "| reference \\ map | 0 | 1 |", "|---|---|---|",
        f"| 0 | {tn} | {fp} |", f"| 1 | {fn} | {tp} |", "",
        "precision = user's accuracy of ISA, recall = producer's accuracy of ISA; "
        "agreement with a reference product, not a design-based accuracy estimate.", "",
    ]
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text("\n".join(lines))
    log.info("%s: F1 %s, OA %s over %d pixels", out_dir, _fmt(rep["f1"]), _fmt(rep["oa"]),
             rep["n_pixels"])
    return {**rep, "report.json": out_dir / "report.json", "report.md": out_dir / "report.md",
            "confusion.csv": out_dir / "confusion.csv"}
