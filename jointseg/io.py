"""Atomic, validated file output: every final path is complete or absent.

All writers in ``jointseg`` go through :func:`atomic_path`: data are written to a
temporary sibling (same directory, so ``os.replace`` is an atomic rename on one
filesystem), optionally validated, then renamed onto the final name. A temporary
file left by a killed process is removed by the next write of the same final path
(:func:`remove_stale_parts`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
import rasterio.shutil
from rasterio._err import CPLE_BaseError  # GDAL errors raised as such by rasterio
from rasterio.enums import Resampling

from jointseg.grid import GeoBox

log = logging.getLogger(__name__)

#: When this process imported the module (s since the epoch): temporary files last
#: modified before it cannot belong to a write of this process.
_STARTED = time.time()
#: ``tempfile.mkstemp``'s random part: 8 characters of this set.
_MKSTEMP_RANDOM = r"[a-z0-9_]{8}"


class OutputError(RuntimeError):
    """Writing or validating an output failed; the final file was not created."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a local file's bytes, read in 1 MiB chunks.

    Raises:
        OSError: if the file cannot be read (callers name the file in their own error).
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def remove_stale_parts(
    directory: str | os.PathLike, name: str, *, suffix: str = ".part", dirs: bool = False
) -> list[Path]:
    """Remove the temporary files a killed writer of ``directory/name`` left behind.

    Only entries named exactly as :func:`atomic_path` names them for this final name
    (``.{name}.XXXXXXXX.part``, ``X`` being ``mkstemp``'s random characters) and last
    modified before this process imported :mod:`jointseg.io` are removed: the
    temporary files of another final path (even ``{name}.x``) and files modified
    since this process started are left alone. (Two live writers of the same final
    path are not supported: Snakemake never runs two jobs with the same output.)

    Args:
        suffix: the temporary entries' suffix (``""`` for ``mkdtemp`` staging folders).
        dirs: remove staging folders (``tempfile.mkdtemp(prefix=".{name}.")``), with
            their contents, instead of files.

    Returns:
        The removed paths.
    """
    pattern = re.compile(rf"\.{re.escape(name)}\.{_MKSTEMP_RANDOM}{re.escape(suffix)}")
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            kind_ok = entry.is_dir(follow_symlinks=False) if dirs else entry.is_file(
                follow_symlinks=False)
            if kind_ok and entry.stat(follow_symlinks=False).st_mtime < _STARTED:
                if dirs:
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
                log.info("removed %s, left by an interrupted write", entry.path)
    return removed


@contextlib.contextmanager
def atomic_path(
    final: str | os.PathLike, validate: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success validate and rename it.

    On any exception (or a failed validation) the temporary file is removed and
    ``final`` is left untouched (an older complete version stays in place). Temporary
    files of ``final`` left by a killed process are removed first
    (:func:`remove_stale_parts`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final.parent, final.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if validate is not None:
            validate(tmp_path)
        # mkstemp creates 0600; give the final file the usual umask-based mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def _named_failure(final: str | os.PathLike) -> Iterator[None]:
    """Turn a low-level write error (disk full, file too large, I/O) into a one-line
    :class:`OutputError` that names the final path (GDAL names only the temp file)."""
    try:
        yield
    except OutputError:
        raise
    except (OSError, rasterio.errors.RasterioError, CPLE_BaseError) as exc:
        text = str(exc).strip().splitlines()
        reason = text[0] if text else type(exc).__name__
        raise OutputError(f"{final}: write failed, no file written ({reason})") from exc


def write_json(final: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON atomically.

    Raises:
        OutputError: if the file cannot be written (disk full...); ``final`` is untouched.
    """
    with _named_failure(final), atomic_path(final) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def validate_raster(path: Path) -> None:
    """Open ``path`` and read every band's last block; raise OutputError if that fails."""
    try:
        with rasterio.open(path) as ds:
            ds.read(window=((ds.height - 1, ds.height), (ds.width - 1, ds.width)))
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise OutputError(f"{path}: written raster does not read back: {exc}") from exc


def write_cog(
    final: str | os.PathLike,
    data: np.ndarray,
    geobox: GeoBox,
    *,
    nodata: float | None = None,
    band_names: Sequence[str] | None = None,
    tags: dict[str, str] | None = None,
    band_tags: Sequence[dict[str, str]] | None = None,
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    compress: str = "DEFLATE",
    blocksize: int = 512,
    overview_resampling: str = "nearest",
) -> Path:
    """Write a (bands, rows, cols) array as a Cloud-Optimized GeoTIFF, atomically.

    Uses GDAL's COG driver (internal tiling, overviews, predictor). The file is
    read back before it gets its final name.

    Args:
        final: destination path.
        data: array of shape (bands, rows, cols) or (rows, cols); its dtype is kept.
        geobox: the grid; ``data``'s shape must match it.
        nodata: nodata value written to the header.
        band_names: band descriptions, one per band.
        tags: dataset-level metadata tags.
        band_tags: per-band metadata tags.
        scales, offsets: per-band scale/offset (physical = DN * scale + offset).
        compress: GDAL compression (DEFLATE, ZSTD, LZW...).
        blocksize: internal tile size in pixels.
        overview_resampling: resampling for overviews (``nearest`` for classes).

    Returns:
        The final path.

    Raises:
        OutputError: the write (disk full, I/O error) or the read-back failed; no file
            has the final name.
    """
    if data.ndim == 2:
        data = data[None]
    if data.shape[1:] != geobox.shape:
        raise ValueError(f"{final}: array shape {data.shape[1:]} != grid shape {geobox.shape}")
    predictor = 3 if np.issubdtype(data.dtype, np.floating) else 2
    profile = geobox.profile(
        driver="COG",
        count=data.shape[0],
        dtype=data.dtype.name,
        nodata=nodata,
        compress=compress,
        predictor=predictor,
        blocksize=blocksize,
        overview_resampling=overview_resampling,
        BIGTIFF="IF_SAFER",
    )
    # The COG driver builds from a source dataset, so stage in an in-memory GTiff.
    mem_profile = geobox.profile(
        driver="GTiff", count=data.shape[0], dtype=data.dtype.name, nodata=nodata
    )
    with _named_failure(final), atomic_path(final, validate=validate_raster) as tmp:
        with rasterio.MemoryFile() as mem:
            with mem.open(**mem_profile) as staging:
                staging.write(data)
                if band_names:
                    for i, name in enumerate(band_names, start=1):
                        staging.set_band_description(i, name)
                if tags:
                    staging.update_tags(**tags)
                for i, bt in enumerate(band_tags or [], start=1):
                    staging.update_tags(i, **bt)
                if scales is not None:
                    staging.scales = tuple(scales)
                if offsets is not None:
                    staging.offsets = tuple(offsets)
            with mem.open() as src:
                rasterio.shutil.copy(src, tmp, **{k: v for k, v in profile.items() if k not in (
                    "crs", "transform", "width", "height", "count", "dtype", "nodata")})
    return Path(final)


def overview_resampling(name: str) -> Resampling:
    """rasterio Resampling member from its name (``nearest``, ``average``...)."""
    return Resampling[name]
