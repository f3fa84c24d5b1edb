"""``make_chips``: paired training chips from HR imagery, label sources and composites.

Steps, per HR file: find the composite tiles it overlaps; per (HR file, tile) *block*
estimate the HR's displacement (:mod:`.coregister`) and reject blocks whose shift is
above ``max_shift_m`` or whose correlation is below ``min_correlation``; fit the
radiometric lines on the accepted blocks pooled (:mod:`.harmonise`). Per tile: warp
the accepted blocks onto the tile's 1 m grid with their shift corrected, harmonise,
mosaic (the first HR file listed wins where several overlap), rasterise the labels
(:mod:`.labels`), keep chips where HR and labels both cover ``min_coverage``, and
write them; with ``reference`` (checked labels, never trained on) each chip also gets
``truth.tif``, which training validates against. Splits are assigned by block
(:mod:`.splits`); the labels are refined against the HR (:mod:`.refine`, never reading
``truth.tif``; ``label_map.tif`` keeps the map labels), then ``index.csv`` (last),
``qa.json`` and ``qa.png``. Everything is
built in a staging folder beside ``out_dir`` that replaces it only when complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from shapely.geometry import box
from tqdm import tqdm

from jointseg.bands import SR_BANDS
from jointseg.grid import GeoBox
from jointseg.io import OutputError, remove_stale_parts, write_failure_reason
from jointseg.products import NODATA_U8
from jointseg.trainingdata.coregister import ShiftEstimate, estimate_shift
from jointseg.trainingdata.cut import (
    Composite,
    chip_grids,
    chip_id,
    open_composite,
    twin_path,
    write_chip,
)
from jointseg.trainingdata.harmonise import BandFit, apply_fit, fit_band, match_psf
from jointseg.trainingdata.hr import HrSource, open_hr, read_hr
from jointseg.trainingdata.labels import LabelSource, ignore_edges, label_raster, open_labels
from jointseg.trainingdata.qa import write_qa
from jointseg.trainingdata.refine import refine_chips
from jointseg.trainingdata.settings import ChipSettings, TrainingDataError
from jointseg.trainingdata.splits import assign_splits, block_of

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("chip_id", "split", "crs", "xmin", "ymin", "size_m", "hr_file",
                 "hr_shift_dx_m", "hr_shift_dy_m", "label_coverage", "isa_fraction")


@dataclass
class Block:
    """One HR file's overlap with one composite tile (the co-registration unit)."""

    hr: int
    tile: int
    grid_10m: GeoBox
    shift: ShiftEstimate | None = None
    status: str = "ok"


@dataclass
class ChipReport:
    """What :func:`make_chips` did (also written to ``qa.json``).

    Attributes:
        out_dir: the chip directory.
        chips: per accepted chip: chip_id, split, hr_file, hr_shift_m, radiometry,
            label_coverage, hr_coverage, isa_fraction.
        rejected: per rejected chip: chip_id, reason.
        hr_files: per HR file: path, status, blocks (tile, shift, correlation,
            status), fit (band -> gain, offset, r, n, ratio).
        label_sources: per label source: path, kind, features, repaired, dropped.
        reference_sources: the same for the reference (checked) label sources.
        samples: per HR file, 10 m (harmonised HR, composite) sample pairs per band,
            for the QA plot.
        refine: what the label refinement did (:func:`.refine.refine_chips`'s summary,
            without its per-chip part, which each chip holds as ``label_refine``).
    """

    out_dir: Path
    settings: ChipSettings
    chips: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    hr_files: list[dict] = field(default_factory=list)
    label_sources: list[dict] = field(default_factory=list)
    reference_sources: list[dict] = field(default_factory=list)
    samples: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    refine: dict = field(default_factory=dict)


