# Config validation, tile lists and input functions shared by every rule file.
import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

from snakemake.logging import logger

from jointseg.batch import STAGES, batches_for_tiles, resolve_batch_block
from jointseg.config import ConfigError, config_years, validate_config
from jointseg.identity import model_id, training_data_id
from jointseg.regions import region_tiles

min_version("9.0")


def config_error(message):
    """Stop while the workflow is read, with ONE line on stderr (no traceback): for
    configuration errors, which name the key and what to do."""
    print(message, file=sys.stderr)
    raise SystemExit(1)


# Validate first with jointseg's validator (one line naming the key and what is
# allowed, plus checks a schema cannot express: future years, empty bboxes...),
# then with Snakemake's validator against the same schema (fills defaults).
# `--config year=Y` on the command line maps that one year, even where the config file
# lists `years` (the demo's does); `--config years=[2017,2019]` arrives as strings
if "year" in workflow.config_settings.config and "years" not in (
    workflow.config_settings.config
):
    config["years"] = None
if isinstance(config.get("years"), list):
    config["years"] = [int(y) if str(y).isdigit() else y for y in config["years"]]
try:
    validate_config(config, source="config")
except ConfigError as exc:
    config_error(str(exc))
validate(config, schema="../schemas/config.schema.yaml", set_default=True)

RESULTS = config["results_dir"]
RESOURCES = config["resources_dir"]
YEARS = config_years(config)
REGIONS = list(config["regions"])
DEMO = config["stac"]["demo_server"]
SIM_DIR = DEMO["sim_dir"]
# the demo simulates all of demo.years at once, side by side under SIM_DIR/<year>/; the
# mapped years (year / years) must be among them
SIM_YEARS = sorted(config["demo"]["years"])
if DEMO["enabled"] and not config["accuracy"]["cities"]:
    # the demo's simulated named districts stand in for a user's admin boundaries
    config["accuracy"]["cities"] = f"{SIM_DIR}/districts.gpkg"
    config["accuracy"]["city_field"] = "name"
if DEMO["enabled"] and set(YEARS) - set(SIM_YEARS):
    config_error(
        f"config: key 'years': {sorted(set(YEARS) - set(SIM_YEARS))} not simulated;"
        f" the demo simulates demo.years = {SIM_YEARS}"
    )
TILE_SIZE_M = config["grid"]["tile_size_m"]
SR_QUICKLOOK = config["infer"]["sr_quicklook"]
# the training region (config training_data; rules/chips.smk), tiled as region TRAIN_REGION
TRAINING = config.get("training_data")
TRAIN_REGION = "training"

_TILES = {}
_BATCHES = {}


def _region_tiles(region):
    """Tiles (jointseg.grid.Tile) of a region (computed once per run)."""
    if region not in _TILES:
        spec = (
            training_region() if region == TRAIN_REGION else config["regions"][region]
        )
        try:
            _TILES[region] = region_tiles(spec, TILE_SIZE_M, Path(workflow.basedir))
        except ValueError as exc:
            raise WorkflowError(f"config: key 'regions.{region}': {exc}")
    return _TILES[region]


def tiles_of(region):
    """Tile ids of a region (computed once per run)."""
    return [t.tile_id for t in _region_tiles(region)]


# grid.batch_block: 0 = one job per tile and stage (stac/download/cloudmask/composite/
# predict.smk); N > 0 = one job per stage and batch of up to N x N tiles (batch.smk);
# auto (the default) = 0 for small runs, batches for large ones (resolve_batch_block).
if config["grid"]["batch_block"] == "auto":
    _N_TILES = sum(len(_region_tiles(r)) for r in REGIONS) * len(YEARS)
    BATCH_BLOCK = resolve_batch_block("auto", _N_TILES)
    if BATCH_BLOCK:
        logger.info(
            f"grid.batch_block: auto -> {BATCH_BLOCK} ({_N_TILES} tiles x years):"
            " one job per batch of tiles (rules/batch.smk)"
        )
else:
    BATCH_BLOCK = resolve_batch_block(config["grid"]["batch_block"], 0)


def batches_of(region):
    """Batch id -> tile ids of a region, batches of grid.batch_block^2 tiles (once per run)."""
    if region not in _BATCHES:
        _BATCHES[region] = {
            b: [t.tile_id for t in ts]
            for b, ts in batches_for_tiles(_region_tiles(region), BATCH_BLOCK).items()
        }
    return _BATCHES[region]


