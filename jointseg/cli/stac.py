"""``jointseg scene-info``, ``search`` and ``serve-demo`` (see :mod:`jointseg.data.stac`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from jointseg.config import schema_default

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

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


#: search option -> the config key whose value it takes from --config when not given
CONFIG_KEYS: dict[str, str] = {
    "api_url": "stac.api_url",
    "collection": "stac.collection",
    "provider": "stac.provider",
    "max_cloud_cover": "stac.max_cloud_cover",
    "max_scenes": "stac.max_scenes",
    "tile_size_m": "grid.tile_size_m",
    "sign": "stac.sign_planetary_computer",
    "timeout_s": "stac.timeout_s",
    "retries": "download.retries",
    "backoff_s": "download.backoff_s",
    "allow_http": "stac.allow_http",
    "demo_stac_port": "stac.demo_server.stac_port",
    "demo_file_port": "stac.demo_server.file_port",
    "demo_state_dir": "stac.demo_server.state_dir",
}


def _config_value(cfg: dict, dotted: str) -> object:
    node: object = cfg
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _merge_config(ctx: click.Context, config_path: Path | None) -> dict:
    """The command's parameters, options not given on the command line taken from
    ``config_path`` (validated, defaults filled) when given; also ``year``,
    ``date_window`` and ``demo_sim_dir`` (set when the config's demo server is on)."""
    from jointseg.config import ConfigError, load_config

    p = dict(ctx.params)
    p["date_window"] = {"start": schema_default("stac.date_window.start"),
                        "end": schema_default("stac.date_window.end")}
    if config_path is None:
        return p
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    given = {n for n in p if ctx.get_parameter_source(n) != ParameterSource.DEFAULT}
    for name, dotted in CONFIG_KEYS.items():
        if name not in given and _config_value(cfg, dotted) is not None:
            p[name] = _config_value(cfg, dotted)
    if p["year"] is None:
        p["year"] = cfg["year"]
    p["date_window"] = cfg["stac"]["date_window"]
    demo = cfg["stac"]["demo_server"]
    if demo["enabled"] and "demo_sim_dir" not in given and "api_url" not in given:
        p["demo_sim_dir"] = Path(demo["sim_dir"])
    return p


def _search_geometry(p: dict) -> BaseGeometry:
    """The footprint to search (lon/lat): the tile's, or --bbox-lonlat."""
    from shapely.geometry import box

    from jointseg.grid import Tile

    bbox = _parse_bbox(p["bbox_lonlat"])
    if p["tile_id"] is None and bbox is None:
        raise click.UsageError("give --tile or --bbox-lonlat")
    if bbox is not None:
        return box(*bbox)
    if p["tile_size_m"] is None:
        raise click.UsageError("give --tile-size-m (or --config) with --tile")
    try:
        return Tile.from_id(p["tile_id"], int(p["tile_size_m"])).footprint_lonlat()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tile") from None


def _api_url(p: dict) -> str:
    """--api-url, or the URL of the demo STAC API (started if needed) with --demo-sim-dir."""
    from jointseg.simulate.servers import ServerError, ensure_demo_servers

    if p["demo_sim_dir"] is not None:
        try:
            url, _ = ensure_demo_servers(Path(p["demo_sim_dir"]), int(p["demo_stac_port"]),
                                         int(p["demo_file_port"]), Path(p["demo_state_dir"]))
        except ServerError as exc:
            raise click.ClickException(str(exc)) from None
        return url
    if not p["api_url"]:
        raise click.UsageError("give --api-url, --demo-sim-dir or --config")
    return str(p["api_url"])


@click.command("search")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Workflow config (config.yaml): its values replace the defaults of the "
                   "options not given (the workflow passes every option instead).")
@click.option("--region", default=None, help="Region name (recorded in the output).")
@click.option("--year", type=int, default=None, help="Year to search (default: config year).")
@click.option("--tile", "tile_id", default=None,
              help="Tile id <epsg>_<xmin>_<ymin>; its footprint is searched.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Scene list to write (results/{region}/{year}/scenes/{tile}.json).")
@click.option("--api-url", default=None, help="STAC API root URL.")
@click.option("--collection", default=schema_default("stac.collection"), show_default=True,
              help="Collection id.")
@click.option("--provider", default=schema_default("stac.provider"), show_default=True,
              type=click.Choice(["auto", "earth-search", "planetary-computer", "cdse"]))
