"""The viewer's tile server has a bounded cost (issue 22 item 2).

Before, a z0 tile of the composite (a 60 x 60 px file without overviews here; four
300 px files in the demo) warped millions of pixels a side: minutes at 100 % CPU and
gigabytes (2.5 GB after 20 s on this fixture), Ctrl-C waited for it, and z = 10**6
was a 500 (OverflowError). Now each layer serves only the zooms its overviews make
cheap (:mod:`jointseg.view.tiles`), refuses the rest with a 404 before reading, renders
under a deadline in daemon threads, and Ctrl-C / SIGTERM end the process at once.

The server runs as a subprocess (``python -m jointseg view``, or a launcher with
loosened limits for the slow-render tests) so that its peak memory (VmHWM) can be read
and it can be signalled. The same tests fail against the old ``server.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import morecantile
import pytest
from pyproj import Transformer

pytest.importorskip("fastapi")
pytest.importorskip("rio_tiler")
from fastapi.testclient import TestClient  # noqa: E402

from jointseg.view.layers import build_manifest  # noqa: E402
from jointseg.view.server import create_app  # noqa: E402
from jointseg.view.tiles import DEFAULT_LIMITS, MAX_ZOOM, LayerTiles  # noqa: E402
from tests import viewfactory as vf  # noqa: E402

TMS = morecantile.tms.get("WebMercatorQuad")
CENTRE = Transformer.from_crs(vf.CRS, "EPSG:4326", always_xy=True).transform(
    vf.LEFT + vf.SIZE_M / 2, vf.BOTTOM + vf.SIZE_M / 2)
REPO = Path(__file__).resolve().parents[1]
#: each refused or minimum-zoom tile must be answered within this (the old z0: minutes)
ANSWER_S = 3.0
#: the server's peak resident memory after all requests (the old z0: 2.5 GB in 20 s)
MAX_RSS_MB = 1500
#: a launcher with limits loosened so that a z8 composite tile renders as slowly as before
SLOW_SERVER = """
import inspect, sys
from jointseg.view.layers import build_manifest
from jointseg.view import server
kw = {}
if "limits" in inspect.signature(server.serve).parameters:
    from jointseg.view.tiles import TileLimits
    kw["limits"] = TileLimits(max_read_side_px=10**9, max_tile_read_px=10**18,
                              render_timeout_s=float(sys.argv[3]))
server.serve([build_manifest(sys.argv[1])], "127.0.0.1", int(sys.argv[2]), False, **kw)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout_s: float = 30.0) -> tuple[int, bytes, float]:
    """Status, body and seconds of a GET (HTTP errors are answers too)."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - loopback
            return r.status, r.read(), time.monotonic() - t0
    except urllib.error.HTTPError as err:
        return err.code, err.read(), time.monotonic() - t0


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of ``pid`` (``VmHWM`` in /proc), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def start(cmd: list[str], port: int, cwd: Path) -> subprocess.Popen:
    """Start a viewer server process in ``cwd`` and wait until it answers /api/layers.

    The package comes from PYTHONPATH, then this checkout (so that
    ``PYTHONPATH=<a copy with the old server.py>`` runs these tests against it).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)}
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if get(f"http://127.0.0.1:{port}/api/layers", 2)[0] == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"viewer exited: {proc.stdout.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "viewer did not start within 60 s"
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


@pytest.fixture(scope="module")
def product_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vf.make_product_dir(tmp_path_factory.mktemp("viewlimits"))


@pytest.fixture(scope="module")
def client(product_dir: Path) -> TestClient:
    return TestClient(create_app([build_manifest(product_dir)]))


