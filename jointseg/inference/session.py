"""ONNX Runtime sessions for JointSeg models: providers, model checks, batched runs.

The model is an ONNX file with the JointSeg interface (see ``docs/architecture.md``
and :mod:`jointseg.model.export`): inputs ``s2_10m`` float32 (N, 5, H, W) and
``s2_20m`` float32 (N, 6, H/2, W/2) in harmonised DN; outputs ``isa_logit`` float32
(N, 1, 10H, 10W) and ``sr`` float32 (N, 4, 10H, 10W) reflectance 0..1. Its
``jointseg.*`` metadata (parsed by :mod:`jointseg.model.metadata`) give the halo
(receptive-field radius, 10 m pixels) and the size multiple. This module never
imports torch.

Providers (config ``infer.providers``, used TensorRT -> CUDA -> CPU): the session must
run on the first one asked for. When it does not (the provider is missing from this
onnxruntime, or it is there but fails to start, as the CUDA EP does when cuDNN or
cuBLAS cannot be loaded and ONNX Runtime quietly builds a CPU session), opening the
model stops with one line (:class:`~jointseg.inference.providers.ProviderError`),
unless the fallback is to TensorRT's CUDA EP, or to the CPU with ``cpu`` asked for and
``infer.allow_cpu_fallback`` allowing it (null, the default: only on a machine without
a visible GPU; :func:`~jointseg.inference.providers.check_leading_provider`).

On a GPU (config ``infer.*``; none of it was measured on a GPU in this project):

* **device**: ``infer.cuda.device_id`` goes to the CUDA and TensorRT EPs, and the
  :class:`Predictor` binds its buffers on the device the session runs on.
* **IO binding** on CUDA/TensorRT: inputs are copied to the device once per batch and
  outputs bound there (:class:`Predictor`); with fixed shapes the device buffers are
  allocated once and reused by every batch of every tile.
* **fp16 model** (``precision``): ``auto`` uses the exported ``<stem>_fp16.onnx`` twin
  when the session runs on the CUDA EP and the twin exists, fp32 otherwise (CPU;
  TensorRT builds its own fp16 engine from the fp32 graph). The twin is chosen once the
  provider is known, so a CPU fallback runs the fp32 graph.
* **CUDA graphs** (``cuda_graph``): the CUDA EP's ``enable_cuda_graph``; shapes must be
  fixed, so the :class:`Predictor` pads every batch to ``fixed_batch`` windows and binds
  preallocated device buffers at fixed addresses, once per session.
* **TensorRT** when asked for (``providers`` lists ``tensorrt``): fp16 engines and an
  engine + timing cache keyed by the model file's SHA-256 and the engine options
  (:class:`~jointseg.inference.providers.TensorRTOptions`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from jointseg.bands import BANDS_20M, MODEL_INPUT_10M
from jointseg.inference.providers import (
    GPU_PROVIDERS,
    PROVIDERS,
    ModelError,
    ProviderError,
    TensorRTOptions,
    check_leading_provider,
    cuda_provider_options,
    requested_providers,
    resolve_providers,
    select_model_file,
    warn_missing,
)
from jointseg.io import IntegrityError, sha256_file, verify_file
from jointseg.model.metadata import SCALE_FACTOR, ModelInfo, ModelMetadataError

log = logging.getLogger(__name__)
__all__ = ["ModelError", "Predictor", "ProviderError", "SessionInfo", "make_session",
           "model_info", "session_device_id"]

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
        precision: ``fp32`` or ``fp16``: the graph that runs (``model_path`` is its file).
        cuda_graph: True when the CUDA EP captures CUDA graphs (fixed shapes required).
        device_id: the GPU the session runs on (0 on the CPU).
    """

    model_path: Path
    sha256: str
    requested: tuple[str, ...]
    providers: tuple[str, ...]
    threads: int
    io_binding: bool
    model: ModelInfo
    precision: str = "fp32"
    cuda_graph: bool = False
    device_id: int = 0