def make_chips(hr: list[Path], labels: list[Path], composites: list[Path], out_dir: Path,
               settings: ChipSettings | None = None,
               reference: list[Path] | None = None,
               finish: Callable[[Path], None] | None = None) -> ChipReport:
    """Build a paired chip directory (docs/architecture.md "Paired training chips").

    Args:
        hr: HR images (GeoTIFF / VRT / COG, any CRS, 0.3-2 m, uint8 / uint16).
        labels: label sources (raster mask, vector file, ``.osm.pbf``), combined as a union.
        composites: ``<tile>_10m.tif`` composites, each with its ``_20m`` twin.
        out_dir: the chip directory (replaced as a whole when complete).
        reference: optional checked label sources (same formats as ``labels``, union),
            written per chip as ``truth.tif`` (1/0, 255 uncovered): the clean labels that
            training picks ``best.pt`` on (:func:`jointseg.model.chips.with_truth_labels`).
        finish: called with the complete staging folder before it replaces ``out_dir``
            (e.g. to write ``provenance.json``), so that file is in place with the rest
            or not at all.

    Raises:
        TrainingDataError: bad input (one line naming the file), or no chip accepted.
        OutputError: a write failed (disk full...): one line naming ``out_dir``, which
            keeps its older contents, and no staging folder is left.
    """
    settings = settings or ChipSettings()
    if not hr or not labels or not composites:
        raise TrainingDataError("need at least one --hr, one --labels and one --composite")
    for p in composites:
        twin_path(Path(p))
    hr_srcs = [open_hr(Path(p), len(settings.hr_bands)) for p in hr]
    label_srcs = [open_labels(Path(p), settings.highway_widths) for p in labels]
    ref_srcs = [open_labels(Path(p), settings.highway_widths) for p in reference or []]
    comps = [open_composite(Path(p)) for p in composites]
    _check_label_overlap(label_srcs + ref_srcs, hr_srcs)
    report = ChipReport(Path(out_dir), settings,
                        label_sources=[s.summary() for s in label_srcs],
                        reference_sources=[s.summary() for s in ref_srcs])
    blocks = _blocks(hr_srcs, comps, report)
    fits = _register_and_fit(hr_srcs, comps, blocks, settings, report)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out_dir.parent, out_dir.name, suffix="", dirs=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for t, comp in enumerate(comps):
            _tile_chips(t, comp, hr_srcs, (label_srcs, ref_srcs), blocks, fits, settings,
                        stage, report)
        if not report.chips:
            reasons = sorted({r["reason"].split(":")[0] for r in report.rejected})
            raise TrainingDataError(
                f"{out_dir}: no chip accepted ({'; '.join(reasons) or 'no HR over any composite'})")
        _assign(report, settings)
        _refine(stage, report, settings)
        write_qa(stage, report)
        _write_index(stage / "index.csv", report)
        if finish is not None:
            finish(stage)
        _replace_dir(stage, out_dir)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        reason = write_failure_reason(exc)
        if reason:  # disk full...: name the chip directory, not a file of the staging folder
            raise OutputError(f"{out_dir}: write failed, no chip written ({reason})") from exc
        raise
    return report


def _check_label_overlap(label_srcs: list[LabelSource], hr_srcs: list[HrSource]) -> None:
    """Every label source must overlap at least one HR image (compared in lon/lat)."""
    hr_ll = [hr.footprint("EPSG:4326") for hr in hr_srcs]
    for src in label_srcs:
        cov = src.coverage_in("EPSG:4326")
        if not any(cov.intersects(f) for f in hr_ll):
            raise TrainingDataError(f"{src.path}: labels do not overlap any HR image")


