"""``jointseg simulate``: the SIMULATED demo region and simulated training chips."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger(__name__)


@click.group("simulate")
def simulate() -> None:
    """Simulate data (clearly labelled as simulated) for the demo and for training."""


@simulate.command("region")
@click.option("--out", type=click.Path(path_type=Path), default="resources/demo",
              show_default=True, help="Output folder.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--year", type=int, default=2021, show_default=True,
              help="Acquisition year (dates from 25 Jan 2022 carry the +1000 DN BOA offset).")
@click.option("--bbox", type=float, nargs=4, default=(663000, 3543000, 669000, 3549000),
              show_default=True, help="xmin ymin xmax ymax in metres of --crs (multiples of 20).")
@click.option("--crs", default="EPSG:32650", show_default=True, help="A UTM CRS.")
@click.option("--n-dates", type=click.IntRange(2, 40), default=8, show_default=True,
              help="Number of Sentinel-2 acquisitions.")
@click.option("--file-base-url", default="http://127.0.0.1:8752", show_default=True,
              help="URL under which the file server publishes --out (STAC asset hrefs).")
@click.option("--progress/--no-progress", default=True)
def region(out: Path, seed: int, year: int, bbox: tuple[float, float, float, float], crs: str,
           n_dates: int, file_base_url: str, progress: bool) -> None:
    """Render the simulated region: truth, HR image, S2 L2A scenes, WorldCover map, STAC."""
    from jointseg.simulate.region import simulate_region

    try:
        meta = simulate_region(out, bbox, crs, year, seed, n_dates, file_base_url, progress)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"simulated {len(meta['scenes'])} scenes of {out} "
               f"(ISA {100 * meta['isa_fraction']:.1f} %); SIMULATED data, see docs/simulation.md")


@simulate.command("chips")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Dataset folder.")
@click.option("--seed", type=int, default=1000, show_default=True,
              help="Region i uses seed + i (keep it apart from the demo region's seed).")
@click.option("--n-regions", type=click.IntRange(2), default=4, show_default=True)
@click.option("--region-size-m", type=int, default=1920, show_default=True)
@click.option("--chip-size-m", type=int, default=320, show_default=True)
@click.option("--year", type=int, default=2021, show_default=True)
@click.option("--val-regions", type=click.IntRange(0), default=1, show_default=True)
@click.option("--test-regions", type=click.IntRange(0), default=0, show_default=True)
@click.option("--progress/--no-progress", default=True)
def chips(out: Path, seed: int, n_regions: int, region_size_m: int, chip_size_m: int, year: int,
          val_regions: int, test_regions: int, progress: bool) -> None:
    """Simulate training regions and cut them into paired chips (index.csv + chip folders)."""
    from jointseg.simulate.chips import simulate_chips

    try:
        index = simulate_chips(out, seed, n_regions, region_size_m, chip_size_m, year,
                               val_regions, test_regions, progress=progress)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {index} (SIMULATED training chips)")


@simulate.command("stac")
@click.option("--sim-dir", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--file-base-url", required=True, help="New base URL for asset hrefs.")
def stac(sim_dir: Path, file_base_url: str) -> None:
    """Rewrite the STAC catalogue of an existing simulation for another file-server URL."""
    from jointseg.simulate.products import write_stac

    paths = write_stac(sim_dir, file_base_url)
    click.echo(f"wrote {len(paths)} STAC files under {sim_dir / 'stac'}")
