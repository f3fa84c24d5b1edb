"""Seamless tiled prediction: windows with a halo, blended overlaps, streamed 1 m blocks.

The 10 m raster is cut into square *windows* of ``window`` pixels on a regular grid
with stride ``window - overlap``; the last window in each direction runs past the
raster edge. Each window is read with a halo of ``halo_10m`` pixels on every side
(boundless reads, reflect padding outside the raster, see
:mod:`jointseg.inference.scene`), predicted, and the halo is cut off the output.
Where windows overlap, outputs are blended with a raised-cosine ramp (weights > 0 at
every pixel of a window, summing to exactly 1 across the overlap), so whole-raster
and tiled predictions agree whenever the halo covers the receptive field.

Windows are processed row of windows by row of windows; only the overlap strip
below the current row (``10 * overlap`` rows at 1 m, full width) and the overlap
band right of the current window are kept, and every finished 1 m block is yielded
at once, so memory does not grow with the raster's height and grows with its width
only by the thin overlap strip.

The work is a pipeline of three threads joined by bounded queues
(:func:`~jointseg.inference.pipeline.prefetch`, ``pipeline_depth`` batches each):

* **reader** (``jointseg-infer-read``): reads each batch of windows into one of
  ``depth + 2`` reused input buffers, with its QA flags and valid (and snow) masks;
* **compute** (``jointseg-infer-compute``): runs ONNX Runtime on the batch, asking for
  the SR output only when it is wanted, then cuts the halo off (views, no copy),
  applies the sigmoid and blends; the SR channels are blended in place in the
  session's output;
* the **caller** of :func:`iter_blocks` takes the finished blocks: it encodes and
  writes them (:mod:`jointseg.inference.products`) while the next batches are read
  and predicted.

Threads: ONNX Runtime's intra-op pool (``infer.threads``, the rule's ``threads``)
runs on the compute thread, which is one of its workers. The reader and the writer
are Python threads whose work (GDAL reads of the small 10 m windows, numpy encoding,
uncompressed staging writes, each a few ms per window) is a small fraction of a
model call, so they take the cores in short bursts beside ONNX Runtime rather than
needing cores of their own; GDAL's own threads (``GDAL_NUM_THREADS``) work only in
the COG copy after the last window, when ONNX Runtime is idle. ``pipeline_depth=0``
runs the same steps one after the other on the calling thread (same bytes).
Memory: at most ``depth`` batches of inputs and ``depth x batch_size`` finished
windows wait in the queues.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from jointseg.inference.pipeline import prefetch
from jointseg.inference.scene import Scene, from_arrays, snow_mask_10m, valid_mask
from jointseg.inference.session import Predictor, model_info
from jointseg.model.metadata import SCALE_FACTOR, ModelInfo

log = logging.getLogger(__name__)

#: batches read / predicted ahead of their consumer (:func:`iter_blocks`)
PIPELINE_DEPTH = 2


@dataclass(frozen=True)
class TilingPlan:
    """Window layout over a 10 m raster (all sizes in 10 m pixels).

    Attributes:
        shape: (rows, cols) of the raster.
        window: core window side (multiple of the model's size multiple).
        overlap: core overlap between neighbouring windows (even, <= window / 2).
        halo: context read around each core (>= the model's receptive-field radius).
        row_starts, col_starts: core origins; the last window may run past the edge.
    """

    shape: tuple[int, int]
    window: int
    overlap: int
    halo: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    @property
    def n_windows(self) -> int:
        return len(self.row_starts) * len(self.col_starts)


def plan_tiling(
    shape: tuple[int, int], info: ModelInfo, window: int, overlap: int, halo: int | None = None
) -> TilingPlan:
    """Round window, overlap and halo to what the model and the 20 m grid need.

    ``window`` and ``halo`` are rounded up to a multiple of ``lcm(multiple_10m, 2)``;
    ``overlap`` up to even and capped at ``window / 2``. ``halo`` defaults to the
    model's ``halo_10m``.
    """
    m = math.lcm(info.multiple_10m, 2)
    window = _round_up(max(window, 1), m)
    halo = _round_up(info.halo_10m if halo is None else halo, m)
    overlap = min(_round_up(max(overlap, 0), 2), (window // 2) // 2 * 2)
    stride = window - overlap
    starts = [_starts(n, window, stride) for n in shape]
    return TilingPlan(tuple(shape), window, overlap, halo, tuple(starts[0]), tuple(starts[1]))


def _round_up(v: int, m: int) -> int:
    return -(-int(v) // m) * m


def _starts(n: int, window: int, stride: int) -> list[int]:
    if n <= window:
        return [0]
    return [i * stride for i in range(math.ceil((n - window) / stride) + 1)]


def blend_ramp(size: int, ramp: int, left: bool, right: bool) -> np.ndarray:
    """float32 1-D blend weights: raised-cosine ramps of ``ramp`` px at the ``left``
    and/or ``right`` end, > 0 everywhere, facing ramps sum to 1."""
    w = np.ones(size, np.float32)
    if ramp:
        up = (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)
        if left:
            w[:ramp] = up
        if right:
            w[-ramp:] = up[::-1]
    return w


def upsample_10(a: np.ndarray) -> np.ndarray:
    """Nearest 10 m -> 1 m of a (..., rows, cols) array: each pixel becomes 10 x 10
    (the layout of ``GeoBox.zoom_in(10)``)."""
    return np.repeat(np.repeat(a, SCALE_FACTOR, axis=-2), SCALE_FACTOR, axis=-1)


@dataclass
class Block:
    """A finished piece of output on the 1 m grid (clipped to the raster).

    Attributes:
        row_off, col_off: offset of the block in 1 m pixels.
        prob: float32 (rows, cols) ISA probability 0..1.
        sr: float32 (4, rows, cols) SR reflectance R G B NIR, or None.
        valid_10m: bool (rows/10, cols/10): predicted here (see
            :func:`~jointseg.inference.scene.valid_mask`).
        qa_10m: uint8 (rows/10, cols/10) QA flags of the input (0 without a QA band).
    """

    row_off: int
    col_off: int
    prob: np.ndarray
    sr: np.ndarray | None
    valid_10m: np.ndarray
    qa_10m: np.ndarray


@dataclass
class _Inputs:
    """One batch of windows read ahead (sizes 10 m pixels).

    Attributes:
        first: row-major index of the batch's first window.
        s2_10m, s2_20m: (n, 5, side, side) / (n, 6, side/2, side/2) float32 model
            inputs (views of a reused buffer: valid until the next batches are read).
        valid, qa: per window, the core's valid mask (snow masked when the scene asks)
            and QA flags, (window, window).
    """

    first: int
    s2_10m: np.ndarray
    s2_20m: np.ndarray
    valid: list[np.ndarray]
    qa: list[np.ndarray]


def _read_batches(scene: Scene, plan: TilingPlan, batch_size: int,
                  buffers: int) -> Iterator[_Inputs]:
    """Read the windows batch by batch into ``buffers`` reused input buffers.

    ``buffers`` must exceed the number of batches alive at once (those queued ahead,
    the one ONNX Runtime runs, the one being read): ``depth + 2`` behind
    :func:`~jointseg.inference.pipeline.prefetch`, 1 when serial.
    """
    w, h = plan.window, plan.halo
    side = w + 2 * h
    core, core20 = slice(h, h + w), slice(h // 2, (h + w) // 2)
    positions = [(r, c) for r in plan.row_starts for c in plan.col_starts]
    n_buf = min(buffers, -(-len(positions) // batch_size))
    ring = [(np.empty((batch_size, 5, side, side), np.float32),
             np.empty((batch_size, 6, side // 2, side // 2), np.float32))
            for _ in range(n_buf)]
    for k, b0 in enumerate(range(0, len(positions), batch_size)):
        b10, b20 = ring[k % n_buf]
        batch = positions[b0 : b0 + batch_size]
        valid, qas = [], []
        for i, (r, c) in enumerate(batch):
            b10[i], b20[i] = scene.read(r - h, c - h, side, side)
            qa = scene.read_qa(r, c, w, w)
            ok = valid_mask(b10[i, 4, core, core], qa)
            if scene.mask_snow:
                ok &= ~snow_mask_10m(b10[i, :, core, core], b20[i, :, core20, core20])
            valid.append(ok)
            qas.append(qa)
        yield _Inputs(b0, b10[: len(batch)], b20[: len(batch)], valid, qas)


def _run_batches(predictor: Predictor, batches: Iterator[_Inputs], with_sr: bool,
                 bar: tqdm) -> Iterator[tuple[_Inputs, np.ndarray, np.ndarray | None]]:
    """ONNX Runtime over each batch: ``(inputs, isa_logit, sr | None)``; SR is asked
    of the session only when ``with_sr``."""
    for b in batches:
        logit, sr = predictor.run(b.s2_10m, b.s2_20m, with_sr)
        log.debug("windows %d-%d predicted", b.first, b.first + len(b.valid) - 1)
        bar.update(len(b.valid))
        yield b, logit, sr


def _blend_blocks(plan: TilingPlan, outputs: Iterator[tuple[_Inputs, np.ndarray,
                                                              np.ndarray | None]],
                  with_sr: bool) -> Iterator[Block]:
    """Cut the halo off each window's outputs (views, no copy), blend them in row-major
    order and yield the finished 1 m blocks."""
    cut = slice(SCALE_FACTOR * plan.halo, SCALE_FACTOR * (plan.halo + plan.window))
    prob_blend = _Blender(plan, 1)
    sr_blend = _Blender(plan, 4) if with_sr else None
    for b, logit, sr in outputs:
        for k, (valid, qa) in enumerate(zip(b.valid, b.qa, strict=True)):
            i, j = divmod(b.first + k, prob_blend.nx)
            done = prob_blend.add(i, j, _sigmoid(logit[k, :, cut, cut]))
            # SR is blended in place in the session's output (the blend is per channel)
            sr_done = sr_blend.add(i, j, sr[k, :, cut, cut]) if sr_blend else None
            if done is None:
                continue
            r0, c0, prob = done
            h10, w10 = prob.shape[1] // SCALE_FACTOR, prob.shape[2] // SCALE_FACTOR
            yield Block(row_off=r0, col_off=c0, prob=prob[0],
                        sr=sr_done[2] if sr_done else None,
                        valid_10m=valid[:h10, :w10], qa_10m=qa[:h10, :w10])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float32)
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


class _Blender:
    """Blends window outputs arriving in row-major order (all sizes 1 m pixels).

    Keeps the overlap strip below the current row of windows (full width) and the
    overlap band right of the current window; everything else is finished at once.
    """

    def __init__(self, plan: TilingPlan, channels: int) -> None:
        self.ny, self.nx = len(plan.row_starts), len(plan.col_starts)
        self.win, self.ov = SCALE_FACTOR * plan.window, SCALE_FACTOR * plan.overlap
        self.stride = SCALE_FACTOR * plan.stride
        self.rows, self.cols = SCALE_FACTOR * plan.shape[0], SCALE_FACTOR * plan.shape[1]
        self.band = None
        if self.ny > 1 and self.ov:
            width = SCALE_FACTOR * plan.col_starts[-1] + self.win
            self.band = np.zeros((channels, self.ov, width), np.float32)
        self.right: np.ndarray | None = None

    def add(self, i: int, j: int, core: np.ndarray) -> tuple[int, int, np.ndarray] | None:
        """Blend window (i, j)'s core output (in place); returns ``(row_off, col_off,
        finished part clipped to the raster)`` or None if nothing of it lies inside."""
        win, ov, last_i, last_j = self.win, self.ov, i == self.ny - 1, j == self.nx - 1
        core *= blend_ramp(win, ov, i > 0, not last_i)[None, :, None]
        core *= blend_ramp(win, ov, j > 0, not last_j)[None, None, :]
        x0 = j * self.stride
        if j > 0 and ov:
            core[:, :, :ov] += self.right
        if i > 0 and self.band is not None:
            c_from = ov if j > 0 else 0
            core[:, :ov, c_from:] += self.band[:, :, x0 + c_from : x0 + win]
        rows_done = win if last_i else win - ov
        cols_done = win if last_j else win - ov
        if not last_j and ov:
            self.right = core[:, :, win - ov :].copy()
        if not last_i and self.band is not None:
            self.band[:, :, x0 : x0 + cols_done] = core[:, win - ov :, :cols_done]
        r0 = i * self.stride
        h, w = min(rows_done, self.rows - r0), min(cols_done, self.cols - x0)
        if h <= 0 or w <= 0:
            return None
        return r0, x0, core[:, :h, :w]


def iter_blocks(
    session: ort.InferenceSession | Predictor,
    scene: Scene,
    *,
    window: int = 96,
    overlap: int = 8,
    halo_10m: int | None = None,
    batch_size: int = 1,
    with_sr: bool = True,
    progress: bool = False,
    pipeline_depth: int = PIPELINE_DEPTH,
) -> Iterator[Block]:
    """Predict a scene window by window and yield finished, blended 1 m blocks.

    Every 1 m pixel of the raster is yielded exactly once, after all windows that
    cover it have been blended in. See the module docstring for the scheme.

    Args:
        session: an ONNX Runtime session (or a :class:`Predictor` around one).
        scene: the input (see :mod:`jointseg.inference.scene`).
        window: core window side in 10 m pixels.
        overlap: blend overlap between windows in 10 m pixels.
        halo_10m: context on each side; default the model's ``jointseg.halo_10m``.
        batch_size: windows per ONNX Runtime call.
        with_sr: also produce the SR output (not asked of the session otherwise).
        progress: show a tqdm bar over windows.
        pipeline_depth: batches the reader and the ONNX Runtime thread may run ahead
            of their consumer (see the module docstring); 0 = everything on the
            calling thread, one window after the other (the same bytes, slower).
    """
    if pipeline_depth < 0:
        raise ValueError(f"pipeline_depth {pipeline_depth} < 0")
    predictor = session if isinstance(session, Predictor) else Predictor(session)
    info = model_info(predictor.session)
    plan = plan_tiling(scene.shape, info, window, overlap, halo_10m)
    if halo_10m is not None and plan.halo < info.halo_10m:
        log.warning("halo %d px < model receptive field %d px: expect seams", plan.halo,
                    info.halo_10m)
    log.debug("tiling %s: %d windows of %d px (+%d halo, %d overlap)",
              scene.shape, plan.n_windows, plan.window, plan.halo, plan.overlap)
    bar = tqdm(total=plan.n_windows, desc="windows", unit="win", disable=not progress,
               leave=False)
    reads = prefetch(_read_batches(scene, plan, batch_size, pipeline_depth + 2),
                     pipeline_depth, "jointseg-infer-read")
    blocks = _blend_blocks(plan, _run_batches(predictor, reads, with_sr, bar), with_sr)
    try:
        yield from prefetch(blocks, pipeline_depth * batch_size, "jointseg-infer-compute")
    finally:
        bar.close()


@dataclass
class Prediction:
    """In-memory prediction on the 1 m grid.

    Attributes:
        prob: float32 (10H, 10W) ISA probability 0..1.
        sr: float32 (4, 10H, 10W) SR reflectance (R G B NIR), or None.
        valid: bool (10H, 10W): predicted here (COUNT > 0 or QA_FILLED at 10 m).
        qa: uint8 (10H, 10W) QA flags of the input, nearest from 10 m.
    """

    prob: np.ndarray
    sr: np.ndarray | None
    valid: np.ndarray
    qa: np.ndarray


def predict_array(
    session: ort.InferenceSession | Predictor,
    s2_10m: np.ndarray,
    s2_20m: np.ndarray,
    *,
    qa: np.ndarray | None = None,
    window: int = 96,
    overlap: int = 8,
    halo_10m: int | None = None,
    batch_size: int = 1,
    with_sr: bool = True,
    pipeline_depth: int = PIPELINE_DEPTH,
) -> Prediction:
    """Tiled prediction of in-memory arrays (see :func:`iter_blocks`).

    Args:
        s2_10m: (5, H, W) B02 B03 B04 B08 COUNT, DN.
        s2_20m: (6, ceil(H/2), ceil(W/2)) B05 B06 B07 B8A B11 B12, DN.
        qa: uint8 (H, W) QA flags of the composite, or None (no flags).

    Returns:
        A :class:`Prediction` on the (10H, 10W) grid.
    """
    scene = from_arrays(s2_10m, s2_20m, qa=qa)
    rows, cols = SCALE_FACTOR * scene.shape[0], SCALE_FACTOR * scene.shape[1]
    out = Prediction(prob=np.zeros((rows, cols), np.float32),
                     sr=np.zeros((4, rows, cols), np.float32) if with_sr else None,
                     valid=np.zeros((rows, cols), bool), qa=np.zeros((rows, cols), np.uint8))
    for b in iter_blocks(session, scene, window=window, overlap=overlap, halo_10m=halo_10m,
                         batch_size=batch_size, with_sr=with_sr,
                         pipeline_depth=pipeline_depth):
        rs = slice(b.row_off, b.row_off + b.prob.shape[0])
        cs = slice(b.col_off, b.col_off + b.prob.shape[1])
        out.prob[rs, cs] = b.prob
        if out.sr is not None:
            out.sr[:, rs, cs] = b.sr
        out.valid[rs, cs] = upsample_10(b.valid_10m)
        out.qa[rs, cs] = upsample_10(b.qa_10m)
    return out
