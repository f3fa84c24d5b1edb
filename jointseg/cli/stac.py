"""``jointseg scene-info``, ``search`` and ``serve-demo`` (see :mod:`jointseg.data.stac`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

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
    from jointseg.data.stac import ItemError, scene_info_from_item

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


@click.command("search")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Workflow config (config.yaml); explicit options override it.")
@click.option("--region", default=None, help="Region name (recorded in the output).")
@click.option("--year", type=int, default=None, help="Year to search (default: config year).")
@click.option("--tile", "tile_id", default=None,
              help="Tile id <epsg>_<xmin>_<ymin>; its footprint is searched.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Scene list to write (results/{region}/{year}/scenes/{tile}.json).")
@click.option("--api-url", default=None, help="STAC API root URL.")
@click.option("--collection", default=None, help="Collection id (default sentinel-2-l2a).")
@click.option("--provider", default=None,
              type=click.Choice(["auto", "earth-search", "planetary-computer", "cdse"]))
@click.option("--bbox-lonlat", default=None,
              help="Search this lon/lat box (minlon,minlat,maxlon,maxlat) instead of the tile.")
@click.option("--start", "start_date", default=None, help="First date YYYY-MM-DD.")
@click.option("--end", "end_date", default=None, help="Last date YYYY-MM-DD (inclusive).")
@click.option("--max-cloud-cover", type=float, default=None, help="Percent (default 80).")
@click.option("--max-scenes", type=int, default=None, help="Scenes to keep (default 12).")
@click.option("--tile-size-m", type=int, default=None, help="Tile side (default: config).")
@click.option("--sign/--no-sign", default=None, help="Sign Planetary Computer hrefs.")
@click.option("--timeout-s", type=float, default=None, help="HTTP timeout per request (s).")
@click.option("--retries", type=int, default=None,
              help="HTTP retries per request (default: config download.retries, else 5).")
@click.option("--backoff-s", type=float, default=None,
              help="First retry wait, doubled each retry (default: config download.backoff_s).")
@click.option("--allow-http", is_flag=True,
              help="Accept a plain http:// API URL on a non-loopback host.")
@click.option("--allow-empty", is_flag=True,
              help="Write an empty scene list instead of failing when nothing matches.")
def search(config_path: Path | None, region: str | None, year: int | None, tile_id: str | None,
           out_path: Path, api_url: str | None, collection: str | None, provider: str | None,
           bbox_lonlat: str | None, start_date: str | None, end_date: str | None,
           max_cloud_cover: float | None, max_scenes: int | None, tile_size_m: int | None,
           sign: bool | None, timeout_s: float | None, retries: int | None,
           backoff_s: float | None, allow_http: bool, allow_empty: bool) -> None:
    """Find the least cloudy Sentinel-2 L2A scenes for one tile and write the scene list."""
    from shapely.geometry import box

    from jointseg.config import ConfigError, load_config
    from jointseg.data.stac import (
        NoScenesError,
        StacError,
        date_window,
        search_scenes,
        write_scene_list,
    )
    from jointseg.grid import Tile
    from jointseg.simulate.servers import ServerError, ensure_demo_servers

    cfg: dict = {}
    if config_path is not None:
        try:
            cfg = load_config(config_path)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    stac = dict(cfg.get("stac") or {})
    dl_cfg = dict(cfg.get("download") or {})
    year = year if year is not None else cfg.get("year")
    bbox = _parse_bbox(bbox_lonlat)
    if tile_id is None and bbox is None:
        raise click.UsageError("give --tile or --bbox-lonlat")
    if (start_date is None or end_date is None) and year is None:
        raise click.UsageError("give --year (or --config) or both --start and --end")
    if start_date is None or end_date is None:
        dw = stac.get("date_window") or {}
        first, last = date_window(int(year), dw.get("start", "01-01"), dw.get("end", "12-31"))
        start_date = start_date or first.isoformat()
        end_date = end_date or last.isoformat()
    if year is None:
        year = int(str(start_date)[:4])

    if tile_id is not None:
        size = tile_size_m or (cfg.get("grid") or {}).get("tile_size_m")
        if size is None:
            raise click.UsageError("give --tile-size-m (or --config) with --tile")
        try:
            tile = Tile.from_id(tile_id, int(size))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--tile") from None
        geometry = tile.footprint_lonlat() if bbox is None else box(*bbox)
    else:
        geometry = box(*bbox)

    demo = stac.get("demo_server") or {}
    if demo.get("enabled") and api_url is None:
        try:
            api_url, _ = ensure_demo_servers(
                Path(demo.get("sim_dir", "resources/demo")), int(demo.get("stac_port", 8751)),
                int(demo.get("file_port", 8752)), Path(demo.get("state_dir", ".jointseg/servers")))
        except ServerError as exc:
            raise click.ClickException(str(exc)) from None
    api_url = api_url or stac.get("api_url")
    if not api_url:
        raise click.UsageError("give --api-url (or --config)")
    try:
        scenes = search_scenes(
            api_url,
            collection or stac.get("collection", "sentinel-2-l2a"),
            geometry,
            start_date,
            end_date,
            max_cloud_cover=(max_cloud_cover if max_cloud_cover is not None
                             else float(stac.get("max_cloud_cover", 80))),
            max_scenes=max_scenes if max_scenes is not None else int(stac.get("max_scenes", 12)),
            provider=provider or stac.get("provider", "auto"),
            sign=sign if sign is not None else bool(stac.get("sign_planetary_computer", False)),
            timeout_s=timeout_s if timeout_s is not None else float(stac.get("timeout_s", 60)),
            stac_cfg=stac,
            retries=retries if retries is not None else int(dl_cfg.get("retries", 5)),
            backoff_s=backoff_s if backoff_s is not None else float(dl_cfg.get("backoff_s", 1.0)),
            allow_http=allow_http or bool(stac.get("allow_http", False)),
        )
    except NoScenesError as exc:
        if not allow_empty:
            raise click.ClickException(str(exc)) from None
        log.warning("%s", exc)
        scenes = []
    except StacError as exc:
        raise click.ClickException(str(exc)) from None
    write_scene_list(out_path, tile_id or "bbox", region or "custom", int(year), scenes)
    for s in scenes:
        log.info("%s: %s cloud %.1f%% boa_offset_dn %d", tile_id or "bbox", s.id,
                 s.cloud_cover, s.boa_offset_dn)
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
