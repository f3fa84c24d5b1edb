"""ONNX Runtime sessions for JointSeg models: providers, model checks, batched runs.

The model is an ONNX file with the JointSeg interface (see ``docs/architecture.md``
and :mod:`jointseg.model.export`): inputs ``s2_10m`` float32 (N, 5, H, W) and
``s2_20m`` float32 (N, 6, H/2, W/2) in harmonised DN; outputs ``isa_logit`` float32
(N, 1, 10H, 10W) and ``sr`` float32 (N, 4, 10H, 10W) reflectance 0..1. Its
``jointseg.*`` metadata (parsed by :mod:`jointseg.model.metadata`) give the halo
(receptive-field radius, 10 m pixels) and the size multiple. This module never
imports torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from jointseg.bands import BANDS_20M, MODEL_INPUT_10M
from jointseg.io import sha256_file
from jointseg.model.metadata import ModelInfo, ModelMetadataError

log = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_PRIORITY = ("tensorrt", "cuda", "cpu")


class ModelError(ValueError):
    """The ONNX model cannot be used for inference (missing file, metadata or interface)."""


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
    options = {
        PROVIDERS["cuda"]: {k: str(v) for k, v in (cuda_options or {}).items()},
        PROVIDERS["tensorrt"]: {k: str(v) for k, v in (tensorrt_options or {}).items()},
    }
    opts = _session_options(threads, inter_threads)
    session, used = _load(model_path, names, opts, options)
    for name in names:
        if name not in used:
            log.warning("%s could not be initialised for %s; using %s", name, model_path, used)
    meta = model_info(session, model_path)
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
    log.info("model %s %s (sha256 %s...): providers %s, %s intra-op threads, halo %d px",
             meta.name, meta.version, info.sha256[:12], ", ".join(used), threads or "default",
             meta.halo_10m)
    return session, info


def _session_options(threads: int | None, inter_threads: int) -> ort.SessionOptions:
    """All graph optimisations, sequential execution, the given thread counts."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = int(inter_threads)
    return opts


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
    expected = {"s2_10m": MODEL_INPUT_10M, "s2_20m": BANDS_20M}
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


def model_info(session: ort.InferenceSession, where: str | os.PathLike = "model") -> ModelInfo:
    """Parsed ``jointseg.*`` metadata of an open session (:mod:`jointseg.model.metadata`).

    Raises:
        ModelError: naming ``where`` and the key, if a required key is missing or malformed.
    """
    try:
        return ModelInfo.from_props(session.get_modelmeta().custom_metadata_map, where)
    except ModelMetadataError as exc:
        raise ModelError(str(exc)) from exc


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
