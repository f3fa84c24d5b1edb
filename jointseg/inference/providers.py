"""ONNX Runtime execution providers: names, order, the CPU-fallback rule and options.

Short names ``tensorrt``, ``cuda``, ``cpu`` (config ``infer.providers``) map to ONNX
Runtime's provider names; :func:`requested_providers` orders the ones asked for
TensorRT -> CUDA -> CPU and :func:`resolve_providers` keeps those this onnxruntime
has, warning about the rest. :func:`check_leading_provider` is the rule a session's
leading provider must pass (a GPU run never silently becomes a CPU run), the option
builders turn ``infer.cuda`` / ``infer.tensorrt`` into provider options
(:class:`TensorRTOptions`: the engine cache keyed by the model's SHA-256 and the engine
options), and
:func:`select_model_file` picks the fp32 model or its fp16 twin once the provider is known.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from jointseg.model.metadata import fp16_twin_path

log = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_PRIORITY = ("tensorrt", "cuda", "cpu")
#: the providers that run on a GPU (IO binding, the fallback rule)
GPU_PROVIDERS = (PROVIDERS["tensorrt"], PROVIDERS["cuda"])
#: ``precision`` values of :func:`make_session`.
PRECISIONS = ("auto", "fp32", "fp16")
#: TensorRT options that name cache paths or switches, not how an engine is built
_TRT_CACHE_KEYS = ("trt_engine_cache_enable", "trt_engine_cache_path",
                   "trt_timing_cache_enable", "trt_timing_cache_path", "device_id")


class ModelError(ValueError):
    """The ONNX model cannot be used for inference (missing file, metadata or interface)."""


class ProviderError(ModelError):
    """The session would not run on the execution provider asked for (one line: the CLI
    prints it and exits 1 before any output is written)."""


def requested_providers(requested: Sequence[str]) -> list[str]:
    """ONNX Runtime names of the providers asked for, TensorRT -> CUDA -> CPU.

    Raises:
        ModelError: on an unknown provider name, or an empty list.
    """
    wanted = [p.strip().lower() for p in requested if p.strip()]
    unknown = [p for p in wanted if p not in PROVIDERS]
    if unknown:
        raise ModelError(f"unknown provider(s) {unknown}; choose from {list(PROVIDERS)}")
    if not wanted:
        raise ModelError(f"no provider asked for; choose from {list(PROVIDERS)}")
    return [PROVIDERS[p] for p in _PRIORITY if p in wanted]


def resolve_providers(
    requested: Sequence[str], available: Sequence[str] | None = None, *, warn: bool = True
) -> list[str]:
    """ONNX Runtime provider names to open a session with: TensorRT -> CUDA -> CPU,
    asked-for and available.

    TensorRT is used only when asked for; CPU always ends the list (ONNX Runtime places
    nodes no other provider takes there). Providers asked for but missing from
    ``available`` (default ``onnxruntime.get_available_providers()``) are skipped, and
    logged with ``warn``; whether a session may then run at all is
    :func:`check_leading_provider`'s question.

    Raises:
        ModelError: on an unknown provider name.
    """
    wanted = requested_providers(requested)
    available = list(available if available is not None else ort.get_available_providers())
    out = [name for name in wanted if name in available]
    if warn:
        warn_missing(wanted, available)
    if PROVIDERS["cpu"] not in out:
        out.append(PROVIDERS["cpu"])
    return out


def warn_missing(wanted: Sequence[str], available: Sequence[str]) -> None:
    """Log each provider of ``wanted`` that ``available`` lacks (CPU never lacks)."""
    for name in wanted:
        if name not in available and name != PROVIDERS["cpu"]:
            log.warning("%s requested but not available in this onnxruntime (available: %s)",
                        name, ", ".join(available))


def gpu_visible() -> bool:
    """True when this process can see an NVIDIA GPU (a driver with at least one GPU, and
    ``CUDA_VISIBLE_DEVICES`` not hiding them all); no CUDA library is loaded."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "NoDevFiles"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        if gpus.is_dir() and any(gpus.iterdir()):
            return True
    except OSError:
        pass
    return any(Path("/dev").glob("nvidia[0-9]*"))


def cpu_fallback_allowed(wanted: Sequence[str], allow_cpu_fallback: bool | None) -> bool:
    """Whether a session asked for a GPU provider may run on the CPU instead.

    Only when ``cpu`` is among the providers asked for, and ``allow_cpu_fallback``
    (config ``infer.allow_cpu_fallback``) is true, or null (the default) on a machine
    without a visible GPU (:func:`gpu_visible`): a laptop or CI runner with the default
    ``[cuda, cpu]`` maps on the CPU, a GPU node whose CUDA provider fails does not.
    """
    if PROVIDERS["cpu"] not in wanted:
        return False
    return bool(allow_cpu_fallback) if allow_cpu_fallback is not None else not gpu_visible()


