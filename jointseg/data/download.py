"""Download: cut each scene's assets to one tile and align them to the tile grid.

For every scene and band, only the tile's window of the asset is read (COG range
reads, :mod:`jointseg.data.assets`) and written as a COG on the band's tile grid
(:mod:`jointseg.data.align`): the 10 m grid for B02 B03 B04 B08, the 20 m grid for
B05 B06 B07 B8A B11 B12 and SCL (60 m for B01 B09 B10 if asked for). Values are
the **raw DN as stored by the provider** (no BOA offset applied, that is
``composite``'s job), uint16/uint8 as in the source, nodata 0.

The stack layout and manifest are :mod:`jointseg.data.stack`. While a stack is
being built, ``manifest.partial.json`` records the scenes finished so far; a
rerun reuses every band file whose sha256 and source key (href without its query
+ target grid, :func:`jointseg.data.stack.source_key`) match it (or, without a
record, whose grid validates), so an interrupted download resumes, a rerun
writes the same bytes, and a changed scene list refetches what changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from tqdm import tqdm

from jointseg.bands import CATEGORICAL_BANDS, DEFAULT_BANDS
from jointseg.data.align import band_geobox, check_on_grid
from jointseg.data.assets import fetch_band
from jointseg.data.errors import DownloadError
from jointseg.data.http import RetryPolicy
from jointseg.data.settings import DownloadSettings
from jointseg.data.stac import read_scene_list
from jointseg.data.stack import (
    MANIFEST_NAME,
    PARTIAL_MANIFEST_NAME,
    band_file,
    load_previous,
    scene_entry,
    source_key,
)
from jointseg.grid import GeoBox, Tile
from jointseg.io import sha256_file, write_cog, write_json

if TYPE_CHECKING:
    from jointseg.data.providers import SceneInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Scene:
    """The fields of a ``SceneInfo`` (object or dict) that the download needs."""

    id: str
    datetime: str
    boa_offset_dn: int
    cloud_cover: float | None
    bands: Mapping[str, str]
    simulated: bool = False


def _as_scene(s: Any) -> _Scene:
    """Accept a ``jointseg.data.providers.SceneInfo`` or its ``to_dict()`` form."""
    get = s.get if isinstance(s, Mapping) else (lambda k, d=None: getattr(s, k, d))
    try:
        return _Scene(
            id=str(get("id")),
            datetime=str(get("datetime")),
            boa_offset_dn=int(get("boa_offset_dn", 0) or 0),
            cloud_cover=None if get("cloud_cover") is None else float(get("cloud_cover")),
            bands=dict(get("bands") or {}),
            simulated=bool(get("simulated", False)),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scene {get('id')!r}: malformed SceneInfo: {exc}") from exc


def _reusable(path: Path, grid: GeoBox, recorded_sha: str | None) -> str | None:
    """sha256 of an existing band file that can be kept, else None."""
    if not path.is_file():
        return None
    sha = sha256_file(path)
    if recorded_sha is not None:
        return sha if sha == recorded_sha else None
    try:
        check_on_grid(path, grid)
    except DownloadError:
        return None
    return sha


def download_tile(
    scenes: Sequence[SceneInfo] | Sequence[Mapping[str, Any]],
    tile: Tile,
    out_dir: Path,
    bands: Sequence[str] = DEFAULT_BANDS,
    *,
    retries: int = RetryPolicy.retries,
    backoff_s: float = RetryPolicy.backoff_s,
    timeout_s: float = RetryPolicy.timeout_s,
    give_up_s: float = RetryPolicy.give_up_s,
    allow_http: bool = False,
) -> Path:
    """Cut every scene's ``bands`` to ``tile`` and write the stack + manifest under ``out_dir``.

    Args:
        scenes: ``jointseg.data.providers.SceneInfo`` objects (or their dicts), in the
            order the manifest should list them.
        tile: the tile; its 10/20/60 m grids are the targets.
        out_dir: the stack directory (``resources/{region}/{year}/stack/{tile}``).
        bands: band ids to fetch (see :data:`jointseg.bands.NATIVE_RES_M`).
        retries, backoff_s, timeout_s, give_up_s: per-asset retry count, first backoff
            (s, doubled each retry), HTTP request timeout (s) and time budget (s) of
            one failing asset (see :class:`jointseg.data.http.RetryPolicy`).
        allow_http: follow plain ``http://`` hrefs to non-loopback hosts.

    Returns:
        Path of ``manifest.json`` (written last, atomically).

    Raises:
        DownloadError: a scene lacks an asset, an asset is missing (404) or keeps failing.
        ValueError: an unknown band id.
    """
    out_dir = Path(out_dir)
    grids = {b: band_geobox(tile, b) for b in bands}
    items = [_as_scene(s) for s in scenes]
    policy = RetryPolicy(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s,
                         give_up_s=give_up_s)
    prev = load_previous(out_dir)
    done: list[dict] = []
    dropped: list[str] = []
    bar = tqdm(total=len(items) * len(bands), desc=f"download {tile.tile_id}", unit="band",
               disable=None)
    try:
        for scene in items:
            entry = _download_scene(scene, tile, out_dir, bands, grids, prev.get(scene.id),
                                    bar, policy=policy, allow_http=allow_http)
            if entry is None:
                dropped.append(scene.id)
                continue
            done.append(entry)
            write_json(out_dir / PARTIAL_MANIFEST_NAME, {"tile_id": tile.tile_id, "scenes": done})
    finally:
        bar.close()
    manifest = out_dir / MANIFEST_NAME
    write_json(manifest, {"tile_id": tile.tile_id, "scenes": done})
    (out_dir / PARTIAL_MANIFEST_NAME).unlink(missing_ok=True)
    log.info("%s: stack of %d scene(s) complete (%d dropped) -> %s",
             tile.tile_id, len(done), len(dropped), manifest)
    return manifest


def run_download(scenes_json: str | Path, out_dir: str | Path,
                 settings: DownloadSettings) -> Path:
    """The download stage: the tile window of every scene of a scene list (``jointseg
    search``'s output) into ``out_dir``, with ``settings`` (config ``download``).

    Returns:
        Path of ``manifest.json``.

    Raises:
        ItemError: ``scenes_json`` is not a scene list.
        DownloadError, ValueError: see :func:`download_tile`; a malformed tile id.
    """
    tile_id, _region, _year, scenes = read_scene_list(scenes_json)
    tile = Tile.from_id(tile_id, settings.tile_size_m)
    return download_tile(scenes, tile, Path(out_dir), list(settings.bands),
                         retries=settings.retries, backoff_s=settings.backoff_s,
                         timeout_s=settings.timeout_s, give_up_s=settings.give_up_s,
                         allow_http=settings.allow_http)


def _download_scene(
    scene: _Scene,
    tile: Tile,
    out_dir: Path,
    bands: Sequence[str],
    grids: Mapping[str, GeoBox],
    previous: dict | None,
    bar: tqdm,
    **fetch_kw: Any,
) -> dict | None:
    """Fetch (or reuse) one scene's band files; None if the scene has no data on the tile."""
    prev_files = (previous or {}).get("files", {})
    prev_sha = (previous or {}).get("sha256", {})
    prev_source = (previous or {}).get("source", {})
    files = {b: band_file(scene.id, b) for b in bands}
    sha: dict[str, str] = {}
    source = {b: source_key(scene.bands.get(b, ""), grids[b]) for b in bands}
    fresh: dict[str, np.ndarray] = {}
    for band in bands:
        if previous is not None and prev_source.get(band) != source[band]:
            kept = None  # recorded from another href or grid: the file is stale
        else:
            recorded = prev_sha.get(band) if prev_files.get(band) == files[band] else None
            kept = _reusable(out_dir / files[band], grids[band], recorded)
        if kept is not None:
            sha[band] = kept
        else:
            fresh[band] = _fetch(scene, band, tile, grids[band], **fetch_kw)
        bar.update(1)
    if fresh and not sha and not any(a.any() for a in fresh.values()):
        log.warning("%s: scene %s has no data over the tile; dropped", tile.tile_id, scene.id)
        return None
    for band, data in fresh.items():
        sha[band] = _write_band(out_dir / files[band], data, grids[band], scene, band)
    log.info("%s: scene %s: %d band(s) fetched, %d reused -> %s", tile.tile_id, scene.id,
             len(fresh), len(bands) - len(fresh), out_dir / scene.id)
    return scene_entry(scene, files, sha, source)


def _fetch(scene: _Scene, band: str, tile: Tile, grid: GeoBox, **fetch_kw: Any) -> np.ndarray:
    """One band of one scene on ``grid`` (see :func:`jointseg.data.assets.fetch_band`)."""
    href = scene.bands.get(band)
    what = f"{tile.tile_id}: asset {band} of {scene.id}"
    if not href:
        raise DownloadError(f"{what} is not in the scene's assets {sorted(scene.bands)}")
    return fetch_band(href, grid, categorical=band in CATEGORICAL_BANDS, what=what, **fetch_kw)


def _write_band(target: Path, data: np.ndarray, grid: GeoBox, scene: _Scene, band: str) -> str:
    """Write one band file as a COG on ``grid``, check it reads back, return its sha256
    (the manifest records it: no sidecar, :func:`jointseg.data.stack.verify_stack` checks)."""
    write_cog(target, data, grid, nodata=0, band_names=[band], overview_resampling="nearest",
              checksum=False,
              tags={"JOINTSEG_PRODUCT": "stack", "SCENE": scene.id, "BAND": band,
                    **({"JOINTSEG_SIMULATED": "true"} if scene.simulated else {})})
    check_on_grid(target, grid)
    with rasterio.open(target) as ds:
        if not np.array_equal(ds.read(1), data):
            raise DownloadError(f"{target}: read-back differs from the data written")
    return sha256_file(target)
