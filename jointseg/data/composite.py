"""Composite: one cloud-free image per tile from the clear observations of its stack.

Inputs are the download manifest (raw provider DN per scene and band) and the
cloud mask (uint8, 10 m, one band per scene, 1 = clear). Outputs follow
``docs/architecture.md``:

* ``{tile}_10m.tif``: uint16 ``B02 B03 B04 B08 COUNT QA`` on the 10 m grid;
* ``{tile}_20m.tif``: uint16 ``B05 B06 B07 B8A B11 B12`` on the 20 m grid;

in harmonised DN (reflectance x 10000), nodata 0, scale 1e-4 on reflectance bands.

Rules:

* **BOA offset, exactly once.** Harmonised DN = stored DN + ``boa_offset_dn`` of
  the scene (0 before processing baseline 04.00, -1000 after), clipped to >= 1
  where the stored DN is > 0; a stored 0 stays 0 (nodata).
* **Clear observation.** At 10 m: mask = 1 and the band's DN > 0. At 20 m a pixel
  is clear only where **all four** of its 10 m mask pixels are clear
  (conservative at cloud edges) and the band's DN > 0.
* **COUNT** (10 m) = number of clear observations of the pixel (mask = 1),
  or 0 where fewer than ``min_clear``.
* ``method="median"``: per-pixel, per-band median of the clear observations,
  rounded half to even to uint16 (for an even count: mean of the two middle values).
* ``method="best_pixel"``: per pixel, the clear observation with the lowest score
  ``blue + DATE_WEIGHT * |t - t_centre| / half_span`` (``blue`` = harmonised B02
  reflectance, haze proxy; ``t_centre`` = midpoint of the earliest and latest
  scene dates of the stack; ``half_span`` = half that span in days, at least 1),
  taken for **all** bands of that grid from the same scene. The 20 m grid scores
  its pixels with the mean B02 of their 2 x 2 10 m pixels and picks its own scene.
* **Fill** (``fill=True``, both methods). A 10 m pixel with COUNT 0 (a 20 m pixel
  with no clear observation) that Sentinel-2 saw at least once (a scene with all
  bands of that grid > 0 and SCL not "no data") takes **all** bands of that grid
  from its least-cloudy observation: the lowest ``FILL_RANK_STEP * rank + blue``,
  ``rank`` = :func:`jointseg.data.cloudmask.scl_fill_rank` of the scene's SCL
  (0 where the mask is clear, i.e. when COUNT < ``min_clear``; surface classes
  masked only by the dilation 1; thin cirrus and cloud medium probability 2;
  shadow 3; snow 4; cloud high 5; saturated 6), ``blue`` as above. The SCL class decides
  first because it is the only per-date cloud evidence in the stack; the darkest
  blue, the classic cloud/haze proxy, decides among equal classes (and alone in a
  scene without SCL); a tie goes to the first scene. The s2cloudless probability
  is not used: the mask file stores the clear/masked decision only.
* **QA** (10 m, bit flags of :mod:`jointseg.products`; 0 = none):
  :data:`~jointseg.products.QA_FILLED` on filled pixels (COUNT stays 0 there),
  :data:`~jointseg.products.QA_NO_OBSERVATION` where no scene has data (all bands
  0 = nodata). The file's nodata 0 applies to every band: read QA unmasked.

Work is done in blocks of rows (``block_rows`` at 10 m, half at 20 m), so memory
is one block x scenes plus the output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rasterio.windows import Window
from tqdm import tqdm

from jointseg.bands import BANDS_10M, BANDS_20M, COMPOSITE_10M, SCL
from jointseg.data.cloudmask import (
    FILL_RANK_CLEAR,
    FILL_RANK_NO_DATA,
    FILL_RANK_SURFACE,
    scl_fill_rank,
    upsample2,
)
from jointseg.data.settings import CompositeSettings
from jointseg.data.stack import read_manifest, verify_stack
from jointseg.grid import GeoBox
from jointseg.io import output_guard, verify_file, write_cog
from jointseg.products import QA_FILLED, QA_NO_OBSERVATION

log = logging.getLogger(__name__)

SCALE = 1e-4
#: Reflectance penalty of an observation at the edge of the date window (best_pixel).
DATE_WEIGHT = 0.05
#: Fill score step per rank: larger than any blue reflectance (<= 6.5535), so rank decides.
FILL_RANK_STEP = 10.0

Method = Literal["median", "best_pixel"]


class CompositeError(RuntimeError):
    """A composite could not be built from a stack and its cloud mask."""


def harmonise(dn: np.ndarray, boa_offset_dn: int) -> np.ndarray:
    """Stored DN -> harmonised DN (int32): ``dn + offset`` clipped to >= 1 where dn > 0, else 0."""
    dn = dn.astype(np.int32)
    return np.where(dn > 0, np.maximum(dn + int(boa_offset_dn), 1), 0)


def mask_20m(clear_10m: np.ndarray) -> np.ndarray:
    """(..., 2r, 2c) bool 10 m mask -> (..., r, c): clear where all four 10 m pixels are clear."""
    m = np.asarray(clear_10m, bool)
    return m[..., 0::2, 0::2] & m[..., 1::2, 0::2] & m[..., 0::2, 1::2] & m[..., 1::2, 1::2]


def median_of_clear(values: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """Per-pixel median over axis 0 of ``values`` where ``clear`` (and value > 0).

    Args:
        values: (scenes, rows, cols) harmonised DN.
        clear: (scenes, rows, cols) bool.

    Returns:
        (rows, cols) uint16, rounded half to even; 0 where no observation is clear.
    """
    ok = clear & (values > 0)
    v = np.where(ok, values.astype(np.float64), np.nan)
    any_ok = ok.any(axis=0)
    out = np.zeros(values.shape[1:], np.float64)
    if any_ok.any():
        out[any_ok] = np.nanmedian(v[:, any_ok], axis=0)
    return np.clip(np.rint(out), 0, 65535).astype(np.uint16)


def best_index(score: np.ndarray, clear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index (axis 0) of the lowest ``score`` among ``clear`` observations, and whether any."""
    s = np.where(clear, score, np.inf)
    return np.argmin(s, axis=0), clear.any(axis=0)