def tiles_of_batch(wildcards):
    """Comma-separated tile ids of the batch {batch} (shell-safe: digits, _ and -)."""
    try:
        return ",".join(batches_of(wildcards.region)[wildcards.batch])
    except KeyError:
        raise WorkflowError(
            f"batch {wildcards.batch!r} is not a batch of region {wildcards.region!r}"
        )


def batch_ids(wildcards):
    """Comma-separated batch ids of the region {region} (shell-safe: B, digits, _ and -)."""
    return ",".join(batches_of(wildcards.region))


def batch_manifest(stage, batch="{batch}"):
    """Path pattern of a stage's batch manifest (jointseg.batch.manifest_path)."""
    return f"{RESULTS}/{{region}}/{{year}}/{STAGES[stage]}/batches/{batch}.json"


def batch_manifests(wildcards, stage):
    """Batch manifests of one stage for every batch of a region and year."""
    base = f"{RESULTS}/{wildcards.region}/{wildcards.year}/{STAGES[stage]}/batches"
    return [f"{base}/{b}.json" for b in batches_of(wildcards.region)]


def batch_runtime(minutes_per_tile, minimum=10):
    """runtime (minutes) of a batch job: minutes_per_tile x its tiles, at least minimum."""

    def runtime(wildcards, attempt):
        n = len(batches_of(wildcards.region)[wildcards.batch])
        return max(minimum, int(minutes_per_tile * n)) * attempt

    return runtime


def batch_cmd(stage):
    """The `jointseg batch` prefix every batch rule shares (values from config quoted)."""
    return (
        f"jointseg -v batch {stage} --region {{wildcards.region}} --year {{wildcards.year}}"
        " --batch {wildcards.batch} --tiles {params.tiles} --manifest {output.manifest:q}"
        f" --results-dir {shlex.quote(RESULTS)} --resources-dir {shlex.quote(RESOURCES)}"
        " --no-progress"
    )


# --- the settings of each tile stage: ONE definition for the per-tile rules
# (stac/download/cloudmask/composite/predict.smk) and the batch rules (batch.smk), the
# stage's config section as one shell-quoted JSON word (jointseg/settings.py).


def shell_options(pairs):
    """`--name value` for (name, value) pairs, each value shell-quoted; a value True
    gives the bare flag, None or False leaves the option out."""
    parts = []
    for name, value in pairs:
        if value is True:
            parts.append(name)
        elif value is not None and value is not False:
            parts.append(f"{name} {shlex.quote(str(value))}")
    return " ".join(parts)


def stage_settings(stage):
    """params function: `--settings JSON` of a tile stage, its config section
    shell-quoted (a function, so Snakemake leaves the JSON's braces alone)."""
    from jointseg.settings import stage_settings_section

    word = shlex.quote(json.dumps(stage_settings_section(config, stage)))
    return lambda wildcards: f"--settings {word}"


def predict_outputs(subdir=""):
    """Per-tile predict outputs: isa, prob and, with infer.sr_quicklook, sr."""
    base = f"{RESULTS}/{{region}}/{{year}}/{subdir}isa/{{tile}}"
    out = {"isa": f"{base}_isa.tif", "prob": f"{base}_prob.tif"}
    if SR_QUICKLOOK:
        out["sr"] = f"{base}_sr.tif"
    return out


wildcard_constraints:
    region="[A-Za-z][A-Za-z0-9_-]*",
    year=r"\d{4}",
    tile=r"\d{4,5}_-?\d+_-?\d+",
    batch=r"B\d{4,5}_-?\d+_-?\d+",


MODEL_NAME = config["model"]["name"]
BASELINE_NAME = f"{MODEL_NAME}-bilinear"


# --- training data: the training region (config training_data) is tiled and composited
# by the usual rules under the region name TRAIN_REGION, then cut into chips (make_chips).
TRAIN_YEAR = (TRAINING["year"] or YEARS[0]) if TRAINING else None
BASELINE = config["model"]["baseline"]
if TRAINING and TRAIN_REGION in config["regions"]:
    config_error(
        f"config: key 'regions.{TRAIN_REGION}': the name is reserved for training_data"
    )


SIM_TRAIN = TRAINING.get("simulated") if TRAINING else None
if SIM_TRAIN is not None and not DEMO["enabled"]:
    config_error(
        "config: key 'training_data.simulated': needs stac.demo_server.enabled"
    )
