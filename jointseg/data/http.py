"""HTTP policy shared by the STAC search and the asset reads: retries, timeouts, schemes.

Two clients talk HTTP here. pystac-client's ``requests`` session (STAC API) retries
through urllib3 (:func:`stac_api_io`), plus :func:`retrying` for bodies cut short.
Asset reads go through GDAL's ``/vsicurl/`` (``/vsis3/``); there **our own loop owns
retrying** (``jointseg.data.assets.fetch_band``) and GDAL gets no retries of its
own, only timeouts (:meth:`RetryPolicy.gdal_config`): before, GDAL's retries ran
inside ours and a dead asset took minutes to give up.
"""

from __future__ import annotations

import logging
import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from urllib3.util.retry import Retry

from jointseg.data.secrets import redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses worth retrying (rate limit, server errors).
RETRY_STATUS = (429, 500, 502, 503, 504)
#: Hosts that plain ``http://`` may reach without ``allow_http``.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def plain_http_refused(url: str, allow_http: bool) -> bool:
    """True for an ``http://`` URL to a non-loopback host when ``allow_http`` is off
    (plain HTTP exposes signed URLs and data to anyone on the path)."""
    parts = urllib.parse.urlsplit(url)
    return (parts.scheme.lower() == "http" and not allow_http
            and (parts.hostname or "") not in LOOPBACK_HOSTS)


@dataclass(frozen=True)
class RetryPolicy:
    """How one remote asset read is retried and timed out.

    Attributes:
        retries: retries after the first attempt (transient failures only: HTTP
            5xx/429, resets, timeouts, truncated reads; 400/401/403/404/410 never).
        backoff_s: wait before the first retry (s), doubled each retry.
        timeout_s: ceiling of one HTTP request, whole transfer (s).
        connect_timeout_s: TCP/TLS connect timeout (s), at most ``timeout_s``.
        stall_s: a request that receives (almost) nothing for this long is aborted (s),
            at most ``timeout_s``; this is what ends a server that never answers.
        give_up_s: budget of one asset (s): no retry starts once its wait would end
            past ``give_up_s`` after the first attempt, and a retry's timeouts are cut
            to what is left of the budget.
    """

    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    stall_s: float = 10.0
    give_up_s: float = 20.0

    def wait_s(self, attempt: int) -> float:
        """Wait (s) after failed attempt number ``attempt`` (0-based)."""
        return self.backoff_s * 2**attempt

    def should_retry(self, attempt: int, elapsed_s: float) -> bool:
        """Whether attempt ``attempt`` (0-based, just failed) gets a successor, given
        ``elapsed_s`` seconds spent on the asset so far."""
        return attempt < self.retries and elapsed_s + self.wait_s(attempt) < self.give_up_s

    def gdal_config(self, elapsed_s: float = 0.0) -> dict[str, str]:
        """GDAL config options for one attempt starting ``elapsed_s`` s into the budget.

        ``GDAL_HTTP_MAX_RETRY=0``: GDAL does not retry (nor wait) on its own. Connect,
        stall (``GDAL_HTTP_LOW_SPEED_TIME`` below 1 byte/s) and whole-request
        timeouts; on a retry each is cut to the budget left (1 s at least).
        """
        left = self.give_up_s - elapsed_s if elapsed_s > 0 else math.inf
        total = max(1.0, min(self.timeout_s, left))
        return {
            "GDAL_HTTP_MAX_RETRY": "0",
            "GDAL_HTTP_TIMEOUT": f"{total:g}",
            "GDAL_HTTP_CONNECTTIMEOUT": f"{max(1.0, min(self.connect_timeout_s, total)):g}",
            "GDAL_HTTP_LOW_SPEED_TIME": str(max(1, int(min(self.stall_s, total)))),
            "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
        }


class _LoggedRetry(Retry):
    """urllib3 ``Retry`` that logs each retry with the (redacted) URL."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):  # noqa: ANN001, ANN201 - urllib3's signature
        where = f"{_pool.scheme}://{_pool.host}:{_pool.port}" if _pool is not None else ""
        why = f"HTTP {response.status}" if response is not None else type(error).__name__
        try:
            new = super().increment(method, url, response, error, _pool, _stacktrace)
        except Exception:
            log.error("%s %s%s: %s; retries spent, giving up", method,
                      where, redact_url(url or ""), why)
            raise
        log.warning("%s %s%s: %s; retrying (%d left)", method, where,
                    redact_url(url or ""), why, new.total if new.total is not None else -1)
        return new


def stac_api_io(timeout_s: float, retries: int, backoff_s: float) -> Any:
    """A pystac-client ``StacApiIO`` whose session retries transient HTTP failures.

    Retries connection errors, read timeouts and HTTP 429/500/502/503/504 (POST
    searches too: they are idempotent), waiting ``backoff_s * 2**k`` s or the
    server's ``Retry-After``; a refused connection is retried once. Every retry and
    give-up is logged with the (redacted) URL.
    """
    from pystac_client.stac_api_io import StacApiIO

    # A refused connection is retried once at once: it rarely heals in seconds, and a
    # wrong URL should fail fast.
    retry = _LoggedRetry(total=retries, connect=min(retries, 1), read=retries, status=retries,
                         backoff_factor=backoff_s, status_forcelist=RETRY_STATUS,
                         allowed_methods=None, respect_retry_after_header=True,
                         raise_on_status=False)
    return StacApiIO(timeout=timeout_s, max_retries=retry)


def retrying(call: Callable[[], T], what: str, retries: int, backoff_s: float,
             errors: tuple[type[BaseException], ...] = (OSError, ValueError)) -> T:
    """``call()``, redone on transport errors urllib3 cannot retry (bodies cut short).

    Exceptions of ``errors`` are retried ``retries`` times, waiting ``backoff_s * 2**k``
    s; those carrying an HTTP ``status_code`` (already retried by the session) are
    raised at once.
    """
    for attempt in range(retries + 1):
        try:
            return call()
        except errors as exc:
            if getattr(exc, "status_code", None) is not None or attempt == retries:
                log.error("%s: giving up after %d attempt(s): %s", what, attempt + 1,
                          reason(exc))
                raise
            wait = backoff_s * 2**attempt
            log.warning("%s: attempt %d failed (%s); retrying in %.1f s", what, attempt + 1,
                        reason(exc), wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def reason(exc: BaseException) -> str:
    """``"<ExceptionType>: <first line of its message>"`` for one-line error messages."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__
