"""Planetary Computer SAS signing of asset hrefs (tokens cached per account/container)."""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from jointseg.data.errors import StacError
from jointseg.data.providers import SceneInfo, parse_datetime
from jointseg.data.secrets import redact_url

log = logging.getLogger(__name__)

#: Planetary Computer's documented SAS token endpoint (one token per account/container).
PC_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
_token_cache: dict[tuple[str, str, str], tuple[str, float]] = {}
_token_lock = threading.Lock()


def _pc_account_container(href: str) -> tuple[str, str] | None:
    """(storage account, container) of an Azure blob href, None for other hrefs."""
    parts = urllib.parse.urlsplit(href)
    if not parts.netloc.endswith(".blob.core.windows.net"):
        return None
    container = parts.path.lstrip("/").split("/", 1)[0]
    return parts.netloc.split(".", 1)[0], container


def _pc_token(account: str, container: str, sas_url: str, timeout_s: float) -> str:
    """A SAS token for the container, cached until 5 minutes before its expiry.

    Raises:
        StacError: if the token endpoint cannot be reached or answers no token.
    """
    import requests

    key = (sas_url, account, container)
    with _token_lock:
        cached = _token_cache.get(key)
        if cached and cached[1] - time.time() > 300:
            return cached[0]
        url = f"{sas_url.rstrip('/')}/{account}/{container}"
        try:
            resp = requests.get(url, timeout=timeout_s)
            resp.raise_for_status()
            body = resp.json()
            token = str(body["token"])
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise StacError(f"cannot get a Planetary Computer SAS token from {url}: "
                            f"{type(exc).__name__}") from None
        expiry = time.time() + 45 * 60
        if body.get("msft:expiry"):
            try:
                expiry = parse_datetime(str(body["msft:expiry"])).timestamp()
            except ValueError:
                pass
        _token_cache[key] = (token, expiry)
        return token


def sign_href(href: str, provider: str, cfg: Mapping[str, Any] | None = None) -> str:
    """Sign a Planetary Computer blob href with a SAS token when configured.

    Signing happens only for ``provider == "planetary-computer"``, when
    ``cfg["sign_planetary_computer"]`` is true and the href is an Azure blob URL
    without a query already. Tokens come from the documented SAS endpoint
    (``cfg["sas_url"]``, default :data:`PC_SAS_URL`) and are cached until 5
    minutes before expiry. The token is never logged (see :func:`redact_url`).

    Raises:
        StacError: if the token endpoint cannot be reached.
    """
    cfg = cfg or {}
    if provider != "planetary-computer" or not cfg.get("sign_planetary_computer"):
        return href
    target = _pc_account_container(href)
    if target is None or urllib.parse.urlsplit(href).query:
        return href
    token = _pc_token(*target, str(cfg.get("sas_url") or PC_SAS_URL),
                      float(cfg.get("timeout_s", 60)))
    signed = f"{href}?{token.lstrip('?')}"
    log.debug("signed %s", redact_url(signed))
    return signed



def sign_scene(scene: SceneInfo, cfg: Mapping[str, Any]) -> SceneInfo:
    """``scene`` with every band href passed through :func:`sign_href`."""
    bands = {b: sign_href(h, scene.provider, cfg) for b, h in scene.bands.items()}
    return SceneInfo(**{**scene.to_dict(), "bands": bands})