SIM_TRAIN_SOURCES = [
    f"{SIM_DIR}/train/sources/{name}"
    for name in (
        "sources.json",
        "hr/hr.tif",
        "labels/buildings.gpkg",
        "labels/roads.gpkg",
        "labels/paved.gpkg",
        "labels/region.osm.pbf",
    )
]
# its clean truth: what training_data.reference names in the demo (checkpoint choice only)
SIM_TRAIN_SOURCES.append(f"{SIM_DIR}/train/truth/isa_1m.tif")


def simulated_training_outputs():
    """The simulated training region's sources (simulate_demo outputs), or none."""
    return SIM_TRAIN_SOURCES if SIM_TRAIN is not None else []


def sim_truth(year, name="isa"):
    """The demo's simulated 1 m truth of one year (name: isa | landcover)."""
    return f"{SIM_DIR}/{year}/truth/{name}_1m.tif"


def simulate_demo_outputs():
    """Everything simulate_demo writes that rules read: per simulated year its truth,
    the districts, the catalogue index and the training region's sources."""
    truth = [sim_truth(y, n) for y in SIM_YEARS for n in ("isa", "landcover")]
    return [f"{SIM_DIR}/simulation.json", f"{SIM_DIR}/districts.gpkg", *truth] + (
        simulated_training_outputs()
    )


def simulate_training_args(wildcards):
    """`jointseg simulate region` options of the simulated training region (or "")."""
    if SIM_TRAIN is None:
        return ""
    demo_crs = config["regions"][config["demo"]["region"]].get("bbox_crs", "EPSG:4326")
    if TRAINING["bbox_crs"] != demo_crs:
        raise WorkflowError(
            f"config: key 'training_data.bbox_crs': a simulated training region must be"
            f" in the demo region's CRS {demo_crs}"
        )
    bbox = " ".join(shlex.quote(str(v)) for v in TRAINING["bbox"])
    options = shell_options(
        [
            ("--training-seed", SIM_TRAIN["seed"]),
            ("--label-noise", SIM_TRAIN["label_noise"]),
            ("--training-year", TRAIN_YEAR),
        ]
    )
    return f"--training-bbox {bbox} {options}"


def training_region():
    """The training region as a region entry (bbox + bbox_crs)."""
    if not TRAINING:
        raise WorkflowError(f"config: region {TRAIN_REGION!r} needs training_data")
    return {"bbox": TRAINING["bbox"], "bbox_crs": TRAINING["bbox_crs"]}


def chip_source():
    """Where the training chips come from: training_data | dir | simulated | None (a
    trained model.onnx and no chips asked for). Resolves model.chips.source `auto`."""
    chips, source = config["model"]["chips"], config["model"]["chips"]["source"]
    if source == "auto":
        if TRAINING:
            return "training_data"
        if chips["dir"]:
            return "dir"
        if config["model"]["onnx"]:
            return None
        if DEMO["enabled"]:
            return "simulated"
        config_error(
            "config: no model and no training data: set model.onnx (a trained JointSeg"
            " ONNX model) or training_data (README 'Train on your own region')"
        )
    if source == "training_data" and not TRAINING:
        config_error(
            "config: model.chips.source is training_data but training_data is not set"
        )
    if source == "dir" and not chips["dir"]:
        config_error("config: model.chips.source is dir but model.chips.dir is null")
    return source


# Decided once, when the workflow is read: a config without a model and without
# training data stops here in one line, whatever files lie around.
CHIP_SOURCE = chip_source()
if CHIP_SOURCE is None and BASELINE:
    config_error(
        "config: model.baseline trains the bilinear baseline and needs training data:"
        " set training_data or model.chips.dir, or model.baseline: false"
    )
# chips and models are keyed by what they are made from (jointseg.identity): two
# configs in one working directory never share or overwrite each other's
TRAINING_ID = training_data_id(config, CHIP_SOURCE)


def model_dir(arch):
    """Folder of the model of architecture ``arch`` trained on TRAINING_ID, or None."""
    if TRAINING_ID is None:
        return None
    key = model_id({**config["model"]["train"], "arch": arch}, TRAINING_ID)
    name = BASELINE_NAME if arch == "bilinear" else MODEL_NAME
    return f"{RESULTS}/models/{name}-{key}"


MODEL_DIR = model_dir(config["model"]["train"]["arch"])
BASELINE_DIR = model_dir("bilinear")
BASELINE_ONNX = f"{BASELINE_DIR}.onnx"


