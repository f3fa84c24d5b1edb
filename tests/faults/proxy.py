"""A loopback HTTP proxy that injects faults on a deterministic schedule.

:class:`FaultProxy` forwards every request to one upstream (the STAC API or the
Range file server of ``jointseg.simulate.servers``) and answers it unchanged, except for
the requests a :class:`Rule` selects, which get a :class:`Fault` instead:

=============  ==========================================================================
``status``     an HTTP error (500/502/503/429...) with an empty body, optional
               ``Retry-After`` (seconds)
``reset``      the TCP connection is reset (RST, SO_LINGER 0) before any byte is sent
``stall``      nothing is sent for ``stall_s`` seconds (longer than the client's
               timeout), then the connection is closed
``truncate``   the real status and ``Content-Length``, but only the first half of the
               body, then the connection is closed
``bad_length`` a ``Content-Length`` smaller than the body (half of it) and that many
               bytes: the response looks complete but is short
=============  ==========================================================================

Rules match a regular expression against ``METHOD path?query`` and select
requests by their 1-based count per method and path (``nth``: ``GET /a.tif`` and
``HEAD /a.tif`` are counted apart) or all of them (``always``); counts are kept per
method and path, so the schedule is the same whatever order threads run in.
Every request is recorded in :attr:`FaultProxy.events`.

``rewrite`` replaces byte strings in JSON bodies (the upstream's own URL in STAC
links, asset hrefs pointing at another upstream), so clients that follow links
stay behind the proxy.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("status", "reset", "stall", "truncate", "bad_length")
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "date",
                "server"}


@dataclass(frozen=True)
class Fault:
    """What to do instead of forwarding a request (see the module docstring)."""

    kind: str
    status: int = 503
    retry_after: float | None = None
    stall_s: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")


@dataclass(frozen=True)
class Rule:
    """Apply ``fault`` to requests matching ``pattern`` whose per-path count is in ``nth``."""

    pattern: str
    fault: Fault
    nth: tuple[int, ...] = ()
    always: bool = False

    def selects(self, line: str, count: int) -> bool:
        return bool(re.search(self.pattern, line)) and (self.always or count in self.nth)


@dataclass
class FaultProxy:
    """Threaded HTTP proxy to ``upstream`` on a free 127.0.0.1 port (use as a context manager)."""

    upstream: str
    rules: Iterable[Rule] = ()
    rewrite: dict[str, str] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rules = list(self.rules)
        parts = urllib.parse.urlsplit(self.upstream)
        self._up_host, self._up_port = parts.hostname or "127.0.0.1", parts.port or 80
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- bookkeeping
    def reset(self, rules: Iterable[Rule] = ()) -> None:
        """New schedule; request counts and the event record start again from zero."""
        with self._lock:
            self.rules = list(rules)
            self._counts.clear()
            self.events.clear()

    def faults(self, kind: str | None = None) -> list[dict]:
        """Recorded events where a fault was injected (of ``kind`` if given)."""
        return [e for e in self.events if e["fault"] != "pass"
                and (kind is None or e["fault"] == kind)]

    def _decide(self, method: str, path: str) -> tuple[int, Fault | None]:
        key = f"{method} {urllib.parse.urlsplit(path).path}"
        with self._lock:
            count = self._counts[key] = self._counts.get(key, 0) + 1
        line = f"{method} {path}"
        for rule in self.rules:
            if rule.selects(line, count):
                return count, rule.fault
        return count, None

    def _record(self, **event: object) -> None:
        with self._lock:
            self.events.append({"n": len(self.events) + 1, **event})


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        p = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else None
        count, fault = p._decide(self.command, self.path)
        rng = self.headers.get("Range")
        p._record(method=self.command, path=self.path, range=rng, count=count,
                  fault=fault.kind if fault else "pass",
                  status=fault.status if fault and fault.kind == "status" else None)
        if fault is not None and fault.kind == "status":
            self.send_response(fault.status)
            if fault.retry_after is not None:
                self.send_header("Retry-After", f"{fault.retry_after:g}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault is not None and fault.kind == "reset":
            self._reset()
            return
        if fault is not None and fault.kind == "stall":
            p._stop.wait(fault.stall_s)
            self.close_connection = True
            return
        status, headers, body = self._forward(body_in)
        if self.command != "HEAD" and p.rewrite and "json" in headers.get("content-type", ""):
            for old, new in p.rewrite.items():
                body = body.replace(old.encode(), new.encode())
        declared = len(body)
        sent = body
        if fault is not None and fault.kind in ("truncate", "bad_length") and body:
            sent = body[: len(body) // 2]
            if fault.kind == "bad_length":
                declared = len(sent)
            self.close_connection = True
        self.send_response(status)
        for k, v in headers.items():
            if k not in _HOP_HEADERS:
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", headers.get("content-length", "0"))
        else:
            self.send_header("Content-Length", str(declared))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(sent)

    def _forward(self, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        p = self.owner
        conn = http.client.HTTPConnection(p._up_host, p._up_port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "connection", "accept-encoding")}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def _reset(self) -> None:
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        try:
            sock.close()
        except OSError:
            pass
        self.wfile = _Discard()  # the base class flushes wfile after the handler returns


class _Discard:
    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