def least_cloudy(
    values: np.ndarray, rank: np.ndarray, blue_refl: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All bands of each pixel's least-cloudy observation (the fill, see module docstring).

    Args:
        values: (bands, scenes, ...) harmonised DN; an observation is a candidate
            where all its bands are > 0 and its rank is not ``FILL_RANK_NO_DATA``.
        rank: (scenes, ...) uint8 fill rank (:func:`jointseg.data.cloudmask.scl_fill_rank`,
            ``FILL_RANK_CLEAR`` where the mask is clear).
        blue_refl: (scenes, ...) B02 reflectance (harmonised DN x 1e-4).

    Returns:
        ``(picked, seen)``: (bands, ...) uint16 DN of the picked scene (0 where
        there is no candidate) and (...) bool, True where some scene is a candidate.
    """
    ok = (rank != FILL_RANK_NO_DATA) & (values > 0).all(axis=0)
    idx, seen = best_index(rank * FILL_RANK_STEP + blue_refl, ok)
    picked = np.take_along_axis(values, idx[None, None], axis=1)[:, 0]
    return np.where(seen, picked, 0).astype(np.uint16), seen


def _days(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() / 86400.0


def date_penalty(datetimes: Sequence[str]) -> np.ndarray:
    """Per-scene ``DATE_WEIGHT * |t - t_centre| / half_span`` (see module docstring)."""
    t = np.array([_days(d) for d in datetimes])
    centre = (t.min() + t.max()) / 2
    half = max((t.max() - t.min()) / 2, 1.0)
    return DATE_WEIGHT * np.abs(t - centre) / half


class _Stack:
    """Reads row blocks of every scene's band files (harmonised) and of the mask."""

    def __init__(self, manifest_path: Path, mask_path: Path) -> None:
        self.manifest_path = Path(manifest_path)
        self.mask_path = Path(mask_path)
        m = read_manifest(self.manifest_path)
        try:
            verify_stack(self.manifest_path, m)
            verify_file(self.mask_path, remedy="rerun cloudmask")
        except ValueError as exc:  # IntegrityError too
            raise CompositeError(str(exc)) from None
        self.tile_id: str = m["tile_id"]
        self.scenes: list[dict] = m["scenes"]
        self.root = self.manifest_path.parent
        ids = [s["id"] for s in self.scenes]
        if not ids:
            raise CompositeError(f"{self.manifest_path}: no scenes in the stack of {self.tile_id}")
        with rasterio.open(self.mask_path) as ds:
            descr = list(ds.descriptions)
            if ds.count != len(ids) or descr != ids:
                raise CompositeError(
                    f"{self.mask_path}: bands {descr} do not match the manifest scenes {ids}")
            self.grid_10m = GeoBox(_crs_str(ds.crs), ds.transform, ds.width, ds.height)
        self.grid_20m = self.grid_10m.with_res(self.grid_10m.res_m * 2)
        for s in self.scenes:
            missing = [b for b in (*BANDS_10M, *BANDS_20M) if b not in s["files"]]
            if missing:
                raise CompositeError(
                    f"{self.manifest_path}: scene {s['id']} lacks bands {missing}")

    def mask(self, r0: int, nrows: int) -> np.ndarray:
        with rasterio.open(self.mask_path) as ds:
            return ds.read(window=Window(0, r0, ds.width, nrows)) == 1

    def band(self, band: str, r0: int, nrows: int) -> np.ndarray:
        """(scenes, nrows, cols) int32 harmonised DN of ``band`` from row ``r0`` of its grid."""
        layers = []
        for s in self.scenes:
            with rasterio.open(self.root / s["files"][band]) as ds:
                dn = ds.read(1, window=Window(0, r0, ds.width, nrows))
            layers.append(harmonise(dn, int(s.get("boa_offset_dn", 0))))
        return np.stack(layers)

    def fill_rank_20m(self, r20: int, nrows: int) -> np.ndarray:
        """(scenes, nrows, cols) uint8 SCL fill rank on the 20 m grid from row ``r20``.

        A scene without SCL ranks :data:`FILL_RANK_SURFACE` everywhere.
        """
        layers = []
        for s in self.scenes:
            if SCL not in s["files"]:
                layers.append(np.full((nrows, self.grid_20m.width), FILL_RANK_SURFACE, np.uint8))
                continue
            with rasterio.open(self.root / s["files"][SCL]) as ds:
                layers.append(scl_fill_rank(ds.read(1, window=Window(0, r20, ds.width, nrows))))
        return np.stack(layers)


def _crs_str(crs: rasterio.crs.CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def _composite_grid(
    read: Callable[[str], np.ndarray],
    bands: Sequence[str],
    clear: np.ndarray,
    blue_refl: np.ndarray,
    penalty: np.ndarray,
    method: Method,
    need: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite one row block of one grid from its clear observations.

    Args:
        read: band id -> (scenes, rows, cols) int32 harmonised DN of the block.
        bands: band ids of the grid, output order.
        clear: (scenes, rows, cols) bool clear observations (min_clear applied).
        blue_refl: (scenes, rows, cols) B02 reflectance of the grid (best_pixel score).
        penalty: (scenes, 1, 1) date penalty (best_pixel score).
        method: ``"median"`` or ``"best_pixel"``.
        need: (rows, cols) bool pixels that may need the fill.

    Returns:
        ``(out, candidates)``: (bands, rows, cols) uint16 composite (0 where no clear
        observation) and (bands, scenes, need.sum()) int32 DN of every scene at ``need``.
    """
    out = np.zeros((len(bands), *clear.shape[1:]), np.uint16)
    if method == "median":
        cand = []
        for i, b in enumerate(bands):
            v = read(b)
            out[i] = median_of_clear(v, clear)
            cand.append(v[:, need])
        return out, np.stack(cand)
    v = np.stack([read(b) for b in bands])
    ok = clear & (v > 0).all(axis=0)
    idx, has = best_index(blue_refl + penalty, ok)
    picked = np.take_along_axis(v, idx[None, None], axis=1)[:, 0]
    out[:] = np.where(has, picked, 0)
    return out, v[:, :, need]


def _composite_block(
    st: _Stack, r0: int, n10: int, method: Method, min_clear: int, penalty: np.ndarray,
    fill: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """10 m rows ``r0:r0+n10`` -> ((6, n10, cols) uint16 B02..B08 COUNT QA,
    (6, n10/2, cols/2) uint16 20 m bands)."""
    r20, n20 = r0 // 2, n10 // 2
    seen10 = st.mask(r0, n10)
    count = seen10.sum(axis=0)
    enough10 = count >= min_clear
    clear10 = seen10 & enough10
    clear20 = mask_20m(clear10)
    need10, need20 = ~enough10, ~clear20.any(axis=0)
    blue10 = st.band("B02", r0, n10)
    blue_refl10 = blue10 * SCALE
    blue_refl20 = blue10.reshape(len(st.scenes), n20, 2, -1, 2).mean(axis=(2, 4)) * SCALE
    rank20 = st.fill_rank_20m(r20, n20)
    rank10 = np.where(seen10, FILL_RANK_CLEAR, upsample2(rank20))
    rank20 = np.where(mask_20m(seen10), FILL_RANK_CLEAR, rank20)

    out10 = np.zeros((len(COMPOSITE_10M), n10, count.shape[1]), np.uint16)
    out10[:4], cand10 = _composite_grid(
        lambda b: blue10 if b == "B02" else st.band(b, r0, n10),
        BANDS_10M, clear10, blue_refl10, penalty, method, need10)
    out20, cand20 = _composite_grid(
        lambda b: st.band(b, r20, n20), BANDS_20M, clear20, blue_refl20, penalty, method,
        need20)
    picked10, seen_any10 = least_cloudy(cand10, rank10[:, need10], blue_refl10[:, need10])
    if fill:
        out10[:4, need10] = picked10
        out20[:, need20] = least_cloudy(cand20, rank20[:, need20], blue_refl20[:, need20])[0]
    out10[4] = np.where(enough10, count, 0)
    qa = np.zeros(count.shape, np.uint16)
    qa[need10] = np.where(seen_any10, QA_FILLED if fill else 0, QA_NO_OBSERVATION)
    out10[5] = qa
    return out10, out20


def run_composite(manifest_path: str | Path, mask_path: str | Path, out_10m: str | Path,
                  out_20m: str | Path, settings: CompositeSettings) -> tuple[Path, Path]:
    """The composite stage: :func:`composite_tile` with ``settings`` (config ``composite``)."""
    return composite_tile(Path(manifest_path), Path(mask_path), Path(out_10m), Path(out_20m),
                          method=settings.method, min_clear=settings.min_clear,
                          block_rows=settings.block_rows, fill=settings.fill)


def composite_tile(
    manifest_path: Path,
    mask_path: Path,
    out_10m: Path,
    out_20m: Path,
    *,
    method: Method = "median",
    min_clear: int = 1,
    block_rows: int = 256,
    fill: bool = True,
) -> tuple[Path, Path]:
    """Composite a tile stack into its 10 m and 20 m COGs.

    Args:
        manifest_path: download manifest of the tile.
        mask_path: cloud mask of the tile (bands in manifest order).
        out_10m, out_20m: output paths.
        method: ``"median"`` or ``"best_pixel"`` (see module docstring).
        min_clear: pixels with fewer clear observations get COUNT 0 (filled, or nodata).
        block_rows: rows per block at 10 m (even).
        fill: fill pixels without a clear observation from their least-cloudy one
            (QA_FILLED); False leaves them nodata.

    Returns:
        ``(out_10m, out_20m)``.

    Raises:
        CompositeError: mask/manifest mismatch or missing bands.
        ValueError: unknown ``method`` or bad ``min_clear``/``block_rows``.
    """
    if method not in ("median", "best_pixel"):
        raise ValueError(f"method={method!r}: expected 'median' or 'best_pixel'")
    if min_clear < 1:
        raise ValueError(f"min_clear={min_clear}: must be >= 1")
    if block_rows < 2 or block_rows % 2:
        raise ValueError(f"block_rows={block_rows}: must be an even number >= 2")
    st = _Stack(manifest_path, mask_path)
    g10, g20 = st.grid_10m, st.grid_20m
    out10 = np.zeros((len(COMPOSITE_10M), *g10.shape), np.uint16)
    out20 = np.zeros((len(BANDS_20M), *g20.shape), np.uint16)
    penalty = date_penalty([s["datetime"] for s in st.scenes])[:, None, None]
    starts = range(0, g10.height, block_rows)
    for r0 in tqdm(starts, desc=f"composite {st.tile_id}", unit="block", disable=None):
        n10 = min(block_rows, g10.height - r0)
        r20 = r0 // 2
        b10, b20 = _composite_block(st, r0, n10, method, min_clear, penalty, fill)
        out10[:, r0:r0 + n10], out20[:, r20:r20 + n10 // 2] = b10, b20
        log.debug("%s: rows %d-%d composited", st.tile_id, r0, r0 + n10)
    _log_summary(st, method, out10[4], out10[5])
    tags = {
        "JOINTSEG_PRODUCT": "composite",
        "SCENES": ",".join(s["id"] for s in st.scenes),
        "METHOD": method,
        "MIN_CLEAR": str(min_clear),
        "FILL": "least_cloudy" if fill else "none",
        "TILE": st.tile_id,
    }
    if any(s.get("simulated") for s in st.scenes):
        tags["JOINTSEG_SIMULATED"] = "true"
    with output_guard(out_10m, out_20m):  # both or neither
        write_cog(out_10m, out10, g10, nodata=0, band_names=list(COMPOSITE_10M),
                  scales=[SCALE] * len(BANDS_10M) + [1.0, 1.0], tags=tags)
        write_cog(out_20m, out20, g20, nodata=0, band_names=list(BANDS_20M),
                  scales=[SCALE] * len(BANDS_20M), tags=tags)
    return Path(out_10m), Path(out_20m)


def _log_summary(st: _Stack, method: str, count: np.ndarray, qa: np.ndarray) -> None:
    """Log the share of clear, filled and never-observed pixels; warn when none is clear."""
    n_clear = int((count > 0).sum())
    n_filled = int((qa & QA_FILLED > 0).sum())
    n_never = int((qa & QA_NO_OBSERVATION > 0).sum())
    if n_clear == 0:
        what = ("filled from the least-cloudy observations (QA_FILLED)" if n_filled
                else "all nodata")
        log.warning("%s: no clear observation in any of %d scene(s); composite is %s",
                    st.tile_id, len(st.scenes), what)
        return
    log.info("%s: %s composite of %d scene(s), %.1f%% of pixels clear (mean COUNT %.2f), "
             "%.2f%% filled, %.2f%% never observed", st.tile_id, method, len(st.scenes),
             100.0 * n_clear / count.size, float(count[count > 0].mean()),
             100.0 * n_filled / count.size, 100.0 * n_never / count.size)
