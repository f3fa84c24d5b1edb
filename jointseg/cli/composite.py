"""``jointseg composite``: cloud-free 10 m + 20 m composites.

Settings: :class:`jointseg.data.settings.CompositeSettings` (config ``composite``,
``--settings``; the options below replace single fields). Runs
:func:`jointseg.data.composite.run_composite`, as ``jointseg batch composite`` does.
"""

from __future__ import annotations

from pathlib import Path

import click

from jointseg.cli.settings import settings_from_context, settings_option
from jointseg.config import schema_default
from jointseg.data.composite import CompositeError, run_composite
from jointseg.data.settings import CompositeSettings
from jointseg.io import OutputError


@click.command("composite")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("mask", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_10m", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_20m", type=click.Path(dir_okay=False, path_type=Path))
@settings_option("composite")
@click.option("--method", type=click.Choice(["median", "best_pixel"]),
              default=schema_default("composite.method"), show_default=True)
@click.option("--min-clear", default=schema_default("composite.min_clear"),
              show_default=True, type=int,
              help="Fewer clear observations than this -> COUNT 0 (filled, or nodata).")
@click.option("--block-rows", default=schema_default("composite.block_rows"),
              show_default=True, type=int,
              help="Rows per processing block at 10 m (even).")
@click.option("--fill/--no-fill", default=schema_default("composite.fill"), show_default=True,
              help="Fill pixels without a clear observation from their least-cloudy one "
                   "(QA band flag 1); --no-fill leaves them nodata.")
@click.pass_context
def composite(ctx: click.Context, manifest: Path, mask: Path, out_10m: Path, out_20m: Path,
              **_: object) -> None:
    """Composite the stack of MANIFEST with cloud mask MASK into OUT_10M and OUT_20M."""
    settings = settings_from_context(CompositeSettings, ctx)
    try:
        paths = run_composite(manifest, mask, out_10m, out_20m, settings)
    except (CompositeError, OutputError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for p in paths:
        click.echo(str(p))
