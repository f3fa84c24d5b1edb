"""Settings of the predict stage: config ``infer`` as one typed object.

Built with :meth:`PredictSettings.from_config` (``config["infer"]``, schema defaults
filled; see :mod:`jointseg.settings`) and taken whole by
:func:`jointseg.inference.predict.load_model` and
:func:`jointseg.inference.predict.run_predict`, per tile and per batch alike. Field names
are ``jointseg predict``'s option names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from jointseg.settings import StageSettings

#: folder of the shared TensorRT engine caches under ``resources_dir``
TRT_CACHE_DIR = "trt-cache"


@dataclass(frozen=True)
class PredictSettings(StageSettings):
    """``jointseg predict``: config ``infer``.

    Attributes:
        providers: ONNX Runtime providers (``tensorrt``, ``cuda``, ``cpu``).
        window_10m, overlap_10m, batch_size: tiling
            (:func:`~jointseg.inference.tiling.iter_blocks`).
        threshold: cut of the binary map; None = the model's own.
        threads: ONNX Runtime intra-op threads (the rule's ``threads``).
        sr_quicklook: also write ``<tile>_sr.tif`` beside ``<tile>_isa.tif``.
        cuda: CUDA EP options (``infer.cuda``; zero values are left to ONNX Runtime).
        precision: ``auto`` | ``fp32`` | ``fp16`` (``fp16`` runs ``<model>_fp16.onnx``).
        cuda_graph: CUDA EP CUDA graphs.
        trt_fp16, trt_engine_cache, trt_timing_cache: ``infer.tensorrt``.
        mask_snow: leave snow unpredicted (nodata).
        compress: COG compression of the products.
        allow_simulated_model: map real scenes with a model trained on simulated data.
        allow_cpu_fallback: a GPU provider asked for may give way to the CPU (``cpu``
            listed too): True, False, or None = only where no GPU is visible.
        resources_dir: config ``resources_dir``; the TensorRT engine caches default to
            ``<resources_dir>/trt-cache`` (:meth:`trt_cache_root`).
    """

    SECTION: ClassVar[str] = "infer"
    SHARED: ClassVar[dict[str, str]] = {"resources_dir": "resources_dir"}

    providers: tuple[str, ...]
    window_10m: int
    overlap_10m: int
    batch_size: int
    threshold: float | None
    threads: int
    sr_quicklook: bool
    cuda: dict[str, Any] = field(hash=False)
    precision: str
    cuda_graph: bool
    trt_fp16: bool
    trt_engine_cache: str | None
    trt_timing_cache: bool
    mask_snow: bool
    compress: str
    allow_simulated_model: bool
    allow_cpu_fallback: bool | None
    resources_dir: str

    @classmethod
    def _from_section(cls, s: dict[str, Any], shared: dict[str, Any]) -> PredictSettings:
        t = s["tensorrt"]
        return cls(
            providers=tuple(s["providers"]), window_10m=s["window_10m"],
            overlap_10m=s["overlap_10m"], batch_size=s["batch_size"],
            threshold=None if s["threshold"] is None else float(s["threshold"]),
            threads=s["threads"], sr_quicklook=s["sr_quicklook"], cuda=dict(s["cuda"]),
            precision=s["precision"], cuda_graph=s["cuda_graph"], trt_fp16=t["fp16"],
            trt_engine_cache=t["engine_cache_dir"], trt_timing_cache=t["timing_cache"],
            mask_snow=s["mask_snow"], compress=s["compress"],
            allow_simulated_model=s["allow_simulated_model"],
            allow_cpu_fallback=s["allow_cpu_fallback"],
            resources_dir=str(shared["resources_dir"]),
        )  # fmt: skip

    @property
    def cuda_options(self) -> dict[str, Any]:
        """CUDA EP options to pass: ``cuda`` without its zero / empty values."""
        return {k: v for k, v in self.cuda.items() if v}

    @property
    def trt_cache_root(self) -> Path:
        """Where TensorRT engine caches go: ``trt_engine_cache``, else the shared
        ``<resources_dir>/trt-cache`` (one folder per model file and engine options
        below it, :func:`~jointseg.inference.providers.trt_cache_dir`)."""
        if self.trt_engine_cache:
            return Path(self.trt_engine_cache)
        return Path(self.resources_dir) / TRT_CACHE_DIR
