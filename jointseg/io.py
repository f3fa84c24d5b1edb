"""Atomic, validated, checksummed file output: every final path is complete or absent.

All writers in ``jointseg`` go through :func:`atomic_path`: data are written to a
temporary sibling (same directory, so ``os.replace`` is an atomic rename on one
filesystem), optionally validated, then renamed onto the final name. A temporary
file left by a killed process (and GDAL's own temporaries of it) is removed by the
next write of the same final path (:func:`remove_stale_parts`).

Integrity: an intermediate one stage writes and another reads (stack, cloud mask,
composite, per-tile products, chips, models) gets a ``<file>.sha256`` sidecar
(``sha256sum`` format) from :func:`atomic_path` (``checksum=True``; :func:`write_cog`
does it by default); its reader calls :func:`verify_file`, which fails in one line
naming the file when the bytes changed after they were written. A file without a
sidecar (written before sidecars existed, or by another program) is read as before.

Full disks: a write that fails for lack of space (or any other write error) raises
one-line :class:`OutputError` naming the final path; :func:`output_guard` does the
same for a step of several files and removes those it wrote when one fails.
"""

from __future__ import annotations

import contextlib
import errno
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


class IntegrityError(ValueError):
    """A file's bytes differ from the sha256 recorded when it was written."""


