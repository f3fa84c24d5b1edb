"""Find Sentinel-2 L2A scenes for a tile in a STAC API and describe them uniformly.

Three providers publish Sentinel-2 L2A through STAC with different conventions;
:func:`scene_info_from_item` turns an Item from any of them into one
:class:`SceneInfo` (the "Search output" contract in ``docs/architecture.md``):

* **earth-search** (Element 84): v1 ``sentinel-2-l2a`` asset keys ``blue`` ...
  ``swir22``, ``scl``; v0 ``sentinel-s2-l2a-cogs`` keys ``B02`` ... ``SCL``. Baseline in
  ``s2:processing_baseline`` (v0: ``sentinel:processing_baseline``). ``s3://sentinel-cogs``
  hrefs map to the bucket's public https endpoint.
* **planetary-computer**: keys ``B02`` ... ``B12``, ``SCL``; ``s2:processing_baseline``;
  Azure blob https hrefs, SAS-signed on request (:func:`sign_href`).
* **cdse** (Copernicus Data Space Ecosystem): keys ``B02_10m``, ``B05_20m``, ``SCL_20m``
  ... (the native resolution is chosen); ``processing:version`` (or
  ``s2:processing_baseline``); ``s3://eodata/...`` hrefs are kept and read by GDAL as
  ``/vsis3/`` with ``AWS_S3_ENDPOINT=eodata.dataspace.copernicus.eu`` and CDSE S3 keys.

BOA offset (``boa_offset_dn``)
------------------------------
From processing baseline 04.00 (products from 25 Jan 2022, and every product of
the reprocessed Collection 1) ESA stores ``DN = reflectance * 10000 + 1000``,
i.e. ``reflectance = (DN + BOA_ADD_OFFSET) / 10000`` with ``BOA_ADD_OFFSET = -1000``.
``boa_offset_dn`` is the number to ADD to the DN as stored by the provider
before scaling: ``-1000`` when the stored pixels still carry ESA's offset, ``0``
when they never had it or the provider already removed it. It is applied once,
in ``composite``. Evidence is taken in this order:

1. ``earthsearch:boa_offset_applied`` (v0: ``sentinel:boa_offset_applied``) is
   ``true``: Earth Search's COG conversion already added ``BOA_ADD_OFFSET`` to
   the pixels, so they are harmonised and the answer is ``0``. Earth Search
   items of that kind still advertise ``raster:bands`` ``offset: -0.1``; its
   maintainers call that value wrong and the flag "the truth"
   (Element84/earth-search#9; the flag was introduced for exactly this in
   cirrus-geo/cirrus-earth-search#21), so
   the flag outranks ``raster:bands`` here. This is what "never twice" means.
2. ``raster:bands`` offset (STAC 1.0) or ``raster:offset`` (STAC 1.1, on the
   asset or in ``bands``) of the spectral assets, with its scale:
   ``round(offset / scale)``, e.g. ``-0.1 / 0.0001 = -1000``. CDSE writes it
   per product; Earth Search items with the flag ``false`` carry it too.
3. The processing baseline (``s2:processing_baseline``, ``processing:version``,
   ``sentinel:processing_baseline``, or ``_N0400_`` in the product id)
   ``>= 04.00`` gives ``-1000``, below gives ``0``. Planetary Computer items
   carry no ``raster:bands``, and PC serves ESA's DN unchanged (not harmonised;
   microsoft/PlanetaryComputer#134), so this rule decides for PC.
4. The acquisition date ``>= 2022-01-25`` as the last resort (wrong for
   reprocessed Collection-1 products of earlier dates, hence last).

Known limitation: some Earth Search ``sentinel-2-l2a`` items are mislabelled
(flag ``false`` although the pixels were already harmonised,
Element84/earth-search#66 and #71); metadata cannot detect that.

Cloud cover is filtered client-side after the search: the loopback
``rustac serve`` memory backend conforms to neither the ``query`` nor the
``filter`` extension (and answers an empty page when sent either), and doing it
here gives the same result against every API. ``query`` is still sent to APIs
that declare the query extension, to cut traffic.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from urllib3.util.retry import Retry

from jointseg.io import write_json

log = logging.getLogger(__name__)

PROVIDERS = ("earth-search", "planetary-computer", "cdse", "unknown")
#: Band ids of a scene, in the order the pipeline uses them.
BAND_IDS = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL")
#: Every band id an L2A item may carry (spectral + classification).
ALL_BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                "B11", "B12", "SCL")
#: Native resolution (m) of each band; CDSE offers resampled copies too.
NATIVE_RES_M = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B05": 20, "B06": 20, "B07": 20,
                "B8A": 20, "B11": 20, "B12": 20, "SCL": 20, "B01": 60, "B09": 60}
#: Earth Search v1 asset keys -> band ids.
EARTH_SEARCH_KEYS = {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04",
                     "rededge1": "B05", "rededge2": "B06", "rededge3": "B07", "nir": "B08",
                     "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12",
                     "scl": "SCL"}
BOA_OFFSET_DN = -1000
BASELINE_04_DATE = dt.date(2022, 1, 25)
L2A_SCALE = 1e-4

_BAND_KEY_RE = re.compile(r"^(B0[1-9]|B1[0-2]|B8A|SCL)(?:_(\d+)m)?$", re.IGNORECASE)
_PRODUCT_BASELINE_RE = re.compile(r"_N(\d{2})(\d{2})_")


class StacError(RuntimeError):
    """A STAC API could not be reached or answered something unusable."""


class NoScenesError(StacError):
    """A search matched no usable scene."""


class ItemError(ValueError):
    """A STAC Item lacks what a scene needs (bands, datetime...)."""


@dataclass(frozen=True)
class SceneInfo:
    """One Sentinel-2 L2A scene, provider-neutral.

    Attributes:
        id: STAC Item id.
        datetime: acquisition time, ISO 8601 UTC (``2021-03-01T02:50:11Z``).
        cloud_cover: scene cloud cover, percent (``eo:cloud_cover``).
        processing_baseline: ESA processing baseline (``"05.09"``) or None if unknown.
        boa_offset_dn: 0 or -1000: add to the stored DN before multiplying by ``scale``.
        scale: reflectance per DN (1e-4).
        bands: band id (B02 ... B12, B8A, SCL) -> href readable by GDAL/rasterio.
        epsg: EPSG code of the scene's UTM grid, or None.
        provider: "earth-search", "planetary-computer", "cdse" or "unknown".
        simulated: True for items of the project's simulator (property ``simulated``).
    """

    id: str
    datetime: str
    cloud_cover: float
    processing_baseline: str | None
    boa_offset_dn: int
    scale: float = L2A_SCALE
    bands: dict[str, str] = field(default_factory=dict)
    epsg: int | None = None
    provider: str = "unknown"
    simulated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the contract's field names)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SceneInfo:
        """Inverse of :meth:`to_dict`.

        Raises:
            ItemError: if a required key is missing or of the wrong type.
        """
        try:
            return cls(
                id=str(d["id"]),
                datetime=str(d["datetime"]),
                cloud_cover=float(d["cloud_cover"]),
                processing_baseline=(None if d.get("processing_baseline") is None
                                     else str(d["processing_baseline"])),
                boa_offset_dn=int(d["boa_offset_dn"]),
                scale=float(d.get("scale", L2A_SCALE)),
                bands={str(k): str(v) for k, v in dict(d["bands"]).items()},
                epsg=None if d.get("epsg") is None else int(d["epsg"]),
                provider=str(d.get("provider", "unknown")),
                simulated=bool(d.get("simulated", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ItemError(f"scene {d.get('id')!r}: malformed SceneInfo: {exc!r}") from None

    @property
    def date(self) -> dt.date:
        """Acquisition date (UTC)."""
        return _parse_datetime(self.datetime).date()


# --------------------------------------------------------------------------------------
# Item -> SceneInfo


def _item_dict(item: Any) -> dict:
    if isinstance(item, Mapping):
        return dict(item)
    to_dict = getattr(item, "to_dict", None)
    if to_dict is None:
        raise ItemError(f"not a STAC Item: {type(item).__name__}")
    return to_dict(include_self_link=False, transform_hrefs=False)


def _parse_datetime(value: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC)


def _iso_utc(t: dt.datetime) -> str:
    s = t.astimezone(dt.UTC).isoformat(timespec="microseconds")
    s = s.replace("+00:00", "Z")
    return s.replace(".000000Z", "Z")


def detect_provider(item: Mapping[str, Any]) -> str:
    """Guess the publishing provider of an Item dict from links, hrefs, keys and properties."""
    props = item.get("properties") or {}
    assets = item.get("assets") or {}
    texts = [str(link.get("href", "")) for link in item.get("links") or []]
    texts += [str(a.get("href", "")) for a in assets.values() if isinstance(a, Mapping)]
    blob = " ".join(texts).lower()
    if "earth-search" in blob or "sentinel-cogs" in blob or any(
            k.startswith(("earthsearch:", "sentinel:")) for k in props):
        return "earth-search"
    if "planetarycomputer" in blob or "blob.core.windows.net" in blob:
        return "planetary-computer"
    if "dataspace.copernicus.eu" in blob or "s3://eodata/" in blob or "processing:version" in props:
        return "cdse"
    keys = set(assets)
    if keys & {"blue", "red", "nir08", "rededge1", "swir16"}:
        return "earth-search"
    if any(re.match(r"^B\d[\dA]_\d+m$", k) for k in keys):
        return "cdse"
    if "s2:processing_baseline" in props and keys & {"B02", "SCL"}:
        return "planetary-computer"
    return "unknown"


def _band_assets(assets: Mapping[str, Any]) -> dict[str, tuple[str, dict]]:
    """band id -> (asset key, asset) for every band asset, preferring native resolution."""
    found: dict[str, tuple[str, dict, int]] = {}  # band -> (key, asset, res rank)
    for key, asset in assets.items():
        if not isinstance(asset, Mapping) or "href" not in asset:
            continue
        band = EARTH_SEARCH_KEYS.get(key)
        res: int | None = None
        if band is None:
            m = _BAND_KEY_RE.match(key)
            if not m:
                continue
            band = m.group(1).upper()
            res = int(m.group(2)) if m.group(2) else None
        # rank: native resolution first, then the finest other resolution
        native = NATIVE_RES_M.get(band, 10)
        rank = 0 if res in (None, native) else (1 if res < native else 2) * 1000 + res
        if band not in found or rank < found[band][2]:
            found[band] = (key, dict(asset), rank)
    return {b: (k, a) for b, (k, a, _) in found.items()}


def _asset_scale_offset(asset: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(scale, offset) declared by an asset: raster:bands (STAC 1.0) or raster:* (1.1)."""
    for rb in asset.get("raster:bands") or []:
        if "offset" in rb or "scale" in rb:
            return rb.get("scale"), rb.get("offset")
    if "raster:offset" in asset or "raster:scale" in asset:
        return asset.get("raster:scale"), asset.get("raster:offset")
    for b in asset.get("bands") or []:
        if "raster:offset" in b or "raster:scale" in b:
            return b.get("raster:scale"), b.get("raster:offset")
    return None, None


