"""``jointseg batch``: run one per-tile stage over a batch of tiles (see :mod:`jointseg.batch`).

    jointseg batch composite --region demo --year 2019 --batch B32650_0_3540000 \\
        --tiles 32650_663000_3543000,32650_663600_3543000 \\
        --manifest results/demo/2019/composite/batches/B32650_0_3540000.json \\
        -- --method median --min-clear 1

Everything after ``--`` is passed to the per-tile command of the stage (``jointseg
search|download|cloudmask|composite|predict``) with the same meaning; the batch command
adds each tile's input and output paths. ``predict`` loads the model once per batch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from jointseg.config import schema_default

log = logging.getLogger(__name__)


def _tile_list(tiles: str | None, tiles_file: Path | None) -> list[str]:
    out = [t.strip() for t in (tiles or "").split(",") if t.strip()]
    if tiles_file is not None:
        out += [t.strip() for t in tiles_file.read_text().split() if t.strip()]
    if not out:
        raise click.UsageError("give --tiles or --tiles-file (no tiles given)")
    if len(set(out)) != len(out):
        raise click.BadParameter("a tile id is listed twice", param_hint="--tiles")
    return out


def _invoke(cmd: click.Command, args: list[str]) -> None:
    """Run a per-tile click command in this process; raise on any failure."""
    try:
        cmd.main(args, prog_name=f"jointseg {cmd.name}", standalone_mode=False)
    except click.exceptions.Exit as exc:
        if exc.exit_code:
            raise RuntimeError(f"exit status {exc.exit_code}") from None
    except click.ClickException as exc:
        raise RuntimeError(exc.format_message()) from None


def _predictor(stage_args: list[str], sr_quicklook: bool):
    """Parse ``jointseg predict`` options once, load the model once; return fn(tile, files)."""
    from jointseg.cli.predict import _default_threads, _parse_options
    from jointseg.cli.predict import predict as predict_cmd
    from jointseg.inference.products import predict_tile
    from jointseg.inference.scene import open_scene
    from jointseg.inference.session import make_session

    ctx = predict_cmd.make_context(
        "jointseg predict", [*stage_args, "--input", "-", "--output", "-"]
    )
    p = ctx.params
    session, info = make_session(
        p["model_path"], providers=tuple(p["providers"].split(",")),
        threads=p["threads"] or _default_threads(),
        cuda_options=_parse_options(p["cuda_options"]),
    )  # fmt: skip

    def run(tile_id: str, files: dict[str, Path], c10: Path) -> None:
        with open_scene(str(c10)) as scene:
            predict_tile(
                session, scene, str(files["isa"]), prob_output=str(files["prob"]),
                sr_output=str(files["sr"]) if sr_quicklook else None,
                threshold=p["threshold"], window=p["window"], overlap=p["overlap"],
                batch_size=p["batch_size"], info=info, compress=p["compress"], progress=False,
            )  # fmt: skip

    return run


@click.command(
    "batch", context_settings={"ignore_unknown_options": True, "allow_extra_args": False}
)
@click.argument(
    "stage", type=click.Choice(["search", "download", "cloudmask", "composite", "predict",
                                "predict_baseline"])
)  # fmt: skip
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
@click.option("--sr-quicklook", is_flag=True,
              help="predict: also write <tile>_sr.tif beside <tile>_isa.tif.")
@click.option("--overwrite", is_flag=True, help="Redo tiles whose outputs exist already.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.argument("stage_args", nargs=-1, type=click.UNPROCESSED)
def batch(stage: str, tiles: str | None, tiles_file: Path | None, batch: str, manifest: Path,
          region: str, year: int, results_dir: Path, resources_dir: Path, sr_quicklook: bool,
          overwrite: bool, progress: bool, stage_args: tuple[str, ...]) -> None:
    """Run STAGE for every tile of a batch, then write the batch MANIFEST.

    STAGE_ARGS (after --) are the per-tile command's options. Tiles whose outputs exist
    and validate are skipped; failed tiles are reported together at the end.
    """
    from jointseg.batch import BATCH_ID_RE, BatchError, run_batch, tile_files, write_manifest

    if not BATCH_ID_RE.match(batch):
        raise click.BadParameter(f"{batch!r}: expected B<epsg>_<xmin>_<ymin>",
                                 param_hint="--batch")
    tile_ids = _tile_list(tiles, tiles_file)
    args = list(stage_args)

    def files_of(st: str, tile_id: str) -> dict[str, Path]:
        return tile_files(st, tile_id, region, year, results_dir, resources_dir)

    def outputs(tile_id: str) -> dict[str, Path]:
        files = files_of(stage, tile_id)
        if stage.startswith("predict") and sr_quicklook:
            files["sr"] = files["isa"].with_name(f"{tile_id}_sr.tif")
        return files

    if stage == "search":
        from jointseg.cli.stac import search as cmd

        def fn(t: str, f: dict[str, Path]) -> None:
            _invoke(cmd, [*args, "--region", region, "--year", str(year), "--tile", t,
                          "--out", str(f["scenes"])])  # fmt: skip
    elif stage == "download":
        from jointseg.cli.download import download as cmd

        def fn(t: str, f: dict[str, Path]) -> None:
            _invoke(cmd, [str(files_of("search", t)["scenes"]),
                          "--out-dir", str(f["manifest"].parent), *args])  # fmt: skip
    elif stage == "cloudmask":
        from jointseg.cli.cloudmask import cloudmask as cmd

        def fn(t: str, f: dict[str, Path]) -> None:
            _invoke(cmd, [str(files_of("download", t)["manifest"]), str(f["mask"]), *args])
    elif stage == "composite":
        from jointseg.cli.composite import composite as cmd

        def fn(t: str, f: dict[str, Path]) -> None:
            _invoke(cmd, [str(files_of("download", t)["manifest"]),
                          str(files_of("cloudmask", t)["mask"]),
                          str(f["c10"]), str(f["c20"]), *args])  # fmt: skip
    else:
        run_predict = None

        def fn(t: str, f: dict[str, Path]) -> None:
            nonlocal run_predict
            if run_predict is None:  # load the model only when a tile needs it
                try:
                    run_predict = _predictor(args, sr_quicklook)
                except click.ClickException as exc:
                    raise click.ClickException(
                        f"predict options: {exc.format_message()}") from None
            run_predict(t, f, files_of("composite", t)["c10"])

    try:
        result = run_batch(stage, tile_ids, fn, outputs, overwrite=overwrite, progress=progress)
    except BatchError as exc:
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
