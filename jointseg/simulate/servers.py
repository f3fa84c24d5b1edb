"""Loopback servers for the demo and the tests: a STAC API and a Range-capable file server.

* :class:`FileServer` serves one directory over HTTP with byte-range support
  (starlette ``StaticFiles`` under uvicorn, in a child process), so GDAL's
  ``/vsicurl/`` and the download stage read Cloud-Optimized GeoTIFFs exactly as
  they would from a provider's bucket (the process: :mod:`jointseg.simulate.fileserver`).
* :class:`StacServer` runs ``rustac serve`` (memory backend) in a child process,
  loaded with collection and item JSON files. It is a real STAC API: ``/search``
  with ``bbox``/``intersects``, ``datetime``, ``collections``, ``limit`` and
  ``next`` paging. Its memory backend does not implement the ``query`` or
  ``filter`` (CQL2) extensions, so callers filter ``eo:cloud_cover`` client-side
  (see :func:`jointseg.data.stac.search_scenes`).
* :func:`ensure_demo_servers` / :func:`stop_demo_servers` manage a detached pair
  of both on fixed loopback ports for Snakemake rules, with pid files and a file
  lock so that concurrent rule instances start them once. Each runs as its own
  process group; stopping waits until the group is gone and the port refuses
  connections (see :mod:`jointseg.simulate.process`).
* Several runs may use one pair: each holds a lease (:mod:`jointseg.simulate.leases`);
  :func:`release_demo_servers` stops the pair only when no live lease is left.

Both servers listen on loopback only unless told otherwise. Run the file server
alone with ``python -m jointseg.simulate.fileserver files ROOT --port 8752``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from jointseg.simulate import process
from jointseg.simulate.fileserver import HEALTH_PATH
from jointseg.simulate.leases import (  # noqa: F401 - HOLDER_ENV: the rules read it here
    HOLDER_ENV,
    lease_holder,
    live_leases,
    locked,
    prune_dead_leases,
    write_lease,
)

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0


class ServerError(RuntimeError):
    """A loopback server could not be started, reached or stopped."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now (bind to port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _get_json(url: str, timeout_s: float = 2.0) -> dict | None:
    """GET ``url`` and parse JSON; ``None`` if nothing answers or the answer is not JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _rustac_exe() -> str:
    """Path of the ``rustac`` executable: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / "rustac"
    if beside.exists():
        return str(beside)
    found = shutil.which("rustac")
    if found is None:
        raise ServerError("rustac executable not found (pip install 'jointseg[serve]')")
    return found


def _file_server_cmd(root: Path, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "jointseg.simulate.fileserver", "files", str(root),
            "--host", host, "--port", str(port)]


def _stac_server_cmd(hrefs: Sequence[Path], host: str, port: int) -> list[str]:
    return [_rustac_exe(), "serve", "--addr", f"{host}:{port}", *[str(h) for h in hrefs]]


