"""Batches of neighbouring tiles: one workflow job per stage and batch, not per tile.

A batch is the tiles of one UTM zone whose lower-left corners fall in one square block
of ``block x tile_size_m`` metres; its id is ``B<epsg>_<xmin>_<ymin>`` of the block's
lower-left corner (metres, the zone's UTM CRS). A batch job loops over its tiles with
:func:`run_batch`, writes the per-tile files of docs/architecture.md at their usual
paths and, last, a batch manifest (JSON) listing them::

    {"batch": "B32650_0_3540000", "stage": "composite", "region": "demo", "year": 2019,
     "tiles": {"32650_663000_3543000": {"c10": "results/.../composite/..._10m.tif",
                                        "c20": "results/.../composite/..._20m.tif"}}}

A tile is skipped only when its outputs exist and validate *and* were made by the same
work: after each tile, the runner records the tile's fingerprint (:func:`fingerprint`:
the stage, its settings object as canonical JSON, the code version and the tile's input
files) in the batch's record ``<manifest>.tiles.json`` (:func:`record_path`). A rerun
after a crash (same settings, same inputs) resumes inside the batch; a rerun because the
settings or an input changed (Snakemake deletes only the manifest, not the per-tile
files) redoes every tile whose fingerprint differs. A failed tile is logged and the
others still run; :class:`BatchError` names the failed tiles at the end (the manifest is
then not written).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from jointseg import __version__
from jointseg.grid import Tile
from jointseg.io import (
    IntegrityError,
    OutputError,
    checksum_path,
    recorded_sha256,
    sha256_file,
    validate_raster,
    write_json,
)

log = logging.getLogger(__name__)

BATCH_ID_RE = re.compile(r"^B(?P<epsg>\d{4,5})_(?P<xmin>-?\d+)_(?P<ymin>-?\d+)$")

#: stage -> directory (under results/{region}/{year}) of its batch manifests
STAGES: dict[str, str] = {
    "search": "scenes",
    "download": "stack",
    "cloudmask": "cloudmask",
    "composite": "composite",
    "predict": "isa",
    "predict_baseline": "baseline/isa",
}


#: ``grid.batch_block: auto``: one job per tile and stage up to this many tiles ...
AUTO_MAX_TILES_PER_TILE_JOBS = 500
#: ... else batches of at least this many tiles a side ...
AUTO_MIN_BLOCK = 8
#: ... grown so that the tiles would fill at most this many full batches.
AUTO_MAX_FULL_BATCHES = 1000
#: largest block (the schema's maximum of grid.batch_block)
MAX_BLOCK = 64
#: an input file larger than this (and without a current ``.sha256`` sidecar) is
#: fingerprinted by its size and mtime_ns instead of its sha256
HASH_MAX_BYTES = 256 << 20


class BatchError(RuntimeError):
    """One or more tiles of a batch failed, or a batch manifest is malformed."""


def resolve_batch_block(setting: int | str, n_tiles: int) -> int:
    """The batch block (tiles a side; 0 = one job per tile) for ``grid.batch_block``.

    ``setting`` is the config value: an int >= 0 is returned as is; ``"auto"`` gives 0
    for up to :data:`AUTO_MAX_TILES_PER_TILE_JOBS` tiles (the per-tile DAG builds in
    seconds and the jobs stay small), else the smallest block >= :data:`AUTO_MIN_BLOCK`
    with ``n_tiles / block**2 <= AUTO_MAX_FULL_BATCHES`` (8 up to 64,000 tiles, e.g. the
    22,680 tiles of the YREB region), capped at :data:`MAX_BLOCK`. ``n_tiles`` counts
    every tile the run maps (all regions, times the number of years): it is what the
    DAG's size grows with.

    Raises:
        ValueError: ``setting`` is neither ``"auto"`` nor an int in 0..MAX_BLOCK.
    """
    if setting == "auto":
        if n_tiles <= AUTO_MAX_TILES_PER_TILE_JOBS:
            return 0
        block = math.ceil(math.sqrt(n_tiles / AUTO_MAX_FULL_BATCHES))
        return min(max(AUTO_MIN_BLOCK, block), MAX_BLOCK)
    if isinstance(setting, bool) or not isinstance(setting, int) or not (
        0 <= setting <= MAX_BLOCK
    ):
        raise ValueError(f"batch block {setting!r}: expected 'auto' or 0..{MAX_BLOCK}")
    return setting


def batch_id(tile: Tile, block: int) -> str:
    """Id ``B<epsg>_<xmin>_<ymin>`` of the ``block x block``-tile batch holding ``tile``."""
    if block < 1:
        raise ValueError(f"batch block {block}: must be >= 1")
    step = block * tile.size_m
    return f"B{tile.epsg}_{tile.xmin // step * step}_{tile.ymin // step * step}"


def batches_for_tiles(tiles: Iterable[Tile], block: int) -> dict[str, list[Tile]]:
    """Partition ``tiles`` into batches of up to ``block x block`` neighbours of one zone.

    Returns batch id -> its tiles (sorted by tile id), batch ids sorted; every tile is in
    exactly one batch, and a batch never mixes UTM zones (the zone is part of the id).
    """
    out: dict[str, list[Tile]] = defaultdict(list)
    for t in tiles:
        out[batch_id(t, block)].append(t)
    return {b: sorted(ts, key=lambda t: t.tile_id) for b, ts in sorted(out.items())}


def tile_files(
    stage: str, tile_id: str, region: str, year: int | str,
    results_dir: str | os.PathLike = "results", resources_dir: str | os.PathLike = "resources",
) -> dict[str, Path]:  # fmt: skip
    """The per-tile files ``stage`` writes for one tile (paths of docs/architecture.md)."""
    res = Path(results_dir) / region / str(year)
    if stage == "search":
        return {"scenes": res / "scenes" / f"{tile_id}.json"}
    if stage == "download":
        return {"manifest": Path(resources_dir) / region / str(year) / "stack" / tile_id
                / "manifest.json"}  # fmt: skip
    if stage == "cloudmask":
        return {"mask": res / "cloudmask" / f"{tile_id}.tif"}
    if stage == "composite":
        return {"c10": res / "composite" / f"{tile_id}_10m.tif",
                "c20": res / "composite" / f"{tile_id}_20m.tif"}  # fmt: skip
    if stage in ("predict", "predict_baseline"):
        isa = res / STAGES[stage]
        return {"isa": isa / f"{tile_id}_isa.tif", "prob": isa / f"{tile_id}_prob.tif"}
    raise ValueError(f"unknown batch stage {stage!r}: expected one of {', '.join(STAGES)}")


def tile_inputs(
    stage: str, tile_id: str, region: str, year: int | str,
    results_dir: str | os.PathLike = "results", resources_dir: str | os.PathLike = "resources",
) -> dict[str, Path]:  # fmt: skip
    """The per-tile files ``stage`` reads for one tile: the outputs of the stages before.

    ``search`` reads none (it asks the STAC API); predict's model is one file for the
    whole batch and is added by the caller.
    """
    def files(st: str) -> dict[str, Path]:
        return tile_files(st, tile_id, region, year, results_dir, resources_dir)

    if stage == "search":
        return {}
    if stage == "download":
        return {"scenes": files("search")["scenes"]}
    if stage == "cloudmask":
        return {"stack": files("download")["manifest"]}
    if stage == "composite":
        return {"stack": files("download")["manifest"], "mask": files("cloudmask")["mask"]}
    if stage in ("predict", "predict_baseline"):
        return dict(files("composite"))
    raise ValueError(f"unknown batch stage {stage!r}: expected one of {', '.join(STAGES)}")


def manifest_path(
    stage: str, batch: str, region: str, year: int | str,
    results_dir: str | os.PathLike = "results",
) -> Path:  # fmt: skip
    """``results/{region}/{year}/<stage dir>/batches/{batch}.json``."""
    if stage not in STAGES:
        raise ValueError(f"unknown batch stage {stage!r}: expected one of {', '.join(STAGES)}")
    return Path(results_dir) / region / str(year) / STAGES[stage] / "batches" / f"{batch}.json"


def output_ok(path: Path) -> bool:
    """True when ``path`` exists and is complete: a GeoTIFF that reads, or JSON that parses."""
    if not path.is_file():
        return False
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            validate_raster(path)
    except (OSError, ValueError, OutputError) as exc:
        log.warning("%s: exists but does not validate (%s); redoing it", path, exc)
        return False
    return True


def record_path(manifest: str | os.PathLike) -> Path:
    """The record of the tiles' fingerprints beside a batch manifest: ``<manifest>.tiles.json``."""
    manifest = Path(manifest)
    return manifest.with_name(manifest.name + ".tiles.json")


