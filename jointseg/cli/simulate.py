"""``jointseg simulate``: the simulated demo region and training chips."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jointseg.config import schema_default


@click.group()
def simulate() -> None:
    """Simulated data (labelled JOINTSEG_SIMULATED=true): demo region, training chips."""


@simulate.command("region")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (e.g. resources/demo).")
@click.option("--seed", default=schema_default("demo.seed"), show_default=True, type=int)
@click.option("--year", "years", multiple=True, type=int,
              default=schema_default("demo.years"), show_default=True,
              help="A year to simulate (repeat for several; one landscape grows between them).")
@click.option("--hr-year", "hr_years", multiple=True, type=int,
              help="A year whose 1 m HR image is written (repeatable; default the last year).")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Processes rendering the years in parallel.")
@click.option("--bbox", nargs=4, type=float, default=(663000, 3543000, 669000, 3549000),
              show_default=True, help="xmin ymin xmax ymax in metres of --crs.")
@click.option("--crs", default="EPSG:32650", show_default=True)
@click.option("--n-dates", default=schema_default("demo.n_dates"), show_default=True,
              type=int)
@click.option("--file-base-url", default="http://127.0.0.1:8752", show_default=True,
              help="URL serving --out; used for STAC asset hrefs.")
@click.option("--training-bbox", nargs=4, type=float, default=None,
              help="Also simulate a training region (xmin ymin xmax ymax in --crs, apart "
                   "from --bbox) into OUT/train: truth, sources (HR + map labels) and S2 "
                   "scenes in the same catalogue.")
@click.option("--training-seed", default=schema_default("training_data.simulated.seed"),
              show_default=True, type=int)
@click.option("--label-noise", type=click.Choice(["clean", "osm", "heavy"]),
              default=schema_default("training_data.simulated.label_noise"),
              show_default=True, help="Noise of the training region's map labels.")
@click.option("--training-year", default=None, type=int,
              help="Year of the training region's S2 scenes (default the last --year).")
def region(out_dir, seed, years, hr_years, workers, bbox, crs, n_dates, file_base_url,
           training_bbox, training_seed, label_noise, training_year) -> None:
    """Simulate the demo region in each --year: truth, HR image, S2 L2A scenes, WorldCover
    2020/2021, one STAC catalogue (and with --training-bbox a training region written as
    sources)."""
    from jointseg.simulate.region import simulate_region

    training = ({"bbox": tuple(training_bbox), "seed": training_seed,
                 "label_noise": label_noise, "year": training_year} if training_bbox else None)
    sim = simulate_region(out_dir, tuple(bbox), crs, years, seed, n_dates, file_base_url,
                          training=training, hr_years=hr_years or None, workers=workers)
    click.echo(json.dumps({s["id"]: s["cloud_fraction"] for s in sim["scenes"]}, indent=1))


@simulate.command("stac")
@click.option("--out", "out_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--file-base-url", required=True)
def stac(out_dir, file_base_url) -> None:
    """Rewrite the STAC JSON of an existing simulation for another file server URL."""
    from jointseg.simulate.stac import write_stac

    items = write_stac(out_dir, file_base_url)
    click.echo(f"{len(items)} items written under {out_dir}/stac")


@simulate.command("chips")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (e.g. resources/chips).")
@click.option("--seed", default=schema_default("model.chips.seed"), show_default=True,
              type=int)
@click.option("--n-regions", default=schema_default("model.chips.n_regions"),
              show_default=True, type=int)
@click.option("--region-size-m", default=schema_default("model.chips.region_size_m"),
              show_default=True, type=int)
@click.option("--chip-size-m", default=schema_default("model.chips.chip_size_m"),
              show_default=True, type=int)
@click.option("--year", default=2021, show_default=True, type=int)
@click.option("--n-dates", default=5, show_default=True, type=int,
              help="Dates median-composited per region.")
@click.option("--val-regions", default=1, show_default=True, type=int)
@click.option("--test-regions", default=0, show_default=True, type=int)
@click.option("--label-noise", type=click.Choice(["clean", "osm", "heavy"]),
              default=schema_default("model.chips.label_noise"), show_default=True,
              help="label.tif = the clean truth, or OSM-like label sources rasterised "
                   "(docs/simulation.md); truth.tif and landcover.tif are written beside.")
@click.option("--training-data-id", default=None,
              help="Name of this chip set in OUT/provenance.json (simulated: true) "
                   "(default: sha256 of index.csv).")
def chips(out_dir, seed, n_regions, region_size_m, chip_size_m, year, n_dates, val_regions,
          test_regions, label_noise, training_data_id) -> None:
    """Simulate paired training chips (s2_10m, s2_20m, hr, label, truth, landcover +
    index.csv, provenance.json)."""
    from jointseg.model.chips import index_training_data_id, write_chips_provenance
    from jointseg.provenance import file_sha256
    from jointseg.simulate.chips import default_splits, simulate_chips

    splits = default_splits(n_regions, val_regions, test_regions)
    index = simulate_chips(out_dir, seed, n_regions, region_size_m, chip_size_m, year, splits,
                           n_dates, label_noise=label_noise)
    tid = training_data_id or index_training_data_id(file_sha256(index))
    write_chips_provenance(Path(out_dir), tid, simulated=True)
    click.echo(str(index))
