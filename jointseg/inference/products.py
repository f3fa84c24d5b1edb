"""The per-tile 1 m products of one scene, written as COGs (:func:`predict_tile`).

All products lie on the 1 m child grid of the scene's 10 m grid
(``GeoBox.zoom_in(10)``: same origin, 1 m pixels, each 10 m pixel = 10 x 10 output
pixels); the encodings are :mod:`jointseg.products`'s:

* binary ISA (``<tile>_isa.tif``): band 1 ``isa_binary`` uint8 1 = impervious
  (p >= threshold), 0 = not, 255 = nodata (no valid input, see
  :func:`~jointseg.inference.scene.valid_mask`); band 2 ``QA`` uint8 bit flags of the
  composite (:data:`~jointseg.products.QA_FILLED`,
  :data:`~jointseg.products.QA_NO_OBSERVATION`; 0 for inputs without a QA band),
  nearest from 10 m. Overviews MODE.
* ISA probability (``<tile>_prob.tif``): one band, uint8 ``round(p * 254)``,
  255 = nodata; band scale ``1/254`` so GDAL-aware readers see p directly; overviews
  AVERAGE.
* SR quicklook (optional, ``<tile>_sr.tif``): uint8 RGB (R G B of the SR output),
  per-band 2-98 % percent stretch of the tile's valid SR pixels to 1..255, 0 = nodata;
  overviews AVERAGE.

Blocks from :func:`~jointseg.inference.tiling.iter_blocks` are written as they come
to uncompressed tiled staging GTiffs beside the outputs, which are then copied to
COGs (GDAL COG driver) inside :func:`jointseg.io.atomic_path`, so memory does not
grow with the tile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import rasterio
import rasterio.shutil
from rasterio.windows import Window

import jointseg
from jointseg.bands import QA
from jointseg.grid import GeoBox
from jointseg.inference.scene import Scene, open_scene, valid_mask
from jointseg.inference.session import Predictor, SessionInfo, model_info
from jointseg.inference.tiling import PIPELINE_DEPTH, iter_blocks, upsample_10
from jointseg.io import atomic_path, output_guard, remove_stale_parts, validate_raster
from jointseg.model.metadata import SCALE_FACTOR, ModelInfo
from jointseg.products import (
    NODATA_U8,
    PROB_SCALE,
    QA_FILLED,
    QA_NO_OBSERVATION,
    encode_binary,
    encode_prob,
)

log = logging.getLogger(__name__)

SR_NODATA = 0
SR_STRETCH_PERCENT = (2.0, 98.0)
_SR_DN_MAX = 10000  # SR reflectance 0..1 is staged as uint16 0..10000 (0 = nodata)

BINARY_ENCODING = (f"band 1: 1 = impervious (p >= THRESHOLD), 0 = not, {NODATA_U8} = nodata; "
                   f"band 2 {QA}: bit flags {QA_FILLED} = filled from the best remaining "
                   f"observation (no clear one), {QA_NO_OBSERVATION} = never observed")


@dataclass(frozen=True)
class ProductPaths:
    """Files written by :func:`predict_tile` (None where not asked for)."""

    binary: Path
    prob: Path | None
    sr: Path | None


def predict_tile(
    session: ort.InferenceSession | Predictor,
    scene: Scene | str | os.PathLike,
    output: str | os.PathLike,
    *,
    prob_output: str | os.PathLike | None = None,
    sr_output: str | os.PathLike | None = None,
    threshold: float | None = None,
    window: int = 96,
    overlap: int = 8,
    halo_10m: int | None = None,
    batch_size: int = 1,
    info: SessionInfo | None = None,
    compress: str = "DEFLATE",
    progress: bool = False,
    pipeline_depth: int = PIPELINE_DEPTH,
) -> ProductPaths:
    """Predict one scene and write the 1 m products as COGs, atomically.

    Args:
        session: ONNX Runtime session (or a :class:`~jointseg.inference.session.Predictor`).
        scene: a :class:`~jointseg.inference.scene.Scene` or a path for
            :func:`~jointseg.inference.scene.open_scene`.
        output: binary ISA map (band 1 uint8 0/1, 255 nodata; band 2 QA flags).
        prob_output: ISA probability (uint8 0..254, scale 1/254, 255 nodata).
        sr_output: SR RGB quicklook (uint8, 2-98 % stretch, 0 nodata).
        threshold: probability threshold for the binary map; None = the model's own
            (:attr:`~jointseg.model.metadata.ModelInfo.threshold`).
        window, overlap, halo_10m, batch_size: see
            :func:`~jointseg.inference.tiling.iter_blocks`.
        info: the :class:`~jointseg.inference.session.SessionInfo` from ``make_session``
            (provenance tags).
        compress: COG compression (DEFLATE or ZSTD).
        progress: show a progress bar over windows.
        pipeline_depth: read and predict this many batches ahead of the writes
            (:func:`~jointseg.inference.tiling.iter_blocks`); 0 = serial, same bytes.

    Returns:
        The written paths.
    """
    predictor = (session if isinstance(session, Predictor)
                 else predictor_for(session, info, batch_size))
    meta = info.model if info else model_info(predictor.session)
    threshold = meta.threshold if threshold is None else threshold
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} outside 0..1")
    output = Path(output)
    # the guard is outermost: a full disk ends in one OutputError naming the output, and
    # nothing this call wrote is left behind
    with output_guard(output, prob_output, sr_output), contextlib.ExitStack() as stack:
        if not isinstance(scene, Scene):
            scene = stack.enter_context(open_scene(scene))
        tags = _provenance_tags(scene, meta, info, threshold)
        if not _any_valid(scene):
            log.warning("tile %s: no valid 10 m pixel in %s (COUNT 0 and not filled "
                        "everywhere); the products will be all nodata", output.stem,
                        scene.source)
        grid = scene.geobox_10m.zoom_in(SCALE_FACTOR)
        log.info("tile %s: predicting %d x %d px at 1 m -> %s", output.stem, grid.height,
                 grid.width, output)
        output.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(output.parent, output.name, suffix="", dirs=True)
        stage_dir = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent)))
        # GDAL_NUM_THREADS: COG compression/overviews use the session's thread budget
        gdal_threads = str(info.threads) if info and info.threads else "ALL_CPUS"
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=64, GDAL_NUM_THREADS=gdal_threads))
        staged = _stream_to_staging(
            predictor, scene, grid, stage_dir, threshold, prob_output is not None,
            sr_output is not None, window, overlap, halo_10m, batch_size, progress,
            pipeline_depth,
        )
        _write_products(staged, grid, tags, compress, output, prob_output, sr_output)
    log.info("tile %s: wrote %s", output.stem, ", ".join(
        str(p) for p in (output, prob_output, sr_output) if p is not None))
    return ProductPaths(output, Path(prob_output) if prob_output else None,
                        Path(sr_output) if sr_output else None)


def predictor_for(session: ort.InferenceSession, info: SessionInfo | None,
                  batch_size: int) -> Predictor:
    """A :class:`Predictor` for ``session``: on a GPU every batch is padded to
    ``batch_size`` (one TensorRT engine, one CUDA graph); on the CPU it is not."""
    on_gpu = bool(info and info.io_binding)
    return Predictor(session, fixed_batch=batch_size if on_gpu else None,
                     cuda_graph=bool(info and info.cuda_graph))


def _provenance_tags(
    scene: Scene, meta: ModelInfo, info: SessionInfo | None, threshold: float
) -> dict[str, str]:
    """Dataset tags (provenance) every product of the tile carries."""
    tags = {
        "JOINTSEG_VERSION": jointseg.__version__,
        "MODEL_NAME": meta.name,
        "MODEL_VERSION": meta.version,
        "MODEL_PRESET": meta.preset,
        "MODEL_SHA256": info.sha256 if info else "unknown",
        "MODEL_PRECISION": info.precision if info else "unknown",
        "SCENES": scene.scenes,
        # the inputs' file names, not their folders: a product's bytes do not depend on
        # where the run lives (two results folders, per tile or batch: identical files)
        "SOURCE": " + ".join(Path(part).name for part in scene.source.split(" + ")),
        "THRESHOLD": f"{threshold:g}",
    }
    tags.update(training_tags(meta))
    if scene.simulated:
        tags["JOINTSEG_SIMULATED"] = "true"
    return tags


def training_tags(meta: ModelInfo) -> dict[str, str]:
    """``MODEL_TRAINING_SIMULATED`` (true | false | unknown) and ``MODEL_TRAINING_DATA``
    (its id, or unknown): the model's ``jointseg.training`` / ``training_data``, which
    models exported before it was recorded lack."""
    data = meta.meta.get("training", {})
    data = data.get("training_data") if isinstance(data, dict) else None
    data = data if isinstance(data, dict) else {}
    simulated = data.get("simulated")
    return {
        "MODEL_TRAINING_SIMULATED": str(simulated).lower() if isinstance(simulated, bool)
        else "unknown",
        "MODEL_TRAINING_DATA": str(data.get("id") or "unknown"),
    }


def _any_valid(scene: Scene, block_rows: int = 256) -> bool:
    """True if any 10 m pixel is valid (:func:`valid_mask`), read in row strips."""
    for win in scene.geobox_10m.row_windows(block_rows):
        count = scene._read10(win)[4]
        if np.any(valid_mask(count, scene.read_qa(win.row_off, 0, win.height, win.width))):
            return True
    return False


def _staging(path: Path, grid: GeoBox, count: int, dtype: str, nodata: float | None):
    """An uncompressed, 512 px tiled GTiff on ``grid`` to write blocks into."""
    return rasterio.open(
        path, "w", **grid.profile(driver="GTiff", count=count, dtype=dtype, nodata=nodata,
                                  tiled=True, blockxsize=512, blockysize=512,
                                  BIGTIFF="IF_SAFER"),
    )


class _SrStaging:
    """uint16 SR RGB staging file (reflectance x 10000, 0 = nodata) + its histogram."""

    def __init__(self, path: Path, grid: GeoBox) -> None:
        self.path, self.grid = path, grid
        self.hist = np.zeros((3, _SR_DN_MAX + 1), np.int64)
        self._dst = None

    def __enter__(self) -> _SrStaging:
        self._dst = _staging(self.path, self.grid, 3, "uint16", 0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._dst.close()

    def write(self, sr: np.ndarray, valid: np.ndarray, win: Window) -> None:
        """Stage float32 (>= 3, rows, cols) SR reflectance R G B; 0 where not ``valid``."""
        rgb = np.rint(np.clip(sr[:3], 0.0, 1.0) * _SR_DN_MAX).astype(np.uint16)
        np.maximum(rgb, 1, out=rgb)
        rgb[:, ~valid] = 0
        for k in range(3):
            self.hist[k] += np.bincount(rgb[k][valid], minlength=_SR_DN_MAX + 1)[:_SR_DN_MAX + 1]
        self._dst.write(rgb, window=win)


@dataclass
class _Staged:
    """Staging files of one tile (None where the product was not asked for)."""

    binary: Path
    prob: Path | None = None
    sr: _SrStaging | None = None


def _stream_to_staging(
    predictor: Predictor, scene: Scene, grid: GeoBox, stage_dir: Path, threshold: float,
    want_prob: bool, want_sr: bool, window: int, overlap: int, halo_10m: int | None,
    batch_size: int, progress: bool, pipeline_depth: int,
) -> _Staged:
    """Predict block by block into staging GTiffs: binary + QA, probability, SR.

    This thread is the pipeline's writer: blocks arrive while the next windows are read
    and predicted (:func:`~jointseg.inference.tiling.iter_blocks`)."""
    staged = _Staged(stage_dir / "binary.tif")
    with contextlib.ExitStack() as stack:
        dst_bin = stack.enter_context(_staging(staged.binary, grid, 2, "uint8", NODATA_U8))
        dst_prob = None
        if want_prob:
            staged.prob = stage_dir / "prob.tif"
            dst_prob = stack.enter_context(_staging(staged.prob, grid, 1, "uint8", NODATA_U8))
        if want_sr:
            staged.sr = _SrStaging(stage_dir / "sr16.tif", grid)
            stack.enter_context(staged.sr)
        blocks = stack.enter_context(contextlib.closing(iter_blocks(
            predictor, scene, window=window, overlap=overlap, halo_10m=halo_10m,
            batch_size=batch_size, with_sr=want_sr, progress=progress,
            pipeline_depth=pipeline_depth)))
        for b in blocks:
            valid = upsample_10(b.valid_10m)
            win = Window(b.col_off, b.row_off, b.prob.shape[1], b.prob.shape[0])
            dst_bin.write(encode_binary(b.prob, valid, threshold), 1, window=win)
            dst_bin.write(upsample_10(b.qa_10m), 2, window=win)
            if dst_prob is not None:
                dst_prob.write(encode_prob(b.prob, valid), 1, window=win)
            if staged.sr is not None:
                staged.sr.write(b.sr, valid, win)
    return staged


def _write_products(
    staged: _Staged, grid: GeoBox, tags: dict[str, str], compress: str, output: Path,
    prob_output: str | os.PathLike | None, sr_output: str | os.PathLike | None,
) -> None:
    """Copy the staging files to the final COGs with descriptions, tags and scales."""
    _to_cog(staged.binary, output, grid, compress, "MODE", ["isa_binary", QA],
            {**tags, "JOINTSEG_PRODUCT": "isa_binary", "ENCODING": BINARY_ENCODING},
            NODATA_U8)
    if prob_output is not None:
        _to_cog(staged.prob, Path(prob_output), grid, compress, "AVERAGE",
                ["isa_probability"],
                {**tags, "JOINTSEG_PRODUCT": "isa_probability",
                 "ENCODING": f"p = DN / 254 (band scale), {NODATA_U8} = nodata"},
                NODATA_U8, scale=PROB_SCALE)
    if sr_output is not None:
        rgb8 = staged.sr.path.with_name("sr8.tif")
        lo_hi = _sr_quicklook(staged.sr, rgb8)
        _to_cog(rgb8, Path(sr_output), grid, compress, "AVERAGE", ["red", "green", "blue"],
                {**tags, "JOINTSEG_PRODUCT": "sr_quicklook",
                 "ENCODING": "uint8 RGB of SR reflectance, 2-98 % stretch to 1..255, "
                             "0 = nodata",
                 "STRETCH_REFLECTANCE": json.dumps(lo_hi)},
                SR_NODATA)


def _percentile_from_hist(hist: np.ndarray, pct: float) -> int:
    """The DN below which ``pct`` % of the histogram's counts lie (0 for an empty one)."""
    cum = np.cumsum(hist)
    if cum[-1] == 0:
        return 0
    return int(np.searchsorted(cum, pct / 100.0 * cum[-1]))


