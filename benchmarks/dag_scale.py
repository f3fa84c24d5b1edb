"""Time Snakemake's DAG build (`snakemake -n`) for a YREB-sized region and one year.

The region is benchmarks/data/yreb_outline.geojson (an approximate outline of the
Yangtze River Economic Belt's 11 provinces, ~2.16 M km²), tiled with
:func:`jointseg.regions.region_tiles` at ``--tile-size-m`` (default 9960 m: ≈ 22,700
tiles). The real Snakefile runs in a scratch working directory whose ``config.yaml`` is
the repository's, with that one region, the demo servers off and a dummy https STAC URL
(a dry run contacts nothing).

    .venv/bin/python benchmarks/dag_scale.py                   # the whole region, defaults
    .venv/bin/python benchmarks/dag_scale.py --batch-block 0 --max-tiles 2000  # per tile
    .venv/bin/python benchmarks/dag_scale.py --batch-block 4   # batches of <= 4 x 4 tiles

Without ``--batch-block`` the config keeps the schema default ``grid.batch_block: auto``
(:func:`jointseg.batch.resolve_batch_block`: batches of 8 x 8 tiles for this region).

``--max-tiles N`` keeps the first N tiles (sorted by id) and writes their footprints,
shrunk by 100 m, as the AOI; the workflow tiles those again (plus a few tiles of the
next zone where a footprint straddles a UTM zone edge: the count reported is the
workflow's).
Prints a table (tiles, jobs, seconds, ms/job, start-up) and, last,
``dag_dry_run_seconds=<x> tiles=<n>``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import shapely
import yaml
from pyproj import Transformer
from shapely.geometry import MultiPolygon, box, mapping

from jointseg.grid import Tile
from jointseg.regions import region_tiles

REPO = Path(__file__).resolve().parents[1]
OUTLINE = REPO / "benchmarks" / "data" / "yreb_outline.geojson"
TOTAL_RE = re.compile(r"^total\s+(\d+)\s*$", re.MULTILINE)


class BenchmarkError(RuntimeError):
    """The dry run failed or printed no job count."""


def tiles_aoi_geojson(tiles: Sequence[Tile], shrink_m: float = 100.0) -> dict:
    """GeoJSON (EPSG:4326) of the tiles' footprints, each shrunk by ``shrink_m`` metres.

    Tiling this AOI again gives back ``tiles``: every shrunk footprint lies inside its
    own tile only, except that one straddling a UTM zone edge is also tiled in the
    neighbouring zone.
    """
    parts = []
    for t in tiles:
        tr = Transformer.from_crs(f"EPSG:{t.epsg}", "EPSG:4326", always_xy=True)
        sq = box(
            t.xmin + shrink_m, t.ymin + shrink_m,
            t.xmin + t.size_m - shrink_m, t.ymin + t.size_m - shrink_m,
        )  # fmt: skip
        parts.append(shapely.transform(sq, tr.transform, interleaved=False))
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        "features": [
            {"type": "Feature", "properties": {}, "geometry": mapping(MultiPolygon(parts))}
        ],
    }


def bench_config(
    aoi: Path, tile_size_m: int, batch_block: int | None = None, region: str = "yreb"
) -> dict:
    """The repository's config.yaml with only ``region`` (an AOI) and no demo servers: a
    production config, so the demo's simulated training region and its bilinear baseline
    give way to a user's training region (:data:`TRAINING`, placeholder files) and no
    baseline."""
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["regions"] = {region: {"aoi": str(aoi)}}
    cfg["grid"]["tile_size_m"] = tile_size_m
    if batch_block is not None:
        cfg["grid"]["batch_block"] = batch_block
    cfg["stac"]["api_url"] = "https://stac.invalid/v1"
    cfg["stac"].setdefault("demo_server", {})["enabled"] = False
    # rules/simulate.smk reads regions[demo.region] at parse time even with the demo off
    cfg.setdefault("demo", {})["region"] = region
    cfg["training_data"] = dict(TRAINING)
    cfg.setdefault("model", {})["baseline"] = False
    return cfg


#: A user's training region (3 km by Wuhan) with HR and label files that
#: :func:`write_training_placeholders` creates: a dry run only checks that they exist.
TRAINING = {"bbox": [237000, 3378000, 240000, 3381000], "bbox_crs": "EPSG:32650",
            "hr": ["training/hr.tif"], "labels": ["training/buildings.gpkg"]}


def write_training_placeholders(workdir: Path) -> None:
    """Empty stand-ins for :data:`TRAINING`'s files under ``workdir``."""
    for rel in TRAINING["hr"] + TRAINING["labels"]:
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).touch()


