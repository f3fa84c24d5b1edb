"""``jointseg cloudmask``: per-scene clear masks of a tile stack.

See :mod:`jointseg.data.cloudmask`.
"""

from __future__ import annotations

from pathlib import Path

import click

from jointseg.config import schema_default
from jointseg.data.cloudmask import CloudMaskError, cloud_mask_tile
from jointseg.io import OutputError


@click.command("cloudmask")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scl-classes",
              default=",".join(map(str, schema_default("cloudmask.scl_masked_classes"))),
              show_default=True, help="Comma-separated SCL classes to mask.")
@click.option("--dilation-m", default=schema_default("cloudmask.dilation_m"),
              show_default=True, type=float,
              help="Dilation of SCL cloud/shadow classes, metres.")
@click.option("--combine", type=click.Choice(["scl", "union", "intersection", "s2cloudless"]),
              default=schema_default("cloudmask.combine"), show_default=True,
              help="How SCL and s2cloudless are combined (all but 'scl' run s2cloudless).")
@click.option("--s2c-threshold", default=schema_default("cloudmask.s2cloudless.threshold"),
              show_default=True, type=float,
              help="s2cloudless probability threshold.")
@click.option("--s2c-average-over",
              default=schema_default("cloudmask.s2cloudless.average_over"),
              show_default=True, type=int,
              help="s2cloudless smoothing radius, 10 m pixels.")
@click.option("--s2c-dilation-size",
              default=schema_default("cloudmask.s2cloudless.dilation_size"),
              show_default=True, type=int,
              help="s2cloudless dilation radius, 10 m pixels.")
@click.option("--snow-test/--no-snow-test", default=schema_default("cloudmask.snow.enabled"),
              show_default=True, help="NDSI snow test on scenes without SCL.")
@click.option("--snow-ndsi", default=schema_default("cloudmask.snow.ndsi"), show_default=True,
              type=float, help="Snow where NDSI = (B03 - B11) / (B03 + B11) >= this ...")
@click.option("--snow-min-nir", default=schema_default("cloudmask.snow.min_nir"),
              show_default=True, type=float, help="... and B08 reflectance > this ...")
@click.option("--snow-min-green", default=schema_default("cloudmask.snow.min_green"),
              show_default=True, type=float, help="... and B03 reflectance > this.")
def cloudmask(manifest: Path, out: Path, scl_classes: str, dilation_m: float, combine: str,
              s2c_threshold: float, s2c_average_over: int, s2c_dilation_size: int,
              snow_test: bool, snow_ndsi: float, snow_min_nir: float,
              snow_min_green: float) -> None:
    """Write OUT: uint8 10 m mask, one band per scene of MANIFEST, 1 = clear, 0 = masked."""
    try:
        classes = [int(c) for c in scl_classes.split(",") if c.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"--scl-classes {scl_classes!r}: {exc}") from exc
    s2c = None
    if combine != "scl":
        s2c = {"threshold": s2c_threshold, "average_over": s2c_average_over,
               "dilation_size": s2c_dilation_size}
    try:
        path = cloud_mask_tile(manifest, out, scl_classes=classes, dilation_m=dilation_m,
                               s2cloudless=s2c, combine=combine,
                               snow={"ndsi": snow_ndsi, "min_nir": snow_min_nir,
                                     "min_green": snow_min_green} if snow_test else None)
    except (CloudMaskError, OutputError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))