def _sr_quicklook(sr: _SrStaging, out: Path) -> list[list[float]]:
    """Stretch the uint16 SR staging file to uint8 RGB at ``out`` window by window.

    Returns:
        Per band ``[lo, hi]`` reflectance mapped to 1 and 255.
    """
    lo_hi, luts = [], []
    for k in range(3):
        lo = _percentile_from_hist(sr.hist[k], SR_STRETCH_PERCENT[0])
        hi = max(_percentile_from_hist(sr.hist[k], SR_STRETCH_PERCENT[1]), lo + 1)
        v = np.arange(65536, dtype=np.float64)
        lut = np.clip(np.rint(1 + 254 * (v - lo) / (hi - lo)), 1, 255).astype(np.uint8)
        lut[0] = SR_NODATA
        luts.append(lut)
        lo_hi.append([lo / _SR_DN_MAX, hi / _SR_DN_MAX])
    grid = sr.grid
    with rasterio.open(sr.path) as src, _staging(out, grid, 3, "uint8", SR_NODATA) as dst:
        for win in grid.row_windows(512):
            data = src.read(window=win)
            dst.write(np.stack([luts[k][data[k]] for k in range(3)]), window=win)
    return lo_hi


def _to_cog(
    staging: Path, final: Path, grid: GeoBox, compress: str, resampling: str,
    names: list[str], tags: dict[str, str], nodata: float, scale: float | None = None,
) -> None:
    """Describe and tag ``staging`` and copy it to a validated COG at ``final``."""
    with rasterio.open(staging, "r+") as ds:
        for i, name in enumerate(names, start=1):
            ds.set_band_description(i, name)
        ds.update_tags(**tags)
        if scale is not None:
            ds.scales = (scale,) * ds.count
            ds.offsets = (0.0,) * ds.count
    with (atomic_path(final, validate=validate_raster, checksum=True) as tmp,
          rasterio.open(staging) as src):
        rasterio.shutil.copy(
            src, tmp, driver="COG", compress=compress, predictor=2, blocksize=512,
            overview_resampling=resampling, BIGTIFF="IF_SAFER",
        )
    log.info("wrote %s (%s, %d x %d px)", final, tags.get("JOINTSEG_PRODUCT"), grid.height,
             grid.width)