@pytest.fixture(scope="module")
def cli_server(product_dir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m jointseg view <product_dir>`` on a free port: (process, base URL)."""
    port = free_port()
    proc = start([sys.executable, "-m", "jointseg", "view", str(product_dir), "--no-browser",
                  "--port", str(port)], port, product_dir.parent)
    yield proc, f"http://127.0.0.1:{port}"
    stop(proc)


def test_minimum_zoom_follows_the_coarsest_overview(product_dir: Path) -> None:
    """A file's minimum zoom is the coarsest at which one tile reads at most 1024 px a
    side from its coarsest overview; the manifest and /api/layers carry it."""
    m = build_manifest(product_dir)
    side = DEFAULT_LIMITS.max_read_side_px
    for layer in m.layers:
        tiles = LayerTiles.from_files([m.path(f) for f in layer.files], layer.maxzoom)
        (f,) = tiles.files
        assert f.read_side_px(tiles.minzoom) <= side < f.read_side_px(tiles.minzoom - 1)
        assert layer.minzoom == tiles.minzoom
    # 10 m composite, 60 px, no overview: 11.8 m in web mercator, 1024 px -> 12 km: z12
    # 1 m ISA, 600 px, one overview (x2): 2.36 m, 1024 px -> 2.4 km: z15
    assert {la.id: la.minzoom for la in m.layers} == {
        "composite": 12, "sr": 15, "isa": 15, "baseline": 15, "prob": 15}
    api = TestClient(create_app([m])).get("/api/layers").json()[0]["layers"]
    assert {la["id"]: la["minzoom"] for la in api} == {la.id: la.minzoom for la in m.layers}


@pytest.mark.parametrize("zxy", [
    (0, 0, 0), (11, 0, 0), (10**6, 0, 0), (-1, 0, 0), (MAX_ZOOM + 1, 0, 0),
    (16, -1, 0), (16, 2**16, 0), (16, 0, 2**16), (16, 0, -5), (22, 0, 0)])
def test_out_of_range_tiles_are_refused(client: TestClient, zxy: tuple[int, int, int]) -> None:
    """z below the layer's minimum or above its maximum (native + 4), x/y off the grid:
    404 with a one-line reason, never a 500."""
    z, x, y = zxy
    for layer in ("composite", "isa"):
        r = client.get(f"/tiles/testreg/2021/{layer}/{z}/{x}/{y}.png")
        assert r.status_code == 404, (layer, zxy, r.status_code, r.text)
        detail = r.json()["detail"]
        assert "zoom" in detail and "\n" not in detail, detail


def test_server_answers_every_zoom_fast_and_stays_small(
        cli_server: tuple[subprocess.Popen, str]) -> None:
    """Through ``jointseg view``: z0 of every layer and absurd tiles are refused within
    seconds; every layer's minimum-zoom tile and 200 concurrent deep tiles are served;
    the server's peak RSS stays under 1.5 GB."""
    proc, url = cli_server
    layers = json.loads(get(f"{url}/api/layers")[1])[0]["layers"]
    for layer in layers:
        lid = layer["id"]
        for z, x, y in [(0, 0, 0), (10**6, 0, 0), (3, -1, 0), (3, 8, 0), (3, 0, 8)]:
            status, body, took = get(f"{url}/tiles/testreg/2021/{lid}/{z}/{x}/{y}.png",
                                     timeout_s=30)
            assert 400 <= status < 500 and took < ANSWER_S, (lid, z, x, y, status, took, body)
        t = TMS.tile(*CENTRE, layer["minzoom"])
        status, body, took = get(f"{url}/tiles/testreg/2021/{lid}/{t.z}/{t.x}/{t.y}.png")
        assert status == 200 and body[:4] == b"\x89PNG" and took < ANSWER_S, (lid, took)
    deep = [TMS.tile(*CENTRE, 17), TMS.tile(CENTRE[0] + 0.002, CENTRE[1], 17)]
    urls = [f"{url}/tiles/testreg/2021/{la['id']}/{t.z}/{t.x}/{t.y}.png"
            for la in layers for t in deep] * 20
    t0 = time.monotonic()
    with ThreadPoolExecutor(50) as ex:
        statuses = list(ex.map(lambda u: get(u)[0], urls))
    assert statuses == [200] * len(urls) and time.monotonic() - t0 < 30
    assert vm_hwm_mb(proc.pid) < MAX_RSS_MB


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_slow_render_ends_the_server(product_dir: Path, sig: int) -> None:
    """With the read budget lifted, a z8 composite tile renders for ~30 s as before: the
    request past its deadline gets a 503 within seconds, and Ctrl-C / SIGTERM while a
    render runs in GDAL end the process within a few seconds (before: after the render)."""
    port = free_port()
    proc = start([sys.executable, "-c", SLOW_SERVER, str(product_dir), str(port), "1.5"],
                 port, product_dir.parent)
    try:
        t = TMS.tile(*CENTRE, 8)
        slow = f"http://127.0.0.1:{port}/tiles/testreg/2021/composite/8/{t.x}/{t.y}.png"
        status, body, took = get(slow, timeout_s=20)
        assert status == 503 and took < 5, (status, took, body)
        answers: list[object] = []
        pending = threading.Thread(target=lambda: answers.append(_try_get(slow)), daemon=True)
        pending.start()
        time.sleep(1.0)
        assert pending.is_alive() and proc.poll() is None  # a render is running
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=10)
        assert time.monotonic() - t0 < 5
    finally:
        stop(proc)


def _try_get(url: str) -> object:
    try:
        return get(url, timeout_s=20)[0]
    except OSError as exc:
        return exc