@click.option("--bbox-lonlat", default=None,
              help="Search this lon/lat box (minlon,minlat,maxlon,maxlat) instead of the tile.")
@click.option("--start", "start_date", default=None,
              help="First date YYYY-MM-DD [default: YEAR-01-01].")
@click.option("--end", "end_date", default=None,
              help="Last date YYYY-MM-DD, inclusive [default: YEAR-12-31].")
@click.option("--max-cloud-cover", type=float, default=schema_default("stac.max_cloud_cover"),
              show_default=True, help="Percent.")
@click.option("--max-scenes", type=int, default=schema_default("stac.max_scenes"),
              show_default=True, help="Scenes to keep, least cloudy first.")
@click.option("--tile-size-m", type=int, default=None, help="Tile side (default: config).")
@click.option("--sign/--no-sign", default=schema_default("stac.sign_planetary_computer"),
              show_default=True, help="Sign Planetary Computer hrefs.")
@click.option("--timeout-s", type=float, default=schema_default("stac.timeout_s"),
              show_default=True, help="HTTP timeout per request (s).")
@click.option("--retries", type=int, default=schema_default("download.retries"),
              show_default=True, help="HTTP retries per request.")
@click.option("--backoff-s", type=float, default=schema_default("download.backoff_s"),
              show_default=True, help="First retry wait (s), doubled each retry.")
@click.option("--allow-http", is_flag=True, default=schema_default("stac.allow_http"),
              help="Accept a plain http:// API URL on a non-loopback host.")
@click.option("--demo-sim-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Search the simulated demo catalogue in this folder: start (or reuse) "
                   "its loopback STAC API and file server; --api-url is then not used.")
@click.option("--demo-stac-port", type=int, default=schema_default("stac.demo_server.stac_port"),
              show_default=True, help="Demo STAC API port (with --demo-sim-dir).")
@click.option("--demo-file-port", type=int, default=schema_default("stac.demo_server.file_port"),
              show_default=True, help="Demo file server port (with --demo-sim-dir).")
@click.option("--demo-state-dir", type=click.Path(file_okay=False, path_type=Path),
              default=schema_default("stac.demo_server.state_dir"), show_default=True,
              help="Demo servers' pid files, logs and lock (with --demo-sim-dir).")
@click.option("--allow-empty", is_flag=True,
              help="Write an empty scene list instead of failing when nothing matches.")
@click.pass_context
def search(ctx: click.Context, config_path: Path | None, **_: object) -> None:
    """Find the least cloudy Sentinel-2 L2A scenes for one tile and write the scene list."""
    from jointseg.data.errors import NoScenesError, StacError
    from jointseg.data.stac import date_window, search_scenes, write_scene_list

    p = _merge_config(ctx, config_path)
    start_date, end_date, year = p["start_date"], p["end_date"], p["year"]
    if (start_date is None or end_date is None) and year is None:
        raise click.UsageError("give --year (or --config) or both --start and --end")
    if start_date is None or end_date is None:
        dw = p["date_window"]
        first, last = date_window(int(year), dw["start"], dw["end"])
        start_date = start_date or first.isoformat()
        end_date = end_date or last.isoformat()
    year = int(year) if year is not None else int(str(start_date)[:4])
    geometry = _search_geometry(p)
    tile_id = p["tile_id"]
    try:
        scenes = search_scenes(
            _api_url(p), p["collection"], geometry, start_date, end_date,
            max_cloud_cover=float(p["max_cloud_cover"]), max_scenes=int(p["max_scenes"]),
            provider=p["provider"], sign=bool(p["sign"]), timeout_s=float(p["timeout_s"]),
            retries=int(p["retries"]), backoff_s=float(p["backoff_s"]),
            allow_http=bool(p["allow_http"]),
        )  # fmt: skip
    except NoScenesError as exc:
        if not p["allow_empty"]:
            raise click.ClickException(str(exc)) from None
        log.warning("%s", exc)
        scenes = []
    except StacError as exc:
        raise click.ClickException(str(exc)) from None
    write_scene_list(p["out_path"], tile_id or "bbox", p["region"] or "custom", year, scenes)
    for s in scenes:
        log.info("%s: %s cloud %.1f%% boa_offset_dn %d", tile_id or "bbox", s.id,
                 s.cloud_cover, s.boa_offset_dn)
    click.echo(f"{p['out_path']}: {len(scenes)} scene(s)")


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
