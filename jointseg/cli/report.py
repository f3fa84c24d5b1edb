"""``jointseg accuracy-report``, ``jointseg paper-tables`` and ``jointseg change``."""

from __future__ import annotations

import logging

import click

from jointseg.config import schema_default

log = logging.getLogger(__name__)


@click.command("accuracy-report")
@click.option("--map", "map_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Binary 1 m ISA map (uint8 1 = ISA, 0 = not, 255 = nodata), e.g. isa_1m.tif.")
@click.option("--prob", "prob_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="ISA probability map on the same grid (isa_prob_1m.tif).")
@click.option("--worldcover", required=True,
              help="WorldCover source: folder of official tiles, folder URL, name template "
                   "({year} {version} {tile} {name}) or one GeoTIFF on the WorldCover grid.")
@click.option("--year", type=int, required=True, help="Year of the map (and of WorldCover).")
@click.option("--worldcover-year", type=int, default=None,
              help="WorldCover year when it differs from --year (2020 or 2021).")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Binary reference raster (1 = ISA, 0 = not), e.g. the simulator's truth; "
                   "labels the sample and is compared pixel by pixel.")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="A labelled sample (samples.gpkg with `reference` filled, "
                                 "or CSV) to estimate from instead of drawing a new one.")
@click.option("--cities", type=click.Path(exists=True), default=None,
              help="Polygon layer of cities / admin units.")
@click.option("--city-field", default=schema_default("accuracy.city_field"),
              show_default=True)
@click.option("--zones", type=click.Path(exists=True), default=None,
              help="Polygon layer of zones (strata x zone; estimates per zone).")
@click.option("--zone-field", default=schema_default("accuracy.zone_field"),
              show_default=True)
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The bilinear baseline's binary map (same format) to compare alongside.")
@click.option("--region", default=None, help="Region name (default: the map's REGION tag).")
@click.option("--landcover", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Land-cover reference raster (class codes): share of each class mapped "
                   "as ISA (commission / omission per class), for the map and the baseline.")
@click.option("--landcover-classes", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Its class table (JSON/YAML: classes, isa, nodata) "
                                 "[default: jointseg/landcover.py, the demo's classes].")
@click.option("--threshold", type=click.FloatRange(0, 1),
              default=schema_default("accuracy.threshold"), show_default=True,
              help="ISA fraction at or above which an aggregated 10 m pixel is ISA.")
@click.option("--design", "design_name", type=click.Choice(["random", "spread"]),
              default=schema_default("accuracy.design"), show_default=True,
              help="Reference sample: random (stratified random) or spread (spatially "
                   "balanced on cells of --min-distance-m); inclusion probability n_h / N_h.")
@click.option("--min-distance-m", type=click.FloatRange(min=0),
              default=schema_default("accuracy.min_distance_m"), show_default=True,
              help="Cell side (m) of --design spread; not used by random.")
@click.option("--interval", type=click.Choice(["agresti-coull", "wald"]),
              default=schema_default("accuracy.interval"), show_default=True,
              help="Confidence intervals: agresti-coull (z² pseudo-units per stratum in the "
                   "variance) or wald (the plain variance of Olofsson et al. 2014).")
@click.option("--target-se", type=click.FloatRange(min=0, min_open=True),
              default=schema_default("accuracy.target_se"), show_default=True,
              help="Target standard error of overall accuracy (eq. 13).")
@click.option("--floor", type=click.IntRange(min=2),
              default=schema_default("accuracy.floor"), show_default=True,
              help="Minimum sample units per stratum.")
@click.option("--seed", type=int, default=schema_default("accuracy.seed"),
              show_default=True)
