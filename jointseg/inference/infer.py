"""Production inference with ONNX Runtime: sessions and seamless tiled prediction.

The model is an ONNX file with the JointSeg interface (see ``docs/architecture.md``
and ``jointseg/model/export.py``): inputs ``s2_10m`` float32 (N, 5, H, W) and ``s2_20m``
float32 (N, 6, H/2, W/2) in harmonised DN; outputs ``isa_logit`` float32
(N, 1, 10H, 10W) and ``sr`` float32 (N, 4, 10H, 10W) reflectance 0..1. Its
``jointseg.*`` metadata give the halo (receptive-field radius, 10 m pixels) and the
size multiple. This module never imports torch.

Tiling. The 10 m raster is cut into square *windows* of ``window`` pixels on a
regular grid with stride ``window - overlap``; the last window in each direction
runs past the raster edge. Each window is read with a halo of ``halo_10m`` pixels on
every side (boundless reads, reflect padding outside the raster, see
:mod:`jointseg.inference.scene`), predicted, and the halo is cut off the output. Where
windows overlap, outputs are blended with a raised-cosine ramp (weights > 0 at every
pixel of a window, summing to exactly 1 across the overlap), so whole-raster and
tiled predictions agree whenever the halo covers the receptive field.

Streaming. Windows are processed row of windows by row of windows; only the
overlap strip below the current row (``10 * overlap`` rows at 1 m, full width) and
the overlap band right of the current window are kept, and every finished 1 m
block is written at once to a staging GTiff, so memory does not grow with the
raster's height and grows with its width only by the thin overlap strip.

Products (written by :func:`predict_tile`, COGs on the 1 m child grid of the
10 m grid: same origin, 1 m pixels, each 10 m pixel = 10 x 10 output pixels):

* binary ISA: uint8, 1 = impervious (p >= threshold), 0 = not, 255 = nodata
  (no valid observation: COUNT == 0); overviews MODE.
* ISA probability: uint8 ``round(p * 254)`` in 0..254, 255 = nodata; band scale
  ``1/254`` so GDAL-aware readers see p directly; overviews AVERAGE.
* SR quicklook (optional): uint8 RGB (R G B of the SR output), per-band 2-98 %
  percent stretch of the tile's valid SR pixels to 1..255, 0 = nodata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window
from tqdm import tqdm

import jointseg
from jointseg.grid import GeoBox
from jointseg.inference.scene import Scene, from_arrays, open_scene
from jointseg.io import atomic_path, sha256_file, validate_raster

log = logging.getLogger(__name__)

SCALE = 10  # 1 m pixels per 10 m pixel
PROB_NODATA = 255
PROB_SCALE = 1.0 / 254.0
BINARY_NODATA = 255
SR_NODATA = 0
SR_STRETCH_PERCENT = (2.0, 98.0)

PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_PRIORITY = ("tensorrt", "cuda", "cpu")


class ModelError(ValueError):
    """The ONNX model cannot be used for inference (missing file, metadata or interface)."""


# --- model metadata ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """The ``jointseg.*`` metadata of an exported model, parsed.

    Attributes:
        name, version, arch, preset, precision: strings as exported.
        bands_10m, bands_20m: input band ids, in channel order.
        scale_factor: output pixels per input 10 m pixel (10).
        multiple_10m: H and W of ``s2_10m`` must be multiples of this.
        halo_10m: receptive-field radius in 10 m pixels.
        raw: every metadata key/value as stored.

    Read from the ONNX Runtime session (``custom_metadata_map``) so the model file is
    loaded once; the same keys as ``jointseg.model.metadata.read_model_metadata``.
    """

    name: str
    version: str
    arch: str
    preset: str
    precision: str
    bands_10m: tuple[str, ...]
    bands_20m: tuple[str, ...]
    scale_factor: int
    multiple_10m: int
    halo_10m: int
    raw: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "model") -> ModelInfo:
        """Parse ``jointseg.*`` metadata_props.

        Raises:
            ModelError: if a required key is missing or malformed.
        """

        def get(key: str) -> str:
            full = f"jointseg.{key}"
            if full not in props:
                raise ModelError(f"{where}: metadata key {full!r} missing")
            return props[full]

        try:
            info = cls(
                name=get("model_name"),
                version=props.get("jointseg.model_version", ""),
                arch=props.get("jointseg.arch", ""),
                preset=props.get("jointseg.preset", ""),
                precision=props.get("jointseg.precision", "fp32"),
                bands_10m=tuple(json.loads(get("bands_10m"))),
                bands_20m=tuple(json.loads(get("bands_20m"))),
                scale_factor=int(get("scale_factor")),
                multiple_10m=int(get("multiple_10m")),
                halo_10m=int(get("halo_10m")),
                raw=dict(props),
            )
        except (ValueError, TypeError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{where}: malformed jointseg metadata ({exc})") from exc
        if info.scale_factor != SCALE:
            raise ModelError(f"{where}: jointseg.scale_factor={info.scale_factor}, expected 10")
        if info.multiple_10m < 1 or info.halo_10m < 0:
            raise ModelError(f"{where}: bad multiple_10m/halo_10m in metadata")
        return info


# --- sessions --------------------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    """What :func:`make_session` set up.

    Attributes:
        model_path: the ONNX file.
        sha256: its SHA-256 (provenance).
        requested: provider short names asked for (``tensorrt``, ``cuda``, ``cpu``).
        providers: ONNX Runtime provider names the session actually uses, best first.
        threads: intra-op thread count.
        io_binding: True when inference binds inputs/outputs on the CUDA device.
        model: the parsed model metadata.
    """

    model_path: Path
    sha256: str
    requested: tuple[str, ...]
    providers: tuple[str, ...]
    threads: int
    io_binding: bool
    model: ModelInfo


def resolve_providers(
    requested: Sequence[str], available: Sequence[str] | None = None
) -> list[str]:
    """ONNX Runtime provider names to use: TensorRT -> CUDA -> CPU, asked-for and available.

    TensorRT is used only when asked for; CPU is always the last fallback. Providers
    asked for but missing from ``available`` (default
    ``onnxruntime.get_available_providers()``) are logged and skipped.

    Raises:
        ModelError: on an unknown provider name.
    """
    wanted = [p.strip().lower() for p in requested if p.strip()]
    unknown = [p for p in wanted if p not in PROVIDERS]
    if unknown:
        raise ModelError(f"unknown provider(s) {unknown}; choose from {list(PROVIDERS)}")
    available = list(available if available is not None else ort.get_available_providers())
    out = []
    for short in _PRIORITY:
        if short not in wanted and short != "cpu":
            continue
        name = PROVIDERS[short]
        if name in available:
            out.append(name)
        elif short != "cpu":
            log.warning(
                "%s requested but not available in this onnxruntime (available: %s); "
                "falling back to %s",
                name,
                ", ".join(available),
                "the next provider" if short == "tensorrt" and "cuda" in wanted else "CPU",
            )
    if PROVIDERS["cpu"] not in out:
        out.append(PROVIDERS["cpu"])
    return out


def make_session(
    model_path: str | os.PathLike,
    providers: Sequence[str] = ("cuda", "cpu"),
    threads: int | None = None,
    *,
    inter_threads: int = 1,
    cuda_options: dict[str, object] | None = None,
    tensorrt_options: dict[str, object] | None = None,
) -> tuple[ort.InferenceSession, SessionInfo]:
    """Open an ONNX Runtime session for a JointSeg model.

    Args:
        model_path: the exported ``.onnx`` file.
        providers: short names in any order (``tensorrt``, ``cuda``, ``cpu``); used in
            the order TensorRT -> CUDA -> CPU when available (see :func:`resolve_providers`).
        threads: intra-op threads (e.g. the Snakemake rule's ``threads``); None = ORT default.
        inter_threads: inter-op threads (the graph runs sequentially, so 1 is enough).
        cuda_options: CUDA EP options, e.g. ``{"device_id": 0, "gpu_mem_limit": 8 << 30,
            "cudnn_conv_algo_search": "HEURISTIC"}`` (config ``infer.cuda``).
        tensorrt_options: TensorRT EP options (e.g. ``trt_fp16_enable``).

    Returns:
        ``(session, info)``.

    Raises:
        ModelError: if the file is missing, not ONNX, or lacks the JointSeg interface.
    """
    model_path = Path(model_path)
    names = resolve_providers(providers)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = int(inter_threads)
    options = {
        PROVIDERS["cuda"]: {k: str(v) for k, v in (cuda_options or {}).items()},
        PROVIDERS["tensorrt"]: {k: str(v) for k, v in (tensorrt_options or {}).items()},
    }
    session, used = _load(model_path, names, opts, options)
    for name in names:
        if name not in used:
            log.warning("%s could not be initialised for %s; using %s", name, model_path, used)
    meta = ModelInfo.from_props(dict(session.get_modelmeta().custom_metadata_map), str(model_path))
    _check_interface(session, model_path)
    _check_bands(session, meta, model_path)
    info = SessionInfo(
        model_path=model_path,
        sha256=sha256_file(model_path),
        requested=tuple(p.strip().lower() for p in providers),
        providers=tuple(used),
        threads=int(threads or 0),
        io_binding=used[0] in (PROVIDERS["cuda"], PROVIDERS["tensorrt"]),
        model=meta,
    )
    log.info(
        "model %s %s (sha256 %s...): providers %s, %s intra-op threads, halo %d px",
        meta.name,
        meta.version,
        info.sha256[:12],
        ", ".join(used),
        threads or "default",
        meta.halo_10m,
    )
    return session, info


def _load(
    path: Path, names: list[str], opts: ort.SessionOptions, options: dict[str, dict]
) -> tuple[ort.InferenceSession, list[str]]:
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        sess = ort.InferenceSession(
            str(path), sess_options=opts, providers=[(n, options.get(n, {})) for n in names]
        )
    except Exception as exc:  # noqa: BLE001 - ORT raises several exception types
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable ONNX model ({msg})") from exc
    return sess, list(sess.get_providers())


def _check_interface(session: ort.InferenceSession, path: Path) -> None:
    ins = {i.name for i in session.get_inputs()}
    outs = {o.name for o in session.get_outputs()}
    missing = sorted(({"s2_10m", "s2_20m"} - ins) | ({"isa_logit", "sr"} - outs))
    if missing:
        raise ModelError(f"{path}: model lacks input/output(s) {missing}")


def _check_bands(session: ort.InferenceSession, meta: ModelInfo, path: Path) -> None:
    """The model's inputs must take the pipeline's bands, in its order (composite layout).

    Raises:
        ModelError: naming the input, what the model declares and what is expected.
    """
    from jointseg.inference.scene import BANDS_10M, BANDS_20M, COUNT

    expected = {"s2_10m": (*BANDS_10M, COUNT), "s2_20m": BANDS_20M}
    declared = {"s2_10m": meta.bands_10m, "s2_20m": meta.bands_20m}
    for inp in session.get_inputs():
        if inp.name not in expected:
            continue
        key = "bands_10m" if inp.name == "s2_10m" else "bands_20m"
        if tuple(declared[inp.name]) != expected[inp.name]:
            raise ModelError(f"{path}: jointseg.{key} is {list(declared[inp.name])}, expected "
                             f"{list(expected[inp.name])} (the composite bands)")
        channels = inp.shape[1] if len(inp.shape) == 4 else None
        if isinstance(channels, int) and channels != len(expected[inp.name]):
            raise ModelError(f"{path}: input {inp.name} takes {channels} channels, expected "
                             f"{len(expected[inp.name])} ({' '.join(expected[inp.name])})")


def model_info(session: ort.InferenceSession) -> ModelInfo:
    """Parsed ``jointseg.*`` metadata of an open session."""
    return ModelInfo.from_props(dict(session.get_modelmeta().custom_metadata_map))


# --- running windows ----------------------------------------------------------------


class Predictor:
    """Runs batches of windows through a session (IO binding on CUDA, plain run on CPU).

    Args:
        session: an ONNX Runtime session with the JointSeg interface.
        io_binding: bind inputs/outputs on the device; None = when the first provider
            is CUDA or TensorRT.
        device_id: CUDA device for IO binding.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        io_binding: bool | None = None,
        device_id: int = 0,
    ) -> None:
        self.session = session
        first = session.get_providers()[0]
        on_gpu = first in (PROVIDERS["cuda"], PROVIDERS["tensorrt"])
        self.io_binding = on_gpu if io_binding is None else io_binding
        self.device = "cuda" if on_gpu else "cpu"
        self.device_id = device_id if on_gpu else 0
        types = {i.name: i.type for i in session.get_inputs()}
        self.input_dtype = {
            name: np.float16 if types.get(name) == "tensor(float16)" else np.float32
            for name in ("s2_10m", "s2_20m")
        }

    def run(
        self, s2_10m: np.ndarray, s2_20m: np.ndarray, with_sr: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict one batch: returns ``(isa_logit (N,1,10H,10W), sr (N,4,10H,10W) | None)``."""
        feeds = {
            "s2_10m": np.ascontiguousarray(s2_10m, dtype=self.input_dtype["s2_10m"]),
            "s2_20m": np.ascontiguousarray(s2_20m, dtype=self.input_dtype["s2_20m"]),
        }
        names = ["isa_logit", "sr"] if with_sr else ["isa_logit"]
        if self.io_binding:
            outs = self._run_bound(feeds, names)
        else:
            outs = self.session.run(names, feeds)
        outs = [o if o.dtype == np.float32 else o.astype(np.float32) for o in outs]
        return outs[0], (outs[1] if with_sr else None)

    def _run_bound(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        binding = self.session.io_binding()
        for name, arr in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(arr, self.device, self.device_id)
            binding.bind_ortvalue_input(name, value)
        for name in names:
            binding.bind_output(name, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


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


def _ramp(size: int, ramp: int, left: bool, right: bool) -> np.ndarray:
    """1-D blend weights: raised-cosine ramps of ``ramp`` px, > 0 everywhere, pairs sum to 1."""
    w = np.ones(size, np.float32)
    if ramp:
        up = (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)
        if left:
            w[:ramp] = up
        if right:
            w[-ramp:] = up[::-1]
    return w


@dataclass
class Block:
    """A finished piece of output on the 1 m grid (clipped to the raster).

    Attributes:
        row_off, col_off: offset of the block in 1 m pixels.
        prob: float32 (rows, cols) ISA probability 0..1.
        sr: float32 (4, rows, cols) SR reflectance R G B NIR, or None.
        valid_10m: bool (rows/10, cols/10): COUNT > 0 at 10 m.
    """

    row_off: int
    col_off: int
    prob: np.ndarray
    sr: np.ndarray | None
    valid_10m: np.ndarray


def _window_outputs(
    predictor: Predictor, scene: Scene, plan: TilingPlan, batch_size: int, with_sr: bool,
    progress: bool,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(channels (1|5, 10w, 10w) float32 core output, valid (w, w) bool) per window, in order."""
    w, h = plan.window, plan.halo
    side = w + 2 * h
    cut = slice(SCALE * h, SCALE * (h + w))
    positions = [(r, c) for r in plan.row_starts for c in plan.col_starts]
    bar = tqdm(total=len(positions), desc="windows", unit="win", disable=not progress, leave=False)
    try:
        for b0 in range(0, len(positions), batch_size):
            batch = positions[b0 : b0 + batch_size]
            x10s, x20s, valids = [], [], []
            for r, c in batch:
                x10, x20 = scene.read(r - h, c - h, side, side)
                x10s.append(x10)
                x20s.append(x20)
                valids.append(x10[4, h : h + w, h : h + w] > 0)
            logit, sr = predictor.run(np.stack(x10s), np.stack(x20s), with_sr)
            log.debug("windows %d-%d of %d predicted", b0, b0 + len(batch) - 1, len(positions))
            for k in range(len(batch)):
                prob = _sigmoid(logit[k, :, cut, cut])
                core = np.concatenate([prob, sr[k, :, cut, cut]]) if with_sr else prob
                yield core, valids[k]
            bar.update(len(batch))
    finally:
        bar.close()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float32)
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


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
        with_sr: also produce the SR output.
        progress: show a tqdm bar over windows.
    """
    predictor = session if isinstance(session, Predictor) else Predictor(session)
    info = model_info(predictor.session)
    plan = plan_tiling(scene.shape, info, window, overlap, halo_10m)
    if halo_10m is not None and plan.halo < info.halo_10m:
        log.warning("halo %d px < model receptive field %d px: expect seams", plan.halo,
                    info.halo_10m)
    rows_1m, cols_1m = SCALE * scene.shape[0], SCALE * scene.shape[1]
    ny, nx = len(plan.row_starts), len(plan.col_starts)
    win, ov, stride = SCALE * plan.window, SCALE * plan.overlap, SCALE * plan.stride
    channels = 5 if with_sr else 1
    log.debug("tiling %s: %d x %d windows of %d px (+%d halo, %d overlap)",
              scene.shape, ny, nx, plan.window, plan.halo, plan.overlap)
    band = None
    if ny > 1 and ov:
        band = np.zeros((channels, ov, SCALE * plan.col_starts[-1] + win), np.float32)
    right: np.ndarray | None = None
    outputs = _window_outputs(predictor, scene, plan, batch_size, with_sr, progress)
    for k, (core, valid) in enumerate(outputs):
        i, j = divmod(k, nx)
        wy = _ramp(win, ov, i > 0, i < ny - 1)
        wx = _ramp(win, ov, j > 0, j < nx - 1)
        core *= wy[None, :, None]
        core *= wx[None, None, :]
        x0 = j * stride
        if j > 0 and ov:
            core[:, :, :ov] += right
        if i > 0 and band is not None:
            c_from = ov if j > 0 else 0
            core[:, :ov, c_from:] += band[:, :, x0 + c_from : x0 + win]
        rows_done = win - ov if i < ny - 1 else win
        cols_done = win - ov if j < nx - 1 else win
        if j < nx - 1 and ov:
            right = core[:, :, win - ov :].copy()
        if i < ny - 1 and band is not None:
            band[:, :, x0 : x0 + cols_done] = core[:, win - ov :, :cols_done]
        r0, c0 = i * stride, x0
        h = min(rows_done, rows_1m - r0)
        w = min(cols_done, cols_1m - c0)
        if h <= 0 or w <= 0:
            continue
        yield Block(
            row_off=r0,
            col_off=c0,
            prob=core[0, :h, :w],
            sr=core[1:5, :h, :w] if with_sr else None,
            valid_10m=valid[: h // SCALE, : w // SCALE],
        )


@dataclass
class Prediction:
    """In-memory prediction on the 1 m grid.

    Attributes:
        prob: float32 (10H, 10W) ISA probability 0..1.
        sr: float32 (4, 10H, 10W) SR reflectance (R G B NIR), or None.
        valid: bool (10H, 10W): the 10 m input had a valid observation (COUNT > 0).
    """

    prob: np.ndarray
    sr: np.ndarray | None
    valid: np.ndarray


def predict_array(
    session: ort.InferenceSession | Predictor,
    s2_10m: np.ndarray,
    s2_20m: np.ndarray,
    *,
    window: int = 96,
    overlap: int = 8,
    halo_10m: int | None = None,
    batch_size: int = 1,
    with_sr: bool = True,
) -> Prediction:
    """Tiled prediction of in-memory arrays (see :func:`iter_blocks`).

    Args:
        s2_10m: (5, H, W) B02 B03 B04 B08 COUNT, DN.
        s2_20m: (6, ceil(H/2), ceil(W/2)) B05 B06 B07 B8A B11 B12, DN.

    Returns:
        A :class:`Prediction` on the (10H, 10W) grid.
    """
    scene = from_arrays(s2_10m, s2_20m)
    rows, cols = SCALE * scene.shape[0], SCALE * scene.shape[1]
    prob = np.zeros((rows, cols), np.float32)
    sr = np.zeros((4, rows, cols), np.float32) if with_sr else None
    valid = np.zeros((rows, cols), bool)
    for b in iter_blocks(session, scene, window=window, overlap=overlap, halo_10m=halo_10m,
                         batch_size=batch_size, with_sr=with_sr):
        rs = slice(b.row_off, b.row_off + b.prob.shape[0])
        cs = slice(b.col_off, b.col_off + b.prob.shape[1])
        prob[rs, cs] = b.prob
        if sr is not None:
            sr[:, rs, cs] = b.sr
        valid[rs, cs] = _up10(b.valid_10m)
    return Prediction(prob, sr, valid)


def _up10(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, SCALE, axis=0), SCALE, axis=1)


# --- writing products ------------------------------------------------------------------


@dataclass(frozen=True)
class ProductPaths:
    """Files written by :func:`predict_tile` (None where not asked for)."""

    binary: Path
    prob: Path | None
    sr: Path | None


def grid_1m(geobox_10m: GeoBox) -> GeoBox:
    """The 1 m child grid of a 10 m grid: same origin, pixel size / 10, shape x 10."""
    t = geobox_10m.transform
    return GeoBox(
        geobox_10m.crs,
        Affine(t.a / SCALE, 0.0, t.c, 0.0, t.e / SCALE, t.f),
        geobox_10m.width * SCALE,
        geobox_10m.height * SCALE,
    )


def encode_prob(prob: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 ``round(p * 254)`` (0..254), 255 where not valid."""
    out = np.rint(np.clip(prob, 0.0, 1.0) * 254.0).astype(np.uint8)
    out[~valid] = PROB_NODATA
    return out