def processing_baseline(item: Mapping[str, Any]) -> str | None:
    """ESA processing baseline as ``"NN.NN"``, from properties or the product id, else None."""
    props = item.get("properties") or {}
    for key in ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline"):
        value = props.get(key)
        if value not in (None, ""):
            try:
                return f"{float(value):05.2f}"
            except (TypeError, ValueError):
                continue
    for key in ("s2:product_uri", "sentinel:product_id"):
        m = _PRODUCT_BASELINE_RE.search(str(props.get(key, "")))
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    m = _PRODUCT_BASELINE_RE.search(str(item.get("id", "")))
    return f"{m.group(1)}.{m.group(2)}" if m else None


def decide_boa_offset_dn(
    item: Mapping[str, Any], band_assets: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[int, str]:
    """The DN to add before scaling (0 or -1000) and which evidence decided it.

    See the module docstring for the order of evidence and its sources.

    Raises:
        ItemError: if the band assets declare conflicting offsets.
    """
    props = item.get("properties") or {}
    for flag in ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied"):
        if props.get(flag) is True:
            return 0, flag
    if band_assets is None:
        band_assets = {b: a for b, (_, a) in _band_assets(item.get("assets") or {}).items()}
    offsets = set()
    for band, asset in band_assets.items():
        if band == "SCL":
            continue
        scale, offset = _asset_scale_offset(asset)
        if offset is not None:
            scale = float(scale) if scale else L2A_SCALE
            offsets.add(int(round(float(offset) / scale)))
    if len(offsets) > 1:
        raise ItemError(f"item {item.get('id')!r}: band assets declare different offsets "
                        f"{sorted(offsets)} DN")
    if offsets:
        value = offsets.pop()
        if value not in (0, BOA_OFFSET_DN):
            raise ItemError(f"item {item.get('id')!r}: unexpected BOA offset {value} DN "
                            "(expected 0 or -1000)")
        return value, "raster:bands"
    baseline = processing_baseline(item)
    if baseline is not None:
        return (BOA_OFFSET_DN if float(baseline) >= 4.0 else 0), "processing baseline"
    when = props.get("datetime") or props.get("start_datetime")
    if when is None:
        raise ItemError(f"item {item.get('id')!r}: no datetime, cannot decide the BOA offset")
    date = _parse_datetime(str(when)).date()
    return (BOA_OFFSET_DN if date >= BASELINE_04_DATE else 0), "acquisition date"


def map_href(href: str, provider: str) -> str:
    """Make an asset href readable over the network.

    Earth Search ``s3://sentinel-cogs/<key>`` (a public bucket) becomes
    ``https://sentinel-cogs.s3.us-west-2.amazonaws.com/<key>``. CDSE
    ``s3://eodata/...`` stays: GDAL reads it as ``/vsis3/`` with
    ``AWS_S3_ENDPOINT=eodata.dataspace.copernicus.eu`` and CDSE S3 keys. Other
    hrefs are returned unchanged.
    """
    if href.startswith("s3://sentinel-cogs/"):
        return "https://sentinel-cogs.s3.us-west-2.amazonaws.com/" + href[len("s3://sentinel-cogs/"):]
    return href


def scene_info_from_item(item: Any, provider: str = "auto") -> SceneInfo:
    """Describe a Sentinel-2 L2A STAC Item (dict or ``pystac.Item``) as a :class:`SceneInfo`.

    Args:
        item: the Item, from Earth Search (v0 or v1), Planetary Computer or CDSE.
        provider: one of :data:`PROVIDERS` minus "unknown", or "auto" to detect it.

    Raises:
        ItemError: if the item has no datetime, no cloud cover, or none of the bands
            B02 B03 B04 B08.
    """
    d = _item_dict(item)
    item_id = str(d.get("id", "?"))
    if provider == "auto":
        provider = detect_provider(d)
    elif provider not in PROVIDERS:
        raise ItemError(f"item {item_id!r}: unknown provider {provider!r}; "
                        f"expected auto or one of {', '.join(PROVIDERS)}")
    props = d.get("properties") or {}
    when = props.get("datetime") or props.get("start_datetime")
    if not when:
        raise ItemError(f"item {item_id!r}: no properties.datetime")
    cloud = props.get("eo:cloud_cover")
    if cloud is None:
        raise ItemError(f"item {item_id!r}: no properties.eo:cloud_cover")
    band_assets = _band_assets(d.get("assets") or {})
    missing = [b for b in ("B02", "B03", "B04", "B08") if b not in band_assets]
    if missing:
        raise ItemError(f"item {item_id!r}: no asset for band(s) {', '.join(missing)} "
                        f"(asset keys: {', '.join(sorted(d.get('assets') or {}))})")
    offset_dn, why = decide_boa_offset_dn(d, {b: a for b, (_, a) in band_assets.items()})
    epsg = props.get("proj:epsg")
    if epsg is None and str(props.get("proj:code", "")).upper().startswith("EPSG:"):
        epsg = props["proj:code"].split(":", 1)[1]
    if epsg is None:  # STAC 1.1 items may put proj:code on the assets only
        codes = {str(a.get("proj:code")) for _, a in band_assets.values() if a.get("proj:code")}
        if len(codes) == 1:
            epsg = codes.pop().split(":", 1)[-1]
    bands = {b: map_href(str(band_assets[b][1]["href"]), provider)
             for b in ALL_BAND_IDS if b in band_assets}
    info = SceneInfo(
        id=item_id,
        datetime=_iso_utc(_parse_datetime(str(when))),
        cloud_cover=float(cloud),
        processing_baseline=processing_baseline(d),
        boa_offset_dn=offset_dn,
        scale=L2A_SCALE,
        bands=bands,
        epsg=None if epsg is None else int(epsg),
        provider=provider,
        simulated=bool((d.get("properties") or {}).get("simulated", False)),
    )
    log.debug("%s: provider %s, baseline %s, boa_offset_dn %d (from %s)", item_id, provider,
              info.processing_baseline, offset_dn, why)
    return info


# --------------------------------------------------------------------------------------
# Planetary Computer signing

#: Planetary Computer's documented SAS token endpoint (one token per account/container).
PC_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
_SECRET_QUERY_KEYS = {"sig", "token", "se", "st", "sp", "sv", "sr", "skoid", "sktid", "skt",
                      "ske", "sks", "skv", "spr", "sip", "code", "access_token", "key",
                      "x-amz-signature", "x-amz-credential", "x-amz-security-token"}
_token_cache: dict[tuple[str, str, str], tuple[str, float]] = {}
_token_lock = threading.Lock()


def redact_url(url: str) -> str:
    """``url`` with secret query values (SAS ``sig``, tokens, signatures) replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    query = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS or "token" in k.lower() else v)
             for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(
        query=urllib.parse.urlencode(query, safe="*")))


def _pc_account_container(href: str) -> tuple[str, str] | None:
    parts = urllib.parse.urlsplit(href)
    if not parts.netloc.endswith(".blob.core.windows.net"):
        return None
    container = parts.path.lstrip("/").split("/", 1)[0]
    return parts.netloc.split(".", 1)[0], container


def _pc_token(account: str, container: str, sas_url: str, timeout_s: float) -> str:
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
                expiry = _parse_datetime(str(body["msft:expiry"])).timestamp()
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


# --------------------------------------------------------------------------------------
# Search


def _conforms_to_query(client: Any) -> bool:
    try:
        from pystac_client.conformance import ConformanceClasses

        return bool(client.conforms_to(ConformanceClasses.QUERY))
    except Exception:  # noqa: BLE001 - conformance probing must never break a search
        return False


RETRY_STATUS = (429, 500, 502, 503, 504)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


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
    """A pystac-client ``StacApiIO`` whose session retries like GDAL's /vsicurl/.

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


def _retrying(call: Any, what: str, retries: int, backoff_s: float) -> Any:
    """``call()``, redone on transport errors urllib3 cannot retry (bodies cut short).

    HTTP error statuses (already retried by the session) are raised at once.
    """
    from pystac_client.exceptions import APIError

    for attempt in range(retries + 1):
        try:
            return call()
        except (APIError, OSError, ValueError) as exc:
            if getattr(exc, "status_code", None) is not None or attempt == retries:
                log.error("%s: giving up after %d attempt(s): %s", what, attempt + 1,
                          _reason(exc))
                raise
            wait = backoff_s * 2**attempt
            log.warning("%s: attempt %d failed (%s); retrying in %.1f s", what, attempt + 1,
                        _reason(exc), wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


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


def _bounds_text(geometry: BaseGeometry) -> str:
    return "[" + ", ".join(f"{v:.5f}" for v in geometry.bounds) + "]"


def search_scenes(
    api_url: str,
    collection: str,
    geometry_lonlat: BaseGeometry,
    start_date: dt.date | str,
    end_date: dt.date | str,
    max_cloud_cover: float,
    max_scenes: int,
    provider: str = "auto",
    sign: bool = False,
    timeout_s: float = 60.0,
    min_coverage: float = 0.0,
    page_size: int = 100,
    stac_cfg: Mapping[str, Any] | None = None,
    retries: int = 5,
    backoff_s: float = 1.0,
    allow_http: bool = False,
) -> list[SceneInfo]:
    """Search a STAC API for the least cloudy L2A scenes over a footprint.

    Args:
        api_url: STAC API root, e.g. ``https://earth-search.aws.element84.com/v1``.
        collection: collection id, e.g. ``sentinel-2-l2a``.
        geometry_lonlat: footprint (shapely, EPSG:4326 lon/lat) the scenes must intersect.
        start_date, end_date: inclusive acquisition window (dates, UTC).
        max_cloud_cover: keep scenes with ``eo:cloud_cover <= max_cloud_cover`` (percent).
        max_scenes: keep at most this many, least cloudy first (ties: earlier date first).
        provider: item conventions ("auto" to detect per item).
        sign: sign Planetary Computer hrefs (see :func:`sign_href`).
        timeout_s: HTTP timeout per request (s).
        min_coverage: minimum fraction (0-1) of the footprint an item geometry must cover.
        page_size: items per page requested from the API (``limit``).
        stac_cfg: extra signing settings (``sas_url``).
        retries: HTTP retries per request (5xx, 429 honouring ``Retry-After``, resets,
            timeouts) and whole-search retries for bodies cut short.
        backoff_s: first retry wait (s), doubled each retry.
        allow_http: accept a plain ``http://`` API URL on a non-loopback host.

    Returns:
        Up to ``max_scenes`` scenes, sorted by acquisition time.

    Raises:
        StacError: if the API cannot be reached or fails during the search.
        NoScenesError: if no scene passes the filters.
    """
    import pystac_client
    from pystac_client.exceptions import APIError

    start = dt.date.fromisoformat(str(start_date))
    end = dt.date.fromisoformat(str(end_date))
    window = f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"
    shown = redact_url(api_url)
    install_secret_filter()
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in ("http", "https"):
        raise StacError(f"STAC API URL {shown}: expected http(s)://")
    if parts.scheme == "http" and not allow_http and parts.hostname not in _LOOPBACK:
        raise StacError(f"STAC API URL {shown}: refusing plain http:// to a non-loopback "
                        "host (use https, or allow_http to permit it)")
    stac_io = stac_api_io(timeout_s, retries, backoff_s)
    # urllib3 retries statuses, resets and timeouts before a body is read; a body cut
    # short (or not JSON) surfaces later, so that request is redone here.
    try:
        client = _retrying(lambda: pystac_client.Client.open(
            api_url, stac_io=stac_io, timeout=timeout_s), f"opening STAC API {shown}",
            retries, backoff_s)
    except (APIError, OSError, ValueError) as exc:
        raise StacError(f"cannot reach STAC API {shown}: {_reason(exc)}") from None
    kwargs: dict[str, Any] = {"collections": [collection], "intersects": mapping(geometry_lonlat),
                              "datetime": window, "limit": page_size}
    if _conforms_to_query(client):
        kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud_cover}}
    log.info("searching %s collection %s over %s, %s, cloud <= %g%%", shown, collection,
             _bounds_text(geometry_lonlat), window, max_cloud_cover)
    try:
        items = _retrying(lambda: list(client.search(**kwargs).items_as_dicts()),
                          f"STAC search at {shown}", retries, backoff_s)
    except (APIError, OSError, ValueError) as exc:
        raise StacError(f"STAC search at {shown} failed: {_reason(exc)}") from None

    footprint_area = geometry_lonlat.area
    candidates: list[SceneInfo] = []
    for item in items:
        cloud = (item.get("properties") or {}).get("eo:cloud_cover")
        if cloud is None or float(cloud) > max_cloud_cover:
            continue
        geom = shape(item["geometry"]) if item.get("geometry") else None
        if geom is None or not geom.intersects(geometry_lonlat):
            continue
        if min_coverage > 0 and footprint_area > 0:
            covered = geom.intersection(geometry_lonlat).area / footprint_area
            if covered < min_coverage:
                continue
        try:
            scene = scene_info_from_item(item, provider)
        except ItemError as exc:
            log.warning("skipping item: %s", exc)
            continue
        if not (start <= scene.date <= end):
            continue
        candidates.append(scene)
    if not candidates:
        raise NoScenesError(
            f"no {collection} scenes at {api_url} over lon/lat bounds "
            f"{_bounds_text(geometry_lonlat)} between {start} and {end} with cloud cover "
            f"<= {max_cloud_cover:g}% ({len(items)} item(s) before filtering)")
    chosen = select_scenes(candidates, max_scenes)
    if sign:
        cfg = {**(stac_cfg or {}), "sign_planetary_computer": True, "timeout_s": timeout_s}
        chosen = [_signed(s, cfg) for s in chosen]
    log.info("found %d item(s), %d pass the filters, keeping %d", len(items),
             len(candidates), len(chosen))
    return chosen


