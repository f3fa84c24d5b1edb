"""``jointseg products simulate|assess``: other ISA products for Table 1."""

from __future__ import annotations

import json
import logging

import click

from jointseg.config import schema_default

log = logging.getLogger(__name__)


@click.group("products")
def products() -> None:
    """Other ISA products (GAIA, GISA-10m, WSF 2019, ESRI LC, Dynamic World, GHS-BUILT-S)."""


def _year_path(value: str) -> tuple[int, str]:
    year, sep, path = value.partition("=")
    if not sep or not year.isdigit():
        raise click.BadParameter(f"{value!r}: expected YEAR=PATH")
    return int(year), path


@products.command("simulate")
@click.option("--truth", "truths", multiple=True, required=True,
              help="YEAR=PATH of a simulated 1 m truth (uint8 1 = ISA); repeat per year.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Products folder (e.g. resources/demo/products).")
@click.option("--seed", type=int, default=0, show_default=True)
def simulate(truths: tuple[str, ...], out: str, seed: int) -> None:
    """Write SIMULATED stand-ins of every product, in each one's published format."""
    from jointseg.simulate.otherproducts import simulate_products

    try:
        pairs = dict(_year_path(t) for t in truths)
    except click.BadParameter as exc:
        raise click.UsageError(str(exc)) from exc
    for kind, files in simulate_products(pairs, out, seed=seed).items():
        click.echo(f"{kind}: {', '.join(str(f) for f in files)}")


@products.command("assess")
@click.option("--map", "map_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The JointSeg 1 m binary map (isa_1m.tif).")
@click.option("--year", type=int, required=True)
@click.option("--region", required=True)
@click.option("--product", "product_json", multiple=True,
              help='One product as JSON {"name", "kind", "path", "year"}; repeat.')
@click.option("--truth", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Binary reference raster (1 = ISA), e.g. the simulated truth.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Labelled sample (samples.gpkg with `reference`) when there is no raster.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The bilinear baseline's 1 m map, compared alongside.")
@click.option("--threshold", type=click.FloatRange(0, 1),
              default=schema_default("accuracy.threshold"), show_default=True,
              help="ISA fraction at or above which a 10 m cell is ISA.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="products.json to write.")
def assess(map_path: str, year: int, region: str, product_json: tuple[str, ...],
           truth: str | None, labels: str | None, baseline: str | None, threshold: float,
           out: str) -> None:
    """Compare each product, the map and the baseline with one reference on the same pixels."""
    from jointseg.assess.otherproducts.assess import assess_products
    from jointseg.assess.otherproducts.formats import ProductFormatError
    from jointseg.assess.otherproducts.load import CompareError, ProductSpec
    from jointseg.io import write_json

    try:
        specs = [ProductSpec.from_dict(json.loads(p)) for p in product_json]
        result = assess_products(map_path, specs, year, truth=truth, labels=labels,
                                 baseline=baseline, threshold=threshold)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--product: not JSON ({exc})") from exc
    except (ProductFormatError, CompareError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    result["region"] = region
    write_json(out, result)
    for r in result["rows"]:
        click.echo(f"{r['name']}: F1 {r['f1']:.3f} P {r['precision']:.3f} R {r['recall']:.3f} "
                   f"OA {r['oa']:.3f} ({result['n_common']} common)")