def encode_binary(prob: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 1 where ``p >= threshold``, 0 elsewhere, 255 where not valid."""
    out = (prob >= threshold).astype(np.uint8)
    out[~valid] = BINARY_NODATA
    return out


def predict_tile(
    session: ort.InferenceSession | Predictor,
    scene: Scene | str | os.PathLike,
    output: str | os.PathLike,
    *,
    prob_output: str | os.PathLike | None = None,
    sr_output: str | os.PathLike | None = None,
    threshold: float = 0.5,
    window: int = 96,
    overlap: int = 8,
    halo_10m: int | None = None,
    batch_size: int = 1,
    info: SessionInfo | None = None,
    compress: str = "DEFLATE",
    progress: bool = False,
) -> ProductPaths:
    """Predict one scene and write the 1 m products as COGs, atomically.

    Blocks are written window by window to uncompressed tiled staging GTiffs beside
    the outputs, which are then copied to COGs (GDAL COG driver: internal 512 px
    tiles, ``compress`` + predictor 2, overviews) inside :func:`jointseg.io.atomic_path`.

    Args:
        session: ONNX Runtime session (or a :class:`Predictor`).
        scene: a :class:`~jointseg.inference.scene.Scene` or a path for
            :func:`~jointseg.inference.scene.open_scene`.
        output: binary ISA map (uint8 0/1, 255 nodata).
        prob_output: ISA probability (uint8 0..254, scale 1/254, 255 nodata).
        sr_output: SR RGB quicklook (uint8, 2-98 % stretch, 0 nodata).
        threshold: probability threshold for the binary map.
        window, overlap, halo_10m, batch_size: see :func:`iter_blocks`.
        info: the :class:`SessionInfo` from :func:`make_session` (provenance tags).
        compress: COG compression (DEFLATE or ZSTD).
        progress: show a progress bar over windows.

    Returns:
        The written paths.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} outside 0..1")
    predictor = session if isinstance(session, Predictor) else Predictor(session)
    meta = info.model if info else model_info(predictor.session)
    own_scene = not isinstance(scene, Scene)
    scene = open_scene(scene) if own_scene else scene
    output = Path(output)
    try:
        grid = grid_1m(scene.geobox_10m)
        tags = {
            "JOINTSEG_VERSION": jointseg.__version__,
            "MODEL_NAME": meta.name,
            "MODEL_VERSION": meta.version,
            "MODEL_PRESET": meta.preset,
            "MODEL_SHA256": info.sha256 if info else "unknown",
            "SCENES": scene.scenes,
            "SOURCE": scene.source,
            "THRESHOLD": f"{threshold:g}",
        }
        if scene.simulated:
            tags["JOINTSEG_SIMULATED"] = "true"
        if not _any_valid(scene):
            log.warning("tile %s: no valid 10 m pixel in %s (COUNT 0 everywhere); the "
                        "products will be all nodata", output.stem, scene.source)
        log.info("tile %s: predicting %d x %d px at 1 m -> %s", output.stem, grid.height,
                 grid.width, output)
        with contextlib.ExitStack() as stack:
            output.parent.mkdir(parents=True, exist_ok=True)
            stage_dir = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent)))
            # GDAL_NUM_THREADS: COG compression/overviews use the session's thread budget
            gdal_threads = str(info.threads) if info and info.threads else "ALL_CPUS"
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=64, GDAL_NUM_THREADS=gdal_threads))
            paths = _stream_to_staging(
                predictor, scene, grid, stage_dir, threshold, prob_output is not None,
                sr_output is not None, window, overlap, halo_10m, batch_size, progress,
            )
            _to_cog(paths["binary"], output, grid, compress, "MODE", ["isa_binary"],
                    {**tags, "JOINTSEG_PRODUCT": "isa_binary",
                     "ENCODING": "1 = impervious (p >= THRESHOLD), 0 = not, 255 = nodata"},
                    BINARY_NODATA)
            if prob_output is not None:
                _to_cog(paths["prob"], Path(prob_output), grid, compress, "AVERAGE",
                        ["isa_probability"],
                        {**tags, "JOINTSEG_PRODUCT": "isa_probability",
                         "ENCODING": "p = DN / 254 (band scale), 255 = nodata"},
                        PROB_NODATA, scale=PROB_SCALE)
            if sr_output is not None:
                lo_hi = _sr_quicklook(paths["sr16"], paths["hist"], stage_dir / "sr8.tif", grid)
                _to_cog(stage_dir / "sr8.tif", Path(sr_output), grid, compress, "AVERAGE",
                        ["red", "green", "blue"],
                        {**tags, "JOINTSEG_PRODUCT": "sr_quicklook",
                         "ENCODING": "uint8 RGB of SR reflectance, 2-98 % stretch to 1..255, "
                                     "0 = nodata",
                         "STRETCH_REFLECTANCE": json.dumps(lo_hi)},
                        SR_NODATA)
    finally:
        if own_scene:
            scene.close()
    log.info("tile %s: wrote %s", output.stem, ", ".join(
        str(p) for p in (output, prob_output, sr_output) if p is not None))
    return ProductPaths(output, Path(prob_output) if prob_output else None,
                        Path(sr_output) if sr_output else None)


