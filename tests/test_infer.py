"""Tests for jointseg.inference (session, tiling, products, scene) on a real small ONNX model.

The model (``tests/data/models/tiny_rf.onnx``, made by ``make.py`` beside it) is a
random-weight conv net with the JointSeg interface and a receptive-field radius of
4 px at 10 m (metadata ``jointseg.halo_10m`` = 6). Scene data are the real
BigEarthNet Sentinel-2 patches in ``/work/shared/data/bigearthnet``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from jointseg.bands import BANDS_20M
from jointseg.inference import scene as bandsource
from jointseg.inference import tiling
from jointseg.inference.products import predict_tile
from jointseg.inference.scene import open_scene, reflect_index
from jointseg.inference.session import ModelError, Predictor, make_session, resolve_providers
from jointseg.inference.tiling import predict_array
from jointseg.io import sha256_file
from jointseg.products import QA_FILLED, QA_NO_OBSERVATION, encode_prob

REPO = Path(__file__).parents[1]
MODEL = REPO / "tests" / "data" / "models" / "tiny_rf.onnx"


def bigearthnet_dir() -> Path:
    for root in (REPO.parent / "shared" / "data", REPO / "tests" / "data"):
        if (root / "bigearthnet").is_dir():
            return root / "bigearthnet"
    pytest.skip("BigEarthNet sample patches not found")


@pytest.fixture(scope="module")
def session_info():
    return make_session(MODEL, providers=("cpu",), threads=2)


@pytest.fixture(scope="module")
def patch_arrays():
    patch = sorted(p for p in bigearthnet_dir().iterdir() if p.is_dir())[0]
    with open_scene(patch) as scene:
        x10, x20 = scene.read_all()
    # crop to an awkward, non-multiple size and knock out a block (COUNT == 0)
    x10, x20 = x10[:, :58, :46].copy(), x20[:, :29, :23].copy()
    x10[4, 40:50, 0:12] = 0
    return x10, x20


# --- tiling ------------------------------------------------------------------------


@pytest.mark.parametrize(("window", "overlap"), [(16, 0), (16, 4), (20, 8), (12, 6), (26, 2)])
def test_tiled_equals_whole(session_info, patch_arrays, window, overlap):
    session, _ = session_info
    x10, x20 = patch_arrays
    whole = predict_array(session, x10, x20, window=128, overlap=0)
    tiled = predict_array(session, x10, x20, window=window, overlap=overlap, batch_size=3)
    assert whole.prob.shape == (580, 460)
    assert 0.05 < whole.prob.std()  # the model is not flat, so seams would show
    assert np.abs(tiled.prob - whole.prob).max() <= 1e-3
    assert np.abs(tiled.sr - whole.sr).max() <= 1e-3
    np.testing.assert_array_equal(tiled.valid, whole.valid)


def test_halo_smaller_than_receptive_field_shows_seams(session_info, patch_arrays):
    session, info = session_info
    x10, x20 = patch_arrays
    whole = predict_array(session, x10, x20, window=128, overlap=0)
    short = predict_array(session, x10, x20, window=16, overlap=0, halo_10m=2)
    meta = predict_array(session, x10, x20, window=16, overlap=0, halo_10m=info.model.halo_10m)
    seam = np.abs(short.prob - whole.prob)
    assert seam.max() > 1e-3
    # the error sits at window borders; window centres (10 m px 6..9 of 16) are exact
    rows, cols = np.indices(x10.shape[1:])
    centre = ((rows % 16 >= 6) & (rows % 16 < 10) & (cols % 16 >= 6) & (cols % 16 < 10))
    assert seam[np.repeat(np.repeat(centre, 10, 0), 10, 1)].max() <= 1e-5
    assert np.abs(meta.prob - whole.prob).max() <= 1e-3


def test_blend_ramps_partition_unity():
    left = tiling.blend_ramp(100, 30, left=False, right=True)
    right = tiling.blend_ramp(100, 30, left=True, right=False)
    assert (left > 0).all() and (right > 0).all()
    np.testing.assert_allclose(left[-30:] + right[:30], 1.0, atol=1e-6)
    assert left[0] == 1.0 and right[-1] == 1.0


def test_plan_rounds_to_model_multiple(session_info):
    _, info = session_info
    plan = tiling.plan_tiling((57, 100), info.model, window=15, overlap=5)
    assert (plan.window, plan.overlap, plan.halo) == (16, 6, 6)
    assert plan.row_starts == (0, 10, 20, 30, 40, 50)  # last window runs past row 57
    assert plan.col_starts[-1] + plan.window >= 100


def test_reflect_read_matches_numpy_pad():
    a = np.arange(7 * 5, dtype=np.float32).reshape(1, 7, 5)
    padded = np.pad(a, ((0, 0), (9, 9), (9, 9)), mode="reflect")

    def read(w):
        return a[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]

    got = bandsource.read_reflect(read, (7, 5), -9, -3, 20, 11)
    np.testing.assert_array_equal(got, padded[:, 0:20, 6:17])
    assert reflect_index(np.array([-1, 0, 4, 5]), 5).tolist() == [1, 0, 4, 3]


# --- sessions ------------------------------------------------------------------------


def test_cuda_request_falls_back_to_cpu_and_logs(caplog):
    caplog.set_level(logging.INFO, logger="jointseg.inference.session")
    session, info = make_session(
        MODEL, providers=("cuda", "cpu"), threads=1,
        cuda_options={"device_id": 0, "gpu_mem_limit": 2 << 30,
                      "cudnn_conv_algo_search": "HEURISTIC"},
    )
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    assert info.providers == ("CPUExecutionProvider",)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert not info.io_binding
    text = caplog.text
    assert "CUDAExecutionProvider requested but not available" in text
    assert "providers CPUExecutionProvider" in text


def test_provider_order_and_tensorrt_only_when_asked():
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["cpu", "cuda"], avail) == avail[1:]
    assert resolve_providers(["cuda", "tensorrt"], avail) == avail
    assert resolve_providers(["cpu"], avail) == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="unknown provider"):
        resolve_providers(["rocm"], avail)


def test_session_threads_and_metadata(session_info):
    session, info = session_info
    assert session.get_session_options().intra_op_num_threads == 2
    assert info.model.halo_10m == 6 and info.model.multiple_10m == 2
    assert info.model.bands_10m == ("B02", "B03", "B04", "B08", "COUNT")
    assert len(info.sha256) == 64


class _FakeCudaSession:
    """Stands in for a session whose first provider is CUDA (no GPU here)."""

    def __init__(self, real):
        self.real = real

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def get_inputs(self):
        return self.real.get_inputs()


def test_io_binding_chosen_on_cuda_and_not_on_cpu(session_info):
    session, _ = session_info
    on_cuda = Predictor(_FakeCudaSession(session), device_id=1)
    assert on_cuda.io_binding and on_cuda.device == "cuda" and on_cuda.device_id == 1
    on_cpu = Predictor(session)
    assert not on_cpu.io_binding and on_cpu.device == "cpu"


def test_io_binding_path_matches_plain_run(session_info, patch_arrays):
    session, _ = session_info
    x10, x20 = patch_arrays
    a, b = x10[None, :, :20, :20], x20[None, :, :10, :10]
    plain = Predictor(session, io_binding=False).run(a, b)
    bound = Predictor(session, io_binding=True).run(a, b)
    np.testing.assert_array_equal(plain[0], bound[0])
    np.testing.assert_array_equal(plain[1], bound[1])


def test_bad_model_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        make_session(tmp_path / "nope.onnx", providers=("cpu",))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.onnx: not a loadable ONNX model"):
        make_session(junk, providers=("cpu",))


def test_inference_does_not_import_torch():
    code = (
        "import jointseg.inference.products, jointseg.inference.tiling, jointseg.cli.predict, "
        "sys; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- products ------------------------------------------------------------------------


def write_composite(dst_dir: Path, x10: np.ndarray, x20: np.ndarray, crs: str, origin,
                    qa: np.ndarray | None = None) -> Path:
    """A composite pair in the DAG's format (uint16, described bands, SCENES tag); with
    ``qa`` the 10 m file gets a 6th band described QA."""
    from affine import Affine

    x0, y0 = origin
    p10 = dst_dir / "32633_0_0_10m.tif"
    names10 = ["B02", "B03", "B04", "B08", "COUNT"]
    if qa is not None:
        x10, names10 = np.concatenate([x10, qa[None]]), [*names10, "QA"]
    specs = [
        (p10, x10, 10, names10),
        (dst_dir / "32633_0_0_20m.tif", x20, 20, list(BANDS_20M)),
    ]
    for path, arr, res, names in specs:
        with rasterio.open(
            path, "w", driver="GTiff", crs=crs, transform=Affine(res, 0, x0, 0, -res, y0),
            width=arr.shape[2], height=arr.shape[1], count=arr.shape[0], dtype="uint16",
            nodata=0,
        ) as ds:
            ds.write(arr.astype(np.uint16))
            ds.descriptions = tuple(names)
            ds.update_tags(JOINTSEG_PRODUCT="composite", SCENES="S2A_X,S2B_Y",
                           JOINTSEG_SIMULATED="true")
    return p10


def test_predict_tile_writes_valid_aligned_cogs(tmp_path, session_info, patch_arrays):
    session, info = session_info
    x10, x20 = patch_arrays
    x10, x20 = x10[:, :56, :46], x20[:, :28, :23]
    p10 = write_composite(tmp_path, x10, x20, "EPSG:32633", (404400.0, 5342400.0))
    out = tmp_path / "out" / "isa.tif"
    paths = predict_tile(session, p10, out, prob_output=tmp_path / "out" / "prob.tif",
                         sr_output=tmp_path / "out" / "sr.tif", threshold=0.6, window=20,
                         overlap=4, info=info)
    expected = predict_array(session, x10, x20, window=20, overlap=4)
    with rasterio.open(p10) as src10:
        t10 = src10.transform
    for path in (paths.binary, paths.prob, paths.sr):
        is_cog, errors, _ = cog_validate(str(path))
        assert is_cog, errors
        with rasterio.open(path) as ds:
            assert ds.transform.a == 1.0 and ds.transform.e == -1.0
            assert (ds.transform.c, ds.transform.f) == (t10.c, t10.f)
            assert (ds.height, ds.width) == (560, 460)
            assert ds.crs.to_epsg() == 32633
            assert ds.overviews(1), path
            tags = ds.tags()
            assert tags["MODEL_SHA256"] == sha256_file(MODEL)
            assert tags["MODEL_NAME"] == "tiny_rf"
            assert tags["SCENES"] == "S2A_X,S2B_Y"
            assert tags["THRESHOLD"] == "0.6"
            assert tags["JOINTSEG_SIMULATED"] == "true"
            assert ds.profile["compress"].lower() == "deflate"
    nodata_10m = x10[4] == 0
    nodata_1m = np.repeat(np.repeat(nodata_10m, 10, 0), 10, 1)
    assert nodata_1m.any()
    with rasterio.open(paths.prob) as ds:
        assert ds.nodata == 255 and ds.descriptions == ("isa_probability",)
        assert ds.scales == (pytest.approx(1 / 254),)
        prob_u8 = ds.read(1)
    assert ((prob_u8 == 255) == nodata_1m).all()
    want = encode_prob(expected.prob, expected.valid)
    assert np.abs(prob_u8.astype(int) - want.astype(int)).max() <= 1
    with rasterio.open(paths.binary) as ds:
        # band 2: the composite's QA flags; this composite has no QA band: no flags
        assert ds.nodata == 255 and ds.descriptions == ("isa_binary", "QA")
        isa = ds.read(1)
        assert ds.dtypes == ("uint8", "uint8") and (ds.read(2) == 0).all()
    assert set(np.unique(isa)) <= {0, 1, 255}
    np.testing.assert_array_equal(isa == 255, nodata_1m)
    np.testing.assert_array_equal(isa[~nodata_1m] == 1, expected.prob[~nodata_1m] >= 0.6)
    assert 0 < (isa == 1).sum() < (~nodata_1m).sum()
    with rasterio.open(paths.sr) as ds:
        assert ds.count == 3 and ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert ds.descriptions == ("red", "green", "blue")
        rgb = ds.read()
    assert (rgb[:, nodata_1m] == 0).all() and (rgb[:, ~nodata_1m] >= 1).all()
    # percent stretch: about 2 % of valid pixels at each end of the range
    assert 0.005 < (rgb[0][~nodata_1m] == 255).mean() < 0.05


def test_predict_tile_failure_leaves_no_output(tmp_path, session_info, monkeypatch):
    session, info = session_info
    calls = {"n": 0}
    real_run = Predictor.run

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("device lost")
        return real_run(self, *a, **k)

    monkeypatch.setattr(Predictor, "run", flaky)
    patch = sorted(p for p in bigearthnet_dir().iterdir() if p.is_dir())[0]
    with pytest.raises(RuntimeError, match="device lost"):
        predict_tile(session, patch, tmp_path / "isa.tif", window=32, batch_size=1, info=info)
    assert list(tmp_path.iterdir()) == []


def test_band_directory_scene_has_count_one_where_valid():
    patch = sorted(p for p in bigearthnet_dir().iterdir() if p.is_dir())[0]
    with open_scene(patch) as scene:
        x10, x20 = scene.read_all()
        assert x10.shape == (5, 120, 120) and x20.shape == (6, 60, 60)
        assert scene.geobox_10m.res_m == 10.0
        assert set(np.unique(x10[4])) <= {0.0, 1.0}
        valid = (x10[:4] > 0).all(0)
        assert (x10[4][~valid] == 0).all()
        win10, win20 = scene.read(-6, 100, 30, 30)
        assert win10.shape == (5, 30, 30) and win20.shape == (6, 15, 15)
        np.testing.assert_array_equal(win10[:, 6:, :20], x10[:, :24, 100:])
        # row -1 reflects row 1; column 120 (past the edge) reflects column 118
        np.testing.assert_array_equal(win10[:, 5, :20], x10[:, 1, 100:])
        np.testing.assert_array_equal(win10[:, 6:, 20], x10[:, :24, 118])
        with pytest.raises(ValueError, match="not on the 20 m grid"):
            scene.read(1, 0, 10, 10)


def test_metadata_agrees_with_model_package_reader(session_info):
    metadata = pytest.importorskip("jointseg.model.metadata")
    _, info = session_info
    theirs = metadata.read_model_metadata(MODEL)
    assert theirs["halo_10m"] == info.model.halo_10m
    assert theirs["multiple_10m"] == info.model.multiple_10m
    assert tuple(theirs["bands_20m"]) == info.model.bands_20m
    assert theirs["model_name"] == info.model.name


def qa_composite(patch_arrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x10, x20, qa) of 56 x 46 px: rows 0-9 filled (COUNT 0, real reflectance,
    QA_FILLED), rows 10-19 of columns 0-9 never observed (all 0, QA_NO_OBSERVATION),
    rows 40-49 of columns 0-11 COUNT 0 without flags (from ``patch_arrays``)."""
    x10, x20 = patch_arrays
    x10, x20 = x10[:, :56, :46].copy(), x20[:, :28, :23].copy()
    qa = np.zeros(x10.shape[1:], np.uint8)
    x10[4, :10] = 0
    qa[:10] = QA_FILLED
    x10[:, 10:20, :10] = 0
    x20[:, 5:10, :5] = 0
    qa[10:20, :10] = QA_NO_OBSERVATION
    x10[4, 10:20, 10:] = np.maximum(x10[4, 10:20, 10:], 1)
    return x10, x20, qa


