"""Download: cut each scene's assets to one tile and align them to the tile grid.

For every scene and band, only the tile's window of the asset is read (COG range
reads through GDAL: ``http(s)://`` via ``/vsicurl/``, ``s3://`` via ``/vsis3/``,
local paths as they are) and written as a COG on the tile grid: the 10 m grid for
B02 B03 B04 B08, the 20 m grid for B05 B06 B07 B8A B11 B12 and SCL (60 m for
B01 B09 B10 if asked for). Values are the **raw DN as stored by the provider**
(no BOA offset applied, that is ``composite``'s job), uint16/uint8 as in the
source, nodata 0.

* Aligned source (same CRS, same resolution, origin offset a whole number of
  pixels): exact windowed read, bit-exact DN; pixels outside the source are 0.
* Otherwise (another UTM zone, a sub-pixel shift): ``rasterio.warp.reproject``,
  nearest for SCL, bilinear for reflectance, 0 outside the source footprint.

Layout (``docs/architecture.md``)::

    <out_dir>/<scene_id>/<band>.tif
    <out_dir>/manifest.json        written last; its presence means "complete"

While a stack is being built, ``<out_dir>/manifest.partial.json`` records the
scenes finished so far; a rerun reuses every band file whose sha256 and source
key (href without its query + target grid, :func:`source_key`) match it (or,
without a record, whose grid validates), so an interrupted download resumes, a
rerun writes the same bytes, and a changed scene list refetches what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window
from tqdm import tqdm

from jointseg.data.stac import install_secret_filter
from jointseg.grid import GeoBox, Tile
from jointseg.io import sha256_file, write_cog, write_json

if TYPE_CHECKING:
    from jointseg.data.stac import SceneInfo

log = logging.getLogger(__name__)

#: Native grid (metres) of each Sentinel-2 L2A asset on the tile.
BAND_RES_M: dict[str, int] = {
    "B02": 10, "B03": 10, "B04": 10, "B08": 10,
    "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20, "SCL": 20,
    "B01": 60, "B09": 60, "B10": 60,
}
#: Bands resampled with nearest neighbour when reprojection is needed (classes).
CATEGORICAL_BANDS = frozenset({"SCL"})
#: Bands the pipeline downloads by default (reflectance for the model + SCL for the mask).
DEFAULT_BANDS = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL")

MANIFEST_NAME = "manifest.json"
PARTIAL_MANIFEST_NAME = "manifest.partial.json"

_PERMANENT_RE = re.compile(
    r"HTTP (response )?(code|error)[: ]*\s*(400|401|403|404|410)\b"
    r"|\b404\b|No such file or directory|does not exist in the file system",
    re.IGNORECASE,
)


class DownloadError(RuntimeError):
    """An asset could not be read for a tile (missing, permanently failing, or retries spent)."""


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
    """Accept a ``jointseg.data.stac.SceneInfo`` or its ``to_dict()`` form."""
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


def gdal_path(href: str) -> str:
    """GDAL path for an asset href: ``/vsicurl/`` for http(s), ``/vsis3/`` for s3, else as is."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[len('s3://'):]}"
    if href.startswith("file://"):
        return href[len("file://"):]
    return href


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def check_href(href: str, *, allow_http: bool = False, what: str = "asset") -> None:
    """Refuse hrefs the pipeline should not follow.

    Allowed: ``https://``, ``s3://``, ``file://`` and local paths; ``http://`` only
    for loopback hosts unless ``allow_http`` (plain HTTP exposes signed URLs and data
    to anyone on the path). Any other scheme (``ftp://``, ``gs://``, ``/vsi...``
    chains) is refused.

    Raises:
        DownloadError: naming ``what`` and the redacted href.
    """
    parts = urllib.parse.urlsplit(href)
    scheme = parts.scheme.lower()
    if scheme in ("https", "s3", "file") or (scheme == "" and not href.startswith("/vsi")):
        return
    if scheme == "http" and (allow_http or (parts.hostname or "") in LOOPBACK_HOSTS):
        return
    if scheme == "http":
        raise DownloadError(f"{what}: refusing plain http:// to a non-loopback host: "
                            f"{redact(href)} (use https, or allow_http to permit it)")
    raise DownloadError(f"{what}: unsupported href scheme {scheme or href[:5]!r}: "
                        f"{redact(href)} (expected https, s3, file or a local path)")