def _any_valid(scene: Scene, block_rows: int = 256) -> bool:
    """True if any 10 m pixel has a non-zero COUNT (read in row strips)."""
    rows, cols = scene.shape
    for r0 in range(0, rows, block_rows):
        x10 = scene._read10(Window(0, r0, cols, min(block_rows, rows - r0)))
        if np.any(x10[4] > 0):
            return True
    return False


def _staging(path: Path, grid: GeoBox, count: int, dtype: str, nodata: float | None):
    return rasterio.open(
        path, "w", **grid.profile(driver="GTiff", count=count, dtype=dtype, nodata=nodata,
                                  tiled=True, blockxsize=512, blockysize=512,
                                  BIGTIFF="IF_SAFER"),
    )


def _stream_to_staging(
    predictor: Predictor, scene: Scene, grid: GeoBox, stage_dir: Path, threshold: float,
    want_prob: bool, want_sr: bool, window: int, overlap: int, halo_10m: int | None,
    batch_size: int, progress: bool,
) -> dict[str, Path]:
    paths = {"binary": stage_dir / "binary.tif"}
    with contextlib.ExitStack() as stack:
        dst_bin = stack.enter_context(_staging(paths["binary"], grid, 1, "uint8", BINARY_NODATA))
        dst_prob = dst_sr = None
        if want_prob:
            paths["prob"] = stage_dir / "prob.tif"
            dst_prob = stack.enter_context(_staging(paths["prob"], grid, 1, "uint8", PROB_NODATA))
        hist = None
        if want_sr:
            paths["sr16"] = stage_dir / "sr16.tif"
            paths["hist"] = stage_dir / "hist.npy"
            dst_sr = stack.enter_context(_staging(paths["sr16"], grid, 3, "uint16", 0))
            hist = np.zeros((3, 10001), np.int64)
        for b in iter_blocks(predictor, scene, window=window, overlap=overlap,
                             halo_10m=halo_10m, batch_size=batch_size, with_sr=want_sr,
                             progress=progress):
            valid = _up10(b.valid_10m)
            win = Window(b.col_off, b.row_off, b.prob.shape[1], b.prob.shape[0])
            dst_bin.write(encode_binary(b.prob, valid, threshold), 1, window=win)
            if dst_prob is not None:
                dst_prob.write(encode_prob(b.prob, valid), 1, window=win)
            if dst_sr is not None:
                rgb = np.rint(np.clip(b.sr[:3], 0.0, 1.0) * 10000.0).astype(np.uint16)
                np.maximum(rgb, 1, out=rgb)
                rgb[:, ~valid] = 0
                for k in range(3):
                    hist[k] += np.bincount(rgb[k][valid], minlength=10001)[:10001]
                dst_sr.write(rgb, window=win)
        if hist is not None:
            np.save(paths["hist"], hist)
    return paths