def training_composites(wildcards=None):
    """The training region's 10 m composite tiles (the _20m twins lie beside them)."""
    base = f"{RESULTS}/{TRAIN_REGION}/{TRAIN_YEAR}/composite"
    return [f"{base}/{t}_10m.tif" for t in tiles_of(TRAIN_REGION)]


def make_chips_inputs(wildcards):
    """make_chips inputs: HR rasters, label sources and the composites (per tile, or the
    composite batch manifests in batch mode)."""
    inputs = {
        "hr": TRAINING["hr"],
        "labels": TRAINING["labels"],
        "reference": TRAINING.get("reference", []),
    }
    if BATCH_BLOCK:
        base = f"{RESULTS}/{TRAIN_REGION}/{TRAIN_YEAR}/{STAGES['composite']}/batches"
        inputs["composites"] = [f"{base}/{b}.json" for b in batches_of(TRAIN_REGION)]
    else:
        base = f"{RESULTS}/{TRAIN_REGION}/{TRAIN_YEAR}/composite"
        inputs["composites"] = [
            f"{base}/{t}_{res}.tif"
            for t in tiles_of(TRAIN_REGION)
            for res in ("10m", "20m")
        ]
    return inputs


def chips_options():
    """`jointseg chips` options from config training_data (all values shell-quoted)."""
    t, q = TRAINING["chips"], shlex.quote
    args = [f"--hr {q(p)}" for p in TRAINING["hr"]]
    args += [f"--labels {q(p)}" for p in TRAINING["labels"]]
    args += [f"--reference {q(p)}" for p in TRAINING.get("reference", [])]
    args += [f"--composite {q(p)}" for p in training_composites()]
    args.append(
        shell_options(
            [
                ("--hr-bands", t["hr_bands"]),
                ("--chip-size-m", t["chip_size_m"]),
                ("--min-coverage", t["min_coverage"]),
                ("--max-shift-m", t["max_shift_m"]),
                ("--min-correlation", t["min_correlation"]),
                ("--split-block-m", t["split_block_m"]),
                ("--split-fractions", ",".join(str(v) for v in t["split_fractions"])),
                ("--seed", t["seed"]),
                ("--ignore-edge-m", t["ignore_edge_m"]),
                ("--highway-widths", json.dumps(t["highway_widths"])),
                ("--refine", t["refine"]["method"]),
                ("--refine-steps", t["refine"]["steps"]),
                ("--refine-margin", t["refine"]["margin"]),
                ("--refine-seed", t["refine"]["seed"]),
            ]
        )
    )
    return " ".join(args)


MAKE_CHIPS_DIR = f"{RESULTS}/{TRAIN_REGION}/{TRAIN_YEAR}/chips/{TRAINING_ID}"
SIM_CHIPS_DIR = f"{RESOURCES}/chips/sim-{TRAINING_ID}"


def chips_index(wildcards):
    """index.csv of the training chips (see chip_source)."""
    if CHIP_SOURCE == "training_data":
        return f"{MAKE_CHIPS_DIR}/index.csv"
    if CHIP_SOURCE == "dir":
        return f"{config['model']['chips']['dir']}/index.csv"
    return f"{SIM_CHIPS_DIR}/index.csv"


def model_onnx(wildcards):
    """The ONNX model predict uses: model.onnx (already trained) or the exported one
    (its fp16 twin <name>_fp16.onnx lies beside it: infer.precision picks)."""
    return config["model"]["onnx"] or f"{MODEL_DIR}.onnx"


def fp16_twin(model):
    """Input function: the fp16 twin of ``model`` (a path or an input function) when
    infer.precision is fp16, so that it is made or found before predict runs; else none
    (auto takes the twin only where it exists)."""

    def twin(wildcards):
        if config["infer"]["precision"] != "fp16":
            return []
        from jointseg.model.metadata import fp16_twin_path

        return [str(fp16_twin_path(model(wildcards) if callable(model) else model))]

    return twin


def product_tiles(wildcards, product, subdir=""):
    """Per-tile 1 m products of one region and year (product: isa | prob).

    In batch mode: the region manifest merging the predict batch manifests (the mosaic
    reads the tile paths from it: `jointseg mosaic --tiles-from-manifests`).
    """
    if BATCH_BLOCK:
        return [
            f"{RESULTS}/{wildcards.region}/{wildcards.year}/{subdir}isa/batches.json"
        ]
    return [
        f"{RESULTS}/{wildcards.region}/{wildcards.year}/{subdir}isa/{tile}_{product}.tif"
        for tile in tiles_of(wildcards.region)
    ]