def make_session(
    model_path: str | os.PathLike,
    providers: Sequence[str] = ("cuda", "cpu"),
    threads: int | None = None,
    *,
    inter_threads: int = 1,
    cuda_options: Mapping[str, object] | None = None,
    tensorrt: TensorRTOptions | None = None,
    precision: str = "fp32",
    cuda_graph: bool = False,
    allow_cpu_fallback: bool | None = None,
) -> tuple[ort.InferenceSession, SessionInfo]:
    """Open an ONNX Runtime session for a JointSeg model, on the provider asked for.

    Args:
        model_path: the exported ``.onnx`` file.
        providers: short names in any order (``tensorrt``, ``cuda``, ``cpu``); used in
            the order TensorRT -> CUDA -> CPU when available (see :func:`resolve_providers`).
        threads: intra-op threads (e.g. the Snakemake rule's ``threads``); None = ORT default.
        inter_threads: inter-op threads (the graph runs sequentially, so 1 is enough).
        cuda_options: CUDA EP options, e.g. ``{"device_id": 0, "gpu_mem_limit": 8 << 30,
            "cudnn_conv_algo_search": "HEURISTIC"}`` (config ``infer.cuda``); its
            ``device_id`` is TensorRT's device too.
        tensorrt: TensorRT EP settings (config ``infer.tensorrt``); None = defaults.
        precision: ``fp32`` | ``fp16`` | ``auto`` (:func:`select_model_file`, asked once
            the session's provider is known).
        cuda_graph: capture CUDA graphs in the CUDA EP (run with a :class:`Predictor`
            whose ``fixed_batch`` is set; ignored unless the CUDA EP leads).
        allow_cpu_fallback: a GPU provider asked for may give way to the CPU (with
            ``cpu`` in ``providers``): True, False, or None = only on a machine without a
            visible GPU (:func:`~jointseg.inference.providers.cpu_fallback_allowed`).

    Returns:
        ``(session, info)``.

    Raises:
        ProviderError: the session would not run on the first provider asked for, and
            the fallback it would take is not allowed (one line).
        ModelError: if the file is missing, not ONNX, or lacks the JointSeg interface.
    """
    wanted = requested_providers(providers)
    available = ort.get_available_providers()
    names = resolve_providers(providers, available, warn=False)
    model_path = Path(model_path)
    if names[0] != wanted[0]:  # refused in one line, or logged below
        check_leading_provider(wanted, names[0], model_path, allow_cpu_fallback,
                               f"is not in this onnxruntime (available: {', '.join(available)})")
    warn_missing(wanted, available)
    if names[0] != "CPUExecutionProvider":
        _preload_cuda_libraries()
    device_id = int((cuda_options or {}).get("device_id") or 0)
    opener = _Opener(model_path, precision, _session_options(threads, inter_threads),
                     cuda_options, tensorrt or TensorRTOptions(), device_id)
    session, used, path, cuda_graph = opener.open(names, cuda_graph)
    if used[0] != names[0]:  # in this onnxruntime, but it failed to start (onnxruntime #21825)
        check_leading_provider(wanted, used[0], path, allow_cpu_fallback,
                               "could not be initialised (see ONNX Runtime's error above)")
        if select_model_file(model_path, precision, used[0]) != path:
            session, used, path, cuda_graph = opener.open(used, False)
    for name in names:
        if name not in used:
            log.warning("%s could not be initialised for %s; using %s", name, path, used)
    meta = model_info(session, path)
    _check_interface(session, path)
    _check_bands(session, meta, path)
    info = SessionInfo(
        model_path=path,
        sha256=opener.sha256(path),
        requested=tuple(p.strip().lower() for p in providers),
        providers=tuple(used),
        threads=int(threads or 0),
        io_binding=used[0] in GPU_PROVIDERS,
        model=meta,
        precision="fp16" if path.stem.endswith("_fp16") else "fp32",
        cuda_graph=cuda_graph,
        device_id=session_device_id(session),
    )
    log.info("model %s %s (%s, sha256 %s...): providers %s, %s intra-op threads, halo %d px%s",
             meta.name, meta.version, info.precision, info.sha256[:12], ", ".join(used),
             threads or "default", meta.halo_10m, ", CUDA graphs" if cuda_graph else "")
    return session, info


