"""ONNX Runtime GPU options on a CPU-only machine: option building, fallback, fixed batches,
IO binding and the CUDA-graph buffer path (run with CPU buffers), and snow left as nodata.

None of this measures a GPU: the CUDA and TensorRT providers are absent here, so the
tests check what can be checked without them (options, fallbacks, bit-equal outputs).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from jointseg.inference.providers import (
    PROVIDERS,
    ModelError,
    TensorRTOptions,
    cuda_provider_options,
    select_model_file,
)
from jointseg.inference.scene import from_arrays, snow_mask_10m
from jointseg.inference.session import Predictor, make_session
from jointseg.inference.tiling import iter_blocks, upsample_10

MODEL = Path(__file__).parent / "data" / "models" / "tiny_rf.onnx"


def test_tensorrt_options_fp16_and_caches(tmp_path: Path) -> None:
    sha = "ab" * 32
    assert TensorRTOptions(fp16=False).provider_options(sha) == {
        "trt_fp16_enable": "False", "device_id": "0"}
    root = tmp_path / "trt"
    opts = TensorRTOptions(True, root, extra=(("trt_max_workspace_size", 1 << 30),))
    got = opts.provider_options(sha, device_id=3)
    cache = Path(got["trt_engine_cache_path"])
    assert got == {
        "trt_fp16_enable": "True", "trt_max_workspace_size": str(1 << 30), "device_id": "3",
        "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache),
    }
    assert cache.is_dir() and cache.parent == root and cache.name.startswith(sha[:16] + "-")
    no_timing = TensorRTOptions(True, root, timing_cache=False).provider_options(sha)
    assert "trt_timing_cache_enable" not in no_timing


def test_cuda_options_graph_flag() -> None:
    assert cuda_provider_options({"device_id": 1}) == {"device_id": "1"}
    assert cuda_provider_options(None, cuda_graph=True) == {"enable_cuda_graph": "1"}


def test_select_model_file_fp16_twin(tmp_path: Path) -> None:
    fp32 = tmp_path / "m.onnx"
    shutil.copy(MODEL, fp32)
    cuda, cpu, trt = PROVIDERS["cuda"], PROVIDERS["cpu"], PROVIDERS["tensorrt"]
    assert select_model_file(fp32, "auto", cuda) == fp32  # no twin yet
    with pytest.raises(ModelError, match="m_fp16.onnx: fp16 model not found"):
        select_model_file(fp32, "fp16", cpu)
    shutil.copy(MODEL, tmp_path / "m_fp16.onnx")
    assert select_model_file(fp32, "auto", cuda) == tmp_path / "m_fp16.onnx"
    assert select_model_file(fp32, "auto", cpu) == fp32
    assert select_model_file(fp32, "auto", trt) == fp32  # TensorRT builds fp16 itself
    assert select_model_file(fp32, "fp16", cpu) == tmp_path / "m_fp16.onnx"
    assert select_model_file(fp32, "fp32", cuda) == fp32
    with pytest.raises(ModelError, match="precision 'half'"):
        select_model_file(fp32, "half", cpu)
    _, info = make_session(fp32, providers=("cpu",), threads=1, precision="fp16")
    assert info.precision == "fp16" and info.model_path.name == "m_fp16.onnx"


def test_gpu_providers_fall_back_to_cpu_with_warnings(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    session, info = make_session(
        MODEL, providers=("tensorrt", "cuda", "cpu"), threads=1, cuda_graph=True,
        tensorrt=TensorRTOptions(True, tmp_path / "trt"), cuda_options={"device_id": 0},
        allow_cpu_fallback=True)
    assert info.providers == (PROVIDERS["cpu"],)
    assert not info.io_binding and not info.cuda_graph and info.precision == "fp32"
    text = caplog.text
    assert "TensorrtExecutionProvider requested but not available" in text
    assert "CUDAExecutionProvider requested but not available" in text


@pytest.fixture(scope="module")
def windows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x10 = rng.uniform(0, 4000, (3, 5, 16, 16)).astype(np.float32)
    x10[:, 4] = 1
    return x10, rng.uniform(0, 4000, (3, 6, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("mode", ["io_binding", "fixed_batch", "graph_buffers"])
def test_predictor_modes_match_plain_run(windows, mode: str) -> None:
    session, _ = make_session(MODEL, providers=("cpu",), threads=1)
    x10, x20 = windows
    ref_logit, ref_sr = Predictor(session).run(x10, x20)
    kw = {"io_binding": {"io_binding": True},
          "fixed_batch": {"fixed_batch": 4},
          "graph_buffers": {"io_binding": True, "fixed_batch": 4, "cuda_graph": True}}[mode]
    p = Predictor(session, **kw)
    for n in (3, 2):  # a short last batch is padded to the fixed size, outputs cut back
        logit, sr = p.run(x10[:n], x20[:n])
        assert logit.shape == (n, 1, 160, 160) and sr.shape == (n, 4, 160, 160)
        np.testing.assert_allclose(logit, ref_logit[:n], rtol=0, atol=1e-5)
        np.testing.assert_allclose(sr, ref_sr[:n], rtol=0, atol=1e-6)
    logit, sr = p.run(x10[:1], x20[:1], with_sr=False)
    assert sr is None
    np.testing.assert_allclose(logit, ref_logit[:1], rtol=0, atol=1e-5)
    if mode == "graph_buffers":  # fixed shapes: another window size is refused
        with pytest.raises(ValueError, match="captured shapes"):
            p.run(x10[:1, :, :8, :8], x20[:1, :, :4, :4])
    with pytest.raises(ValueError, match="needs fixed_batch"):
        Predictor(session, cuda_graph=True)


def test_snow_is_nodata_in_predict(tmp_path: Path) -> None:
    """A snow field (old-snow DN of the simulator's spectrum) is left unpredicted."""
    x10 = np.zeros((5, 24, 24), np.float32)
    x20 = np.zeros((6, 12, 12), np.float32)
    x10[:4] = np.array([300, 500, 300, 3000])[:, None, None]   # vegetation
    x20[:] = np.array([700, 2000, 2600, 3200, 1500, 700])[:, None, None]
    x10[:4, :, :8] = np.array([8000, 8000, 7800, 6700])[:, None, None]
    x20[:, :, :4] = np.array([7600, 7300, 7000, 6400, 1200, 900])[:, None, None]
    x10[4] = 1
    snow = snow_mask_10m(x10, x20)
    assert snow[:, :8].all() and not snow[:, 8:].any()
    session, _ = make_session(MODEL, providers=("cpu",), threads=1)
    for mask_snow in (True, False):
        scene = from_arrays(x10, x20)
        scene.mask_snow = mask_snow
        valid = np.zeros((240, 240), bool)
        for b in iter_blocks(session, scene, window=12, overlap=2):
            rows, cols = b.prob.shape
            valid[b.row_off:b.row_off + rows, b.col_off:b.col_off + cols] = upsample_10(
                b.valid_10m)
        expected = ~upsample_10(snow) if mask_snow else np.ones_like(valid)
        np.testing.assert_array_equal(valid, expected)
