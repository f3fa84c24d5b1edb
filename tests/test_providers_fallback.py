"""A GPU run never silently becomes a CPU run (issue 23 item 1), and the TensorRT engine
cache is keyed by the weights and the engine options (item 2).

No GPU here: the onnxruntime installed has no CUDA EP, which is the first case (the EP
is missing). The second case, a CUDA EP that is listed by ``get_available_providers()``
but fails to start (cuDNN/cuBLAS missing, onnxruntime #21825), is what this onnxruntime
does when told the CUDA EP is available: it logs and builds a CPU session.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from jointseg.batch import tile_files
from jointseg.inference import providers
from jointseg.inference.predict import load_model
from jointseg.inference.providers import (
    PROVIDERS,
    ProviderError,
    TensorRTOptions,
    check_leading_provider,
    cpu_fallback_allowed,
    requested_providers,
    trt_cache_dir,
)
from jointseg.inference.session import make_session
from jointseg.inference.settings import PredictSettings
from tests.test_predict_stage import (
    SETTINGS,
    TILES,
    fp16_twin,
    predict_batch,
    predict_per_tile,
    write_composite,
)

MODEL = Path(__file__).parent / "data" / "models" / "tiny_rf.onnx"
CUDA, CPU, TRT = PROVIDERS["cuda"], PROVIDERS["cpu"], PROVIDERS["tensorrt"]
#: the predict settings of test_predict_stage, providers left to each test
BASE = {k: v for k, v in SETTINGS.items() if k not in ("providers", "sr_quicklook")}
HAS_CUDA = CUDA in ort.get_available_providers()
pytestmark = pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")
no_cuda_here = pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has the CUDA EP")


@pytest.fixture
def cuda_listed_but_broken(monkeypatch):
    """``get_available_providers()`` lists the CUDA EP, which then fails to start (the
    session is built on the CPU), on a node with a visible GPU."""
    if HAS_CUDA:
        pytest.skip("this onnxruntime has the CUDA EP")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(providers, "gpu_visible", lambda: True)


def test_fallback_rule() -> None:
    assert requested_providers(["cpu", "cuda"]) == [CUDA, CPU]  # priority order
    assert requested_providers(["cuda", "tensorrt"]) == [TRT, CUDA]
    assert not cpu_fallback_allowed([CUDA], True)  # cpu not asked for
    assert cpu_fallback_allowed([CUDA, CPU], True)
    assert not cpu_fallback_allowed([CUDA, CPU], False)
    check_leading_provider([TRT, CUDA], CUDA, "m.onnx", False, "failed")  # GPU -> GPU: logged
    check_leading_provider([CPU], CPU, "m.onnx", False, "")
    with pytest.raises(ProviderError, match="add cpu to infer.providers"):
        check_leading_provider([CUDA], CPU, "m.onnx", True, "failed")
    with pytest.raises(ProviderError, match="allow_cpu_fallback is false"):
        check_leading_provider([CUDA, CPU], CPU, "m.onnx", False, "failed")


def test_null_allows_the_cpu_only_where_no_gpu_is_visible(monkeypatch) -> None:
    monkeypatch.setattr(providers, "gpu_visible", lambda: False)
    assert cpu_fallback_allowed([CUDA, CPU], None)
    monkeypatch.setattr(providers, "gpu_visible", lambda: True)
    assert not cpu_fallback_allowed([CUDA, CPU], None)
    with pytest.raises(ProviderError, match="this machine has a GPU"):
        check_leading_provider([CUDA, CPU], CPU, "m.onnx", None, "failed")


def test_gpu_visible_reads_cuda_visible_devices(monkeypatch) -> None:
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert providers.gpu_visible() is False


@no_cuda_here
def test_cuda_only_without_the_cuda_ep_stops_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="CUDAExecutionProvider is not in this onnxruntime"):
        make_session(MODEL, providers=("cuda",), allow_cpu_fallback=True)
    c10 = write_composite(tmp_path / "c" / f"{TILES[0]}_10m.tif", 0)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "jointseg", "predict", "--model", str(MODEL),
                        "--input", str(c10), "--output", str(out / "t_isa.tif"),
                        "--providers", "cuda", "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # no warning before it, no traceback
    assert lines[0].startswith(f"Error: {MODEL}: CUDAExecutionProvider is not in this "
                               "onnxruntime"), r.stderr
    assert "add cpu to infer.providers" in lines[0]
    assert not out.exists()  # nothing written


def test_a_cuda_ep_that_fails_to_start_is_refused(models: Path, cuda_listed_but_broken,
                                                  tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="could not be initialised.*this machine has a GPU"):
        make_session(models, providers=("cuda", "cpu"), precision="auto")
    with pytest.raises(ProviderError, match="allow_cpu_fallback is false"):
        make_session(models, providers=("cuda", "cpu"), allow_cpu_fallback=False)
    # the same through the command line: one line, nothing written
    c10 = write_composite(tmp_path / "c" / f"{TILES[0]}_10m.tif", 0)
    out = tmp_path / "out"
    r = predict_per_tile(models, c10, out, BASE)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "CUDAExecutionProvider could not be initialised" in lines[0]
    assert not out.exists() or not list(out.iterdir())


def test_a_batch_stops_at_once_with_the_same_line(models: Path, cuda_listed_but_broken,
                                                  tmp_path: Path) -> None:
    res = tmp_path / "results"
    for i, t in enumerate(TILES):
        write_composite(tile_files("composite", t, "r", 2021, res)["c10"], i)
    r = predict_batch(models, res, BASE)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "CUDAExecutionProvider could not be initialised" in lines[0]
    assert not (res / "manifest.json").exists() and not (res / "r/2021/isa").exists()
    r = predict_batch(models, res, {**BASE, "allow_cpu_fallback": True})
    assert r.exit_code == 0, r.output


def test_allowed_fallback_logs_and_runs_the_fp32_graph(models: Path, cuda_listed_but_broken,
                                                       caplog, tmp_path: Path) -> None:
    """The fp16 twin is chosen for the CUDA EP; once the session is known to run on the
    CPU, the fp32 file is opened instead (a CPU runs the twin through casts)."""
    caplog.set_level(logging.WARNING)
    settings = PredictSettings.from_config({"allow_cpu_fallback": True, "threads": 1,
                                            "resources_dir": str(tmp_path / "res")})
    assert settings.providers == ("cuda", "cpu") and settings.precision == "auto"
    model = load_model(models, settings)
    assert model.info.providers == (CPU,) and model.session.get_providers() == [CPU]
    assert model.info.precision == "fp32" and model.info.model_path == models
    assert not model.info.io_binding and not model.predictor.io_binding
    assert "could not be initialised" in caplog.text and "running on the CPU" in caplog.text
    c10 = write_composite(tmp_path / "c" / f"{TILES[0]}_10m.tif", 0)
    r = predict_per_tile(models, c10, tmp_path / "out", {**BASE, "allow_cpu_fallback": True})
    assert r.exit_code == 0, r.output


def test_explicit_fp16_keeps_the_twin_after_a_fallback(models: Path,
                                                        cuda_listed_but_broken) -> None:
    _, info = make_session(models, providers=("cuda", "cpu"), precision="fp16",
                           allow_cpu_fallback=True)
    assert info.precision == "fp16" and info.providers == (CPU,)


@no_cuda_here
def test_default_settings_map_on_a_machine_without_gpu(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(providers, "gpu_visible", lambda: False)
    c10 = write_composite(tmp_path / "c" / f"{TILES[0]}_10m.tif", 0)
    r = predict_per_tile(MODEL, c10, tmp_path / "out", BASE)
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(providers, "gpu_visible", lambda: True)  # a GPU node, CPU onnxruntime
    r = predict_per_tile(MODEL, c10, tmp_path / "out2", BASE)
    assert r.exit_code == 1 and "this machine has a GPU" in r.output


# --- TensorRT engine caches (item 2) ---------------------------------------------------


def test_trt_cache_dir_keyed_by_weights_and_engine_options(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx"  # same file name
    a.parent.mkdir()
    b.parent.mkdir()
    shutil.copy(MODEL, a)
    fp16_twin(MODEL, b)  # other weights
    from jointseg.io import sha256_file

    root = tmp_path / "trt-cache"
    opts = TensorRTOptions(fp16=True, cache_root=root)
    pa = opts.provider_options(sha256_file(a))
    pb = opts.provider_options(sha256_file(b))
    assert pa["trt_engine_cache_path"] != pb["trt_engine_cache_path"]
    assert Path(pa["trt_engine_cache_path"]).parent == root
    assert Path(pa["trt_engine_cache_path"]).name.startswith(sha256_file(a)[:16])
    assert pa["trt_timing_cache_path"] == pa["trt_engine_cache_path"]
    assert Path(pa["trt_engine_cache_path"]).is_dir()
    # an engine option changes the folder; the device and the cache switches do not
    fp32 = TensorRTOptions(fp16=False, cache_root=root).provider_options(sha256_file(a))
    assert fp32["trt_engine_cache_path"] != pa["trt_engine_cache_path"]
    ws = TensorRTOptions(cache_root=root, extra=(("trt_max_workspace_size", "1073741824"),))
    assert ws.provider_options(sha256_file(a))["trt_engine_cache_path"] not in (
        pa["trt_engine_cache_path"], fp32["trt_engine_cache_path"])
    on_gpu1 = TensorRTOptions(cache_root=root, timing_cache=False).provider_options(
        sha256_file(a), device_id=1)
    assert on_gpu1["trt_engine_cache_path"] == pa["trt_engine_cache_path"]
    assert on_gpu1["device_id"] == "1" and "trt_timing_cache_path" not in on_gpu1
    key = Path(pa["trt_engine_cache_path"]).name.split("-")[1]
    assert trt_cache_dir(root, "f" * 64, {"trt_fp16_enable": "True"}) == root / f"{'f' * 16}-{key}"
    assert TensorRTOptions(cache_root=None).provider_options("0" * 64) == {
        "trt_fp16_enable": "True", "device_id": "0"}


def test_trt_cache_defaults_under_resources_dir(tmp_path: Path) -> None:
    s = PredictSettings.from_config({"resources_dir": str(tmp_path)})
    assert s.trt_engine_cache is None and s.trt_cache_root == tmp_path / "trt-cache"
    s = PredictSettings.from_config({"tensorrt": {"engine_cache_dir": str(tmp_path / "x")}})
    assert s.trt_cache_root == tmp_path / "x"
    # what the rules pass: the infer section plus resources_dir
    from jointseg.settings import stage_settings_section

    word = stage_settings_section({"resources_dir": "/data/res", "infer": {}}, "predict")
    assert word == {"resources_dir": "/data/res"}
    assert PredictSettings.from_config(word).trt_cache_root == Path("/data/res/trt-cache")


def test_tensorrt_session_gets_the_keyed_cache(models: Path, monkeypatch,
                                               tmp_path: Path) -> None:
    """The options make_session hands ONNX Runtime for a TensorRT session name the
    folder of the file it opens (TensorRT listed as available; this ORT runs it on CPU)."""
    if TRT in ort.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CPU])
    seen = {}
    real = ort.InferenceSession

    def spy(path, sess_options=None, providers=None):
        seen.update(dict(providers))
        return real(path, sess_options=sess_options, providers=[CPU])

    monkeypatch.setattr(ort, "InferenceSession", spy)
    root = tmp_path / "cache"
    _, info = make_session(models, providers=("tensorrt", "cpu"), allow_cpu_fallback=True,
                           tensorrt=TensorRTOptions(cache_root=root),
                           cuda_options={"device_id": 2})
    from jointseg.io import sha256_file

    path = Path(seen[TRT]["trt_engine_cache_path"])
    assert path.parent == root and path.name.startswith(sha256_file(models)[:16])
    assert seen[TRT]["device_id"] == "2" and info.model_path == models  # TRT: fp32 graph


def test_cuda_libraries_are_preloaded_only_for_a_gpu_provider(models: Path, monkeypatch,
                                                              cuda_listed_but_broken,
                                                              tmp_path: Path) -> None:
    """onnxruntime.preload_dlls() (the `cuda`/`cudnn` extras' libraries) runs before a
    session that asks for the CUDA EP, and never for a CPU one."""
    calls: list[int] = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append(1), raising=False)
    load_model(models, PredictSettings.from_config({"allow_cpu_fallback": True, "threads": 1,
                                                    "resources_dir": str(tmp_path / "r")}))
    assert calls == [1]
    load_model(models, PredictSettings.from_config({"providers": ["cpu"], "threads": 1}))
    assert calls == [1]