@dataclass
class _Opener:
    """Opens the model file that fits a provider list, with that list's options."""

    model_path: Path
    precision: str
    opts: ort.SessionOptions
    cuda_options: Mapping[str, object] | None
    tensorrt: TensorRTOptions
    device_id: int

    def sha256(self, path: Path) -> str:
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        try:  # the sidecar's digest is checked by reading the file once
            return verify_file(path, remedy="rerun export") or sha256_file(path)
        except IntegrityError as exc:
            raise ModelError(str(exc)) from None

    def open(self, names: list[str], cuda_graph: bool
             ) -> tuple[ort.InferenceSession, list[str], Path, bool]:
        """``(session, its providers, the file opened, CUDA graphs on)``: the fp32 file
        or its twin for ``names[0]``; CUDA graphs only where ORT accepts them."""
        path = select_model_file(self.model_path, self.precision, names[0])
        cuda_graph = bool(cuda_graph) and names[0] == PROVIDERS["cuda"]
        options = {PROVIDERS["cuda"]: cuda_provider_options(self.cuda_options, cuda_graph)}
        if PROVIDERS["tensorrt"] in names:
            options[PROVIDERS["tensorrt"]] = self.tensorrt.provider_options(
                self.sha256(path), self.device_id)
        try:
            session, used = _load(path, names, self.opts, options)
        except ModelError as exc:
            if not cuda_graph:
                raise
            # ORT refuses CUDA graphs unless every node runs on the CUDA EP
            log.warning("CUDA graphs refused for %s (%s); running without them", path, exc)
            cuda_graph = False
            options[PROVIDERS["cuda"]] = cuda_provider_options(self.cuda_options, False)
            session, used = _load(path, names, self.opts, options)
        return session, used, path, cuda_graph and used[0] == PROVIDERS["cuda"]