def _signed(scene: SceneInfo, cfg: Mapping[str, Any]) -> SceneInfo:
    bands = {b: sign_href(h, scene.provider, cfg) for b, h in scene.bands.items()}
    return SceneInfo(**{**scene.to_dict(), "bands": bands})


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


def select_scenes(scenes: Sequence[SceneInfo], max_scenes: int) -> list[SceneInfo]:
    """The ``max_scenes`` least cloudy scenes (ties: earlier date, then id), by time.

    Duplicate ids (the same item seen twice across pages) are kept once.
    """
    unique = {s.id: s for s in scenes}
    ranked = sorted(unique.values(), key=lambda s: (s.cloud_cover, s.datetime, s.id))
    return sorted(ranked[:max_scenes], key=lambda s: (s.datetime, s.id))


def date_window(year: int, start_mmdd: str, end_mmdd: str) -> tuple[dt.date, dt.date]:
    """(start, end) dates of a ``MM-DD`` window in ``year``, inclusive."""
    return (dt.date.fromisoformat(f"{year}-{start_mmdd}"),
            dt.date.fromisoformat(f"{year}-{end_mmdd}"))


# --------------------------------------------------------------------------------------
# Scene lists on disk


def write_scene_list(
    path: str | Path, tile_id: str, region: str, year: int, scenes: Sequence[SceneInfo]
) -> Path:
    """Write ``results/{region}/{year}/scenes/{tile}.json`` atomically (see the contract)."""
    doc = {"tile_id": tile_id, "region": region, "year": int(year),
           "scenes": [s.to_dict() for s in scenes]}
    write_json(path, doc)
    return Path(path)


def read_scene_list(path: str | Path) -> tuple[str, str, int, list[SceneInfo]]:
    """Read a scene list: ``(tile_id, region, year, scenes)``.

    Raises:
        ItemError: if the file is not a scene list.
    """
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        return (str(doc["tile_id"]), str(doc["region"]), int(doc["year"]),
                [SceneInfo.from_dict(s) for s in doc["scenes"]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ItemError(f"{path}: not a scene list: {exc}") from None
