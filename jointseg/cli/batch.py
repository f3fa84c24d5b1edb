"""``jointseg batch``: run one tile stage over a batch of tiles (see :mod:`jointseg.batch`).

    jointseg batch composite --region demo --year 2019 --batch B32650_0_3540000 \\
        --tiles 32650_663000_3543000,32650_663600_3543000 \\
        --manifest results/demo/2019/composite/batches/B32650_0_3540000.json \\
        --settings '{"method": "median", "min_clear": 1}'

The stage's settings are built once, as the per-tile command builds them
(:mod:`jointseg.cli.settings`): ``--settings`` (the config section) and, after ``--``,
any of the per-tile command's setting options (``-- --threads 4``). Every tile then runs
the stage's one function (:func:`jointseg.data.stac.run_search`,
:func:`~jointseg.data.download.run_download`,
:func:`~jointseg.data.cloudmask.run_cloudmask`,
:func:`~jointseg.data.composite.run_composite`,
:func:`jointseg.inference.predict.run_predict`) with those settings; ``predict`` loads
the model once per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import click

from jointseg.config import schema_default
from jointseg.model.metadata import fp16_twin_path
from jointseg.settings import StageSettings, settings_class

log = logging.getLogger(__name__)

#: stage -> "module:attribute" of its per-tile click command
TILE_COMMANDS: dict[str, str] = {
    "search": "jointseg.cli.stac:search",
    "download": "jointseg.cli.download:download",
    "cloudmask": "jointseg.cli.cloudmask:cloudmask",
    "composite": "jointseg.cli.composite:composite",
    "predict": "jointseg.cli.predict:predict",
    "predict_baseline": "jointseg.cli.predict:predict",
}

TileFn = Callable[[str, dict[str, Path]], None]
InputsOf = Callable[[str], dict[str, Path]]


def tile_command(stage: str) -> click.Command:
    """The per-tile click command of ``stage``."""
    import importlib

    module, attr = TILE_COMMANDS[stage].split(":")
    return getattr(importlib.import_module(module), attr)


def stage_settings(stage: str, settings_json: str | None,
                   stage_args: list[str]) -> StageSettings:
    """The settings of ``stage`` from ``--settings`` and per-tile options, as the per-tile
    command builds them."""
    from jointseg.cli.settings import parse_stage_settings

    return parse_stage_settings(tile_command(stage), settings_class(stage), stage_args,
                                settings_json)


def _tile_list(tiles: str | None, tiles_file: Path | None) -> list[str]:
    out = [t.strip() for t in (tiles or "").split(",") if t.strip()]
    if tiles_file is not None:
        out += [t.strip() for t in tiles_file.read_text().split() if t.strip()]
    if not out:
        raise click.UsageError("give --tiles or --tiles-file (no tiles given)")
    if len(set(out)) != len(out):
        raise click.BadParameter("a tile id is listed twice", param_hint="--tiles")
    return out


def _data_stage(stage: str, settings, inputs: InputsOf, region: str, year: int) -> TileFn:
    """fn(tile, files) of a data stage: its one function with ``settings``, reading the
    files ``inputs(tile)`` (what the tile's fingerprint covers)."""
    if stage == "search":
        from jointseg.cli.stac import api_url
        from jointseg.data.stac import run_search
        from jointseg.grid import Tile

        url: list[str] = []  # the demo servers start when the first tile needs them

        def search(t: str, f: dict[str, Path]) -> None:
            url[:] = url or [api_url(settings)]
            footprint = Tile.from_id(t, settings.tile_size_m).footprint_lonlat()
            run_search(settings, url[0], footprint, f["scenes"], tile_id=t, region=region,
                       year=year)
        return search
    if stage == "download":
        from jointseg.data.download import run_download

        return lambda t, f: run_download(inputs(t)["scenes"], f["manifest"].parent, settings)
    if stage == "cloudmask":
        from jointseg.data.cloudmask import run_cloudmask

        return lambda t, f: run_cloudmask(inputs(t)["stack"], f["mask"], settings)
    from jointseg.data.composite import run_composite

    return lambda t, f: run_composite(inputs(t)["stack"], inputs(t)["mask"], f["c10"],
                                      f["c20"], settings)


def _predict_stage(settings, model_path: str | None, inputs: InputsOf) -> TileFn:
    """fn(tile, files) of predict: the model loaded once (by the first tile that runs)."""
    from jointseg.inference.predict import load_model, run_predict
    from jointseg.inference.products import ProductPaths

    if model_path is None:
        raise click.UsageError("predict needs --model")
    model = []

    def predict(t: str, f: dict[str, Path]) -> None:
        model[:] = model or [load_model(model_path, settings)]
        run_predict(model[0], inputs(t)["c10"],
                    ProductPaths(f["isa"], f["prob"], f.get("sr")), settings)
    return predict


@click.command(
    "batch", context_settings={"ignore_unknown_options": True, "allow_extra_args": False}
)
@click.argument("stage", type=click.Choice(list(TILE_COMMANDS)))
@click.option("--tiles", default=None, help="Comma-separated tile ids <epsg>_<xmin>_<ymin>.")
@click.option("--tiles-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File of tile ids (whitespace-separated), added to --tiles.")
@click.option("--batch", "batch", required=True, help="Batch id B<epsg>_<xmin>_<ymin>.")
@click.option("--manifest", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Batch manifest to write last (results/{region}/{year}/<stage>/batches/).")
@click.option("--region", required=True, help="Region name.")
@click.option("--year", required=True, type=int, help="Year.")
@click.option("--results-dir", default=schema_default("results_dir"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--resources-dir", default=schema_default("resources_dir"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--settings", "settings_json", default=None, metavar="JSON|@FILE",
              help="The stage's settings, as its per-tile command takes them.")
@click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False),
              help="predict: the ONNX model (loaded once for the batch).")
@click.option("--overwrite", is_flag=True, help="Redo tiles whose outputs exist already.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.argument("stage_args", nargs=-1, type=click.UNPROCESSED)
def batch(stage: str, tiles: str | None, tiles_file: Path | None, batch: str, manifest: Path,
          region: str, year: int, results_dir: Path, resources_dir: Path,
          settings_json: str | None, model_path: str | None, overwrite: bool, progress: bool,
          stage_args: tuple[str, ...]) -> None:
    """Run STAGE for every tile of a batch, then write the batch MANIFEST.

    STAGE_ARGS (after --) are setting options of the per-tile command. Tiles whose
    outputs exist, validate and were made with the same settings and inputs (recorded in
    MANIFEST.tiles.json) are skipped; failed tiles are reported together at the end.
    """
    from jointseg.batch import (
        BATCH_ID_RE,
        BatchError,
        record_path,
        run_batch,
        tile_files,
        tile_inputs,
        write_manifest,
    )
    from jointseg.inference.providers import ModelError

    if not BATCH_ID_RE.match(batch):
        raise click.BadParameter(f"{batch!r}: expected B<epsg>_<xmin>_<ymin>",
                                 param_hint="--batch")
    tile_ids = _tile_list(tiles, tiles_file)
    try:
        settings = stage_settings(stage, settings_json, list(stage_args))
    except click.ClickException as exc:
        raise click.ClickException(f"{stage} settings: {exc.format_message()}") from None

    def outputs(tile_id: str) -> dict[str, Path]:
        files = tile_files(stage, tile_id, region, year, results_dir, resources_dir)
        if stage.startswith("predict") and settings.sr_quicklook:
            files["sr"] = files["isa"].with_name(f"{tile_id}_sr.tif")
        return files

    def inputs(tile_id: str) -> dict[str, Path]:
        files = tile_inputs(stage, tile_id, region, year, results_dir, resources_dir)
        if stage.startswith("predict") and model_path is not None:
            model = Path(model_path)  # and its fp16 twin, which precision may pick
            files |= {"model": model, "model_fp16": fp16_twin_path(model)}
        return files

    if stage.startswith("predict"):
        fn = _predict_stage(settings, model_path, inputs)
    else:
        fn = _data_stage(stage, settings, inputs, region, year)
    try:
        result = run_batch(stage, tile_ids, fn, outputs, settings=settings, inputs=inputs,
                           record=record_path(manifest), overwrite=overwrite,
                           progress=progress, fatal=(ModelError,))
    except (BatchError, ModelError) as exc:
        raise click.ClickException(str(exc)) from None
    write_manifest(manifest, batch, stage, region, year, result.outputs)
    click.echo(f"{manifest}: {len(result.done)} tile(s) done, {len(result.skipped)} skipped")


@click.command("merge-batches")
@click.argument("stage", type=click.Choice(["predict", "predict_baseline"]))
@click.option("--region", required=True, help="Region name.")
@click.option("--year", required=True, type=int, help="Year.")
@click.option("--dir", "batches_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the STAGE batch manifests "
                   "(results/{region}/{year}/<stage dir>/batches).")
@click.option("--batches", required=True,
              help="Comma-separated batch ids B<epsg>_<xmin>_<ymin>: DIR/<id>.json are merged.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Region manifest to write (results/{region}/{year}/isa/batches.json).")
def merge_batches(stage: str, region: str, year: int, batches_dir: Path, batches: str,
                  out_path: Path) -> None:
    """Merge the STAGE batch manifests of the given batches into one region manifest.

    Batch ids rather than paths keep the command line short for thousands of batches;
    only the listed batches are merged (not every file in DIR).
    """
    from jointseg.batch import BATCH_ID_RE, BatchError, merge_manifests

    ids = [b.strip() for b in batches.split(",") if b.strip()]
    bad = [b for b in ids if not BATCH_ID_RE.match(b)]
    if bad or not ids:
        raise click.BadParameter(f"{bad[0] if bad else batches!r}: expected "
                                 "B<epsg>_<xmin>_<ymin>[,...]", param_hint="--batches")
    try:
        merge_manifests([batches_dir / f"{b}.json" for b in ids], out_path, stage, region, year)
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{out_path}: merged {len(ids)} batch manifest(s)")
