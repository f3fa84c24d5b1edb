"""One Predictor per session for the life of a batch, its device buffers allocated once,
on the GPU that ``infer.cuda.device_id`` names (issue 23 item 3).

No GPU here. A stand-in "GPU" session wraps a real CPU session: it reports the CUDA EP
with the options ONNX Runtime was given, and every OrtValue and output binding asked
for on ``cuda:N`` is recorded and made on the CPU, so the whole predict path runs
through the device code (IO binding, fixed batches, CUDA-graph buffers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import rasterio

from jointseg.inference import session as session_mod
from jointseg.inference.predict import load_model, run_predict
from jointseg.inference.products import ProductPaths
from jointseg.inference.providers import PROVIDERS
from jointseg.inference.session import Predictor, session_device_id
from jointseg.inference.settings import PredictSettings
from tests.test_predict_stage import SETTINGS, TILES, write_composite

MODEL = Path(__file__).parent / "data" / "models" / "tiny_rf.onnx"
CUDA, CPU = PROVIDERS["cuda"], PROVIDERS["cpu"]
_REAL_ORTVALUE = ort.OrtValue
_REAL_SESSION = ort.InferenceSession


class _Binding:
    """A real CPU IO binding that records the devices outputs are bound on."""

    def __init__(self, real, log: list) -> None:
        self.real, self.log = real, log

    def bind_ortvalue_input(self, name, value) -> None:
        self.real.bind_ortvalue_input(name, value)

    def bind_ortvalue_output(self, name, value) -> None:
        self.real.bind_ortvalue_output(name, value)

    def bind_output(self, name, device, device_id) -> None:
        self.log.append(("bind_output", device, device_id))
        self.real.bind_output(name, "cpu", 0)

    def copy_outputs_to_cpu(self):
        return self.real.copy_outputs_to_cpu()


class _GpuSession:
    """A CPU session that reports the CUDA EP with the given provider options."""

    def __init__(self, real, options: dict, log: list) -> None:
        self.real, self.options, self.log = real, options, log

    def get_providers(self):
        return [CUDA, CPU]

    def get_provider_options(self):
        return {CUDA: dict(self.options.get(CUDA, {})), CPU: {}}

    def io_binding(self):
        return _Binding(self.real.io_binding(), self.log)

    def run_with_iobinding(self, binding) -> None:
        self.log.append(("run",))
        self.real.run_with_iobinding(binding.real)

    def __getattr__(self, name):  # inputs, outputs, metadata, run
        return getattr(self.real, name)


class _OrtValues:
    """``ort.OrtValue`` whose factories record the device asked for and make CPU values."""

    log: list = []

    @classmethod
    def ortvalue_from_numpy(cls, arr, device="cpu", device_id=0):
        cls.log.append(("from_numpy", device, device_id))
        return _REAL_ORTVALUE.ortvalue_from_numpy(arr.copy())

    @classmethod
    def ortvalue_from_shape_and_type(cls, shape, dtype, device="cpu", device_id=0):
        cls.log.append(("from_shape", device, device_id))
        return _REAL_ORTVALUE.ortvalue_from_shape_and_type(shape, dtype, "cpu", 0)


@pytest.fixture
def fake_gpu(monkeypatch) -> list:
    """ORT lists the CUDA EP and sessions open as :class:`_GpuSession`; returns the log
    of device calls (the CUDA EP options ORT was given are logged first)."""
    log: list = []
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])

    def open_session(path, sess_options=None, providers=None):
        options = dict(providers)
        log.append(("session", options.get(CUDA)))
        real = _REAL_SESSION(path, sess_options=sess_options, providers=[CPU])
        return _GpuSession(real, options, log) if CUDA in options else real

    monkeypatch.setattr(ort, "InferenceSession", open_session)
    monkeypatch.setattr(_OrtValues, "log", log)
    monkeypatch.setattr(session_mod.ort, "OrtValue", _OrtValues)
    return log


def _settings(tmp_path: Path, **over) -> PredictSettings:
    section = {**SETTINGS, "providers": ["cuda"], "sr_quicklook": False,
               "resources_dir": str(tmp_path / "res"), **over}
    return PredictSettings.from_config(section)


def _map_tiles(model, tmp_path: Path, settings: PredictSettings, name: str) -> list[np.ndarray]:
    probs = []
    for i, tile in enumerate(TILES):
        c10 = write_composite(tmp_path / "c" / f"{tile}_10m.tif", i)
        out = ProductPaths(tmp_path / name / f"{tile}_isa.tif",
                           tmp_path / name / f"{tile}_prob.tif", None)
        run_predict(model, c10, out, settings)
        with rasterio.open(out.prob) as ds:
            probs.append(ds.read(1))
    return probs


def test_device_id_reaches_the_session_and_every_binding(fake_gpu, tmp_path: Path) -> None:
    settings = _settings(tmp_path, cuda={"device_id": 3})
    model = load_model(MODEL, settings)
    assert fake_gpu[0] == ("session", {"device_id": "3", "cudnn_conv_algo_search": "HEURISTIC"})
    assert model.info.device_id == 3 and model.info.io_binding
    assert model.predictor.device == "cuda" and model.predictor.device_id == 3
    assert model.predictor.fixed_batch == settings.batch_size  # one shape on a GPU
    x10 = np.ones((1, 5, 24, 24), np.float32)
    x20 = np.ones((1, 6, 12, 12), np.float32)
    model.predictor.run(x10, x20)  # fixed batch: buffers allocated once
    Predictor(model.session).run(x10, x20)  # no fixed batch: bound afresh per batch
    devices = {e[1:] for e in fake_gpu if e[0] in ("from_numpy", "from_shape", "bind_output")}
    assert devices == {("cuda", 3)}, fake_gpu
    assert {e[0] for e in fake_gpu} >= {"from_numpy", "bind_output", "from_shape"}


def test_two_tiles_through_one_predictor_reuse_the_graph_buffers(fake_gpu,
                                                                 tmp_path: Path) -> None:
    settings = _settings(tmp_path, cuda={"device_id": 1}, cuda_graph=True)
    model = load_model(MODEL, settings)
    assert fake_gpu[0][1]["enable_cuda_graph"] == "1"
    assert model.info.cuda_graph and model.predictor.cuda_graph
    probs = _map_tiles(model, tmp_path, settings, "gpu")
    buffers = model.predictor._buffers
    allocations = [e for e in fake_gpu if e[0] in ("from_shape", "from_numpy")]
    # 2 inputs + 2 outputs, once for both tiles, all on cuda:1; several runs per tile
    assert allocations == [("from_shape", "cuda", 1)] * 4, fake_gpu
    assert sum(e[0] == "run" for e in fake_gpu) >= 2 * len(TILES)
    assert buffers is not None and buffers.shapes["s2_10m"][0] == settings.batch_size
    # a third tile still binds the same buffers at the same addresses
    ptrs = {k: v.data_ptr() for k, v in buffers.inputs.items()}
    _map_tiles(model, tmp_path, settings, "again")
    assert model.predictor._buffers is buffers
    assert {k: v.data_ptr() for k, v in buffers.inputs.items()} == ptrs
    # and the maps are the CPU session's maps
    cpu_model = load_model(MODEL, _settings(tmp_path, providers=["cpu"]))
    assert cpu_model.predictor.fixed_batch is None and not cpu_model.predictor.io_binding
    for gpu, cpu in zip(probs, _map_tiles(cpu_model, tmp_path, settings, "cpu"), strict=True):
        assert np.abs(gpu.astype(int) - cpu).max() <= 1


def test_predictor_device_defaults_to_the_session_device() -> None:
    real = _REAL_SESSION(str(MODEL), providers=[CPU])
    assert session_device_id(real) == 0 and Predictor(real).device_id == 0
    gpu = _GpuSession(real, {CUDA: {"device_id": "2"}}, [])
    assert session_device_id(gpu) == 2 and Predictor(gpu).device_id == 2
    assert Predictor(gpu, device_id=5).device_id == 5  # an explicit device wins


def test_host_buffers_are_not_shared_with_the_caller() -> None:
    """With fixed shapes the buffers are reused, so a result must not be a view of them
    (nor the caller's input the buffer)."""
    real = _REAL_SESSION(str(MODEL), providers=[CPU])
    p = Predictor(real, io_binding=True, fixed_batch=2, cuda_graph=True)
    rng = np.random.default_rng(1)
    a10 = rng.uniform(0, 4000, (2, 5, 16, 16)).astype(np.float32)
    a20 = rng.uniform(0, 4000, (2, 6, 8, 8)).astype(np.float32)
    a10[:, 4] = 1
    keep10 = a10.copy()
    first, _ = p.run(a10, a20)
    kept = first.copy()
    p.run(a10[::-1].copy(), a20[::-1].copy())
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(a10, keep10)