def _preload_cuda_libraries() -> None:
    """Load the CUDA runtime and cuDNN that onnxruntime-gpu's `cuda`/`cudnn` extras install
    (nvidia-* wheels) before the CUDA EP needs them: ``onnxruntime.preload_dlls()`` (ORT
    >= 1.21; a no-op where the libraries are on the loader path already). Failures are
    left to the provider check, which names the provider that could not start."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # noqa: BLE001 - a missing library shows as a provider failure
        log.debug("onnxruntime.preload_dlls() failed: %s", exc)


def session_device_id(session: ort.InferenceSession) -> int:
    """The GPU a session runs on: its leading provider's ``device_id`` (0 on the CPU)."""
    leading = session.get_providers()[0]
    get = getattr(session, "get_provider_options", None)
    if leading not in GPU_PROVIDERS or get is None:
        return 0
    return int(get().get(leading, {}).get("device_id") or 0)


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

    One Predictor serves one session for the life of a batch of tiles
    (:func:`jointseg.inference.predict.load_model`): with ``fixed_batch`` and IO binding
    its device buffers are allocated on the first run and reused by every later run of
    the same window size, which CUDA graphs require (a captured graph replays fixed
    addresses).

    Args:
        session: an ONNX Runtime session with the JointSeg interface.
        io_binding: bind inputs/outputs on the device; None = when the first provider
            is CUDA or TensorRT (works on CPU too, with host buffers).
        device_id: CUDA device for IO binding; None = the one the session runs on
            (:func:`session_device_id`, i.e. ``infer.cuda.device_id``).
        fixed_batch: pad every batch to this many windows (zeros, outputs dropped), so
            that each run has the same shape: one TensorRT engine, one CUDA graph.
        cuda_graph: the session captures CUDA graphs (``SessionInfo.cuda_graph``): bind
            preallocated device buffers once and update them in place (needs
            ``fixed_batch`` and the same window size on every run).
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        io_binding: bool | None = None,
        device_id: int | None = None,
        fixed_batch: int | None = None,
        cuda_graph: bool = False,
    ) -> None:
        self.session = session
        first = session.get_providers()[0]
        on_gpu = first in GPU_PROVIDERS
        self.io_binding = on_gpu if io_binding is None else io_binding
        self.device = "cuda" if on_gpu else "cpu"
        if device_id is None:
            device_id = session_device_id(session)
        self.device_id = int(device_id) if on_gpu else 0
        if cuda_graph and not fixed_batch:
            raise ValueError("cuda_graph needs fixed_batch (CUDA graphs replay fixed shapes)")
        self.fixed_batch = fixed_batch
        self.cuda_graph = cuda_graph
        self._buffers: _BoundBuffers | None = None
        types = {i.name: i.type for i in session.get_inputs()}
        self.input_dtype = {
            name: np.float16 if types.get(name) == "tensor(float16)" else np.float32
            for name in ("s2_10m", "s2_20m")
        }

    def run(
        self, s2_10m: np.ndarray, s2_20m: np.ndarray, with_sr: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict one batch: returns ``(isa_logit (N,1,10H,10W), sr (N,4,10H,10W) | None)``
        (new host arrays; ``sr`` is copied back only when ``with_sr``)."""
        n = s2_10m.shape[0]
        if self.fixed_batch:
            if n > self.fixed_batch:
                raise ValueError(f"batch of {n} windows > fixed_batch {self.fixed_batch}")
            s2_10m, s2_20m = (_pad_batch(a, self.fixed_batch) for a in (s2_10m, s2_20m))
        feeds = {
            "s2_10m": np.ascontiguousarray(s2_10m, dtype=self.input_dtype["s2_10m"]),
            "s2_20m": np.ascontiguousarray(s2_20m, dtype=self.input_dtype["s2_20m"]),
        }
        names = ["isa_logit", "sr"] if with_sr else ["isa_logit"]
        if self.io_binding and (self.cuda_graph or self.fixed_batch):
            outs = self._run_buffers(feeds, names)
        elif self.io_binding:
            outs = self._run_bound(feeds, names)
        else:
            outs = self.session.run(names, feeds)
        outs = [o[:n] if o.dtype == np.float32 else o[:n].astype(np.float32) for o in outs]
        return outs[0], (outs[1] if with_sr else None)

    def _run_bound(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        """Bind this batch's inputs and outputs afresh (shapes vary between runs)."""
        binding = self.session.io_binding()
        for name, arr in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(arr, self.device, self.device_id)
            binding.bind_ortvalue_input(name, value)
        for name in names:
            binding.bind_output(name, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def _run_buffers(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        """Run with buffers bound once at fixed device addresses (CUDA-graph replay);
        another window size binds new ones, except under CUDA graphs (refused)."""
        shapes = {k: v.shape for k, v in feeds.items()}
        if self._buffers is not None and self._buffers.shapes != shapes:
            if self.cuda_graph:
                raise ValueError(f"CUDA-graph session captured shapes {self._buffers.shapes}, "
                                 f"got {shapes}")
            self._buffers = None
        if self._buffers is None:
            self._buffers = _BoundBuffers(self.session, feeds, self.device, self.device_id)
        return self._buffers.run(feeds, names)


def _pad_batch(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` (N, ...) padded with zero windows to (n, ...)."""
    if a.shape[0] == n:
        return a
    return np.concatenate([a, np.zeros((n - a.shape[0], *a.shape[1:]), a.dtype)])


class _BoundBuffers:
    """Input/output buffers on one device, allocated once and bound once to one IO
    binding (fixed shapes); each run copies the inputs into them in place."""

    def __init__(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray],
                 device: str, device_id: int) -> None:
        self.session = session
        self.device = device
        self.binding = session.io_binding()
        self.inputs = {}
        for name, arr in feeds.items():
            self.inputs[name] = ort.OrtValue.ortvalue_from_shape_and_type(
                list(arr.shape), arr.dtype, device, device_id)
            self.binding.bind_ortvalue_input(name, self.inputs[name])
        n, _, h, w = feeds["s2_10m"].shape
        types = {o.name: o.type for o in session.get_outputs()}
        self.outputs = {}
        for name, channels in (("isa_logit", 1), ("sr", 4)):
            dtype = np.float16 if types.get(name) == "tensor(float16)" else np.float32
            shape = [n, channels, SCALE_FACTOR * h, SCALE_FACTOR * w]
            self.outputs[name] = ort.OrtValue.ortvalue_from_shape_and_type(
                shape, dtype, device, device_id)
            self.binding.bind_ortvalue_output(name, self.outputs[name])
        self.shapes = {k: v.shape for k, v in feeds.items()}

    def run(self, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        for name, arr in feeds.items():
            self.inputs[name].update_inplace(arr)
        self.session.run_with_iobinding(self.binding)
        outs = [self.outputs[name].numpy() for name in names]  # device -> new host arrays
        # but a host buffer's numpy() is a view of memory the next run overwrites
        return [o.copy() for o in outs] if self.device == "cpu" else outs
