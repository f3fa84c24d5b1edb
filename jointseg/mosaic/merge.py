"""Mosaic per-tile 1 m products into one Cloud-Optimized GeoTIFF per region and year.

Tiles live in their own UTM zones. Tiles already in the output CRS go straight
into a GDAL VRT; the others are first wrapped in warped VRTs (nearest for class
maps, bilinear for probabilities) on the output grid, snapped to whole output
pixels (``-tap``). The VRT is then translated by GDAL's COG driver (streaming,
block by block: memory does not grow with the region) into a temporary file
that is validated and renamed. Nothing is held in memory beyond GDAL's cache.

Every tile is checked against its ``.sha256`` sidecar first (:func:`jointseg.io.verify_file`):
a tile changed or cut short after predict wrote it stops the mosaic in one line naming
it. The VRTs live in a scratch folder beside the output (:func:`jointseg.io.scratch_dir`),
removed when the mosaic ends and, after a kill, by the next mosaic of the same output.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import rasterio
from osgeo import gdal

from jointseg.io import IntegrityError, OutputError, atomic_path, scratch_dir, verify_file

log = logging.getLogger(__name__)

gdal.UseExceptions()

Kind = Literal["binary", "prob"]

#: resampling when a tile is warped to another CRS / overviews are built
_WARP = {"binary": "near", "prob": "bilinear"}
_OVERVIEW = {"binary": "NEAREST", "prob": "AVERAGE"}

#: China Albers equal-area (Krasovsky 1940 datum approximated by WGS 84 here):
#: the usual national-statistics projection, standard parallels 25 N and 47 N.
CHINA_ALBERS = (
    "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 "
    "+ellps=WGS84 +units=m +no_defs"
)


class MosaicError(RuntimeError):
    """Tiles cannot be mosaicked (missing, inconsistent, or unreadable)."""


def tile_epsgs(paths: Sequence[Path]) -> list[int]:
    """EPSG code of each tile file (raises MosaicError for a tile without one)."""
    out = []
    for p in paths:
        try:
            with rasterio.open(p) as ds:
                epsg = ds.crs.to_epsg() if ds.crs else None
        except rasterio.errors.RasterioIOError as exc:
            raise MosaicError(f"{p}: cannot open tile: {_first_line(exc)}") from None
        if epsg is None:
            raise MosaicError(f"{p}: tile has no EPSG CRS")
        out.append(epsg)
    return out


def dominant_crs(paths: Sequence[Path]) -> str:
    """The CRS (``EPSG:<code>``) shared by most tiles: the default mosaic CRS."""
    if not paths:
        raise MosaicError("no tiles to mosaic")
    epsg, _ = Counter(tile_epsgs(paths)).most_common(1)[0]
    return f"EPSG:{epsg}"


def resolve_crs(output_crs: str | None, paths: Sequence[Path]) -> str:
    """``None``/``"utm"`` -> dominant UTM zone, ``"china_albers"`` -> CHINA_ALBERS."""
    if output_crs in (None, "", "utm"):
        return dominant_crs(paths)
    if output_crs == "china_albers":
        return CHINA_ALBERS
    return output_crs


def _check_consistent(paths: Sequence[Path]) -> tuple[str, int, float | None, dict]:
    first = None
    for p in paths:
        with _open_tile(p) as ds:
            sig = (ds.dtypes[0], ds.count, ds.nodata)
            if first is None:
                first = sig
                tags = ds.tags()
                descriptions = ds.descriptions
                res = ds.res
            elif sig != first:
                raise MosaicError(
                    f"{p}: dtype/bands/nodata {sig} differ from the first tile's {first}"
                )
            elif abs(ds.res[0] - res[0]) > 1e-9:
                raise MosaicError(f"{p}: resolution {ds.res} differs from {res}")
    assert first is not None
    tags["BAND_DESCRIPTIONS"] = ",".join(d or "" for d in descriptions)
    return first[0], first[1], first[2], tags


@contextlib.contextmanager
def _open_tile(path: Path) -> Iterator[rasterio.io.DatasetReader]:
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise MosaicError(f"{path}: cannot open tile: {_first_line(exc)}") from None
    with ds:
        yield ds


def mosaic_tiles(
    tile_paths: Sequence[str | Path],
    out_path: str | Path,
    *,
    kind: Kind,
    output_crs: str | None = None,
    res_m: float = 1.0,
    threads: int = 1,
    extra_tags: dict[str, str] | None = None,
) -> Path:
    """Mosaic per-tile rasters into one COG in ``output_crs``.

    Every band is carried through with its description (the binary ISA tiles'
    band 2 ``QA`` included: nearest, like the classes of band 1).

    Args:
        tile_paths: per-tile GeoTIFFs (same dtype, band count, nodata, resolution).
        out_path: destination COG.
        kind: ``binary`` (class map: nearest) or ``prob`` (probability: bilinear
            when warped, average overviews).
        output_crs: ``None``/``utm`` (dominant UTM zone of the tiles),
            ``china_albers``, or any CRS string GDAL understands.
        res_m: output pixel size in metres.
        threads: GDAL worker threads.
        extra_tags: metadata tags for the mosaic (provenance).

    Returns:
        ``out_path``.
    """
    paths = [Path(p) for p in tile_paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise MosaicError(f"missing tiles: {', '.join(missing)}")
    for p in paths:
        try:
            verify_file(p, remedy="rerun predict for this tile")
        except IntegrityError as exc:
            raise MosaicError(str(exc)) from None
    dst_crs = resolve_crs(output_crs, paths)
    dtype, count, nodata, tags = _check_consistent(paths)
    log.info("mosaic of %d tiles (%s) -> %s in %s", len(paths), kind, out_path, dst_crs)
    descriptions = tags.pop("BAND_DESCRIPTIONS", "").split(",")
    all_tags = {k: v for k, v in tags.items() if k != "AREA_OR_POINT"}
    all_tags.update(extra_tags or {})
    all_tags["JOINTSEG_TILES"] = str(len(paths))
    options = [
        "COMPRESS=DEFLATE",
        f"PREDICTOR={'3' if dtype.startswith('float') else '2'}",
        "BLOCKSIZE=512",
        f"OVERVIEW_RESAMPLING={_OVERVIEW[kind]}",
        "BIGTIFF=IF_SAFER",
        f"NUM_THREADS={max(1, threads)}",
    ]
    with scratch_dir(out_path) as tmpdir, _tile_errors(out_path):
        sources = _sources(paths, dst_crs, res_m, kind, nodata, tmpdir)
        vrt = str(tmpdir / "mosaic.vrt")
        gdal.BuildVRT(vrt, sources, resolution="user", xRes=res_m, yRes=res_m,
                      targetAlignedPixels=True, srcNodata=nodata, VRTNodata=nodata)
        with atomic_path(out_path, validate=_validate_cog, checksum=True) as tmp:
            ds = gdal.Open(vrt)
            try:
                for i in range(count):
                    if i < len(descriptions) and descriptions[i]:
                        ds.GetRasterBand(i + 1).SetDescription(descriptions[i])
                ds.SetMetadata({k: str(v) for k, v in all_tags.items()})
                ds.FlushCache()  # written now: nothing to write when a traceback frees it
                gdal.Translate(str(tmp), ds, format="COG", creationOptions=options)
            finally:
                ds = None  # closed (and the VRT flushed) while its folder exists
    return Path(out_path)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def _tile_errors(out_path: str | Path) -> Iterator[None]:
    """A GDAL error while the tiles are read (a tile without a sidecar that is cut short
    or corrupt) becomes one-line :class:`MosaicError`; GDAL's message names the tile."""
    try:
        yield
    except (RuntimeError, rasterio.errors.RasterioError) as exc:
        if isinstance(exc, (OutputError, MosaicError)):
            raise
        raise MosaicError(f"{out_path}: a tile could not be read: {_first_line(exc)} "
                          "(rerun predict for that tile)") from None


