"""ONNX Runtime execution providers: names, fallback order and per-provider options.

Short names ``tensorrt``, ``cuda``, ``cpu`` (config ``infer.providers``) map to ONNX
Runtime's provider names; :func:`resolve_providers` keeps the ones this onnxruntime
has, in the order TensorRT -> CUDA -> CPU, warning about the rest. The option
builders turn the config's ``infer.cuda`` / ``infer.tensorrt`` sections into provider
options, and :func:`select_model_file` picks the fp32 model or its fp16 twin.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_PRIORITY = ("tensorrt", "cuda", "cpu")
#: ``precision`` values of :func:`make_session`.
PRECISIONS = ("auto", "fp32", "fp16")


class ModelError(ValueError):
    """The ONNX model cannot be used for inference (missing file, metadata or interface)."""


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


def tensorrt_provider_options(
    fp16: bool = True, engine_cache_dir: str | os.PathLike | None = None,
    timing_cache: bool = True, extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """TensorRT EP options (config ``infer.tensorrt``): fp16 engines and, with
    ``engine_cache_dir``, engine and timing caches there (built once per model, GPU and
    input shape; later runs load them). ``extra`` adds raw ``trt_*`` options."""
    out = {"trt_fp16_enable": "True" if fp16 else "False"}
    if engine_cache_dir is not None:
        cache = Path(engine_cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        out |= {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
        if timing_cache:
            out |= {"trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache)}
    out |= {k: str(v) for k, v in (extra or {}).items()}
    return out


def cuda_provider_options(options: Mapping[str, object] | None = None,
                          cuda_graph: bool = False) -> dict[str, str]:
    """CUDA EP options (config ``infer.cuda``) plus ``enable_cuda_graph`` when asked."""
    out = {k: str(v) for k, v in (options or {}).items()}
    if cuda_graph:
        out["enable_cuda_graph"] = "1"
    return out


def select_model_file(model_path: Path, precision: str, first_provider: str) -> Path:
    """The ONNX file to run: ``model_path`` or its ``<stem>_fp16.onnx`` twin.

    ``fp16`` asks for the twin (it must exist); ``auto`` takes it when the CUDA EP leads
    and the twin exists; ``fp32`` (and CPU or TensorRT under ``auto``) keeps ``model_path``.

    Raises:
        ModelError: unknown ``precision``, or ``fp16`` without the twin.
    """
    if precision not in PRECISIONS:
        raise ModelError(f"precision {precision!r}: expected one of {PRECISIONS}")
    twin = model_path.with_name(model_path.stem + "_fp16.onnx")
    if model_path.stem.endswith("_fp16") or precision == "fp32":
        return model_path
    if precision == "fp16":
        if not twin.is_file():
            raise ModelError(f"{twin}: fp16 model not found (export writes it beside "
                             f"{model_path.name})")
        return twin
    return twin if first_provider == PROVIDERS["cuda"] and twin.is_file() else model_path
