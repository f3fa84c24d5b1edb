"""``jointseg chips``: paired training chips from HR imagery, labels and composites.

See :mod:`jointseg.trainingdata` and docs/training-data.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from jointseg.io import OutputError
from jointseg.provenance import ProvenanceError


def _default(key: str) -> Any:
    """The schema's default of ``training_data.chips.<key>`` (the library's too)."""
    from jointseg.config import schema_default

    return schema_default(f"training_data.chips.{key}")


def _csv(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


@click.command("chips")
@click.option("--hr", "hr", multiple=True, required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="HR image (GeoTIFF/VRT/COG, any CRS, 0.3-2 m, uint8/uint16); repeatable.")
@click.option("--hr-bands", default=_csv(_default("hr_bands")), show_default=True,
              help="The HR files' band order: R,G,B[,NIR].")
@click.option("--labels", "labels", multiple=True, required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Label source: raster mask, vector file or .osm.pbf; repeatable (union).")
@click.option("--reference", "reference", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Checked label source (same formats, union), never trained on: written "
                   "per chip as truth.tif, which training picks best.pt on; repeatable.")
@click.option("--composite", "composites", multiple=True, required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Composite <tile>_10m.tif (its _20m.tif twin beside it); repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Chip directory (replaced as a whole when complete).")
@click.option("--chip-size-m", type=int, default=_default("chip_size_m"),
              show_default=True, help="Chip side (m), a multiple of 20.")
@click.option("--min-coverage", type=float, default=_default("min_coverage"),
              show_default=True, help="Minimum fraction of a chip covered by HR and labels.")
@click.option("--max-shift-m", type=float, default=_default("max_shift_m"),
              show_default=True, help="Reject HR blocks displaced by more than this (m).")
@click.option("--min-correlation", type=float,
              default=_default("min_correlation"), show_default=True,
              help="Reject HR blocks whose 10 m correlation with the composite is lower.")
@click.option("--split-block-m", type=int, default=_default("split_block_m"),
              show_default=True, help="Side (m) of the blocks that share one split.")
@click.option("--split-fractions",
              default=_csv(_default("split_fractions")), show_default=True,
              help="train,val,test fractions of the split blocks.")
@click.option("--seed", type=int, default=_default("seed"), show_default=True,
              help="Seed of the split assignment.")
@click.option("--ignore-edge-m", type=float, default=_default("ignore_edge_m"),
              show_default=True, help="Label pixels this close (m) to a label edge are 255.")
@click.option("--highway-widths", default=None,
              help='JSON object of road widths (m) per OSM highway class, e.g. '
                   '\'{"residential": 8}\' (overrides the built-in table).')
@click.option("--refine", "refine_method", type=click.Choice(["pu-teacher", "none"]),
              default=_default("refine.method"), show_default=True,
              help="Refine the labels against the HR (a PU-calibrated HR -> ISA teacher; "
                   "label_map.tif keeps the map labels; truth.tif is never read) or not.")
@click.option("--refine-steps", type=int, default=_default("refine.steps"),
              show_default=True, help="Label teacher optimiser steps.")
@click.option("--refine-margin", type=float, default=_default("refine.margin"),
              show_default=True,
              help="The teacher decides where its ISA probability is this far from 0.5; "
                   "elsewhere the map label stays.")
@click.option("--refine-seed", type=int, default=_default("refine.seed"),
              show_default=True, help="Seed of the label teacher.")
@click.option("--training-data-id", default=None,
              help="Name of this training data, recorded in OUT/provenance.json and, through "
                   "training, in the model and its maps (default: sha256 of index.csv).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def chips(hr: tuple[Path, ...], hr_bands: str, labels: tuple[Path, ...],
          reference: tuple[Path, ...], composites: tuple[Path, ...], out_dir: Path,
          chip_size_m: int, min_coverage: float, max_shift_m: float, min_correlation: float,
          split_block_m: int, split_fractions: str, seed: int, ignore_edge_m: float,
          highway_widths: str | None, refine_method: str, refine_steps: int,
          refine_margin: float, refine_seed: int, training_data_id: str | None,
          no_progress: bool) -> None:
    """Cut paired training chips (s2_10m, s2_20m, hr, label) into OUT.

    OUT/provenance.json records the training-data id and whether the chips are
    simulated (any composite tagged JOINTSEG_SIMULATED=true).
    """
    from jointseg.trainingdata import ChipSettings, TrainingDataError, make_chips
    from jointseg.trainingdata.settings import RefineSettings

    try:
        widths = _highway_widths(highway_widths)
        fractions = _fractions(split_fractions)
        settings = ChipSettings(
            hr_bands=tuple(b.strip().upper() for b in hr_bands.split(",")),
            chip_size_m=chip_size_m, min_coverage=min_coverage, max_shift_m=max_shift_m,
            min_correlation=min_correlation, split_block_m=split_block_m,
            split_fractions=fractions, seed=seed, ignore_edge_m=ignore_edge_m,
            highway_widths=widths,
            refine=RefineSettings(method=refine_method, steps=refine_steps,
                                  margin=refine_margin, seed=refine_seed),
            progress=not no_progress)
        report = make_chips(list(hr), list(labels), list(composites), out_dir, settings,
                            reference=list(reference),
                            finish=lambda d: _write_provenance(d, training_data_id, composites))
    except (TrainingDataError, OutputError, ProvenanceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    splits = {s: sum(c["split"] == s for c in report.chips) for s in ("train", "val", "test")}
    click.echo(f"{out_dir}: {len(report.chips)} chips ({splits['train']} train, "
               f"{splits['val']} val, {splits['test']} test), {len(report.rejected)} rejected")
    if report.refine.get("method", "none") != "none":
        r = report.refine
        click.echo(f"labels refined against the HR: c {r['c']:.3f}, {r['added_px']} px added, "
                   f"{r['removed_px']} removed ({100 * r['changed_share']:.1f} % of labelled)")


def _write_provenance(out_dir: Path, training_data_id: str | None,
                      composites: tuple[Path, ...]) -> None:
    """OUT/provenance.json: the id (default: sha256 of index.csv) and the simulated flag
    (``out_dir``: the staging folder that becomes OUT)."""
    from jointseg.model.chips import index_training_data_id, write_chips_provenance
    from jointseg.provenance import file_sha256, is_simulated

    tid = training_data_id or index_training_data_id(file_sha256(out_dir / "index.csv"))
    write_chips_provenance(out_dir, tid, any(is_simulated(c) for c in composites))


def _highway_widths(text: str | None) -> dict[str, float]:
    """Parse ``--highway-widths`` JSON into {class: width_m}."""
    if text is None:
        return dict(_default("highway_widths"))
    try:
        obj = json.loads(text)
        return {str(k): float(v) for k, v in obj.items()}
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"--highway-widths {text!r}: expected a JSON object "
                         '{"class": width_m, ...}') from None


def _fractions(text: str) -> tuple[float, ...]:
    """Parse ``--split-fractions`` (``0.7,0.2,0.1``)."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--split-fractions {text!r}: expected train,val,test numbers") from None
