"""``jointseg check-config``: validate a workflow config."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jointseg.config import ConfigError, load_config


@click.command("check-config")
@click.argument("path", type=click.Path(path_type=Path), default="config.yaml")
@click.option("--show", is_flag=True, help="Print the config with defaults filled in (JSON).")
def check_config(path: Path, show: bool) -> None:
    """Validate PATH against schemas/config.schema.yaml; exit 1 with the reason if invalid."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(cfg, indent=2) if show else f"{path}: valid")
