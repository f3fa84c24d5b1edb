"""``jointseg tiles``: list a region's tiles."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jointseg.config import ConfigError, load_config
from jointseg.regions import RegionError, region_tiles


@click.command("tiles")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default="config.yaml",
              show_default=True, help="Workflow config (YAML).")
@click.option("--region", required=True, help="Region name from the config.")
@click.option("--geojson", is_flag=True, help="Print a GeoJSON FeatureCollection (lon/lat).")
def tiles(config_path: Path, region: str, geojson: bool) -> None:
    """Print the tile ids of REGION (one per line), or their footprints as GeoJSON."""
    try:
        cfg = load_config(config_path)
        if region not in cfg["regions"]:
            raise ConfigError(f"{config_path}: no region {region!r}; "
                              f"known: {', '.join(cfg['regions'])}")
        tl = region_tiles(cfg["regions"][region], cfg["grid"]["tile_size_m"],
                          config_path.parent)
    except (ConfigError, RegionError) as exc:
        raise click.ClickException(str(exc)) from None
    if not geojson:
        click.echo("\n".join(t.tile_id for t in tl))
        return
    from shapely.geometry import mapping

    feats = [{"type": "Feature", "properties": {"tile_id": t.tile_id, "epsg": t.epsg},
              "geometry": mapping(t.footprint_lonlat())} for t in tl]
    click.echo(json.dumps({"type": "FeatureCollection", "features": feats}))
