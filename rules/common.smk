# Config validation, tile lists and input functions shared by every rule file.
import json
from pathlib import Path

from snakemake.utils import min_version, validate

from jointseg.config import ConfigError, config_years, validate_config
from jointseg.regions import region_tiles

min_version("9.0")


# Validate with Snakemake's validator (fills defaults), then the semantic checks
# that a JSON schema cannot express (future years, empty bboxes...).
validate(config, schema="../schemas/config.schema.yaml", set_default=True)
try:
    validate_config(config, source="config")
except ConfigError as exc:
    raise WorkflowError(str(exc))

RESULTS = config["results_dir"]
RESOURCES = config["resources_dir"]
YEARS = config_years(config)
REGIONS = list(config["regions"])
DEMO = config["stac"]["demo_server"]
SIM_DIR = DEMO["sim_dir"]
TILE_SIZE_M = config["grid"]["tile_size_m"]
# The config file the CLI re-reads for settings not passed as explicit options
# (the demo server block); explicit options always win.
CONFIGFILE = workflow.configfiles[-1] if workflow.configfiles else "config.yaml"

_TILES = {}


def tiles_of(region):
    """Tile ids of a region (computed once per run)."""
    if region not in _TILES:
        try:
            _TILES[region] = [
                t.tile_id
                for t in region_tiles(
                    config["regions"][region], TILE_SIZE_M, Path(workflow.basedir)
                )
            ]
        except ValueError as exc:
            raise WorkflowError(f"config: key 'regions.{region}': {exc}")
    return _TILES[region]


wildcard_constraints:
    region="[A-Za-z][A-Za-z0-9_-]*",
    year=r"\d{4}",
    tile=r"\d{4,5}_-?\d+_-?\d+",


MODEL_NAME = config["model"]["name"]


def chips_index(wildcards):
    """index.csv of the training chips: the user's, or simulated ones."""
    chips = config["model"]["chips"]
    if chips["dir"]:
        return f"{chips['dir']}/index.csv"
    return f"{RESOURCES}/chips/sim-{chips['seed']}/index.csv"


def model_onnx(wildcards):
    """The ONNX model predict uses: a pretrained file or the exported one."""
    if config["model"]["pretrained"]:
        return config["model"]["pretrained"]
    suffix = "_fp16" if config["model"]["precision"] == "fp16" else ""
    return f"models/{MODEL_NAME}{suffix}.onnx"


def product_tiles(wildcards, product):
    """Per-tile 1 m products of one region and year (product: isa | prob)."""
    return [
        f"{RESULTS}/{wildcards.region}/{wildcards.year}/isa/{tile}_{product}.tif"
        for tile in tiles_of(wildcards.region)
    ]


def output_crs(wildcards):
    crs = config["regions"][wildcards.region].get("output_crs")
    return crs or config["mosaic"]["output_crs"]


def composite_targets():
    return [
        f"{RESULTS}/{region}/{year}/composite/{tile}_{res}.tif"
        for region in REGIONS
        for year in YEARS
        for tile in tiles_of(region)
        for res in ("10m", "20m")
    ]


def mosaic_targets():
    return [
        f"{RESULTS}/{region}/{year}/{name}"
        for region in REGIONS
        for year in YEARS
        for name in ("isa_1m.tif", "isa_prob_1m.tif")
    ]


def all_targets():
    return mosaic_targets()


def demo_catalogue(wildcards):
    """The simulated catalogue the loopback STAC API serves (demo only)."""
    return [f"{SIM_DIR}/simulation.json"] if DEMO["enabled"] else []


def region_bbox_arg(region):
    r = config["regions"][region]
    return " ".join(str(v) for v in r["bbox"]) if "bbox" in r else ""


def start_demo_servers_if_ready():
    """Serve the demo catalogue for this run when it exists already (reruns)."""
    if DEMO["enabled"] and Path(SIM_DIR, "simulation.json").exists():
        from jointseg.servers import ensure_demo_servers

        ensure_demo_servers(
            Path(SIM_DIR), DEMO["stac_port"], DEMO["file_port"], Path(DEMO["state_dir"])
        )


def stop_demo_servers_if_started():
    if DEMO["enabled"]:
        from jointseg.servers import stop_demo_servers

        stop_demo_servers(Path(DEMO["state_dir"]))
