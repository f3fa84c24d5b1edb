"""The threaded inference pipeline (jointseg.inference.pipeline, tiling.iter_blocks).

Reader, ONNX Runtime and writer run in threads joined by bounded queues; the products
must be byte for byte those of the serial path (``pipeline_depth=0``, every step on the
calling thread, as before the pipeline), errors must reach the caller, and no thread
may outlive the call.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from jointseg.bands import BANDS_20M
from jointseg.inference.pipeline import prefetch
from jointseg.inference.products import predict_tile
from jointseg.inference.scene import SceneError, open_scene
from jointseg.inference.session import make_session
from jointseg.inference.tiling import predict_array
from jointseg.products import QA_FILLED, QA_NO_OBSERVATION

MODEL = Path(__file__).parent / "data" / "models" / "tiny_rf.onnx"


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("jointseg-infer")]


# --- prefetch ---------------------------------------------------------------------------


def test_prefetch_keeps_order_and_runs_in_a_thread() -> None:
    where = []

    def stage():
        for i in range(20):
            where.append(threading.current_thread().name)
            yield i

    assert list(prefetch(stage(), 3, "jointseg-infer-test")) == list(range(20))
    assert set(where) == {"jointseg-infer-test"}
    where.clear()
    assert list(prefetch(stage(), 0, "jointseg-infer-test")) == list(range(20))
    assert set(where) == {threading.current_thread().name}  # depth 0: no thread
    assert not pipeline_threads()


def test_prefetch_is_bounded() -> None:
    made = []

    def stage():
        for i in range(100):
            made.append(i)
            yield i

    it = prefetch(stage(), 2, "jointseg-infer-test")
    assert next(it) == 0
    time.sleep(0.3)
    # taken 1, queued <= 2, one more made and waiting for room
    assert len(made) <= 4
    it.close()
    assert not pipeline_threads()


def test_prefetch_raises_the_stage_error_in_the_consumer() -> None:
    def stage():
        yield 1
        raise SceneError("b.tif: read failed (truncated)")

    got = []
    with pytest.raises(SceneError, match=r"^b\.tif: read failed \(truncated\)$"):
        for x in prefetch(stage(), 2, "jointseg-infer-test"):
            got.append(x)
    assert got == [1]
    assert not pipeline_threads()


def test_prefetch_stops_and_joins_the_stage_when_the_consumer_stops() -> None:
    closed = threading.Event()

    def stage():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    for x in prefetch(stage(), 2, "jointseg-infer-test"):
        if x == 5:
            break
    # the generator was closed when the loop dropped it: the stage ran its finally
    assert closed.is_set()
    assert not pipeline_threads()


# --- products: threaded == serial, byte for byte ----------------------------------------


def composite(tmp: Path) -> Path:
    """A 62 x 50 px composite pair with a QA band, filled and never-observed pixels,
    COUNT 0 and snow, from seeded random reflectances."""
    rng = np.random.default_rng(7)
    rows, cols = 62, 50
    x10 = rng.uniform(300, 4000, (5, rows, cols))
    x20 = rng.uniform(300, 4000, (6, rows // 2, cols // 2))
    x10[4] = rng.integers(1, 6, (rows, cols))
    qa = np.zeros((rows, cols), np.uint8)
    x10[4, :8] = 0
    qa[:8] = QA_FILLED
    x10[:, 20:26, :10] = 0
    qa[20:26, :10] = QA_NO_OBSERVATION
    x10[4, 40:46, 30:] = 0
    x10[1, 50:60, 10:20] = 8000  # snow: bright green and NIR, dark SWIR (B11)
    x10[3, 50:60, 10:20] = 7000
    x20[BANDS_20M.index("B11"), 25:30, 5:10] = 500
    p10 = tmp / "32633_0_0_10m.tif"
    for path, arr, res, names in (
        (p10, np.concatenate([x10, qa[None]]), 10, ["B02", "B03", "B04", "B08", "COUNT", "QA"]),
        (tmp / "32633_0_0_20m.tif", x20, 20, list(BANDS_20M)),
    ):
        with rasterio.open(path, "w", driver="GTiff", crs="EPSG:32633",
                           transform=Affine(res, 0, 404400.0, 0, -res, 5342400.0),
                           width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                           dtype="uint16", nodata=0) as ds:
            ds.write(arr.astype(np.uint16))
            ds.descriptions = tuple(names)
            ds.update_tags(SCENES="S2A_X", JOINTSEG_SIMULATED="true")
    return p10


@pytest.fixture(scope="module")
def session_info():
    return make_session(MODEL, providers=("cpu",), threads=1)


@pytest.mark.parametrize(("window", "overlap", "batch_size"), [(12, 2, 3), (20, 6, 2)])
def test_threaded_products_equal_serial_byte_for_byte(tmp_path: Path, session_info,
                                                       window: int, overlap: int,
                                                       batch_size: int) -> None:
    session, info = session_info
    p10 = composite(tmp_path)
    written = {}
    for depth in (0, 1, 2):
        out = tmp_path / f"depth{depth}"
        paths = predict_tile(session, p10, out / "isa.tif", prob_output=out / "prob.tif",
                             sr_output=out / "sr.tif", window=window, overlap=overlap,
                             batch_size=batch_size, info=info, pipeline_depth=depth)
        written[depth] = {p.name: p.read_bytes() for p in (paths.binary, paths.prob, paths.sr)}
    assert written[1] == written[0]
    assert written[2] == written[0]
    assert not pipeline_threads()
    with rasterio.open(tmp_path / "depth2" / "isa.tif") as ds:
        isa = ds.read(1)
    snow = np.zeros((62, 50), bool)
    snow[50:60, 10:20] = True
    assert (isa[np.repeat(np.repeat(snow, 10, 0), 10, 1)] == 255).all()  # masked in the reader
    assert ((isa == 0) | (isa == 1)).any()


def test_threaded_arrays_equal_serial(session_info) -> None:
    session, _ = session_info
    rng = np.random.default_rng(3)
    x10 = rng.uniform(300, 4000, (5, 34, 46)).astype(np.float32)
    x20 = rng.uniform(300, 4000, (6, 17, 23)).astype(np.float32)
    kw = {"window": 14, "overlap": 4, "batch_size": 4}
    serial = predict_array(session, x10, x20, **kw, pipeline_depth=0)
    threaded = predict_array(session, x10, x20, **kw, pipeline_depth=3)
    for name in ("prob", "sr", "valid", "qa"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(serial, name), name)


def test_reader_error_reaches_the_caller_and_nothing_is_written(tmp_path: Path, session_info,
                                                                monkeypatch) -> None:
    session, info = session_info
    p10 = composite(tmp_path)
    scene = open_scene(p10)
    real_read, calls = scene._read10, {"n": 0}

    def failing(window):
        calls["n"] += 1
        if calls["n"] > 8:  # after the pre-scan and a few windows
            raise SceneError(f"{p10}: read failed (truncated)")
        return real_read(window)

    scene._read10 = failing
    out = tmp_path / "out"
    with scene, pytest.raises(SceneError, match="read failed"):
        predict_tile(session, scene, out / "isa.tif", prob_output=out / "prob.tif",
                     window=12, overlap=2, batch_size=1, info=info)
    assert not out.exists() or not list(out.iterdir())
    assert not pipeline_threads()
