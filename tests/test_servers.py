"""Loopback servers: Range requests, /vsicurl/ reads, STAC search + paging, demo lifecycle."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pystac_client
import pytest
import rasterio
from rasterio.windows import Window

from jointseg.simulate import process, servers
from jointseg.simulate.servers import (
    FileServer,
    ServerError,
    StacServer,
    ensure_demo_servers,
    free_port,
    stop_demo_servers,
)

from .conftest import BIGEARTHNET_DIR, s2_collection

PATCH = "S2A_MSIL2A_20170613T101031_87_48"
B02 = BIGEARTHNET_DIR / PATCH / f"{PATCH}_B02.tif"


def _get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_file_server_range_request(file_server_factory) -> None:
    fs = file_server_factory(BIGEARTHNET_DIR)
    url = f"{fs.url}/{PATCH}/{B02.name}"
    raw = B02.read_bytes()
    status, headers, body = _get(url, {"Range": "bytes=0-99"})
    assert status == 206
    assert body == raw[:100]
    assert headers["content-range"] == f"bytes 0-99/{len(raw)}"
    status, _, body = _get(url, {"Range": "bytes=1000-1499"})
    assert (status, body) == (206, raw[1000:1500])
    status, _, body = _get(url)
    assert (status, body) == (200, raw)


def test_file_server_404(file_server_factory) -> None:
    fs = file_server_factory(BIGEARTHNET_DIR)
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{fs.url}/{PATCH}/no_such_band.tif")
    assert err.value.code == 404


def test_file_server_rejects_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="not a directory"):
        FileServer(tmp_path / "absent")


def test_vsicurl_reads_window_through_file_server(file_server_factory) -> None:
    fs = file_server_factory(BIGEARTHNET_DIR)
    window = Window(col_off=30, row_off=40, width=50, height=25)
    with rasterio.open(B02) as local:
        expected = local.read(1, window=window)
        crs, transform = local.crs, local.transform
    with rasterio.open(f"/vsicurl/{fs.url}/{PATCH}/{B02.name}") as remote:
        got = remote.read(1, window=window)
        assert remote.crs == crs and remote.transform == transform
    assert got.dtype == np.uint16 and got.shape == (25, 50)
    np.testing.assert_array_equal(got, expected)
    assert expected.max() > 0


def test_stac_server_search_bbox_datetime_paging(bigearthnet_stac) -> None:
    client = pystac_client.Client.open(bigearthnet_stac.stac_url)
    patch_item = next(i for i in bigearthnet_stac.items if i["id"] == "S2A_33UUP_20170613_0_L2A")
    lon0, lat0, lon1, lat1 = patch_item["bbox"]
    bbox = [lon0 + 0.001, lat0 + 0.001, lon1 - 0.001, lat1 - 0.001]
    search = client.search(collections=["sentinel-2-l2a"], bbox=bbox, limit=2)
    pages = [len(page.items) for page in search.pages()]
    assert pages == [2, 2]  # 4 items over this patch, served 2 per page via 'next' links
    ids = {i.id for i in search.items()}
    assert ids == {"S2A_33UUP_20170613_0_L2A", "S2A_33UUP_20170504_0_L2A",
                   "S2A_33UUP_20170723_0_L2A", "S2A_33UUP_20170812_0_L2A"}
    search = client.search(collections=["sentinel-2-l2a"], bbox=bbox,
                           datetime="2017-06-01/2017-07-31")
    assert {i.id for i in search.items()} == {"S2A_33UUP_20170613_0_L2A",
                                              "S2A_33UUP_20170723_0_L2A"}
    ring = patch_item["geometry"]
    search = client.search(collections=["sentinel-2-l2a"], intersects=ring,
                           datetime="2017-06-13")
    assert [i.id for i in search.items()] == ["S2A_33UUP_20170613_0_L2A"]


def test_stac_server_bad_input_fails_fast(tmp_path: Path) -> None:
    bad = tmp_path / "collection.json"
    bad.write_text("{not json")
    with pytest.raises(ServerError, match="exited with code"):
        StacServer([bad]).start()


def _make_sim_dir(root: Path) -> Path:
    sim = root / "sim"
    (sim / "stac" / "items").mkdir(parents=True)
    (sim / "s2").mkdir()
    (sim / "s2" / "hello.txt").write_text("hello demo\n")
    (sim / "stac" / "collection.json").write_text(json.dumps(s2_collection()))
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": "S2A_50RQV_20210301_0_L2A",
        "collection": "sentinel-2-l2a", "bbox": [117.0, 32.0, 117.1, 32.1],
        "geometry": {"type": "Polygon", "coordinates": [[[117.0, 32.0], [117.1, 32.0],
                                                         [117.1, 32.1], [117.0, 32.1],
                                                         [117.0, 32.0]]]},
        "properties": {"datetime": "2021-03-01T02:50:00Z", "eo:cloud_cover": 4.0},
        "links": [], "assets": {},
    }
    (sim / "stac" / "items" / f"{item['id']}.json").write_text(json.dumps(item))
    return sim


def test_ensure_demo_servers_reuse_and_stop(tmp_path: Path) -> None:
    sim = _make_sim_dir(tmp_path)
    state = tmp_path / "state"
    stac_port, file_port = free_port(), free_port()
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(ensure_demo_servers(sim, stac_port, file_port, state))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=call) for _ in range(3)]  # concurrent rules
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        stac_url, file_url = results[0]
        assert set(results) == {(f"http://127.0.0.1:{stac_port}",
                                 f"http://127.0.0.1:{file_port}")}
        pids = {p.name: p.read_text() for p in state.glob("*.pid")}
        assert set(pids) == {"stac.pid", "files.pid"}
        assert _get(f"{file_url}/s2/hello.txt")[2] == b"hello demo\n"
        hits = list(pystac_client.Client.open(stac_url).search(bbox=[117.05, 32.05, 117.06, 32.06])
                    .items())
        assert [i.id for i in hits] == ["S2A_50RQV_20210301_0_L2A"]

        # A second call reuses the running pair: same pids, nothing new started.
        assert ensure_demo_servers(sim, stac_port, file_port, state) == (stac_url, file_url)
        assert {p.name: p.read_text() for p in state.glob("*.pid")} == pids

        # A re-simulated catalogue: the STAC API is restarted, the file server kept.
        item2 = json.loads(next((sim / "stac" / "items").glob("*.json")).read_text())
        item2["id"] = "S2B_50RQV_20210306_0_L2A"
        item2["properties"]["datetime"] = "2021-03-06T02:50:00Z"
        (sim / "stac" / "items" / f"{item2['id']}.json").write_text(json.dumps(item2))
        assert ensure_demo_servers(sim, stac_port, file_port, state) == (stac_url, file_url)
        new_pids = {p.name: p.read_text() for p in state.glob("*.pid")}
        assert new_pids["files.pid"] == pids["files.pid"]
        assert new_pids["stac.pid"] != pids["stac.pid"]
        hits = pystac_client.Client.open(stac_url).search(bbox=[117.05, 32.05, 117.06, 32.06])
        assert sorted(i.id for i in hits.items()) == ["S2A_50RQV_20210301_0_L2A",
                                                      "S2B_50RQV_20210306_0_L2A"]
        started = [json.loads(p.read_text()) for p in state.glob("*.pid")]
    finally:
        stop_demo_servers(state)
    assert not list(state.glob("*.pid"))
    for record in started:  # every process of both groups has exited (and was reaped)
        assert not process.group_members(record["pid"]), record
        st = process.proc_stat(record["pid"])
        assert st is None or st.start_ticks != record["start_ticks"], record
    for port in (stac_port, file_port):
        with socket.socket() as s:
            # a freed ephemeral port may be taken by another process at once: only our
            # servers answering there would be a failure
            assert s.connect_ex(("127.0.0.1", port)) != 0 or not _serves_demo(port, sim), (
                f"port {port} still answers")


def _serves_demo(port: int, sim: Path) -> bool:
    """Whether our demo file server (for ``sim``) or STAC API answers on ``port``."""
    url = f"http://127.0.0.1:{port}"
    try:
        health = json.loads(_get(url + "/_jointseg/health")[2])
        if health.get("root") == str(sim.resolve()):
            return True
    except (OSError, ValueError):
        pass
    try:
        page = json.loads(_get(url + "/collections/sentinel-2-l2a/items")[2])
    except (OSError, ValueError):
        return False
    return any(f.get("id", "").endswith("50RQV_20210301_0_L2A") for f in page.get("features", []))


# A stand-in server: listens on argv[1], forks a child that holds the socket too, and
# (with argv[2] == "ignore-term") ignores SIGTERM in both. Its argv names our module so
# that stop_demo_servers takes it for one of ours.
TREE_SERVER = """
import os, signal, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.fork()
time.sleep(60)
"""


def _start_tree(state: Path, port: int, mode: str) -> int:
    cmd = [sys.executable, "-c", TREE_SERVER, str(port), mode, "jointseg.simulate.servers"]
    pid = servers._start_detached(cmd, "files", state, "127.0.0.1", port)
    deadline = time.monotonic() + 10
    while len(process.group_members(pid)) < 2 or not process.port_open("127.0.0.1", port):
        assert time.monotonic() < deadline, "stand-in server did not start"
        time.sleep(0.02)
    return pid


@pytest.mark.parametrize("mode", ["plain", "ignore-term"])
def test_stop_demo_servers_ends_the_whole_process_tree(tmp_path: Path, mode: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    port = free_port()
    pid = _start_tree(state, port, mode)
    members = process.group_members(pid)
    assert len(members) == 2  # the recorded process and its forked child
    t0 = time.monotonic()
    stop_demo_servers(state, timeout_s=1.0)
    elapsed = time.monotonic() - t0
    assert not any(process.has_live_thread(m) for m in members)  # exited (maybe a zombie)
    assert not process.group_members(pid)
    assert not process.port_open("127.0.0.1", port)
    assert not (state / "files.pid").exists()
    if mode == "ignore-term":  # SIGTERM ignored: SIGKILL after the 1 s grace
        assert elapsed >= 1.0


def test_stop_demo_servers_names_a_port_it_cannot_free(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with socket.socket() as squatter:  # holds the recorded port; not in the server's group
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cmd = [sys.executable, "-c", "import time; time.sleep(60)", "jointseg.simulate.servers"]
        pid = servers._start_detached(cmd, "files", state, "127.0.0.1", port)
        with pytest.raises(ServerError, match=f"port 127.0.0.1:{port} still accepts"):
            stop_demo_servers(state, timeout_s=0.5)
        assert not process.group_members(pid)  # the server itself was stopped
        assert (state / "files.pid").exists()  # kept: the port is not free


def test_ensure_demo_servers_after_a_killed_run(tmp_path: Path) -> None:
    """Pid files left by a kill -9: a dead pid and a pid now reused by another program."""
    sim = _make_sim_dir(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (state / "files.pid").write_text(json.dumps({"pid": dead.pid, "start_ticks": 1,
                                                  "host": "127.0.0.1", "port": 1}))
    foreign = subprocess.Popen(["sleep", "60"], start_new_session=True)
    (state / "stac.pid").write_text(f"{foreign.pid}\n")  # older plain format
    (state / "stac.fingerprint").write_text("stale\n")
    try:
        stac_port, file_port = free_port(), free_port()
        stac_url, file_url = ensure_demo_servers(sim, stac_port, file_port, state)
        assert _get(f"{file_url}/s2/hello.txt")[2] == b"hello demo\n"
        assert foreign.poll() is None  # a reused pid is never signalled
        stop_demo_servers(state)
        assert foreign.poll() is None
        assert not list(state.glob("*.pid"))
    finally:
        foreign.kill()
        foreign.wait()
        stop_demo_servers(state)


def test_ensure_demo_servers_port_taken_by_other(tmp_path: Path) -> None:
    sim = _make_sim_dir(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(ServerError, match=f"port 127.0.0.1:{taken} is in use"):
            ensure_demo_servers(sim, free_port(), taken, tmp_path / "state")
    stop_demo_servers(tmp_path / "state")


def test_stop_demo_servers_ignores_foreign_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "files.pid").write_text("1\n")  # pid 1 is not one of ours: never signalled
    stop_demo_servers(state)
    assert not (state / "files.pid").exists()


# A "run" using the demo servers: reads commands from stdin ("ensure", "hold",
# "release"), answers each with one line. Its lease holder is itself, or the process
# named by $JOINTSEG_DEMO_SERVERS_HOLDER (as a Snakemake run's jobs get it).
RUN = """
import sys
from pathlib import Path
from jointseg.simulate import servers
sim, state, stac_port, file_port = Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:5])
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "ensure":
        servers.ensure_demo_servers(sim, stac_port, file_port, state)
        print("ok", flush=True)
    elif cmd == "hold":
        servers.hold_demo_servers(state)
        print("ok", flush=True)
    elif cmd == "release":
        print("stopped" if servers.release_demo_servers(state) else "kept", flush=True)
