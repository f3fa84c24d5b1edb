"""Bounded producer/consumer threads: run one stage of the inference pipeline ahead.

:func:`prefetch` runs an iterator in a daemon thread and hands its items over through a
queue of at most ``depth`` items, so a stage works ahead of its consumer by at most
``depth`` items and memory stays bounded. Chaining two of them gives
:func:`~jointseg.inference.tiling.iter_blocks` its three threads (reader -> ORT +
blend -> the caller, which writes); ``depth`` 0 runs the stage on the calling thread,
item by item, which is the serial reference.

An exception in the stage is raised in the consumer, with its own traceback. When the
consumer stops early (an exception, ``close()``, a ``break``), the stage is told to
stop and joined before the consumer goes on, so nothing it reads (a scene's open
datasets) is closed under it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()
_POLL_S = 0.1


class _Failed:
    """The stage raised ``exc`` (carried to the consumer)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int, name: str) -> Iterator[T]:
    """Iterate ``items`` in a thread named ``name``, at most ``depth`` items ahead.

    Args:
        items: the stage (any iterable; a generator is closed in its own thread).
        depth: queue size; 0 = no thread, ``items`` runs on the caller's thread.
        name: thread name (shows in ``py-spy``, ``faulthandler`` dumps and logs).

    Yields:
        The items of ``items``, in order.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            put(_Failed(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()
