"""``jointseg assess`` (map vs reference raster) and ``jointseg sample`` (reference sample)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from jointseg.config import schema_default

log = logging.getLogger(__name__)


@click.command()
@click.option("--map", "map_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Binary ISA map: uint8 1 = ISA, 0 = not, 255 = nodata (any resolution).")
@click.option("--reference", required=True,
              help="worldcover: a WorldCover tile/cut-out GeoTIFF, a folder of official "
                   "tiles, a folder URL or a name template with {year} {version} {tile} "
                   "{name}. binary: a GeoTIFF (1 = ISA, 0 = not, its nodata excluded).")
@click.option("--reference-kind", type=click.Choice(["worldcover", "binary"]),
              default="worldcover", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for report.json, report.md and confusion.csv.")
@click.option("--threshold", type=click.FloatRange(0, 1),
              default=schema_default("accuracy.threshold"), show_default=True,
              help="ISA fraction at or above which an aggregated map pixel is ISA.")
@click.option("--year", type=int, default=2021, show_default=True,
              help="WorldCover year (2020 -> v100, 2021 -> v200).")
@click.option("--min-coverage", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Minimum share of a reference pixel covered by valid map pixels.")
@click.option("--allow-missing", is_flag=True,
              help="Treat missing WorldCover tiles as no data (warn) instead of failing.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def assess(map_path: str, reference: str, reference_kind: str, out_dir: str, threshold: float,
           year: int, min_coverage: float, allow_missing: bool, progress: bool) -> None:
    """Agreement of a binary ISA map with a reference raster.

    worldcover: on the reference's 10 m grid (map aggregated to an ISA fraction,
    averaged onto the WorldCover grid, binarised at --threshold; class 50 = ISA).
    binary: on the map's grid (reference reprojected with nearest).
    """
    from jointseg.assess import compare
    from jointseg.assess.agreement import write_agreement_report
    from jointseg.assess.worldcover import WorldCoverError

    try:
        if reference_kind == "worldcover":
            comp = compare.compare_with_worldcover(
                map_path, reference, year, threshold=threshold, min_coverage=min_coverage,
                allow_missing=allow_missing, progress=progress)
        else:
            comp = compare.compare_with_binary(map_path, reference)
    except (compare.CompareError, WorldCoverError) as exc:
        raise click.ClickException(str(exc)) from exc
    meta = {"map": str(map_path), "reference": str(reference),
            "reference_kind": reference_kind, "threshold": threshold,
            "year": year if reference_kind == "worldcover" else None,
            "min_coverage": min_coverage}
    written = write_agreement_report(Path(out_dir), comp, meta)
    click.echo(f"{written['report.json']}: F1 {written['f1']:.4f}, OA {written['oa']:.4f}, "
               f"n = {written['n_pixels']}")


@click.command()
@click.option("--map", "map_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Binary ISA map (uint8 1/0/255): the strata are its classes (x zones).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="GeoPackage of sample points (map CRS) for labelling.")
@click.option("--zones", type=click.Path(exists=True), default=None,
              help="Polygon layer of zones (any vector format); strata = class x zone.")
@click.option("--zone-field", default=schema_default("accuracy.zone_field"),
              show_default=True,
              help="Attribute of --zones holding the zone name.")
@click.option("--target-se", type=click.FloatRange(min=0, min_open=True),
              default=schema_default("accuracy.target_se"), show_default=True,
              help="Target standard error of overall accuracy.")
@click.option("--expected-ua", "expected_ua", default="1=0.8,0=0.95", show_default=True,
              help="Conjectured user's accuracy per map class, CLASS=UA comma-separated.")
@click.option("--floor", type=click.IntRange(min=2),
              default=schema_default("accuracy.floor"), show_default=True,
              help="Minimum sample units per stratum.")
@click.option("--design", "design_name", type=click.Choice(["random", "spread"]),
              default=schema_default("accuracy.design"), show_default=True,
              help="random: stratified random; spread: spatially balanced (GRTS-type) on "
                   "cells of --min-distance-m. Both: inclusion probability n_h / N_h.")
@click.option("--min-distance-m", type=click.FloatRange(min=0),
              default=schema_default("accuracy.min_distance_m"), show_default=True,
              help="Cell side (map units) of --design spread; not used by random.")
@click.option("--seed", type=int, default=schema_default("accuracy.seed"),
              show_default=True)
@click.option("--reference", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Optional reference raster (1 = ISA) to label the points right away.")
def sample(map_path: str, out_path: str, zones: str | None, zone_field: str, target_se: float,
           expected_ua: str, floor: int, design_name: str, min_distance_m: float, seed: int,
           reference: str | None) -> None:
    """Draw a stratified probability reference sample as a GeoPackage for labelling.

    Strata = map class x zone; size from Olofsson et al. (2014) eq. 13 with a floor
    per stratum; every pixel of a stratum has inclusion probability n_h / N_h
    (--design random or spread), deterministic for --seed.
    """
    from jointseg.assess import sampling
    from jointseg.assess.labels import label_from_raster

    try:
        ua = {int(k): float(v) for k, v in (p.split("=") for p in expected_ua.split(","))}
    except ValueError as exc:
        raise click.BadParameter(f"{expected_ua!r}: expected CLASS=UA,...",
                                 param_hint="--expected-ua") from exc
    try:
        design = sampling.design_sample(map_path, zones=zones, zone_field=zone_field,
                                        expected_ua=ua, target_se=target_se, floor=floor)
        points = sampling.draw_sample(map_path, design, method=design_name,
                                      min_distance_m=min_distance_m, seed=seed)
        if reference is not None:
            points = label_from_raster(points, reference)
        sampling.write_sample(out_path, points)
    except sampling.SamplingError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{out_path}: {len(points)} points in {len(design.strata)} strata "
               f"(target n = {design.n_target})")