"""


class _Run:
    """One process using the demo servers, driven line by line."""

    def __init__(self, sim: Path, state: Path, ports: tuple[int, int],
                 env: dict | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUN, str(sim), str(state), *map(str, ports)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})

    def __call__(self, cmd: str) -> str:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, f"run {self.proc.pid} died on {cmd!r}"
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _answering(stac_port: int, file_port: int, sim: Path) -> bool:
    return _serves_demo(stac_port, sim) and _serves_demo(file_port, sim)


def test_demo_servers_stop_with_their_last_user(tmp_path: Path) -> None:
    """Two runs share the servers: the first to finish leaves them up for the other
    (issue 22 item 5); the last one stops them. A run killed with -9 holds no lease."""
    sim, state = _make_sim_dir(tmp_path), tmp_path / "state"
    ports = (free_port(), free_port())
    a, b = _Run(sim, state, ports), _Run(sim, state, ports)
    try:
        assert a("ensure") == "ok" and b("ensure") == "ok"  # b reuses a's servers
        assert servers.live_leases(state) == sorted([a.proc.pid, b.proc.pid])
        assert a("release") == "kept"
        assert _answering(*ports, sim)  # b's downloads still work
        assert _get(f"http://127.0.0.1:{ports[1]}/s2/hello.txt")[2] == b"hello demo\n"
        assert b("release") == "stopped"
        assert not process.port_open("127.0.0.1", ports[0])
        assert not process.port_open("127.0.0.1", ports[1])
        assert not list(state.glob("*.pid"))

        # a run killed with -9 while holding a lease does not keep the servers up
        c, d = _Run(sim, state, ports), _Run(sim, state, ports)
        try:
            assert c("ensure") == "ok" and d("hold") == "ok"
            c.proc.kill()
            c.proc.wait(10)
            assert servers.live_leases(state) == [d.proc.pid]
            assert d("release") == "stopped"
            assert not process.port_open("127.0.0.1", ports[1])
            assert not list((state / "leases").glob("*.json"))  # the dead lease is cleared
        finally:
            c.close()
            d.close()
    finally:
        a.close()
        b.close()
        stop_demo_servers(state)


def test_a_jobs_lease_lasts_as_long_as_its_run(tmp_path: Path) -> None:
    """A job started by a run ($JOINTSEG_DEMO_SERVERS_HOLDER = the run's pid) leases the
    servers for the run: another run finishing keeps them up after the job has exited,
    until the run itself ends."""
    sim, state = _make_sim_dir(tmp_path), tmp_path / "state"
    ports = (free_port(), free_port())
    run = subprocess.Popen(["sleep", "60"])  # stands in for the Snakemake process
    job = _Run(sim, state, ports, env={servers.HOLDER_ENV: str(run.pid)})
    other = _Run(sim, state, ports)
    try:
        assert job("ensure") == "ok"  # the search job starts the servers ...
        job.close()  # ... and exits
        assert servers.live_leases(state) == [run.pid]
        assert other("hold") == "ok" and other("release") == "kept"
        assert _answering(*ports, sim)
        run.kill()
        run.wait(10)
        assert other("hold") == "ok" and other("release") == "stopped"
        assert not process.port_open("127.0.0.1", ports[0])
    finally:
        run.kill()
        run.wait(10)
        job.close()
        other.close()
        stop_demo_servers(state)
