"""``jointseg mosaic``: per-tile 1 m products -> one COG + STAC Item + quicklook."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from jointseg.config import schema_default
from jointseg.products import QA_FILLED, QA_NO_OBSERVATION

log = logging.getLogger(__name__)

CLASSES = {0: "not impervious", 1: "impervious"}
#: The ISA map's band 2 (QA) bit flags: value -> (name, meaning), see jointseg.products.
QA_FLAGS = {
    QA_FILLED: ("filled", "no clear observation: composite filled from the best remaining "
                          "(least-cloudy) one, ISA predicted from it"),
    QA_NO_OBSERVATION: ("no_observation", "Sentinel-2 never saw the ground here (ISA nodata)"),
}


@click.command("mosaic")
@click.argument("tiles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="Mosaic COG to write.")
@click.option("--kind", type=click.Choice(["binary", "prob"]), required=True,
              help="binary: class map (nearest); prob: probability (bilinear/average).")
@click.option("--crs", "output_crs", default=schema_default("mosaic.output_crs"),
              help="Output CRS: utm (dominant UTM zone of the tiles, default), "
                   "china_albers, or any EPSG:xxxx.")
@click.option("--res-m", type=float, default=1.0, show_default=True, help="Output pixel size.")
@click.option("--year", type=int, required=True, help="Mapped year (STAC Item datetime range).")
@click.option("--region", required=True, help="Region name (Item id and tags).")
@click.option("--item", type=click.Path(path_type=Path), help="Write a STAC Item here.")
@click.option("--quicklook", type=click.Path(path_type=Path), help="Write a PNG quicklook here.")
@click.option("--threads", type=int, default=schema_default("mosaic.threads"),
              show_default=True, help="GDAL threads.")
@click.option("--tiles-from-manifests", "from_manifests", is_flag=True,
              help="TILES are batch manifests (jointseg batch predict); mosaic the tiles "
                   "they list (their 'isa' files for --kind binary, 'prob' for prob).")
def mosaic(tiles: tuple[Path, ...], output: Path, kind: str, output_crs: str | None,
           res_m: float, year: int, region: str, item: Path | None, quicklook: Path | None,
           threads: int, from_manifests: bool) -> None:
    """Mosaic TILES (per-tile COGs of one product) into OUTPUT."""
    from jointseg.io import OutputError, output_guard
    from jointseg.mosaic.merge import MosaicError

    if from_manifests:
        from jointseg.batch import BatchError, manifest_files

        try:
            tiles = tuple(manifest_files(tiles, "isa" if kind == "binary" else "prob"))
        except BatchError as exc:
            raise click.ClickException(str(exc)) from None
        log.info("%d tile(s) from the batch manifests", len(tiles))

    try:
        with output_guard(output, item, quicklook):  # all of them or none
            _mosaic_outputs(tiles, output, kind, output_crs, res_m, year, region, item,
                            quicklook, threads)
    except (MosaicError, OutputError) as exc:
        raise click.ClickException(str(exc)) from None


def _mosaic_outputs(tiles: tuple[Path, ...], output: Path, kind: str, output_crs: str | None,
                    res_m: float, year: int, region: str, item: Path | None,
                    quicklook: Path | None, threads: int) -> None:
    """Write the mosaic COG, then its STAC Item and quicklook when asked for."""
    import rasterio

    from jointseg.mosaic.catalog import product_item, write_item
    from jointseg.mosaic.merge import mosaic_tiles
    from jointseg.mosaic.quicklook import quicklook_png

    out = mosaic_tiles(list(tiles), output, kind=kind, output_crs=output_crs, res_m=res_m,
                       threads=threads, extra_tags={"REGION": region, "YEAR": str(year)})
    log.info("wrote %s from %d tiles", out, len(tiles))
    product = "isa" if kind == "binary" else "isa_probability"
    if item:
        desc = ("1 m impervious surface (1 = impervious, 0 = not, 255 = no data; "
                "band 2: QA bit flags)" if kind == "binary"
                else "1 m impervious-surface probability (DN x scale)")
        with rasterio.open(out) as ds:
            tags, scale = ds.tags(), (ds.scales[0] if kind == "prob" else None)
        props = {f"jointseg:{k.lower()}": v for k, v in tags.items()
                 if k in ("MODEL_NAME", "MODEL_SHA256", "JOINTSEG_VERSION", "THRESHOLD",
                          "JOINTSEG_SIMULATED")}
        it = product_item(out, item_id=f"{product.replace('_', '-')}-1m-{region}-{year}",
                          year=year, product=product, description=desc,
                          classes=CLASSES if kind == "binary" else None, scale=scale,
                          qa_flags=QA_FLAGS if kind == "binary" else None,
                          properties={"jointseg:region": region, **props})
        write_item(it, item)
    if quicklook:
        quicklook_png(out, quicklook, kind=kind,
                      title=f"{region} {year}: {'ISA' if kind == 'binary' else 'ISA probability'}")
