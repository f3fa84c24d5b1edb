"""``jointseg download``: cut a tile's scenes to the tile grid.

Settings: :class:`jointseg.data.settings.DownloadSettings` (config ``download`` plus
the tile size, bands and ``stac`` HTTP rules, ``--settings``; the options below replace
single fields). Runs :func:`jointseg.data.download.run_download`, as ``jointseg batch
download`` does.
"""

from __future__ import annotations

from pathlib import Path

import click

from jointseg.cli.settings import settings_from_context, settings_option, split_list
from jointseg.config import schema_default
from jointseg.data.download import run_download
from jointseg.data.errors import DownloadError, ItemError
from jointseg.data.settings import DownloadSettings
from jointseg.io import OutputError


@click.command("download")
@click.argument("scenes_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Stack directory (resources/{region}/{year}/stack/{tile}).")
@settings_option("download")
@click.option("--tile-size-m", type=int, default=schema_default("grid.tile_size_m"),
              show_default=True, help="Tile side in metres.")
@click.option("--bands", default=",".join(schema_default("bands.b10m")
              + schema_default("bands.b20m") + ["SCL"]), show_default=True,
              callback=split_list, help="Comma-separated band ids.")
@click.option("--retries", default=schema_default("download.retries"), show_default=True,
              type=int)
@click.option("--backoff-s", default=schema_default("download.backoff_s"),
              show_default=True, type=float,
              help="First retry wait, doubled each retry.")
@click.option("--timeout-s", default=schema_default("stac.timeout_s"), show_default=True,
              type=float,
              help="HTTP timeout per request.")
@click.option("--give-up-s", default=schema_default("download.give_up_s"), show_default=True,
              type=float,
              help="Time budget of one failing asset (s): no retry starts after it.")
@click.option("--allow-http/--no-allow-http", default=schema_default("stac.allow_http"),
              help="Follow plain http:// hrefs to non-loopback hosts (refused by default).")
@click.pass_context
def download(ctx: click.Context, scenes_json: Path, out_dir: Path, **_: object) -> None:
    """Download the tile window of every scene in SCENES_JSON (output of ``jointseg search``).

    Writes OUT_DIR/<scene>/<band>.tif and OUT_DIR/manifest.json (last).
    """
    settings = settings_from_context(DownloadSettings, ctx)
    try:
        manifest = run_download(scenes_json, out_dir, settings)
    except (DownloadError, ItemError, OutputError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(manifest))