def redact(url: str) -> str:
    """``url`` without its query string (signed URLs carry tokens there)."""
    base, sep, _ = url.partition("?")
    return f"{base}?<redacted>" if sep else base


def band_geobox(tile: Tile, band: str) -> GeoBox:
    """The tile grid a band is stored on (10, 20 or 60 m).

    Raises:
        ValueError: for a band id not in :data:`BAND_RES_M`.
    """
    try:
        return tile.geobox(BAND_RES_M[band])
    except KeyError:
        raise ValueError(f"unknown Sentinel-2 band {band!r}; known: {sorted(BAND_RES_M)}") from None


def _same_crs(a: CRS, b: str) -> bool:
    target = CRS.from_user_input(b)
    if a == target:
        return True
    epsg = a.to_epsg()
    return epsg is not None and epsg == target.to_epsg()


def aligned_window(src_transform: Any, src_crs: CRS, dst: GeoBox) -> Window | None:
    """The source window that covers ``dst`` pixel for pixel, or None if grids differ.

    Aligned means: same CRS, same north-up pixel size, and origin offset a whole
    number of pixels. The window may extend beyond the source raster.
    """
    t = src_transform
    res = dst.res_m
    if t.b != 0 or t.d != 0 or not math.isclose(t.a, res) or not math.isclose(t.e, -res):
        return None
    if not _same_crs(src_crs, dst.crs):
        return None
    col = (dst.transform.c - t.c) / res
    row = (t.f - dst.transform.f) / res
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return Window(round(col), round(row), dst.width, dst.height)


def read_to_grid(ds: rasterio.io.DatasetReader, dst: GeoBox, *, categorical: bool) -> np.ndarray:
    """Band 1 of ``ds`` on the grid ``dst``, source dtype, 0 where the source has no data.

    Exact windowed read (bit-exact) when the grids align, else reprojection
    (nearest if ``categorical``, bilinear otherwise).
    """
    out = np.zeros(dst.shape, dtype=ds.dtypes[0])
    src_nodata = ds.nodata if ds.nodata is not None else 0
    win = aligned_window(ds.transform, ds.crs, dst)
    if win is not None:
        r0, c0 = int(win.row_off), int(win.col_off)
        rr0, rr1 = max(r0, 0), min(r0 + dst.height, ds.height)
        cc0, cc1 = max(c0, 0), min(c0 + dst.width, ds.width)
        if rr1 > rr0 and cc1 > cc0:
            data = ds.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
            if src_nodata != 0:
                data = np.where(data == src_nodata, 0, data).astype(out.dtype)
            out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = data
        return out
    reproject(
        source=rasterio.band(ds, 1),
        destination=out,
        src_nodata=src_nodata,
        dst_transform=dst.transform,
        dst_crs=dst.crs,
        dst_nodata=0,
        resampling=Resampling.nearest if categorical else Resampling.bilinear,
    )
    return out


def check_on_grid(path: Path, grid: GeoBox) -> None:
    """Raise DownloadError unless ``path`` is a 1-band raster exactly on ``grid``."""
    try:
        with rasterio.open(path) as ds:
            ok = (
                ds.count == 1
                and (ds.height, ds.width) == grid.shape
                and _same_crs(ds.crs, grid.crs)
                and ds.transform.almost_equals(grid.transform, precision=1e-6)
            )
            detail = f"{ds.count} band(s) {ds.height}x{ds.width} {ds.crs} {tuple(ds.transform)[:6]}"
    except RasterioError as exc:
        raise DownloadError(f"{path}: does not open: {exc}") from exc
    if not ok:
        raise DownloadError(f"{path}: not on the tile grid {grid}: {detail}")


def is_remote(href: str) -> bool:
    """True for hrefs read over the network (http(s), s3)."""
    return href.startswith(("http://", "https://", "s3://"))


def _root_message(exc: BaseException) -> str:
    """First line of the most specific message in ``exc``'s cause chain (GDAL's own text)."""
    best = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        text = str(cause).strip()
        if text:
            best = text
        cause = cause.__cause__ or cause.__context__
    return best.splitlines()[0] if best else type(exc).__name__


def _is_permanent(exc: Exception) -> bool:
    return bool(_PERMANENT_RE.search(str(exc)))