def dry_run(workdir: Path, snakefile: Path, year: int) -> tuple[int, float, str]:
    """Run ``snakemake -n`` in ``workdir``; return (jobs, wall seconds, output)."""
    exe = Path(sys.executable).parent / "snakemake"
    cmd = [str(exe), "-s", str(snakefile.resolve()), "-d", str(workdir), "-n", "-q", "rules",
           "--cores", "1", "--configfile", "config.yaml", "--config", f"year={year}"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise BenchmarkError(f"snakemake -n failed (rc {proc.returncode}):\n{out[-4000:]}")
    m = TOTAL_RE.findall(out)
    if not m:
        raise BenchmarkError(f"snakemake -n printed no 'total' job count:\n{out[-2000:]}")
    return int(m[-1]), seconds, out


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from the last 'Job stats' table of a dry run's output."""
    table = output.rsplit("Job stats:", 1)[-1]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aoi", type=Path, default=OUTLINE, help="region outline (any CRS)")
    ap.add_argument("--tile-size-m", type=int, default=9960)
    ap.add_argument("--year", type=int, default=2019)
    ap.add_argument("--max-tiles", type=int, default=None, help="keep the first N tiles")
    ap.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    ap.add_argument(
        "--batch-block", type=int, default=None,
        help="set grid.batch_block: 0 = per-tile rules, N = batches of up to N x N tiles "
        "(default: the schema's auto)",
    )  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the scratch working directory")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    tiles = region_tiles({"aoi": str(args.aoi.resolve())}, args.tile_size_m)
    tiling_s = time.perf_counter() - t0
    workdir = Path(tempfile.mkdtemp(prefix="dag_scale_"))
    try:
        aoi = args.aoi.resolve()
        if args.max_tiles is not None and args.max_tiles < len(tiles):
            tiles = tiles[: args.max_tiles]
            aoi = workdir / "aoi.geojson"
            aoi.write_text(json.dumps(tiles_aoi_geojson(tiles)))
        (workdir / "config.yaml").write_text(
            yaml.safe_dump(bench_config(aoi, args.tile_size_m, args.batch_block))
        )
        write_training_placeholders(workdir)

        # start-up and fixed cost: the same workflow on a one-tile region
        one = workdir / "one"
        one.mkdir()
        (one / "aoi.geojson").write_text(json.dumps(tiles_aoi_geojson(tiles[:1])))
        (one / "config.yaml").write_text(
            yaml.safe_dump(bench_config(one / "aoi.geojson", args.tile_size_m, args.batch_block))
        )
        write_training_placeholders(one)
        base_jobs, base_s, _ = dry_run(one, args.snakefile, args.year)

        jobs, seconds, out = dry_run(workdir, args.snakefile, args.year)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"# scratch working directory kept: {workdir}")

    per_job_ms = (seconds - base_s) / max(jobs - base_jobs, 1) * 1000
    print(f"# region {args.aoi.name}, tile {args.tile_size_m} m, year {args.year}")
    print(f"# tiling in Python (region_tiles): {tiling_s:.1f} s")
    counts = job_counts(out)
    n_tiles = len(tiles)
    if "merge_predict_batches" in counts:
        setting = "auto" if args.batch_block is None else args.batch_block
        print(f"# batch mode: grid.batch_block={setting}, "
              f"{counts.get('search_scenes', 0)} batches")
    elif "search_scenes" in counts and counts["search_scenes"] != n_tiles:
        # a subset's footprints that straddle a UTM zone edge are tiled in both zones
        print(f"# the workflow tiled the subset AOI into {counts['search_scenes']} tiles")
        n_tiles = counts["search_scenes"]
    print("# jobs per rule: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    print(f"{'tiles':>8} {'jobs':>8} {'seconds':>8} {'ms/job':>7} {'startup_s':>9}")
    print(f"{n_tiles:>8} {jobs:>8} {seconds:>8.1f} {per_job_ms:>7.2f} {base_s:>9.1f}")
    print(f"dag_dry_run_seconds={seconds:.1f} tiles={n_tiles}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
