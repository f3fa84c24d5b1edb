"""``jointseg scene-info``, ``search`` and ``serve-demo`` (see :mod:`jointseg.data.stac`).

``search``'s settings are :class:`jointseg.data.settings.SearchSettings` (config ``stac``
plus the retries and tile size, ``--settings`` or ``--config``; the options replace
single fields); it runs :func:`jointseg.data.stac.run_search`, as ``jointseg batch
search`` does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from jointseg.cli.settings import build_settings, given_fields, settings_option
from jointseg.config import schema_default

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from jointseg.data.settings import SearchSettings

log = logging.getLogger(__name__)


@click.command("scene-info")
@click.argument("item_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--provider", default="auto", show_default=True,
              type=click.Choice(["auto", "earth-search", "planetary-computer", "cdse"]),
              help="Item conventions; auto detects them.")
def scene_info(item_json: Path, provider: str) -> None:
    """Print what JointSeg reads from one Sentinel-2 L2A STAC Item file (JSON).

    Output keys: id, datetime, cloud_cover, processing_baseline, boa_offset_dn and
    bands (band id B02 ... B12, SCL -> href).
    """
    from jointseg.data.errors import ItemError
    from jointseg.data.providers import scene_info_from_item

    try:
        item = json.loads(item_json.read_text())
        info = scene_info_from_item(item, provider)
    except ValueError as exc:  # ItemError and JSON errors
        msg = str(exc) if isinstance(exc, ItemError) else f"not JSON: {exc}"
        raise click.ClickException(f"{item_json}: {msg}") from None
    out = {k: info.to_dict()[k] for k in ("id", "datetime", "cloud_cover",
                                          "processing_baseline", "boa_offset_dn", "bands")}
    click.echo(json.dumps(out, indent=2))


def _parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not (values[0] < values[2] and values[1] < values[3]):
        raise click.BadParameter(f"{text!r}: expected minlon,minlat,maxlon,maxlat",
                                 param_hint="--bbox-lonlat")
    return values  # type: ignore[return-value]


def _search_geometry(tile_id: str | None, bbox_lonlat: str | None,
                     tile_size_m: int) -> BaseGeometry:
    """The footprint to search (lon/lat): the tile's, or --bbox-lonlat."""
    from shapely.geometry import box

    from jointseg.grid import Tile

    bbox = _parse_bbox(bbox_lonlat)
    if tile_id is None and bbox is None:
        raise click.UsageError("give --tile or --bbox-lonlat")
    if bbox is not None:
        return box(*bbox)
    try:
        return Tile.from_id(tile_id, int(tile_size_m)).footprint_lonlat()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tile") from None


def api_url(settings: SearchSettings) -> str:
    """The STAC API to search: ``settings.api_url``, or the demo's loopback API (started
    if needed) when ``settings.demo_sim_dir`` is set."""
    from jointseg.simulate.servers import ServerError, ensure_demo_servers

    if settings.demo_sim_dir is not None:
        try:
            url, _ = ensure_demo_servers(Path(settings.demo_sim_dir), settings.demo_stac_port,
                                         settings.demo_file_port, Path(settings.demo_state_dir))
        except ServerError as exc:
            raise click.ClickException(str(exc)) from None
        return url
    if not settings.api_url:
        raise click.UsageError("give --api-url, --demo-sim-dir or --config (or --settings)")
    return str(settings.api_url)


def _settings(ctx: click.Context, config_path: Path | None) -> tuple[SearchSettings, dict]:
    """The search settings (``--config`` or ``--settings``, then the options given) and
    the loaded config (``{}`` without ``--config``)."""
    from jointseg.config import ConfigError, load_config
    from jointseg.data.settings import SearchSettings
    from jointseg.settings import stage_settings_section

    given = given_fields(ctx, SearchSettings)
    if "api_url" in given and "demo_sim_dir" not in given:
        given["demo_sim_dir"] = None  # an API named by hand replaces the demo's
    if config_path is None and ctx.params["settings_json"] is None and not (
            {"api_url", "demo_sim_dir"} & set(given)):
        raise click.UsageError("give --api-url, --demo-sim-dir or --config (or --settings)")
    if config_path is None:
        return build_settings(SearchSettings, ctx.params["settings_json"], given), {}
    if ctx.params["settings_json"] is not None:
        raise click.UsageError("give --config or --settings, not both")
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    section = json.dumps(stage_settings_section(cfg, "search"))
    return build_settings(SearchSettings, section, given), cfg


@click.command("search")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Workflow config (config.yaml): its stac, download and grid values "
                   "replace the defaults of the options not given.")
@settings_option("stac")
@click.option("--region", default=None, help="Region name (recorded in the output).")
@click.option("--year", type=int, default=None, help="Year to search (default: config year).")
@click.option("--tile", "tile_id", default=None,
              help="Tile id <epsg>_<xmin>_<ymin>; its footprint is searched.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Scene list to write (results/{region}/{year}/scenes/{tile}.json).")