def _blocks(hr_srcs: list[HrSource], comps: list[Composite], report: ChipReport
            ) -> list[Block]:
    """The (HR file, tile) overlaps, on whole 10 m pixels of the tile."""
    blocks = []
    for h, src in enumerate(hr_srcs):
        entry = {"path": str(src.path), "crs": src.crs, "res_m": round(src.res_m, 3),
                 "dtype": src.dtype, "bands": list(report.settings.hr_bands),
                 "status": "ok", "blocks": [], "fit": {}}
        report.hr_files.append(entry)
        for t, comp in enumerate(comps):
            g = comp.grid_10m
            inter = src.footprint(g.crs).intersection(box(*g.bounds))
            if inter.is_empty or inter.area < (2 * g.res_m) ** 2:
                continue
            c0, r1 = ~g.transform @ (inter.bounds[0], inter.bounds[1])
            c1, r0 = ~g.transform @ (inter.bounds[2], inter.bounds[3])
            c0, r0 = max(int(np.floor(c0)), 0), max(int(np.floor(r0)), 0)
            c1, r1 = min(int(np.ceil(c1)), g.width), min(int(np.ceil(r1)), g.height)
            blocks.append(Block(h, t, g[r0:r1, c0:c1]))
        if not any(b.hr == h for b in blocks):
            entry["status"] = "skipped: does not overlap any composite"
            log.warning("%s: skipped, does not overlap any composite", src.path)
    return blocks


def _matched(comp: Composite, grid: GeoBox, settings: ChipSettings
             ) -> tuple[np.ndarray, np.ndarray]:
    """(float32 composite bands matched to the HR's, bool valid) on a sub-grid."""
    w = comp.grid_10m.window_of(grid)
    sl = np.s_[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]
    s2 = np.stack([comp.band(b)[sl] for b in settings.s2_of_hr]).astype(np.float32)
    return s2, comp.valid_10m[sl] & (s2 > 0).all(0)


def _register_and_fit(hr_srcs: list[HrSource], comps: list[Composite], blocks: list[Block],
                      settings: ChipSettings, report: ChipReport) -> dict[int, list[BandFit]]:
    """Co-register every block, then fit each HR file's bands on its accepted blocks."""
    pairs: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for b in tqdm(blocks, desc="co-register", disable=not settings.progress):
        src, comp = hr_srcs[b.hr], comps[b.tile]
        s2, valid = _matched(comp, b.grid_10m, settings)
        b.shift = estimate_shift(lambda s, src=src, g=b.grid_10m: read_hr(src, g, s), s2,
                                 valid, comp.grid_10m.res_m)
        dist = float(np.hypot(*b.shift.shift_m))
        if not np.isfinite(b.shift.correlation):
            b.status = f"rejected: too little overlap ({b.shift.n} valid 10 m pixels)"
        elif dist > settings.max_shift_m:
            b.status = f"rejected: shift {dist:.1f} m > max {settings.max_shift_m:g} m"
        elif b.shift.correlation < settings.min_correlation:
            b.status = (f"rejected: correlation {b.shift.correlation:.2f} < min "
                        f"{settings.min_correlation:g}")
        report.hr_files[b.hr]["blocks"].append({
            "tile": comp.path_10m.name, "hr_shift_m": list(b.shift.shift_m),
            "correlation": round(b.shift.correlation, 4), "n": b.shift.n, "status": b.status})
        if b.status == "ok":
            hr10 = match_psf(read_hr(src, b.grid_10m, b.shift.shift_m))
            ok = valid & np.isfinite(hr10).all(0)
            pairs.setdefault(b.hr, []).append((hr10[:, ok], s2[:, ok]))
    fits: dict[int, list[BandFit]] = {}
    for h, entry in enumerate(report.hr_files):
        if h not in pairs:
            if entry["status"] == "ok":
                entry["status"] = "rejected: every block rejected"
            continue
        hr_px = np.concatenate([p[0] for p in pairs[h]], axis=1)
        s2_px = np.concatenate([p[1] for p in pairs[h]], axis=1)
        try:
            fits[h] = [fit_band(a, b) for a, b in zip(hr_px, s2_px, strict=True)]
        except ValueError as exc:
            entry["status"] = f"rejected: radiometric fit failed ({exc})"
            continue
        entry["fit"] = {b: f.to_dict() for b, f in zip(settings.hr_bands, fits[h], strict=True)}
        report.samples[hr_srcs[h].path.name] = _samples(hr_px, s2_px, fits[h], settings)
    return fits