def up10(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, 10, 0), 10, 1)


def test_filled_pixels_are_predicted_and_qa_goes_to_band_2(tmp_path, session_info,
                                                          patch_arrays):
    session, info = session_info
    x10, x20, qa = qa_composite(patch_arrays)
    p10 = write_composite(tmp_path, x10, x20, "EPSG:32633", (404400.0, 5342400.0), qa=qa)
    with open_scene(p10) as scene:  # the model's 5 channels by description, QA aside
        np.testing.assert_array_equal(scene.read_all()[0], x10)
        np.testing.assert_array_equal(scene.read_qa(-2, 0, 4, 3)[2:], qa[:2, :3])
    paths = predict_tile(session, p10, tmp_path / "isa.tif", prob_output=tmp_path / "p.tif",
                         window=20, overlap=4, info=info)
    expected = predict_array(session, x10, x20, qa=qa, window=20, overlap=4)
    filled = up10(qa == QA_FILLED)
    never = up10((qa == QA_NO_OBSERVATION) | ((x10[4] == 0) & (qa == 0)))
    assert filled.any() and never.any() and up10(x10[4] == 0)[filled].all()
    np.testing.assert_array_equal(expected.valid, ~never)
    np.testing.assert_array_equal(expected.qa, up10(qa))
    with rasterio.open(paths.binary) as ds:
        assert ds.count == 2 and ds.descriptions == ("isa_binary", "QA")
        isa, qa_1m = ds.read(1), ds.read(2)
    np.testing.assert_array_equal(qa_1m, up10(qa))
    assert (isa[never] == 255).all() and (isa[~never] != 255).all()
    assert set(np.unique(isa[filled])) == {0, 1}  # predicted, not nodata
    np.testing.assert_array_equal(isa[~never] == 1, expected.prob[~never] >= 0.5)
    with rasterio.open(paths.prob) as ds:
        assert ds.count == 1 and ds.descriptions == ("isa_probability",)
        prob_u8 = ds.read(1)
    np.testing.assert_array_equal(prob_u8 == 255, never)


