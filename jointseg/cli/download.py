"""``jointseg download``: cut a tile's scenes to the tile grid.

See :mod:`jointseg.data.download`.
"""

from __future__ import annotations

from pathlib import Path

import click

from jointseg.config import schema_default
from jointseg.data.download import download_tile
from jointseg.data.errors import DownloadError, ItemError
from jointseg.data.stac import read_scene_list
from jointseg.grid import Tile


@click.command("download")
@click.argument("scenes_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Stack directory (resources/{region}/{year}/stack/{tile}).")
@click.option("--tile-size-m", required=True, type=int, help="Tile side in metres.")
@click.option("--bands", default=",".join(schema_default("bands.b10m")
              + schema_default("bands.b20m") + ["SCL"]), show_default=True,
              help="Comma-separated band ids.")
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
@click.option("--allow-http", is_flag=True,
              help="Follow plain http:// hrefs to non-loopback hosts (refused by default).")
def download(scenes_json: Path, out_dir: Path, tile_size_m: int, bands: str, retries: int,
             backoff_s: float, timeout_s: float, give_up_s: float, allow_http: bool) -> None:
    """Download the tile window of every scene in SCENES_JSON (output of ``jointseg search``).

    Writes OUT_DIR/<scene>/<band>.tif and OUT_DIR/manifest.json (last).
    """
    try:
        tile_id, _region, _year, scenes = read_scene_list(scenes_json)
    except ItemError as exc:
        raise click.ClickException(str(exc)) from exc
    tile = Tile.from_id(tile_id, tile_size_m)
    band_list = [b.strip() for b in bands.split(",") if b.strip()]
    try:
        manifest = download_tile(scenes, tile, out_dir, band_list, retries=retries,
                                 backoff_s=backoff_s, timeout_s=timeout_s, give_up_s=give_up_s,
                                 allow_http=allow_http)
    except (DownloadError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(manifest))