@click.option("--allow-missing", is_flag=True,
              help="Treat missing WorldCover tiles as no data instead of failing.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for report.md/json, confusion.csv, samples.gpkg and PNG plots.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def accuracy_report(map_path: str, prob_path: str | None, worldcover: str, year: int,
                    worldcover_year: int | None, truth: str | None,
                    labels_path: str | None, cities: str | None,
                    city_field: str, zones: str | None, zone_field: str,
                    baseline: str | None, region: str | None, landcover: str | None,
                    landcover_classes: str | None, threshold: float,
                    design_name: str, min_distance_m: float, target_se: float, floor: int,
                    seed: int, interval: str, allow_missing: bool, out_dir: str,
                    progress: bool) -> None:
    """Accuracy report of one ISA map: agreement with WorldCover (and the truth),
    a stratified reference sample and Olofsson estimates, per city and zone."""
    from jointseg.assess.compare import CompareError
    from jointseg.assess.groups import GroupError
    from jointseg.assess.perclass import ClassTableError, load_class_table
    from jointseg.assess.rasters import RasterError
    from jointseg.assess.report import build
    from jointseg.assess.sampling import SamplingError
    from jointseg.assess.worldcover import WorldCoverError

    try:
        table = load_class_table(landcover_classes) if landcover_classes else None
        rep = build.accuracy_report(
            map_path, worldcover, year, out_dir, prob_path=prob_path,
            worldcover_year=worldcover_year, truth_path=truth, labels_path=labels_path,
            cities=cities,
            city_field=city_field, zones=zones, zone_field=zone_field,
            baseline_path=baseline, region=region, threshold=threshold,
            design=design_name, min_distance_m=min_distance_m, target_se=target_se,
            floor=floor, seed=seed, interval=interval, allow_missing=allow_missing,
            progress=progress, landcover_path=landcover, landcover_classes=table)
    except (build.ReportError, CompareError, WorldCoverError, SamplingError, RasterError,
            GroupError, ClassTableError) as exc:
        raise click.ClickException(str(exc)) from exc
    head = next(iter(rep["comparisons"]), None)
    click.echo(f"{out_dir}/report.md: {len(rep['comparisons'])} comparisons"
               + (f", {head['id']} F1 {head['f1']:.4f}" if head and head["f1"] is not None
                  else "")
               + f"; estimates: {rep['estimates']['status']}"
               + (" [SIMULATED inputs]" if rep["simulated"] else ""))


@click.command("paper-tables")
@click.option("--reports", "reports", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="report.json files of `jointseg accuracy-report` (repeat, or list after "
                   "one --reports as shell-expanded arguments).")
@click.option("--change", "changes", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="change.json files of `jointseg change` (repeatable).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for table*.csv/.md, index.md and index.json (one folder per set "
                   "of years: a folder holding tables of other years is refused).")
@click.argument("more", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def paper_tables(reports: tuple[str, ...], changes: tuple[str, ...], out_dir: str,
                 more: tuple[str, ...]) -> None:
    """Tables in the layout of the paper's, filled from the run's report and change JSONs,
    naming the years (epochs) they hold.

    Extra arguments are JSON files sorted by their schema (shell globs after --reports
    or --change).
    """
    from jointseg.assess import tables

    try:
        reps, chs = tables.sort_inputs([*reports, *changes, *more])
        written = tables.write_tables(tables.build_tables(reps, chs), out_dir, chs)
    except tables.TableError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{out_dir}: {len(written)} files from {len(reps)} reports and "
               f"{len(chs)} change files, epochs "
               f"{tables.epochs_label(tables.epochs_of(reps, chs))}")


@click.command("change")
@click.option("--maps", "maps", multiple=True, required=True,
              help="YEAR=PATH of a binary ISA map (repeat, or list after --maps).")
@click.option("--probs", "probs", multiple=True,
              help="YEAR=PATH of the ISA probability map of that year (same grid).")
@click.option("--truth", "truth", multiple=True,
              help="YEAR=PATH of a reference binary raster (1 = ISA) of that year, one per "
                   "map year: change accuracy (F1 of new ISA) and the change sample's labels.")
@click.option("--reports", "reports", multiple=True,
              help="YEAR=PATH of that year's accuracy report.json: error-adjusted ISA area "
                   "± 95 % CI from its stratified sample.")
