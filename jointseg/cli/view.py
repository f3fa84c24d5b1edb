"""``jointseg view``: look at the products in a browser (local server, swipe compare),
or write the viewer's layer manifest / a QGIS project of a product folder."""

from __future__ import annotations

import os
from pathlib import Path

import click

DEFAULT_PORT = 8765
#: GDAL's block cache for the viewer, MB (GDAL's default is 5 % of RAM, and the server's
#: memory would grow towards it with every tile read); an exported GDAL_CACHEMAX wins
GDAL_CACHE_MB = 256


def _default_dirs() -> list[Path]:
    """Every ``results/<region>/<year>`` under the working directory with a map in it."""
    return sorted(p.parent for p in Path("results").glob("*/[0-9][0-9][0-9][0-9]/isa_1m.tif"))


@click.command()
@click.argument("product_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-browser", is_flag=True, help="Do not open the page in a browser.")
@click.option("--write-manifest", "manifest_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the layer manifest of the (one) product folder here and exit.")
@click.option("--write-qgs", "qgs_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a QGIS project of the (one) product folder here and exit.")
@click.option("--write-sr-quicklook", "sr_png", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG quicklook of the (one) folder's SR 1 m RGB tiles here and exit.")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reference ISA raster (default: the one the accuracy report used).")
@click.option("--worldcover", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="WorldCover tile(s) (default: those the accuracy report used).")
def view(product_dirs: tuple[Path, ...], host: str, port: int, no_browser: bool,
         manifest_out: Path | None, qgs_out: Path | None, sr_png: Path | None,
         truth: Path | None,
         worldcover: tuple[Path, ...]) -> None:
    """Show PRODUCT_DIR(s) (results/<region>/<year>; default: all under results/) on a map.

    Serves the COGs directly as map tiles on http://HOST:PORT/ with a swipe compare of
    two layers, a year selector when several folders are given, the pixel values of
    every layer on click. Nothing leaves the machine: no CDN, no internet basemap.
    Each layer serves the zooms its files' overviews make cheap (docs/architecture.md,
    "Viewer"); Ctrl-C stops the server at once.
    """
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))  # before GDAL reads a block
    from jointseg.view.layers import ManifestError, build_manifest, load_product_dir

    dirs = list(product_dirs) or _default_dirs()
    if not dirs:
        raise click.UsageError("no product folder given and none found under results/")
    try:
        if manifest_out or qgs_out or sr_png:
            if len(dirs) != 1:
                raise click.UsageError("--write-manifest/-qgs/-sr-quicklook take one folder")
            _write(build_manifest(dirs[0], truth=truth, worldcover=list(worldcover) or None),
                   manifest_out, qgs_out, sr_png)
            return
        manifests = [load_product_dir(d) for d in dirs]
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None
    from jointseg.view.server import serve

    serve(manifests, host, port, open_browser=not no_browser)


def _write(manifest, manifest_out: Path | None, qgs_out: Path | None,
           sr_png: Path | None) -> None:
    from jointseg.view.layers import write_manifest
    from jointseg.view.qgis import write_qgs
    from jointseg.view.quicklook import layer_quicklook_png

    if sr_png:
        try:
            layer = manifest.layer("sr")
        except KeyError:
            raise click.ClickException(f"{manifest.root}: no SR tiles (isa/*_sr.tif)") from None
        layer_quicklook_png(manifest, layer, sr_png)
        click.echo(f"wrote {sr_png}")
    if manifest_out:
        write_manifest(manifest, manifest_out)
        click.echo(f"wrote {manifest_out} ({len(manifest.layers)} layers)")
    if qgs_out:
        write_qgs(manifest, qgs_out)
        click.echo(f"wrote {qgs_out}")
