"""``jointseg composite``: cloud-free 10 m + 20 m composites.

See :mod:`jointseg.data.composite`.
"""

from __future__ import annotations

from pathlib import Path

import click

from jointseg.data.composite import CompositeError, composite_tile
from jointseg.io import OutputError


@click.command("composite")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("mask", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_10m", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_20m", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--method", type=click.Choice(["median", "best_pixel"]), default="median",
              show_default=True)
@click.option("--min-clear", default=1, show_default=True, type=int,
              help="Fewer clear observations than this -> nodata.")
@click.option("--block-rows", default=256, show_default=True, type=int,
              help="Rows per processing block at 10 m (even).")
def composite(manifest: Path, mask: Path, out_10m: Path, out_20m: Path, method: str,
              min_clear: int, block_rows: int) -> None:
    """Composite the stack of MANIFEST with cloud mask MASK into OUT_10M and OUT_20M."""
    try:
        paths = composite_tile(manifest, mask, out_10m, out_20m, method=method,
                               min_clear=min_clear, block_rows=block_rows)
    except (CompositeError, OutputError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for p in paths:
        click.echo(str(p))