def _sources(
    paths: list[Path], dst_crs: str, res_m: float, kind: Kind, nodata: float | None,
    tmpdir: Path,
) -> list[str]:
    """The VRT's sources: tiles already in ``dst_crs`` as they are, the others wrapped
    in warped VRTs on the ``res_m`` output grid (``_WARP[kind]`` resampling, all bands)."""
    dst_epsg = rasterio.crs.CRS.from_user_input(dst_crs).to_epsg()
    sources = []
    for p, epsg in zip(paths, tile_epsgs(paths), strict=True):
        if epsg == dst_epsg:
            sources.append(str(p))
            continue
        warped = str(tmpdir / f"{p.stem}.warped.vrt")
        log.info("tile %s: EPSG:%d -> %s (%s)", p.name, epsg, dst_crs, _WARP[kind])
        gdal.Warp(warped, str(p), format="VRT", dstSRS=dst_crs, xRes=res_m, yRes=res_m,
                  targetAlignedPixels=True, resampleAlg=_WARP[kind], srcNodata=nodata,
                  dstNodata=nodata)
        sources.append(warped)
    return sources


def _validate_cog(path: Path) -> None:
    from rio_cogeo.cogeo import cog_validate

    ok, errors, _ = cog_validate(str(path), quiet=True)
    if not ok:
        raise OutputError(f"{path}: not a valid COG: {'; '.join(errors)}")
