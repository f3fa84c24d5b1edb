"""The predict stage: one entrance, per tile and per batch of tiles.

:func:`load_model` opens the ONNX Runtime session with a
:class:`~jointseg.inference.settings.PredictSettings` (providers, precision and the
fp16 twin, CUDA graphs, TensorRT); :func:`run_predict` maps one scene with it and
writes the tile's products (:func:`~jointseg.inference.products.predict_tile`). The
per-tile command loads the model and maps its one scene; a batch loads it once and
maps each of its tiles with the same :func:`run_predict` and the same settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import onnxruntime as ort

from jointseg.inference.products import (
    ProductPaths,
    predict_tile,
    predictor_for,
    training_tags,
)
from jointseg.inference.providers import ModelError, TensorRTOptions
from jointseg.inference.scene import Scene, open_scene
from jointseg.inference.session import Predictor, SessionInfo, make_session
from jointseg.inference.settings import PredictSettings
from jointseg.inference.tiling import PIPELINE_DEPTH


@dataclass(frozen=True)
class LoadedModel:
    """An open model: the session, what :func:`make_session` set up, and the
    :class:`Predictor` that runs it (one per model, so CUDA graphs are captured once)."""

    session: ort.InferenceSession
    info: SessionInfo
    predictor: Predictor


def load_model(model_path: str | os.PathLike, settings: PredictSettings) -> LoadedModel:
    """Open ``model_path`` (or its ``_fp16`` twin, by ``settings.precision`` and the
    provider the session runs on) and the one :class:`Predictor` that serves it for the
    life of a batch: on a GPU it pads every batch to ``settings.batch_size`` and binds
    its device buffers once, on ``infer.cuda.device_id``.

    Raises:
        ProviderError: the session would not run on the first provider asked for and
            ``settings.allow_cpu_fallback`` does not allow the CPU (one line).
        ModelError: the model is missing, not ONNX, or lacks the JointSeg interface.
    """
    trt = TensorRTOptions(fp16=settings.trt_fp16, cache_root=settings.trt_cache_root,
                          timing_cache=settings.trt_timing_cache)
    session, info = make_session(
        model_path, providers=settings.providers, threads=settings.threads,
        cuda_options=settings.cuda_options, tensorrt=trt, precision=settings.precision,
        cuda_graph=settings.cuda_graph, allow_cpu_fallback=settings.allow_cpu_fallback,
    )  # fmt: skip
    return LoadedModel(session, info, predictor_for(session, info, settings.batch_size))


def run_predict(
    model: LoadedModel,
    scene: str | os.PathLike,
    outputs: ProductPaths,
    settings: PredictSettings,
    *,
    progress: bool = False,
    pipeline_depth: int = PIPELINE_DEPTH,
) -> ProductPaths:
    """Map one scene (a composite ``_10m.tif`` or a band folder) to ``outputs``.

    ``outputs.prob`` / ``outputs.sr`` None: that product is not written (and SR is not
    asked of the session). Reads, ONNX Runtime and writes overlap in threads
    (:mod:`jointseg.inference.tiling`); ``pipeline_depth`` 0 runs them one after the
    other (the same bytes; for benchmarks and tests).

    Raises:
        ModelError: the model was trained on simulated data, the scene is real and
            ``settings.allow_simulated_model`` is off (nothing is written).
        SceneError: the scene cannot be read.
    """
    with open_scene(scene) as opened:
        opened.mask_snow = settings.mask_snow
        check_training_data(model.info, opened, settings)
        return predict_tile(
            model.predictor, opened, outputs.binary, prob_output=outputs.prob,
            sr_output=outputs.sr, threshold=settings.threshold, window=settings.window_10m,
            overlap=settings.overlap_10m, batch_size=settings.batch_size, info=model.info,
            compress=settings.compress, progress=progress, pipeline_depth=pipeline_depth,
        )  # fmt: skip


def check_training_data(info: SessionInfo, scene: Scene, settings: PredictSettings) -> None:
    """Refuse to map a real scene with a model trained on simulated data, unless allowed.

    Raises:
        ModelError: one line naming the model file and its training data.
    """
    tags = training_tags(info.model)
    if (tags["MODEL_TRAINING_SIMULATED"] == "true" and not scene.simulated
            and not settings.allow_simulated_model):
        raise ModelError(
            f"{info.model_path}: trained on simulated data (training data "
            f"{tags['MODEL_TRAINING_DATA']}); mapping real scenes with it needs "
            "infer.allow_simulated_model: true")
