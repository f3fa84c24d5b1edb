"""Secret redaction: the one place that masks credentials in URLs, messages and logs.

Signed asset URLs carry credentials in their query (Planetary Computer SAS ``sig``,
``se``...; S3 presigned ``X-Amz-Signature``...; ``token``), and request headers may
carry ``Authorization`` values. :func:`redact_url` and :func:`redact_text` mask
them for our own messages; :class:`SecretFilter` (installed by
:func:`install_secret_filter`) masks them in what GDAL, urllib3 and pystac-client log.
"""

from __future__ import annotations

import logging
import re
import urllib.parse

#: Query keys whose values are credentials (compared lower-case; any key containing
#: "token" counts too).
_SECRET_QUERY_KEYS = {"sig", "token", "se", "st", "sp", "sv", "sr", "skoid", "sktid", "skt",
                      "ske", "sks", "skv", "spr", "sip", "code", "access_token", "key",
                      "x-amz-signature", "x-amz-credential", "x-amz-security-token",
                      "x-goog-signature", "x-goog-credential", "signature"}


def redact_url(url: str) -> str:
    """``url`` with secret query values (SAS ``sig``, tokens, signatures) replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    query = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS or "token" in k.lower() else v)
             for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(
        query=urllib.parse.urlencode(query, safe="*")))


_URL_QUERY_RE = re.compile(r"https?://[^\s'\"<>?]+\?[^\s'\"<>]+")
_AUTH_RE = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:bearer\s+|basic\s+)?"
                      r"[^\s'\",}]+")
#: Loggers of libraries that put request URLs/headers into their messages.
SECRET_FILTERED_LOGGERS = ("rasterio._env", "rasterio._err", "rasterio._io", "rasterio._base",
                           "rasterio.env", "urllib3.connectionpool", "urllib3.util.retry",
                           "pystac_client.stac_api_io", "jointseg")


def redact_text(text: str) -> str:
    """``text`` with secret URL query values and Authorization header values masked."""
    text = _URL_QUERY_RE.sub(lambda m: redact_url(m.group(0)), text)
    return _AUTH_RE.sub(lambda m: f"{m.group(1)}***", text)


class SecretFilter(logging.Filter):
    """Logging filter that masks SAS tokens, signatures and bearer tokens in messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's problem, not ours
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_SECRET_FILTER = SecretFilter()


def install_secret_filter() -> None:
    """Attach :class:`SecretFilter` to the loggers that may carry credentials (idempotent).

    Logger filters run before propagation, so every handler (CLI stderr, Snakemake
    logs, pytest's caplog) gets the masked text.
    """
    for name in SECRET_FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if _SECRET_FILTER not in logger.filters:
            logger.addFilter(_SECRET_FILTER)

