"""Read one remote (or local) asset onto a tile grid, retrying what can heal.

GDAL reads the asset (``http(s)://`` through ``/vsicurl/``, ``s3://`` through
``/vsis3/``, local paths as they are) with **no retries of its own**
(``GDAL_HTTP_MAX_RETRY=0``) and the connect / stall / request timeouts of
:class:`jointseg.data.http.RetryPolicy`; :func:`fetch_band` owns retrying:

* HTTP 400/401/403/404/410 and missing local files fail at once (no retry);
* a local file that does not decode fails at once ("corrupt or truncated");
* anything else remote (5xx, 429, resets, refused or timed-out connections,
  truncated reads) is retried with exponential backoff, re-reading the file
  without GDAL's cache, until the retries or the asset's time budget
  (``give_up_s``) are spent.

So a dead asset gives up within about ``give_up_s`` (20 s by default) instead of
GDAL's retries running inside ours (8 minutes for a persistent 503 before).
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from jointseg.data.align import read_to_grid
from jointseg.data.errors import DownloadError
from jointseg.data.http import RetryPolicy, plain_http_refused
from jointseg.data.secrets import install_secret_filter, redact_text, redact_url
from jointseg.grid import GeoBox

log = logging.getLogger(__name__)

#: GDAL options for every asset read (no directory listing, only raster extensions).
GDAL_READ_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.jp2",
}
_PERMANENT_RE = re.compile(
    r"HTTP (response )?(code|error)[: ]*\s*(400|401|403|404|410)\b"
    r"|\b404\b|No such file or directory|does not exist in the file system",
    re.IGNORECASE,
)


def gdal_path(href: str) -> str:
    """GDAL path for an asset href: ``/vsicurl/`` for http(s), ``/vsis3/`` for s3, else as is."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[len('s3://'):]}"
    if href.startswith("file://"):
        return href[len("file://"):]
    return href


def is_remote(href: str) -> bool:
    """True for hrefs read over the network (http(s), s3)."""
    return href.startswith(("http://", "https://", "s3://"))


def check_href(href: str, *, allow_http: bool = False, what: str = "asset") -> None:
    """Refuse hrefs the pipeline should not follow.

    Allowed: ``https://``, ``s3://``, ``file://`` and local paths; ``http://`` only
    for loopback hosts unless ``allow_http`` (plain HTTP exposes signed URLs and data
    to anyone on the path). Any other scheme (``ftp://``, ``gs://``, ``/vsi...``
    chains) is refused.

    Raises:
        DownloadError: naming ``what`` and the redacted href.
    """
    scheme = urllib.parse.urlsplit(href).scheme.lower()
    if scheme in ("https", "s3", "file") or (scheme == "" and not href.startswith("/vsi")):
        return
    if scheme == "http" and not plain_http_refused(href, allow_http):
        return
    if scheme == "http":
        raise DownloadError(f"{what}: refusing plain http:// to a non-loopback host: "
                            f"{redact_url(href)} (use https, or allow_http to permit it)")
    raise DownloadError(f"{what}: unsupported href scheme {scheme or href[:5]!r}: "
                        f"{redact_url(href)} (expected https, s3, file or a local path)")


def _root_message(exc: BaseException) -> str:
    """First line of the most specific message in ``exc``'s cause chain (GDAL's own text),
    credentials in URLs masked."""
    best = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        text = str(cause).strip()
        if text:
            best = text
        cause = cause.__cause__ or cause.__context__
    return redact_text(best.splitlines()[0]) if best else type(exc).__name__


def is_permanent(exc: BaseException) -> bool:
    """Whether a read error will not heal by retrying (HTTP 400/401/403/404/410, no file)."""
    return bool(_PERMANENT_RE.search(str(exc)))


def _read_once(path: str, grid: GeoBox, categorical: bool, what: str, shown: str,
               env: dict[str, str]) -> np.ndarray:
    """One attempt: open ``path`` under the GDAL options ``env`` and read it onto ``grid``."""
    with rasterio.Env(**env), rasterio.open(path) as ds:
        if ds.crs is None:
            raise DownloadError(f"{what}: {shown} has no CRS "
                                "(expected a georeferenced GeoTIFF/COG)")
        return read_to_grid(ds, grid, categorical=categorical)


def fetch_band(
    href: str,
    grid: GeoBox,
    *,
    categorical: bool,
    what: str,
    policy: RetryPolicy | None = None,
    allow_http: bool = False,
) -> np.ndarray:
    """Read one asset onto ``grid`` (source dtype, 0 = no data), retrying transient failures.

    Args:
        href: asset URL or path.
        grid: target grid.
        categorical: nearest resampling (class bands) instead of bilinear.
        what: ``"<tile>: asset <band> of <scene>"``, used in messages.
        policy: retries, backoff, timeouts and the time budget (default
            :class:`~jointseg.data.http.RetryPolicy`).
        allow_http: follow plain ``http://`` to non-loopback hosts (see :func:`check_href`).

    Raises:
        DownloadError: a refused href, a permanent failure, or when the retries or the
            time budget are spent; the message names ``what`` and the redacted href.
    """
    policy = policy or RetryPolicy()
    check_href(href, allow_http=allow_http, what=what)
    install_secret_filter()  # GDAL's own error messages carry the full (signed) URL
    path, shown = gdal_path(href), redact_url(href)
    start = time.monotonic()
    attempt = 0
    while True:
        env = {**GDAL_READ_OPTIONS, **policy.gdal_config(time.monotonic() - start)}
        if attempt:  # do not reuse GDAL's cached (failed or truncated) view of the file
            env["CPL_VSIL_CURL_NON_CACHED"] = path
        try:
            return _read_once(path, grid, categorical, what, shown, env)
        except (RasterioError, OSError) as exc:
            if is_permanent(exc):
                log.error("%s not found: %s", what, shown)
                raise DownloadError(f"{what} not found: {shown}") from exc
            msg = _root_message(exc)
            if not is_remote(href):  # a local file does not heal by waiting
                log.error("%s: %s is corrupt or truncated: %s", what, shown, msg)
                raise DownloadError(f"{what}: {shown} is corrupt or truncated: {msg}") from exc
            elapsed = time.monotonic() - start
            if not policy.should_retry(attempt, elapsed):
                log.error("%s: giving up after %d attempts in %.1f s: %s: %s", what,
                          attempt + 1, elapsed, shown, msg)
                raise DownloadError(
                    f"{what} failed after {attempt + 1} attempts: {shown}: {msg}"
                ) from exc
            wait = policy.wait_s(attempt)
            log.warning("%s: attempt %d failed (%s); retrying %s in %.1f s",
                        what, attempt + 1, msg, shown, wait)
            time.sleep(wait)
            attempt += 1