#: Suffix of the checksum sidecar of a file: ``<name>.sha256``.
CHECKSUM_SUFFIX = ".sha256"
#: errno values of a failed write: the disk (or quota) is full, the file too large,
#: the filesystem read-only, or the device failing.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
#: Messages of GDAL / libtiff / rasterio write failures (they rarely carry an errno).
_WRITE_TEXT = re.compile(r"no space left|(write|seek) (failed|error)|disk space|disk full|"
                         r"file too large|quota|unknown gdal error|TIFFAppendToStrip",
                         re.IGNORECASE)


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
    (``.{name}.XXXXXXXX.part``, ``X`` being ``mkstemp``'s random characters), GDAL's
    temporaries of such a file (``.{name}.XXXXXXXX.part.ovr.tmp``, ``….part.aux.xml``:
    the part's name and one or more extensions) and last
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
    gdal_tmp = r"(\.[A-Za-z0-9_]+)*" if suffix and not dirs else ""
    pattern = re.compile(
        rf"\.{re.escape(name)}\.{_MKSTEMP_RANDOM}{re.escape(suffix)}{gdal_tmp}")
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


def checksum_path(path: str | os.PathLike) -> Path:
    """The sha256 sidecar of ``path``: ``<path>.sha256`` (``sha256sum`` format)."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def recorded_sha256(path: str | os.PathLike, *,
                    remedy: str = "rerun the stage that writes it") -> str | None:
    """The hex sha256 that ``<path>.sha256`` records, None when there is no sidecar.

    Raises:
        IntegrityError: if the sidecar is unreadable or not a sha256 line.
    """
    sidecar = checksum_path(path)
    try:
        words = sidecar.read_text().split()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{sidecar}: unreadable checksum file ({exc}); {remedy}") from None
    if not words or not re.fullmatch(r"[0-9a-f]{64}", words[0]):
        raise IntegrityError(f"{sidecar}: not a sha256 checksum file; {remedy}")
    return words[0]


def verify_file(path: str | os.PathLike, expected: str | None = None, *,
                recorded_in: str | os.PathLike | None = None,
                remedy: str = "rerun the stage that writes it") -> str | None:
    """Check that ``path`` still has the sha256 recorded when it was written.

    Args:
        path: the file to read next.
        expected: the recorded hex digest (e.g. from a stage manifest); None reads the
            ``<path>.sha256`` sidecar, and a file without one is not checked.
        recorded_in: where ``expected`` comes from, for the message.
        remedy: what the message tells the user to do.

    Returns:
        The verified digest, or None when nothing was recorded (the file was not read).

    Raises:
        IntegrityError: one line naming the file: missing, unreadable, or changed.
    """
    path = Path(path)
    if expected is None:
        expected = recorded_sha256(path, remedy=remedy)
        if expected is None:
            return None
        recorded_in = recorded_in or checksum_path(path)
    try:
        actual = sha256_file(path)
    except FileNotFoundError:
        raise IntegrityError(f"{path}: missing (listed in {recorded_in}); {remedy}") from None
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot be read ({exc.strerror}); {remedy}") from None
    if actual != expected:
        raise IntegrityError(f"{path}: sha256 mismatch with {recorded_in} (file changed after "
                             f"it was written): {remedy}")
    return actual


def write_failure_reason(exc: BaseException) -> str | None:
    """The reason, if ``exc`` (or an exception it was raised from) is a failed write:
    an errno of :data:`_WRITE_ERRNOS` or a GDAL/libtiff write-error message; else None."""
    texts = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None)
        if isinstance(exc, OSError) and code in _WRITE_ERRNOS:
            return os.strerror(code)
        lines = str(exc).replace("See previous exception for details.", "").strip().splitlines()
        if lines and _WRITE_TEXT.search(lines[0]):
            texts.append(lines[0])
        exc = exc.__cause__ or exc.__context__
    # the deepest message is GDAL's own ("TIFFAppendToStrip:Write error ..."), not
    # rasterio's "Write failed. See previous exception for details."; GDAL reports a full
    # disk without the errno, so say what it likely is
    if not texts:
        return None
    return texts[-1] if re.search(r"no space|disk full|quota", texts[-1], re.IGNORECASE) \
        else f"{texts[-1]}: disk full or I/O error"


def _disk_full(directory: Path) -> str | None:
    """``"N MiB free on DIR"`` when ``directory``'s filesystem is (nearly) full: under
    16 MiB and under a tenth of its size free (GDAL often reports a full disk as a
    seek or unknown error, without the errno), else None."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if free < min(16 << 20, st.f_blocks * st.f_frsize // 10):
        return f"{free / 2**20:.1f} MiB free on {directory}"
    return None


def _failure_reason(exc: BaseException, directory: Path) -> str | None:
    """Why a write into ``directory`` failed, if ``exc`` is a write failure: the errno /
    GDAL message (:func:`write_failure_reason`) and, on a full disk, the space left."""
    if isinstance(exc, OutputError) or not isinstance(
            exc, (OSError, rasterio.errors.RasterioError, CPLE_BaseError, RuntimeError,
                  SystemError)):  # rasterio's "Unknown GDAL Error" is a SystemError
        return None
    reason, full = write_failure_reason(exc), _disk_full(directory)
    if full is None:
        return reason
    nospace = os.strerror(errno.ENOSPC)
    return f"{nospace}: {full}" + (f"; {reason}" if reason and reason != nospace else "")


def _remove_with_temporaries(path: Path) -> None:
    """Remove ``path`` and GDAL's temporaries of it (``<path>.ovr.tmp``, ``.aux.xml``...)."""
    for p in [path, *path.parent.glob(glob_escape(path.name) + ".*")]:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            p.unlink()


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (``[``, ``*``, ``?``)."""
    return re.sub(r"([\[\]*?])", r"[\1]", name)


@contextlib.contextmanager
def atomic_path(
    final: str | os.PathLike, validate: Callable[[Path], None] | None = None, *,
    checksum: bool = False,
) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success validate and rename it.

    On any exception (or a failed validation) the temporary file (and GDAL's
    temporaries of it) is removed and ``final`` is left untouched (an older complete
    version stays in place). Temporary files of ``final`` left by a killed process
    are removed first (:func:`remove_stale_parts`). A failed write (disk full, file
    too large, I/O error) becomes one-line :class:`OutputError` naming ``final``.

    Args:
        validate: called with the temporary path before the rename.
        checksum: record the file's sha256 in ``<final>.sha256`` (for
            :func:`verify_file`). Without it, a sidecar of an older ``final`` is
            removed, so it never describes other bytes.
    """
    final = Path(final)
    sidecar = checksum_path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final.parent, final.name)
    remove_stale_parts(final.parent, sidecar.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    side_tmp: Path | None = None
    try:
        yield tmp_path
        if validate is not None:
            validate(tmp_path)
        # mkstemp creates 0600; give the final file the usual umask-based mode
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
        os.chmod(tmp_path, mode)
        if checksum:
            fd, side = tempfile.mkstemp(prefix=f".{sidecar.name}.", suffix=".part",
                                        dir=final.parent)
            side_tmp = Path(side)
            with os.fdopen(fd, "w") as f:
                f.write(f"{sha256_file(tmp_path)}  {final.name}\n")
            os.chmod(side_tmp, mode)
        # no window in which the new bytes sit beside the old checksum: drop it first
        with contextlib.suppress(FileNotFoundError):
            sidecar.unlink()
        os.replace(tmp_path, final)
        if side_tmp is not None:
            os.replace(side_tmp, sidecar)
    except BaseException as exc:
        reason = _failure_reason(exc, final.parent)  # before the part's space is freed
        _remove_with_temporaries(tmp_path)
        if side_tmp is not None:
            _remove_with_temporaries(side_tmp)
        if reason:
            raise OutputError(f"{final}: write failed, no file written ({reason})") from exc
        raise


def _state(path: Path) -> tuple[int, int] | None:
    """(inode, mtime_ns) of ``path``, None when absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


@contextlib.contextmanager
def output_guard(*finals: str | os.PathLike | None) -> Iterator[None]:
    """All or nothing for a step that writes several outputs (``None`` entries ignored).

    If the block raises, every listed output the block wrote (created or replaced) is
    removed with its checksum sidecar, so no partial set is left; outputs it had not
    reached keep their older version. A failed write (disk full, I/O error) that is
    not already an :class:`OutputError` becomes one: one line naming the first output.
    """
    paths = [Path(p) for p in finals if p is not None]
    before = {p: _state(p) for p in paths}
    try:
        yield
    except BaseException as exc:
        for p in paths:
            now = _state(p)
            if now is not None and now != before[p]:
                for q in (p, checksum_path(p)):
                    with contextlib.suppress(FileNotFoundError):
                        q.unlink()
                log.info("removed %s: a later output of the same step failed", p)
        reason = _failure_reason(exc, paths[0].parent) if paths else None
        if reason:
            others = f" (and {len(paths) - 1} other output(s) of this step)" \
                if len(paths) > 1 else ""
            raise OutputError(f"{paths[0]}{others}: write failed, no file written "
                              f"({reason})") from exc
        raise


@contextlib.contextmanager
def scratch_dir(final: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``final`` (``.{name}.XXXXXXXX``), removed on exit.

    One a killed process left (older than this process) is removed first
    (:func:`remove_stale_parts` with ``dirs=True``), so none outlives a rerun.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final.parent, final.name, suffix="", dirs=True)
    path = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
    checksum: bool = True,
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
        checksum: write the ``<final>.sha256`` sidecar (:func:`verify_file`); off where
            a manifest records the digest instead (the download's stack).

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
    with _named_failure(final), atomic_path(final, validate=validate_raster,
                                           checksum=checksum) as tmp:
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