@click.option("--cities", type=click.Path(exists=True), default=None,
              help="Polygon layer of cities / districts (rows of the per-city results).")
@click.option("--city-field", default=schema_default("accuracy.city_field"),
              show_default=True)
@click.option("--zones", type=click.Path(exists=True), default=None,
              help="Polygon layer of zones (e.g. upstream / midstream / downstream).")
@click.option("--zone-field", default=schema_default("accuracy.zone_field"),
              show_default=True)
@click.option("--method", type=click.Choice(["independent", "carry", "monotone"]),
              default=schema_default("change.method"), show_default=True,
              help="Temporal method: independent (each year's map), carry (GAIA: no ISA -> "
                   "non-ISA unless confident) or monotone (one step per pixel fitted to all "
                   "years' probabilities, with hysteresis).")
@click.option("--confident", type=click.FloatRange(0.5, 1.0),
              default=schema_default("change.confident"), show_default=True,
              help="carry: a loss is kept where the later year's p(ISA) <= 1 - confident.")
@click.option("--penalty", type=click.FloatRange(min=0),
              default=schema_default("change.penalty"), show_default=True,
              help="monotone: log-odds evidence a change must add over a stable fit.")
@click.option("--sample-target-se", type=click.FloatRange(min=0, min_open=True),
              default=schema_default("accuracy.target_se"), show_default=True,
              help="Change sample: target SE of overall accuracy (eq. 13).")
@click.option("--sample-floor", type=click.IntRange(min=2),
              default=schema_default("accuracy.floor"), show_default=True,
              help="Change sample: minimum units per change stratum.")
@click.option("--seed", type=int, default=schema_default("accuracy.seed"), show_default=True)
@click.option("--region", default="region", show_default=True, help="Region name.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for change_<y0>_<y1>.tif, first_isa_year.tif, change.json/csv/md, "
                   "change_sample.gpkg and the PNG plots.")
@click.option("--plots/--no-plots", default=True, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.argument("more", nargs=-1)
def change(maps: tuple[str, ...], probs: tuple[str, ...], truth: tuple[str, ...],
           reports: tuple[str, ...], cities: str | None, city_field: str, zones: str | None,
           zone_field: str, method: str, confident: float, penalty: float,
           sample_target_se: float,
           sample_floor: int, seed: int, region: str, out_dir: str, plots: bool,
           progress: bool, more: tuple[str, ...]) -> None:
    """ISA area per year, growth, change maps and change accuracy of yearly maps.

    Extra YEAR=PATH arguments are maps (``--maps 2017=a.tif 2019=b.tif`` works).
    """
    from jointseg.assess import change as ch
    from jointseg.assess.change.temporal import TemporalSettings

    try:
        res = ch.biennial_change(
            ch.parse_year_paths([*maps, *more], "--maps"), out_dir,
            probs=ch.parse_year_paths(list(probs), "--probs"),
            truth=ch.parse_year_paths(list(truth), "--truth"),
            reports=ch.parse_year_paths(list(reports), "--reports"), cities=cities,
            city_field=city_field, zones=zones, zone_field=zone_field,
            temporal=TemporalSettings(method, confident, penalty), region=region,
            sample_target_se=sample_target_se, sample_floor=sample_floor, seed=seed,
            plots=plots, progress=progress)
    except ch.ChangeError as exc:
        raise click.ClickException(str(exc)) from exc
    reg = res["groups"]["region"][region]
    areas = ", ".join(f"{y}: {reg['areas'][str(y)]['isa_km2']:.4f}" for y in res["years"])
    acc = res["change_accuracy"]
    f1 = "" if not acc else "; new-ISA F1 " + ", ".join(
        f"{p}: {e['f1']:.3f}" if e["f1"] is not None else f"{p}: n/a"
        for p, e in acc["periods"].items())
    click.echo(f"{out_dir}/change.json: ISA km² {areas}{f1}"
               + (" [SIMULATED inputs]" if res["simulated"] else ""))