def output_crs(wildcards):
    crs = config["regions"][wildcards.region].get("output_crs")
    return crs or config["mosaic"]["output_crs"]


def worldcover_source(wildcards):
    """WorldCover tiles: configured source, the demo's simulated map, or ESA's bucket."""
    if config["accuracy"]["worldcover"]:
        return config["accuracy"]["worldcover"]
    if DEMO["enabled"]:
        return f"{SIM_DIR}/worldcover"
    from jointseg.assess.worldcover import DEFAULT_URL_TEMPLATE

    return DEFAULT_URL_TEMPLATE


def truth_raster(year):
    """The 1 m ISA reference of ``year``: accuracy.truth, or the demo's simulated truth."""
    a = config["accuracy"]
    if a["truth"]:
        return a["truth"]
    return sim_truth(year) if DEMO["enabled"] else None


def landcover_raster(year):
    """The 1 m land-cover reference of ``year``: accuracy.landcover, or the demo's."""
    a = config["accuracy"]
    if a["landcover"]:
        return a["landcover"]
    return sim_truth(year, "landcover") if DEMO["enabled"] else None


def accuracy_inputs(wildcards):
    base = f"{RESULTS}/{wildcards.region}/{wildcards.year}"
    inputs = {"map": f"{base}/isa_1m.tif", "prob": f"{base}/isa_prob_1m.tif"}
    if BASELINE:
        inputs["baseline"] = f"{base}/baseline/isa_1m.tif"
    if truth_raster(wildcards.year):
        inputs["truth"] = truth_raster(wildcards.year)
    if landcover_raster(wildcards.year):
        inputs["landcover"] = landcover_raster(wildcards.year)
    if config["accuracy"]["landcover_classes"]:
        inputs["landcover_classes"] = config["accuracy"]["landcover_classes"]
    if not config["accuracy"]["worldcover"] and DEMO["enabled"]:
        inputs["catalogue"] = f"{SIM_DIR}/simulation.json"
    for key in ("labels", "cities", "zones"):
        if config["accuracy"][key]:
            inputs[key] = config["accuracy"][key]
    return inputs


def accuracy_optional_args(wildcards, input):
    a = config["accuracy"]
    args = []
    q = shlex.quote
    for key in ("truth", "baseline", "labels", "landcover", "landcover_classes"):
        if key in input.keys():
            args.append(f"--{key.replace('_', '-')} {q(input[key])}")
    if "cities" in input.keys():
        args.append(f"--cities {q(input.cities)} --city-field {q(a['city_field'])}")
    if "zones" in input.keys():
        args.append(f"--zones {q(input.zones)} --zone-field {q(a['zone_field'])}")
    if a["allow_missing_worldcover"]:
        args.append("--allow-missing")
    return " ".join(args)


def change_group_args(wildcards):
    a, q = config["accuracy"], shlex.quote
    args = []
    if a["cities"]:
        args.append(f"--cities {q(a['cities'])} --city-field {q(a['city_field'])}")
    if a["zones"]:
        args.append(f"--zones {q(a['zones'])} --zone-field {q(a['zone_field'])}")
    return " ".join(args)


def accuracy_targets():
    return [
        f"{RESULTS}/{region}/{year}/accuracy/report.json"
        for region in REGIONS
        for year in YEARS
    ]


def change_targets():
    if len(YEARS) < 2:
        return []
    epochs = "-".join(str(y) for y in sorted(YEARS))
    return [f"{RESULTS}/{region}/change/{epochs}/change.json" for region in REGIONS]


def mosaic_targets():
    return [
        f"{RESULTS}/{region}/{year}/{name}"
        for region in REGIONS
        for year in YEARS
        for name in ("isa_1m.tif", "isa_prob_1m.tif")
    ]


def all_targets():
    return mosaic_targets() + accuracy_targets()


def demo_catalogue(wildcards):
    """The simulated catalogue the loopback STAC API serves (demo only)."""
    return [f"{SIM_DIR}/simulation.json"] if DEMO["enabled"] else []


def region_bbox_arg(region):
    if region not in config["regions"] or "bbox" not in config["regions"][region]:
        raise WorkflowError(
            f"config: key 'demo.region': {region!r} must name a region with a bbox"
        )
    return " ".join(shlex.quote(str(v)) for v in config["regions"][region]["bbox"])