def test_composite_without_qa_keeps_count_zero_as_nodata(tmp_path, session_info,
                                                         patch_arrays):
    session, info = session_info
    x10, x20, qa = qa_composite(patch_arrays)
    p10 = write_composite(tmp_path, x10, x20, "EPSG:32633", (404400.0, 5342400.0))
    paths = predict_tile(session, p10, tmp_path / "isa.tif", window=20, overlap=4, info=info)
    with rasterio.open(paths.binary) as ds:
        isa, qa_1m = ds.read(1), ds.read(2)
    np.testing.assert_array_equal(isa == 255, up10(x10[4] == 0))
    assert (qa_1m == 0).all()


def test_valid_mask_truth_table():
    count = np.array([0, 0, 0, 3, 3])
    qa = np.array([0, QA_FILLED, QA_NO_OBSERVATION, 0, QA_NO_OBSERVATION], np.uint8)
    assert bandsource.valid_mask(count, qa).tolist() == [False, True, False, True, False]


def test_model_missing_a_metadata_key_names_file_and_key(tmp_path):
    import onnx

    proto = onnx.load(str(MODEL))
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key != "jointseg.precision"]
    del proto.metadata_props[:]
    for key, value in keep:
        proto.metadata_props.add(key=key, value=value)
    path = tmp_path / "old.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError) as err:
        make_session(path, providers=("cpu",))
    assert str(err.value) == f"{path}: missing metadata keys ['jointseg.precision']"