def _samples(hr_px: np.ndarray, s2_px: np.ndarray, fits: list[BandFit], settings: ChipSettings
             ) -> dict[str, list[list[float]]]:
    """Up to 3000 (harmonised HR, composite) 10 m pairs per band, for the QA plot."""
    idx = np.random.default_rng(0).permutation(hr_px.shape[1])[:3000]
    return {b: [[float(f.gain * v + f.offset) for v in hr_px[i, idx]],
                [float(v) for v in s2_px[i, idx]]]
            for i, (b, f) in enumerate(zip(settings.hr_bands, fits, strict=True))}


def _tile_hr(t: int, comp: Composite, hr_srcs: list[HrSource], blocks: list[Block],
             fits: dict[int, list[BandFit]], settings: ChipSettings
             ) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 (4, rows, cols) R G B NIR on the tile's 1 m grid, int16 (rows, cols) index
    of the HR file per pixel, -1 where none)."""
    g1 = comp.grid_10m.zoom_in(10)
    hr = np.zeros((len(SR_BANDS), *g1.shape), dtype=np.uint16)
    owner = np.full(g1.shape, -1, dtype=np.int16)
    for b in blocks:
        if b.tile != t or b.status != "ok" or b.hr not in fits:
            continue
        sub = b.grid_10m.zoom_in(10)
        w = g1.window_of(sub)
        sl = np.s_[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]
        refl = apply_fit(read_hr(hr_srcs[b.hr], sub, b.shift.shift_m), fits[b.hr])
        free = (owner[sl] < 0) & (refl > 0).all(0)
        for i, name in enumerate(settings.hr_bands):
            hr[SR_BANDS.index(name)][sl][free] = refl[i][free]
        owner[sl][free] = b.hr
    return hr, owner


def _tile_chips(t: int, comp: Composite, hr_srcs: list[HrSource],
                sources: tuple[list[LabelSource], list[LabelSource]], blocks: list[Block],
                fits: dict[int, list[BandFit]], settings: ChipSettings, stage: Path,
                report: ChipReport) -> None:
    """Cut, check and write the chips of one composite tile (``sources``: the label and
    the reference label sources)."""
    tile_blocks = [b for b in blocks if b.tile == t]
    if not tile_blocks:
        return
    hr, owner = _tile_hr(t, comp, hr_srcs, blocks, fits, settings)
    g1 = comp.grid_10m.zoom_in(10)
    label = label_raster(sources[0], g1)
    truth = label_raster(sources[1], g1) if sources[1] else None
    edged = ignore_edges(label, settings.ignore_edge_m / g1.res_m)  # coverage: before
    comp_valid = comp.valid_10m
    grids = chip_grids(comp, settings.chip_size_m)
    for g10 in tqdm(grids, desc=comp.path_10m.name, disable=not settings.progress):
        cid = chip_id(g10)
        hits = [b for b in tile_blocks if box(*b.grid_10m.bounds).intersects(
            box(*g10.bounds).buffer(-1.0))]
        if not hits:
            continue
        w1 = g1.window_of(g10.zoom_in(10))
        sl = np.s_[w1.row_off:w1.row_off + w1.height, w1.col_off:w1.col_off + w1.width]
        w10 = comp.grid_10m.window_of(g10)
        c_ok = comp_valid[w10.row_off:w10.row_off + w10.height,
                          w10.col_off:w10.col_off + w10.width].mean()
        hr_ok = owner[sl] >= 0
        lab_ok = label[sl] != NODATA_U8
        both = float((hr_ok & lab_ok).mean())
        reason = None
        if both < settings.min_coverage:
            bad = [b.status for b in hits if b.status != "ok"]
            reason = (f"hr: {bad[0]}" if bad and hr_ok.mean() < settings.min_coverage else
                      f"coverage: HR and labels cover {both:.2f} < {settings.min_coverage:g} "
                      f"(HR {hr_ok.mean():.2f}, labels {lab_ok.mean():.2f})")
        elif c_ok < settings.min_coverage:
            reason = f"composite: valid on {c_ok:.2f} < {settings.min_coverage:g} of the chip"
        if reason:
            x0, y0 = g10.bounds[:2]
            report.rejected.append({"chip_id": cid, "crs": g10.crs, "xmin": round(x0),
                                    "ymin": round(y0), "reason": reason})
            continue
        chip_truth = None if truth is None else truth[sl]
        _accept(t, cid, g10, comp, hr[(slice(None), *sl)], (edged[sl], chip_truth), owner[sl],
                hr_srcs, blocks, fits, settings, stage, report, float(lab_ok.mean()),
                float(both))


def _accept(t: int, cid: str, g10: GeoBox, comp: Composite, hr: np.ndarray,
            labels: tuple[np.ndarray, np.ndarray | None], owner: np.ndarray,
            hr_srcs: list[HrSource], blocks: list[Block], fits: dict[int, list[BandFit]],
            settings: ChipSettings, stage: Path, report: ChipReport, label_cov: float,
            hr_cov: float) -> None:
    """Write one accepted chip and record it (split assigned later); ``labels``: (label,
    reference truth or None) on the chip's 1 m grid."""
    label, truth = labels
    ids, counts = np.unique(owner[owner >= 0], return_counts=True)
    main = int(ids[np.argmax(counts)])
    block = next(b for b in blocks if b.hr == main and b.tile == t)
    names = ",".join(hr_srcs[i].path.name for i in ids)
    write_chip(stage / cid, comp, g10, hr, label, settings.hr_bands, names, truth=truth)
    labelled = label != NODATA_U8
    x0, y0 = g10.bounds[:2]
    report.chips.append({
        "chip_id": cid, "split": None, "crs": g10.crs, "xmin": round(x0), "ymin": round(y0),
        "size_m": settings.chip_size_m, "hr_file": hr_srcs[main].path.name,
        "hr_shift_m": list(block.shift.shift_m),
        "radiometry": {b: {k: v for k, v in f.to_dict().items() if k in ("gain", "offset", "r")}
                       for b, f in zip(settings.hr_bands, fits[main], strict=True)},
        "label_coverage": round(label_cov, 4), "hr_label_coverage": round(hr_cov, 4),
        "isa_fraction": round(float((label[labelled] == 1).mean()) if labelled.any() else 0.0, 4),
    })
    if truth is not None:
        report.chips[-1]["reference_coverage"] = round(float((truth != NODATA_U8).mean()), 4)