def input_fingerprint(path: str | os.PathLike) -> str:
    """What identifies the bytes of one input file, cheaply.

    ``sha256:<hex>`` from its ``.sha256`` sidecar when the sidecar is at least as new as
    the file (written with it by :func:`jointseg.io.atomic_path`; a file copied over
    later is hashed again), else the sha256 of its bytes; ``size:<n>:mtime_ns:<t>`` for a
    file over :data:`HASH_MAX_BYTES` without such a sidecar; ``missing`` when absent.
    (An input can change without its tiles changing; that costs a redo, never a stale tile.)
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    try:
        side_ok = checksum_path(path).stat().st_mtime_ns >= st.st_mtime_ns
        recorded = recorded_sha256(path) if side_ok else None
    except (FileNotFoundError, IntegrityError):
        recorded = None
    if recorded:
        return f"sha256:{recorded}"
    if st.st_size > HASH_MAX_BYTES:
        return f"size:{st.st_size}:mtime_ns:{st.st_mtime_ns}"
    try:
        return f"sha256:{sha256_file(path)}"
    except OSError as exc:  # the stage will name the file when it reads it
        return f"unreadable:{exc.errno}"


#: Settings fields that change how fast a tile is made, never its bytes: a resume with
#: another `--cores` (predict's threads) does not redo finished tiles.
RUNTIME_FIELDS = frozenset({"threads"})


def settings_json(settings: object) -> str:
    """Canonical JSON (sorted keys, no spaces) of a settings object or mapping: every
    field but :data:`RUNTIME_FIELDS`."""
    doc = settings.to_dict() if hasattr(settings, "to_dict") else dict(settings or {})
    doc = {k: v for k, v in doc.items() if k not in RUNTIME_FIELDS}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(stage: str, settings: object, inputs: Mapping[str, str]) -> str:
    """sha256 of what makes a tile: the stage, its settings (:func:`settings_json`), the
    code version and ``inputs`` (name -> :func:`input_fingerprint`)."""
    doc = {"stage": stage, "settings": settings_json(settings), "code": __version__,
           "inputs": dict(sorted(inputs.items()))}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def read_record(path: Path | None, stage: str) -> dict[str, str]:
    """tile id -> fingerprint of a batch record; empty when absent, unreadable or of
    another stage (every tile is then redone)."""
    if path is None or not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        tiles = doc["tiles"] if doc.get("stage") == stage else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: unreadable tile record (%s); redoing every tile", path, exc)
        return {}
    return {t: f for t, f in tiles.items() if isinstance(f, str)}


@dataclass
class BatchResult:
    """What :func:`run_batch` did: tile id -> outputs, and which tiles were skipped."""

    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def run_batch(
    stage: str,
    tiles: Sequence[str],
    fn: Callable[[str, dict[str, Path]], None],
    outputs: Callable[[str], dict[str, Path]],
    *,
    settings: object = None,
    inputs: Callable[[str], Mapping[str, Path]] | None = None,
    record: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    fatal: tuple[type[BaseException], ...] = (),
) -> BatchResult:
    """Run ``fn(tile_id, outputs(tile_id))`` for every tile not done by the same work yet.

    ``fn`` must write every file of ``outputs(tile_id)`` (atomically). A tile is skipped
    (unless ``overwrite``) when its files all exist and validate and ``record`` (a JSON
    file, see :func:`record_path`) holds the tile's current :func:`fingerprint` of
    ``stage``, ``settings`` and the files ``inputs(tile_id)``; after each tile that
    finishes its fingerprint is recorded (atomically). Without ``record`` nothing is
    recorded and only the outputs are checked. A tile whose ``fn`` raises (or leaves an
    output missing) is logged with its id and the loop goes on, unless the error is one
    of ``fatal`` (it concerns every tile, e.g. the model): that one stops the batch at
    once and is raised as it is.

    Raises:
        BatchError: after the loop, naming every failed tile and its error.
    """
    record = Path(record) if record is not None else None
    made = read_record(record, stage)
    seen: dict[Path, str] = {}  # input fingerprints, each file once (the model)

    def current(tile_id: str) -> str:
        files = inputs(tile_id) if inputs is not None else {}
        for p in map(Path, files.values()):
            if p not in seen:
                seen[p] = input_fingerprint(p)
        return fingerprint(stage, settings, {k: seen[Path(p)] for k, p in files.items()})

    def save() -> None:
        if record is not None:
            write_json(record, {"stage": stage, "tiles": made})

    result = BatchResult()
    failed: dict[str, str] = {}
    bar = tqdm(tiles, desc=stage, unit="tile", disable=not progress)
    for tile_id in bar:
        files = outputs(tile_id)
        fp = current(tile_id)
        if not overwrite and all(output_ok(p) for p in files.values()):
            if record is None or made.get(tile_id) == fp:
                log.info("%s %s: outputs exist, skipped", stage, tile_id)
                result.skipped.append(tile_id)
                result.outputs[tile_id] = files
                continue
            log.info("%s %s: outputs exist but were made by other settings, inputs or code; "
                     "redoing them", stage, tile_id)
        log.info("%s %s: start", stage, tile_id)
        try:
            fn(tile_id, files)
            missing = [str(p) for p in files.values() if not p.is_file()]
            if missing:
                raise BatchError(f"did not write {', '.join(missing)}")
        except fatal:
            raise
        except Exception as exc:  # every tile error is collected, reported at the end
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.error("%s %s: failed: %s", stage, tile_id, msg)
            failed[tile_id] = msg
            if made.pop(tile_id, None) is not None:
                save()
            continue
        made[tile_id] = fp
        save()
        log.info("%s %s: done", stage, tile_id)
        result.done.append(tile_id)
        result.outputs[tile_id] = files
    if failed:
        lines = "; ".join(f"{t}: {m}" for t, m in failed.items())
        raise BatchError(f"{stage}: {len(failed)} of {len(tiles)} tile(s) failed: {lines}")
    return result


def write_manifest(
    path: str | os.PathLike, batch: str, stage: str, region: str, year: int | str,
    outputs: Mapping[str, Mapping[str, os.PathLike | str]],
) -> Path:  # fmt: skip
    """Write a batch manifest atomically (see the module docstring for its layout)."""
    write_json(path, {
        "batch": batch, "stage": stage, "region": region, "year": int(year),
        "tiles": {t: {k: str(p) for k, p in files.items()} for t, files in outputs.items()},
    })  # fmt: skip
    return Path(path)


def read_manifest(path: str | os.PathLike) -> dict:
    """Read a batch manifest; raise :class:`BatchError` naming the file if malformed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BatchError(f"{path}: cannot read batch manifest ({exc})") from None
    tiles = doc.get("tiles") if isinstance(doc, dict) else None
    if not isinstance(tiles, dict) or not all(isinstance(v, dict) for v in tiles.values()):
        raise BatchError(f"{path}: key 'tiles' must map tile ids to {{name: path}}")
    return doc


def manifest_files(paths: Iterable[str | os.PathLike], key: str) -> list[Path]:
    """The ``key`` file (e.g. ``isa``) of every tile in the given batch manifests, in order."""
    out = []
    for p in paths:
        for tile_id, files in read_manifest(p)["tiles"].items():
            if key not in files:
                raise BatchError(f"{p}: tile {tile_id} has no {key!r} file")
            out.append(Path(files[key]))
    return out


def merge_manifests(
    paths: Iterable[str | os.PathLike], out: str | os.PathLike, stage: str, region: str,
    year: int | str,
) -> Path:  # fmt: skip
    """Merge batch manifests into one region manifest (batch id ``all``), atomically.

    The mosaic reads this one file, so its command line stays short however many
    batches a region has. Raises :class:`BatchError` if a tile is listed twice.
    """
    tiles: dict[str, dict[str, str]] = {}
    for p in paths:
        for tile_id, files in read_manifest(p)["tiles"].items():
            if tile_id in tiles:
                raise BatchError(f"{p}: tile {tile_id} is already in another batch manifest")
            tiles[tile_id] = files
    return write_manifest(out, "all", stage, region, year, tiles)