def start_demo_servers_if_ready():
    """Take this run's lease on the demo servers (its jobs inherit it through
    $JOINTSEG_DEMO_SERVERS_HOLDER) and serve the demo catalogue when it exists already
    (reruns). Another run in this directory then never stops the servers under us."""
    if DEMO["enabled"]:
        import os

        from jointseg.simulate.servers import (
            HOLDER_ENV,
            ensure_demo_servers,
            hold_demo_servers,
        )

        os.environ[HOLDER_ENV] = str(os.getpid())
        state_dir = Path(DEMO["state_dir"])
        hold_demo_servers(state_dir, os.getpid())
        if Path(SIM_DIR, "simulation.json").exists():
            ensure_demo_servers(
                Path(SIM_DIR),
                DEMO["stac_port"],
                DEMO["file_port"],
                state_dir,
                holder=os.getpid(),
            )


def stop_demo_servers_if_started():
    """Release this run's lease; the servers stop only when no other live run holds one."""
    if DEMO["enabled"]:
        import os

        from jointseg.simulate.servers import release_demo_servers

        release_demo_servers(Path(DEMO["state_dir"]), os.getpid())


# --- other ISA products for Table 1 (rules/products.smk, config accuracy.products)
PRODUCTS_DIR = f"{SIM_DIR}/products"


def product_specs():
    """accuracy.products, or the demo's simulated stand-ins when none is configured."""
    from jointseg.simulate.otherproducts import stand_in_specs

    if config["accuracy"]["products"]:
        return config["accuracy"]["products"]
    return stand_in_specs(PRODUCTS_DIR) if DEMO["enabled"] else []


def demo_truth(year):
    """The demo's simulated truth of a year: {SIM_DIR}/{year}/truth/isa_1m.tif, or the
    single-year demo's {SIM_DIR}/truth/isa_1m.tif while no rule writes per-year truths.
    """
    legacy = f"{SIM_DIR}/truth/isa_1m.tif"
    outs = {str(o) for r in workflow.rules for o in r.output}
    per_year = [
        o for o in outs - {legacy} if Path(o).parts[-2:] == ("truth", "isa_1m.tif")
    ]
    if legacy in outs and not per_year:
        return legacy
    return f"{SIM_DIR}/{year}/truth/isa_1m.tif"


def products_reference(year):
    """("truth" | "labels", path) of the reference products are compared with, or None."""
    a = config["accuracy"]
    if a["truth"]:
        return ("truth", a["truth"].format(year=year))
    if DEMO["enabled"]:
        return ("truth", demo_truth(year))
    if a["labels"]:
        return ("labels", a["labels"])
    return None


def products_inputs(wildcards):
    """Map, baseline, reference and (demo) stand-in files of one region and year."""
    base = f"{RESULTS}/{wildcards.region}/{wildcards.year}"
    inputs = {"map": f"{base}/isa_1m.tif"}
    if BASELINE:
        inputs["baseline"] = f"{base}/baseline/isa_1m.tif"
    kind, path = products_reference(wildcards.year)
    inputs[kind] = path
    if not config["accuracy"]["products"]:
        inputs["products"] = product_stand_ins()
    return inputs


def product_stand_ins():
    """Files of the demo's simulated stand-ins (rule simulate_products) for YEARS."""
    from jointseg.simulate.otherproducts import stand_in_files

    return stand_in_files(PRODUCTS_DIR, YEARS)


def products_args(wildcards, input):
    """`--product JSON` per product, the reference and the baseline, shell-quoted."""
    args = [f"--product {shlex.quote(json.dumps(p))}" for p in product_specs()]
    for key in ("truth", "labels", "baseline"):
        if key in input.keys():
            args.append(f"--{key} {shlex.quote(str(input[key]))}")
    return " ".join(args)


def products_targets():
    """products.json per region and year (none without products or a reference)."""
    if not product_specs():
        return []
    regions = [config["demo"]["region"]] if DEMO["enabled"] else REGIONS
    return [
        f"{RESULTS}/{r}/{y}/accuracy/products.json"
        for r in regions
        for y in YEARS
        if products_reference(y)
    ]


def year_args(option, paths):
    """`--option YEAR=PATH` per configured year, shell-quoted (rule change)."""
    return " ".join(f"{option} {shlex.quote(f'{y}={p}')}" for y, p in zip(YEARS, paths))