def _assign(report: ChipReport, settings: ChipSettings) -> None:
    """Fill each chip's split from its spatial block."""
    keys = [block_of(c["crs"], c["xmin"], c["ymin"], settings.split_block_m)
            for c in report.chips]
    split_of = assign_splits(keys, settings.split_fractions, settings.seed)
    for chip, key in zip(report.chips, keys, strict=True):
        chip["split"] = split_of[key]


def _refine(stage: Path, report: ChipReport, settings: ChipSettings) -> None:
    """Refine the written chips' labels against their HR (settings.refine); each chip
    records how its label changed and its ``isa_fraction`` becomes the refined one's."""
    stats = refine_chips(stage, settings.refine, progress=settings.progress)
    per_chip = stats.pop("chips")
    report.refine = stats
    for chip in report.chips:
        if chip["chip_id"] in per_chip:
            chip["label_refine"] = per_chip[chip["chip_id"]]
            chip["isa_fraction"] = chip["label_refine"]["isa_fraction"]


def _write_index(path: Path, report: ChipReport) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(INDEX_COLUMNS)
    for c in report.chips:
        w.writerow([c["chip_id"], c["split"], c["crs"], c["xmin"], c["ymin"], c["size_m"],
                    c["hr_file"], *c["hr_shift_m"], c["label_coverage"], c["isa_fraction"]])
    path.write_text(buf.getvalue())


def _replace_dir(stage: Path, out_dir: Path) -> None:
    """Put the complete staging folder in place of ``out_dir`` (renames, same parent)."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        os.replace(out_dir, old / "old")
    os.chmod(stage, 0o755)
    os.replace(stage, out_dir)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
