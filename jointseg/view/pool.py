"""Render threads that never keep the viewer alive.

The viewer renders tiles in a fixed set of daemon threads fed by a queue. A
``ThreadPoolExecutor`` (or Starlette's thread pool) would be joined when the interpreter
exits, so Ctrl-C waited for a render in GDAL to finish (minutes, before the read
budget); these threads are not joined, and :meth:`RenderPool.close` says how many
renders are still running so that the caller can end the process at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class RenderPool:
    """``threads`` daemon threads running submitted calls in order of submission."""

    def __init__(self, threads: int, name: str = "jointseg-render") -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = 0
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(max(1, threads))]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)``; its result or exception arrives in the returned future."""
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("render pool is closed")
        self._queue.put((fut, fn, args))
        return fut

    @property
    def running(self) -> int:
        """Calls being run right now."""
        with self._lock:
            return self._running

    def close(self) -> int:
        """Refuse new calls, cancel queued ones; return how many still run (not waited for)."""
        with self._lock:
            self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)
        return self.running

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():  # cancelled while queued
                continue
            with self._lock:
                self._running += 1
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                fut.set_exception(exc)
            finally:
                with self._lock:
                    self._running -= 1