def check_leading_provider(wanted: Sequence[str], leading: str, where: str | os.PathLike,
                           allow_cpu_fallback: bool | None, why: str) -> None:
    """The rule a session's leading provider must pass.

    ``leading`` (what the session runs on, best first) must be the first provider asked
    for (``wanted[0]``), or another GPU provider asked for (TensorRT -> CUDA, logged), or
    the CPU when :func:`cpu_fallback_allowed` (logged).

    Args:
        wanted: :func:`requested_providers`.  leading: the session's first provider.
        where: the model file (named in the message).  why: what went wrong, for the message.

    Raises:
        ProviderError: one line naming what was asked for, what runs and how to proceed.
    """
    first = wanted[0]
    if leading == first:
        return
    if leading in GPU_PROVIDERS and leading in wanted:
        log.warning("%s: %s %s; running on %s", where, first, why, leading)
        return
    if leading == PROVIDERS["cpu"] and cpu_fallback_allowed(wanted, allow_cpu_fallback):
        log.warning("%s: %s %s; running on the CPU (infer.allow_cpu_fallback)", where, first,
                    why)
        return
    asked = ", ".join(k for k, v in PROVIDERS.items() if v in wanted)
    if PROVIDERS["cpu"] not in wanted:
        hint = "add cpu to infer.providers (--providers) to allow the CPU"
    elif allow_cpu_fallback is False:
        hint = "infer.allow_cpu_fallback is false"
    else:
        hint = ("this machine has a GPU; set infer.allow_cpu_fallback: true to run on the "
                "CPU anyway")
    raise ProviderError(f"{where}: {first} {why}, so the session would run on {leading} "
                        f"(providers asked for: {asked}); {hint}")


@dataclass(frozen=True)
class TensorRTOptions:
    """TensorRT EP settings (config ``infer.tensorrt``), turned into provider options per
    model file by :meth:`provider_options`.

    Attributes:
        fp16: build fp16 engines.
        cache_root: engine caches live in :func:`trt_cache_dir` below it; None = no cache
            (every session builds its engines).
        timing_cache: keep a timing cache beside the engines.
        extra: raw ``trt_*`` options, as (name, value) pairs.
    """

    fp16: bool = True
    cache_root: Path | None = None
    timing_cache: bool = True
    extra: tuple[tuple[str, str], ...] = ()

    def engine_options(self) -> dict[str, str]:
        """The options that shape an engine (and so key its cache folder)."""
        return {"trt_fp16_enable": "True" if self.fp16 else "False",
                **{k: str(v) for k, v in self.extra}}

    def provider_options(self, model_sha256: str, device_id: int = 0) -> dict[str, str]:
        """Options of the TensorRT EP for the model file of SHA-256 ``model_sha256``,
        on GPU ``device_id``: with ``cache_root`` an engine (and timing) cache in
        :func:`trt_cache_dir` (created), where engines are built once per model,
        options, GPU and input shape, and later sessions load them."""
        engine = self.engine_options()
        out = {**engine, "device_id": str(int(device_id))}
        if self.cache_root is not None:
            cache = trt_cache_dir(self.cache_root, model_sha256, engine)
            cache.mkdir(parents=True, exist_ok=True)
            out |= {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
            if self.timing_cache:
                out |= {"trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache)}
        return out


def trt_cache_dir(cache_root: str | os.PathLike, model_sha256: str,
                  engine_options: Mapping[str, str]) -> Path:
    """Engine cache folder of one model file and one set of engine options:
    ``<cache_root>/<sha256[:16]>-<options key>``.

    ONNX Runtime names a cached engine by the model's file name, node names and
    versions, not its weights: a retrained model exported to the same path would load
    the old engine. Keying the folder by the weights and by the options that shape the
    engine makes a stale engine unreachable. The device and the cache switches do not
    enter the key, so the GPUs of a node share the folder.
    """
    engine = {k: str(v) for k, v in engine_options.items() if k not in _TRT_CACHE_KEYS}
    key = hashlib.sha256(json.dumps(engine, sort_keys=True).encode()).hexdigest()[:8]
    return Path(cache_root) / f"{model_sha256[:16]}-{key}"


def cuda_provider_options(options: Mapping[str, object] | None = None,
                          cuda_graph: bool = False) -> dict[str, str]:
    """CUDA EP options (config ``infer.cuda``) plus ``enable_cuda_graph`` when asked."""
    out = {k: str(v) for k, v in (options or {}).items()}
    if cuda_graph:
        out["enable_cuda_graph"] = "1"
    return out


def select_model_file(model_path: Path, precision: str, first_provider: str) -> Path:
    """The ONNX file to run on ``first_provider``: ``model_path`` or its
    ``<stem>_fp16.onnx`` twin.

    ``fp16`` asks for the twin (it must exist); ``auto`` takes it when the CUDA EP leads
    and the twin exists; ``fp32`` (and CPU or TensorRT under ``auto``) keeps
    ``model_path``. Call it with the provider the session really runs on.

    Raises:
        ModelError: unknown ``precision``, or ``fp16`` without the twin.
    """
    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r}: expected one of {PRECISIONS}")
    twin = fp16_twin_path(model_path)
    if model_path.stem.endswith("_fp16") or precision == "fp32":
        return model_path
    if precision == "fp16":
        if not twin.is_file():
            raise ModelError(f"{twin}: fp16 model not found (export writes it beside "
                             f"{model_path.name})")
        return twin
    return twin if first_provider == PROVIDERS["cuda"] and twin.is_file() else model_path
