"""``jointseg composite``: cloud-free 10 m + 20 m composites.

See :mod:`jointseg.data.composite`.
"""

from __future__ import annotations

from pathlib import Path

import click

from jointseg.config import schema_default
from jointseg.data.composite import CompositeError, composite_tile
from jointseg.io import OutputError


@click.command("composite")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("mask", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_10m", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_20m", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--method", type=click.Choice(["median", "best_pixel"]),
              default=schema_default("composite.method"), show_default=True)
@click.option("--min-clear", default=schema_default("composite.min_clear"),
              show_default=True, type=int,
              help="Fewer clear observations than this -> COUNT 0 (filled, or nodata).")
@click.option("--block-rows", default=schema_default("composite.block_rows"),
              show_default=True, type=int,
              help="Rows per processing block at 10 m (even).")
@click.option("--fill/--no-fill", default=True, show_default=True,
              help="Fill pixels without a clear observation from their least-cloudy one "
                   "(QA band flag 1); --no-fill leaves them nodata.")
def composite(manifest: Path, mask: Path, out_10m: Path, out_20m: Path, method: str,
              min_clear: int, block_rows: int, fill: bool) -> None:
    """Composite the stack of MANIFEST with cloud mask MASK into OUT_10M and OUT_20M."""
    try:
        paths = composite_tile(manifest, mask, out_10m, out_20m, method=method,
                               min_clear=min_clear, block_rows=block_rows, fill=fill)
    except (CompositeError, OutputError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for p in paths:
        click.echo(str(p))