def _percentile_from_hist(hist: np.ndarray, pct: float) -> int:
    cum = np.cumsum(hist)
    if cum[-1] == 0:
        return 0
    return int(np.searchsorted(cum, pct / 100.0 * cum[-1]))


def _sr_quicklook(sr16: Path, hist_path: Path, out: Path, grid: GeoBox) -> list[list[float]]:
    """Stretch the uint16 SR staging file to uint8 RGB window by window; returns [lo, hi]s."""
    hist = np.load(hist_path)
    lo_hi, luts = [], []
    for k in range(3):
        lo = _percentile_from_hist(hist[k], SR_STRETCH_PERCENT[0])
        hi = max(_percentile_from_hist(hist[k], SR_STRETCH_PERCENT[1]), lo + 1)
        v = np.arange(65536, dtype=np.float64)
        lut = np.clip(np.rint(1 + 254 * (v - lo) / (hi - lo)), 1, 255).astype(np.uint8)
        lut[0] = SR_NODATA
        luts.append(lut)
        lo_hi.append([lo / 10000.0, hi / 10000.0])
    with rasterio.open(sr16) as src, _staging(out, grid, 3, "uint8", SR_NODATA) as dst:
        step = 512
        for r0 in range(0, grid.height, step):
            win = Window(0, r0, grid.width, min(step, grid.height - r0))
            data = src.read(window=win)
            dst.write(np.stack([luts[k][data[k]] for k in range(3)]), window=win)
    return lo_hi


def _to_cog(
    staging: Path, final: Path, grid: GeoBox, compress: str, resampling: str,
    names: list[str], tags: dict[str, str], nodata: float, scale: float | None = None,
) -> None:
    with rasterio.open(staging, "r+") as ds:
        for i, name in enumerate(names, start=1):
            ds.set_band_description(i, name)
        ds.update_tags(**tags)
        if scale is not None:
            ds.scales = (scale,) * ds.count
            ds.offsets = (0.0,) * ds.count
    with atomic_path(final, validate=validate_raster) as tmp, rasterio.open(staging) as src:
        rasterio.shutil.copy(
            src, tmp, driver="COG", compress=compress, predictor=2, blocksize=512,
            overview_resampling=resampling, BIGTIFF="IF_SAFER",
        )
    log.info("wrote %s (%s, %d x %d px)", final, tags.get("JOINTSEG_PRODUCT"), grid.height,
             grid.width)