class _ChildServer:
    """A server running as a child process; subclasses say how to start and probe it."""

    name = "server"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:45123`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def healthy(self) -> bool:
        """Whether the server answers as expected right now."""
        raise NotImplementedError

    def start(self) -> _ChildServer:
        """Start the child process and wait until it answers.

        Raises:
            ServerError: if the port is taken or the server does not come up in time.
        """
        if self._proc is not None:
            return self
        if self.port == 0:
            self.port = free_port(self.host)
        elif process.port_open(self.host, self.port):
            raise ServerError(f"{self.name}: port {self.host}:{self.port} is already in use")
        self._log = tempfile.TemporaryFile()
        cmd = self._command()
        log.info("starting %s on %s", self.name, self.url)
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            _wait_until(self.healthy, self._proc, f"{self.name} at {self.url}", self._log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the child process (SIGTERM, then SIGKILL after 5 s)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _tail(fh: IO[bytes] | None, n: int = 800) -> str:
    if fh is None:
        return ""
    fh.flush()
    fh.seek(0)
    return fh.read().decode("utf-8", "replace")[-n:].strip().replace("\n", " | ")


def _wait_until(
    ok: Callable[[], bool],
    proc: subprocess.Popen | None,
    what: str,
    logfile: IO[bytes] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while time.monotonic() < deadline:
        if ok():
            return
        if proc is not None and proc.poll() is not None:
            raise ServerError(
                f"{what} exited with code {proc.returncode} before answering: {_tail(logfile)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise ServerError(f"{what} did not answer within {timeout_s:.0f} s: {_tail(logfile)}")


class FileServer(_ChildServer):
    """Serve the files under ``root`` over HTTP with Range support.

    ``GET /<relative path>`` returns the file (``206 Partial Content`` for a
    ``Range: bytes=a-b`` request, ``404`` for a missing path).

    Example:
        >>> with FileServer(Path("tests/data")) as fs:  # doctest: +SKIP
        ...     rasterio.open(f"/vsicurl/{fs.url}/bigearthnet/x/B02.tif")
    """

    name = "file server"

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ServerError(f"file server root {self.root} is not a directory")

    def _command(self) -> list[str]:
        return _file_server_cmd(self.root, self.host, self.port)

    def healthy(self) -> bool:
        info = _get_json(self.url + HEALTH_PATH)
        return bool(info) and info.get("service") == "files" and info.get("root") == str(self.root)

    def start(self) -> FileServer:
        super().start()
        return self


class StacServer(_ChildServer):
    """A STAC API (``rustac serve``, memory backend) loaded with JSON files.

    Args:
        hrefs: collection, item and item-collection JSON files; collections first
            (items whose collection is missing are attached to an auto-created one).
        host, port: where to listen; port 0 picks a free port.
    """

    name = "STAC API"

    def __init__(self, hrefs: Sequence[Path], host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.hrefs = [Path(h).resolve() for h in hrefs]
        missing = [str(h) for h in self.hrefs if not h.is_file()]
        if missing:
            raise ServerError(f"STAC server input not found: {missing[0]}")

    def _command(self) -> list[str]:
        return [*_stac_server_cmd(self.hrefs, self.host, self.port), "--create-collections"]

    def healthy(self) -> bool:
        landing = _get_json(self.url + "/")
        return bool(landing) and landing.get("type") == "Catalog" and "links" in landing

    def start(self) -> StacServer:
        super().start()
        return self


# --------------------------------------------------------------------------------------
# Detached demo servers for Snakemake rules


def _demo_hrefs(sim_dir: Path) -> list[Path]:
    stac_dir = sim_dir / "stac"
    collection = stac_dir / "collection.json"
    if not collection.is_file():
        raise ServerError(f"{collection}: demo STAC collection not found (run jointseg simulate)")
    items = sorted((stac_dir / "items").glob("*.json"))
    if not items:
        raise ServerError(f"{stac_dir / 'items'}: no demo STAC items found")
    return [collection, *items]


def _stac_serves(url: str, collection: Path, item_ids: set[str]) -> bool:
    """Whether the STAC API at ``url`` holds ``collection`` with an item of ``item_ids``."""
    cid = json.loads(collection.read_text()).get("id")
    page = _get_json(f"{url}/collections/{cid}/items?limit=1")
    if not page or not page.get("features"):
        return False
    return page["features"][0].get("id") in item_ids


def _fingerprint(paths: Sequence[Path]) -> str:
    """sha256 over the names and bytes of the catalogue files (detects a re-simulation)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _write_state(path: Path, text: str) -> None:
    """Write a state file atomically (a killed run never leaves half a pid/fingerprint)."""
    from jointseg.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _is_our_cmd(argv: list[str]) -> bool:
    """Whether ``argv`` runs one of our servers (``rustac serve`` or the file server module,
    as ``jointseg.simulate.fileserver`` or, in older pid files, ``...servers``)."""
    joined = " ".join(argv)
    return any(k in joined for k in ("rustac", "jointseg.simulate.fileserver",
                                     "jointseg.simulate.servers"))


def _start_detached(cmd: list[str], name: str, state_dir: Path, host: str, port: int) -> int:
    """Start ``cmd`` in its own process group; record it in ``state_dir/<name>.pid``.

    The pid file holds JSON: ``{"pid", "start_ticks", "host", "port"}`` (the pid is also
    the process group id; the start time guards against a reused pid).
    """
    started = process.start_detached(cmd, state_dir / f"{name}.log")
    record = {"pid": started.pid, "start_ticks": started.start_ticks, "host": host, "port": port}
    _write_state(state_dir / f"{name}.pid", json.dumps(record) + "\n")
    return started.pid


def _read_pid_file(pid_file: Path) -> dict:
    """The record in ``pid_file`` (a bare pid from older versions too); ``{}`` if unreadable."""
    try:
        record = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(record, int):
        return {"pid": record}
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else {}


def _stop_pid_file(pid_file: Path, timeout_s: float = 10.0) -> None:
    """Stop the server recorded in ``pid_file`` if it is still ours; remove the file.

    Returns once every process of its group has exited and its port refuses
    connections. A dead or foreign pid is never signalled; its file is removed.

    Raises:
        ServerError: if the group survives SIGKILL or the port still answers after
            ``timeout_s``; the pid file is kept then.
    """
    record, name = _read_pid_file(pid_file), pid_file.stem
    pid = record.get("pid")
    if pid is not None and process.owns_group(pid, _is_our_cmd, record.get("start_ticks")):
        log.info("stopping demo %s server (process group %d)", name, pid)
        alive = process.stop_group(pid, term_timeout_s=timeout_s)
        if alive:
            raise ServerError(f"demo {name} server (process group {pid}) still runs after "
                              f"SIGKILL: pids {alive}")
        host, port = record.get("host"), record.get("port")
        if port is not None and not process.wait_port_closed(host, int(port), timeout_s):
            raise ServerError(f"demo {name} server (pid {pid}) is gone but port {host}:{port} "
                              f"still accepts connections after {timeout_s:.0f} s")
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    with contextlib.suppress(FileNotFoundError):
        pid_file.with_suffix(".fingerprint").unlink()


def ensure_demo_servers(
    sim_dir: Path, stac_port: int, file_port: int, state_dir: Path, host: str = "127.0.0.1",
    holder: int | None = None,
) -> tuple[str, str]:
    """Make sure a STAC API and a file server for ``sim_dir`` listen on the given ports.

    Servers already answering on those ports for this ``sim_dir`` are reused;
    otherwise they are started detached (their own session, so they outlive the
    calling rule) with pid files and logs in ``state_dir``. An exclusive
    ``fcntl`` lock on ``state_dir/servers.lock`` makes concurrent callers race-free.
    The STAC API loads ``sim_dir/stac/collection.json`` and ``sim_dir/stac/items/*.json``
    (a STAC API this function started for an older version of those files is
    restarted); the file server serves ``sim_dir`` itself, so asset hrefs read
    ``http://<host>:<file_port>/<path relative to sim_dir>``.

    Takes a lease for ``holder`` (default :func:`lease_holder`) in the same locked
    step, so :func:`release_demo_servers` of another run cannot stop the pair between
    this start and this holder's use of it.

    Returns:
        ``(stac_url, file_url)``, e.g. ``("http://127.0.0.1:8751", "http://127.0.0.1:8752")``.

    Raises:
        ServerError: if a port is held by something else or a server does not come up.
    """
    sim_dir = Path(sim_dir).resolve()
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    hrefs = _demo_hrefs(sim_dir)
    item_ids = {json.loads(p.read_text()).get("id") for p in hrefs[1:]}
    fingerprint = _fingerprint(hrefs)
    stac_url, file_url = f"http://{host}:{stac_port}", f"http://{host}:{file_port}"

    def files_ok() -> bool:
        info = _get_json(file_url + HEALTH_PATH)
        return bool(info) and info.get("service") == "files" and info.get("root") == str(sim_dir)

    def stac_ok() -> bool:
        return _stac_serves(stac_url, hrefs[0], item_ids)

    def stac_current() -> bool:
        fp_file = state_dir / "stac.fingerprint"
        return fp_file.exists() and fp_file.read_text().strip() == fingerprint and stac_ok()

    with locked(state_dir):
        for name, ok, port, cmd in (
            ("files", files_ok, file_port, lambda: _file_server_cmd(sim_dir, host, file_port)),
            ("stac", stac_current, stac_port,
             lambda: [*_stac_server_cmd(hrefs, host, stac_port), "--create-collections"]),
        ):
            if ok():
                log.info("reusing demo %s server on %s:%d", name, host, port)
                continue
            pid_file = state_dir / f"{name}.pid"
            if pid_file.exists():  # ours but stale (other catalogue) or dead: replace it
                _stop_pid_file(pid_file)
            if process.port_open(host, port):
                raise ServerError(
                    f"port {host}:{port} is in use but does not serve the demo {name} "
                    f"for {sim_dir}; stop it or choose another port"
                )
            pid = _start_detached(cmd(), name, state_dir, host, port)
            log.info("started demo %s server on %s:%d (pid %d)", name, host, port, pid)
            if name == "stac":
                _write_state(state_dir / "stac.fingerprint", fingerprint + "\n")
            _wait_until(ok, None, f"demo {name} server on {host}:{port} (log {state_dir})")
        write_lease(state_dir, lease_holder() if holder is None else holder)
    return stac_url, file_url


def stop_demo_servers(state_dir: Path, timeout_s: float = 10.0) -> None:
    """Stop the servers that :func:`ensure_demo_servers` started, by their pid files,
    whoever still holds a lease (``jointseg serve-demo --stop``); a run ending uses
    :func:`release_demo_servers` instead.

    Each server's whole process group gets SIGTERM, then SIGKILL after ``timeout_s``;
    this returns only when every process of the group has exited and the recorded
    port refuses connections. Only a group that still runs one of our commands
    (``rustac serve`` or ``jointseg.simulate.servers files``), led by the process
    recorded (same start time), is signalled; stale pid files are removed.

    Raises:
        ServerError: if a server survives SIGKILL or its port still answers.
    """
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return
    with locked(state_dir):
        for pid_file in sorted(state_dir.glob("*.pid")):
            _stop_pid_file(pid_file, timeout_s)


def hold_demo_servers(state_dir: Path, holder: int | None = None) -> None:
    """Take a lease on the demo servers of ``state_dir`` for ``holder`` (default
    :func:`lease_holder`) without starting them: a run that starts before the demo is
    simulated still counts as a user of the servers its jobs will start."""
    state_dir = Path(state_dir)
    with locked(state_dir):
        write_lease(state_dir, lease_holder() if holder is None else holder)


def release_demo_servers(state_dir: Path, holder: int | None = None,
                         timeout_s: float = 10.0) -> bool:
    """Drop ``holder``'s lease (default :func:`lease_holder`); stop the servers when no
    live lease is left (a dead process's lease does not count; stale lease files are
    removed). Returns whether the servers were stopped.

    Raises:
        ServerError: as :func:`stop_demo_servers`.
    """
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return False
    holder = lease_holder() if holder is None else holder
    with locked(state_dir):
        others = prune_dead_leases(state_dir, drop=holder)
        if others:
            log.info("demo servers kept: still used by pid(s) %s", others)
            return False
        for pid_file in sorted(state_dir.glob("*.pid")):
            _stop_pid_file(pid_file, timeout_s)
    return True


if __name__ == "__main__":  # the command of older pid files: python -m ...servers files
    from jointseg.simulate.fileserver import main

    main()