@click.option("--bbox-lonlat", default=None,
              help="Search this lon/lat box (minlon,minlat,maxlon,maxlat) instead of the tile.")
@click.option("--start", "start_date", default=None,
              help="First date YYYY-MM-DD [default: YEAR and the settings' date window].")
@click.option("--end", "end_date", default=None,
              help="Last date YYYY-MM-DD, inclusive [default: as --start].")
@click.option("--allow-empty", is_flag=True,
              help="Write an empty scene list instead of failing when nothing matches.")
@click.option("--api-url", default=None, help="STAC API root URL.")
@click.option("--collection", default=schema_default("stac.collection"), show_default=True,
              help="Collection id.")
@click.option("--provider", default=schema_default("stac.provider"), show_default=True,
              type=click.Choice(["auto", "earth-search", "planetary-computer", "cdse"]))
@click.option("--max-cloud-cover", type=float, default=schema_default("stac.max_cloud_cover"),
              show_default=True, help="Percent.")
@click.option("--max-scenes", type=int, default=schema_default("stac.max_scenes"),
              show_default=True, help="Scenes to keep, least cloudy first.")
@click.option("--tile-size-m", type=int, default=schema_default("grid.tile_size_m"),
              show_default=True, help="Tile side.")
@click.option("--sign/--no-sign", default=schema_default("stac.sign_planetary_computer"),
              show_default=True, help="Sign Planetary Computer hrefs.")
@click.option("--timeout-s", type=float, default=schema_default("stac.timeout_s"),
              show_default=True, help="HTTP timeout per request (s).")
@click.option("--retries", type=int, default=schema_default("download.retries"),
              show_default=True, help="HTTP retries per request.")
@click.option("--backoff-s", type=float, default=schema_default("download.backoff_s"),
              show_default=True, help="First retry wait (s), doubled each retry.")
@click.option("--allow-http/--no-allow-http", default=schema_default("stac.allow_http"),
              help="Accept a plain http:// API URL on a non-loopback host.")
@click.option("--demo-sim-dir", type=click.Path(file_okay=False), default=None,
              help="Search the simulated demo catalogue in this folder: start (or reuse) "
                   "its loopback STAC API and file server; --api-url is then not used.")
@click.option("--demo-stac-port", type=int, default=schema_default("stac.demo_server.stac_port"),
              show_default=True, help="Demo STAC API port (with --demo-sim-dir).")
@click.option("--demo-file-port", type=int, default=schema_default("stac.demo_server.file_port"),
              show_default=True, help="Demo file server port (with --demo-sim-dir).")
@click.option("--demo-state-dir", type=click.Path(file_okay=False),
              default=schema_default("stac.demo_server.state_dir"), show_default=True,
              help="Demo servers' pid files, logs and lock (with --demo-sim-dir).")
@click.pass_context
def search(ctx: click.Context, config_path: Path | None, region: str | None, year: int | None,
           tile_id: str | None, out_path: Path, bbox_lonlat: str | None,
           start_date: str | None, end_date: str | None, allow_empty: bool,
           **_: object) -> None:
    """Find the least cloudy Sentinel-2 L2A scenes for one tile and write the scene list."""
    from jointseg.data.errors import NoScenesError, StacError
    from jointseg.data.stac import run_search

    settings, cfg = _settings(ctx, config_path)
    if year is None and cfg:
        year = cfg["year"]
    if year is None and (start_date is None or end_date is None):
        raise click.UsageError("give --year (or --config) or both --start and --end")
    year = int(year) if year is not None else int(str(start_date)[:4])
    geometry = _search_geometry(tile_id, bbox_lonlat, settings.tile_size_m)
    try:
        scenes = run_search(settings, api_url(settings), geometry, out_path, tile_id=tile_id,
                            region=region, year=year, start_date=start_date,
                            end_date=end_date, allow_empty=allow_empty)
    except (NoScenesError, StacError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{out_path}: {len(scenes)} scene(s)")


@click.command("serve-demo")
@click.option("--sim-dir", default="resources/demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Simulated demo directory (with stac/ and s2/).")
@click.option("--stac-port", default=8751, show_default=True, type=int)
@click.option("--file-port", default=8752, show_default=True, type=int)
@click.option("--state-dir", default=".jointseg/servers", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where pid files, logs and the lock live.")
@click.option("--stop", is_flag=True, help="Stop the servers started from STATE_DIR.")
def serve_demo(sim_dir: Path, stac_port: int, file_port: int, state_dir: Path,
               stop: bool) -> None:
    """Start (or reuse) the demo STAC API and Range file server on 127.0.0.1, detached."""
    from jointseg.simulate.servers import ServerError, ensure_demo_servers, stop_demo_servers

    if stop:
        try:
            stop_demo_servers(state_dir)
        except ServerError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"stopped demo servers recorded in {state_dir}")
        return
    try:
        stac_url, file_url = ensure_demo_servers(sim_dir, stac_port, file_port, state_dir)
    except ServerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"stac_url": stac_url, "file_url": file_url}))