def fetch_band(
    href: str,
    grid: GeoBox,
    *,
    categorical: bool,
    what: str,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    allow_http: bool = False,
) -> np.ndarray:
    """Read one asset onto ``grid`` with GDAL retries plus our own exponential backoff.

    Transient failures (HTTP 5xx/429, connection errors, truncated reads) are
    retried ``retries`` times, waiting ``backoff_s * 2**k`` seconds; a 404 (or
    other permanent failure such as a missing local file) fails at once.

    Args:
        href: asset URL or path.
        grid: target grid.
        categorical: nearest resampling (class bands) instead of bilinear.
        what: ``"<tile>: asset <band> of <scene>"``, used in messages.
        allow_http: follow plain ``http://`` to non-loopback hosts (see :func:`check_href`).

    Raises:
        DownloadError: a refused href, a permanent failure, or when the retries are spent.
    """
    check_href(href, allow_http=allow_http, what=what)
    install_secret_filter()  # GDAL's own retry warnings carry the full (signed) URL
    path = gdal_path(href)
    shown = redact(href)
    env = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.jp2",
        "GDAL_HTTP_MAX_RETRY": str(max(retries, 0)),
        "GDAL_HTTP_RETRY_DELAY": str(backoff_s),
        "GDAL_HTTP_TIMEOUT": str(int(math.ceil(timeout_s))),
    }
    for attempt in range(retries + 1):
        if attempt:
            # Do not reuse GDAL's cached (possibly failed or truncated) view of the file.
            env["CPL_VSIL_CURL_NON_CACHED"] = path
        try:
            with rasterio.Env(**env), rasterio.open(path) as ds:
                if ds.crs is None:
                    raise DownloadError(f"{what}: {shown} has no CRS "
                                        "(expected a georeferenced GeoTIFF/COG)")
                return read_to_grid(ds, grid, categorical=categorical)
        except (RasterioError, OSError) as exc:
            if _is_permanent(exc):
                log.error("%s not found: %s", what, shown)
                raise DownloadError(f"{what} not found: {shown}") from exc
            msg = _root_message(exc)
            if not is_remote(href):  # a local file does not heal by waiting
                log.error("%s: %s is corrupt or truncated: %s", what, shown, msg)
                raise DownloadError(f"{what}: {shown} is corrupt or truncated: {msg}") from exc
            if attempt == retries:
                log.error("%s: giving up after %d attempts: %s: %s", what, retries + 1,
                          shown, msg)
                raise DownloadError(
                    f"{what} failed after {retries + 1} attempts: {shown}: {msg}"
                ) from exc
            wait = backoff_s * 2**attempt
            log.warning("%s: attempt %d failed (%s); retrying %s in %.1f s",
                        what, attempt + 1, msg, shown, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def source_key(href: str, grid: GeoBox) -> str:
    """Short sha256 of what a band file is made from: the href (query/signature
    stripped, it changes per request) and the target grid. A resumed download reuses
    a file only when this key and the file's recorded sha256 both match."""
    text = f"{redact(href).removesuffix('?<redacted>')}|{grid.crs}|{tuple(grid.transform)}|" \
        f"{grid.width}x{grid.height}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_previous(out_dir: Path) -> dict[str, dict]:
    """Scene entries of a previous (partial or complete) manifest, by scene id."""
    prev: dict[str, dict] = {}
    for name in (PARTIAL_MANIFEST_NAME, MANIFEST_NAME):
        p = out_dir / name
        if p.is_file():
            try:
                for entry in json.loads(p.read_text()).get("scenes", []):
                    prev[str(entry["id"])] = entry
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("%s: unreadable previous manifest ignored", p)
    return prev


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
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    allow_http: bool = False,
) -> Path:
    """Cut every scene's ``bands`` to ``tile`` and write the stack + manifest under ``out_dir``.

    Args:
        scenes: ``jointseg.data.stac.SceneInfo`` objects (or their dicts), in the order
            the manifest should list them.
        tile: the tile; its 10/20/60 m grids are the targets.
        out_dir: the stack directory (``resources/{region}/{year}/stack/{tile}``).
        bands: band ids to fetch (see :data:`BAND_RES_M`).
        retries, backoff_s, timeout_s: per-asset retry count, first backoff (s,
            doubled each retry) and HTTP timeout (s).
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
    prev = _load_previous(out_dir)
    done: list[dict] = []
    dropped: list[str] = []
    bar = tqdm(total=len(items) * len(bands), desc=f"download {tile.tile_id}", unit="band",
               disable=None)
    try:
        for scene in items:
            entry = _download_scene(scene, tile, out_dir, bands, grids, prev.get(scene.id),
                                    bar, retries=retries, backoff_s=backoff_s,
                                    timeout_s=timeout_s, allow_http=allow_http)
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
    scene_dir = out_dir / scene.id
    prev_files = (previous or {}).get("files", {})
    prev_sha = (previous or {}).get("sha256", {})
    prev_source = (previous or {}).get("source", {})
    files: dict[str, str] = {}
    sha: dict[str, str] = {}
    source = {b: source_key(scene.bands.get(b, ""), grids[b]) for b in bands}
    fresh: dict[str, np.ndarray] = {}
    reused = 0
    for band in bands:
        rel = f"{scene.id}/{band}.tif"
        target = out_dir / rel
        if previous is not None and prev_source.get(band) != source[band]:
            kept = None  # recorded from another href or grid: the file is stale
        else:
            recorded = prev_sha.get(band) if prev_files.get(band) == rel else None
            kept = _reusable(target, grids[band], recorded)
        if kept is not None:
            files[band], sha[band] = rel, kept
            reused += 1
            bar.update(1)
            continue
        href = scene.bands.get(band)
        what = f"{tile.tile_id}: asset {band} of {scene.id}"
        if not href:
            raise DownloadError(f"{what} is not in the scene's assets {sorted(scene.bands)}")
        fresh[band] = fetch_band(href, grids[band], categorical=band in CATEGORICAL_BANDS,
                                 what=what, **fetch_kw)
        bar.update(1)
    if fresh and reused == 0 and not any(a.any() for a in fresh.values()):
        log.warning("%s: scene %s has no data over the tile; dropped", tile.tile_id, scene.id)
        return None
    for band, data in fresh.items():
        target = out_dir / files.setdefault(band, f"{scene.id}/{band}.tif")
        write_cog(target, data, grids[band], nodata=0, band_names=[band],
                  overview_resampling="nearest",
                  tags={"JOINTSEG_PRODUCT": "stack", "SCENE": scene.id, "BAND": band,
                        **({"JOINTSEG_SIMULATED": "true"} if scene.simulated else {})})
        check_on_grid(target, grids[band])
        with rasterio.open(target) as ds:
            if not np.array_equal(ds.read(1), data):
                raise DownloadError(f"{target}: read-back differs from the data written")
        sha[band] = sha256_file(target)
    log.info("%s: scene %s: %d band(s) fetched, %d reused -> %s", tile.tile_id, scene.id,
             len(fresh), reused, scene_dir)
    return {
        "id": scene.id,
        "datetime": scene.datetime,
        "boa_offset_dn": scene.boa_offset_dn,
        "cloud_cover": scene.cloud_cover,
        "simulated": scene.simulated,
        "files": {b: files[b] for b in bands},
        "sha256": {b: sha[b] for b in bands},
        "source": source,
    }


def read_manifest(path: Path) -> dict:
    """Load a download manifest and check its keys.

    Raises:
        ValueError: if the file is not a manifest (missing ``tile_id``/``scenes``/files).
    """
    path = Path(path)
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read manifest: {exc}") from exc
    if not isinstance(m, dict) or "tile_id" not in m or not isinstance(m.get("scenes"), list):
        raise ValueError(f"{path}: not a download manifest (needs 'tile_id' and 'scenes')")
    for s in m["scenes"]:
        if "id" not in s or not isinstance(s.get("files"), dict):
            raise ValueError(f"{path}: scene entry without 'id'/'files': {str(s)[:80]}")
    return m


def verify_stack(manifest_path: Path, manifest: Mapping[str, Any] | None = None) -> None:
    """Check that every band file of a stack still has the sha256 the manifest recorded.

    Consumers (cloudmask, composite) call this so that a stack file changed or cut
    short after the download is caught, naming the file, instead of being read.

    Raises:
        ValueError: naming the first missing or changed file.
    """
    manifest_path = Path(manifest_path)
    m = manifest if manifest is not None else read_manifest(manifest_path)
    root = manifest_path.parent
    for scene in m["scenes"]:
        recorded = scene.get("sha256") or {}
        for band, rel in scene["files"].items():
            path = root / rel
            if not path.is_file():
                raise ValueError(f"{path}: stack file listed in {manifest_path} is missing")
            if band in recorded and sha256_file(path) != recorded[band]:
                raise ValueError(f"{path}: sha256 differs from {manifest_path} (changed or "
                                 "truncated since the download; rerun download)")

