"""``jointseg cloudmask``: per-scene clear masks of a tile stack.

Settings: :class:`jointseg.data.settings.CloudMaskSettings` (config ``cloudmask``,
``--settings``; the options below replace single fields). Runs
:func:`jointseg.data.cloudmask.run_cloudmask`, as ``jointseg batch cloudmask`` does.
"""

from __future__ import annotations

from pathlib import Path

import click

from jointseg.cli.settings import settings_from_context, settings_option
from jointseg.config import schema_default
from jointseg.data.cloudmask import CloudMaskError, run_cloudmask
from jointseg.data.settings import CloudMaskSettings
from jointseg.io import OutputError


def _classes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in str(value).split(",") if c.strip())
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None


@click.command("cloudmask")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@settings_option("cloudmask")
@click.option("--scl-classes", callback=_classes,
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
@click.pass_context
def cloudmask(ctx: click.Context, manifest: Path, out: Path, **_: object) -> None:
    """Write OUT: uint8 10 m mask, one band per scene of MANIFEST, 1 = clear, 0 = masked."""
    settings = settings_from_context(CloudMaskSettings, ctx)
    try:
        path = run_cloudmask(manifest, out, settings)
    except (CloudMaskError, OutputError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))
