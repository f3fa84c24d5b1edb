"""Find the Sentinel-2 L2A scenes of a tile in a STAC API; read and write scene lists.

Items of any provider become :class:`jointseg.data.providers.SceneInfo` (provider
conventions and the BOA offset rule are documented there); the HTTP retry policy is
:mod:`jointseg.data.http`, Planetary Computer signing :mod:`jointseg.data.signing`.

Cloud cover is filtered client-side after the search: the loopback
``rustac serve`` memory backend conforms to neither the ``query`` nor the
``filter`` extension (and answers an empty page when sent either), and doing it
here gives the same result against every API. ``query`` is still sent to APIs
that declare the query extension, to cut traffic.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from jointseg.data.errors import ItemError, NoScenesError, StacError
from jointseg.data.http import plain_http_refused, reason, retrying, stac_api_io
from jointseg.data.providers import SceneInfo, scene_info_from_item
from jointseg.data.secrets import install_secret_filter, redact_url
from jointseg.data.signing import sign_scene
from jointseg.io import write_json

if TYPE_CHECKING:
    from jointseg.data.settings import SearchSettings

log = logging.getLogger(__name__)


def _conforms_to_query(client: Any) -> bool:
    """Whether the API declares the STAC query extension (False if probing fails)."""
    try:
        from pystac_client.conformance import ConformanceClasses

        return bool(client.conforms_to(ConformanceClasses.QUERY))
    except Exception:  # noqa: BLE001 - conformance probing must never break a search
        return False


def _bounds_text(geometry: BaseGeometry) -> str:
    """``[west, south, east, north]`` of a lon/lat geometry, 5 decimals."""
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
        sign: sign Planetary Computer hrefs (see :func:`jointseg.data.signing.sign_href`).
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
    start = dt.date.fromisoformat(str(start_date))
    end = dt.date.fromisoformat(str(end_date))
    window = f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"
    install_secret_filter()
    items = _search_items(api_url, collection, geometry_lonlat, window, max_cloud_cover,
                          page_size, timeout_s, retries, backoff_s, allow_http)
    candidates = []
    for item in _covering_items(items, geometry_lonlat, max_cloud_cover, min_coverage):
        try:
            scene = scene_info_from_item(item, provider)
        except ItemError as exc:
            log.warning("skipping item: %s", exc)
            continue
        if start <= scene.date <= end:
            candidates.append(scene)
    if not candidates:
        raise NoScenesError(
            f"no {collection} scenes at {api_url} over lon/lat bounds "
            f"{_bounds_text(geometry_lonlat)} between {start} and {end} with cloud cover "
            f"<= {max_cloud_cover:g}% ({len(items)} item(s) before filtering)")
    chosen = select_scenes(candidates, max_scenes)
    if sign:
        cfg = {**(stac_cfg or {}), "sign_planetary_computer": True, "timeout_s": timeout_s}
        chosen = [sign_scene(s, cfg) for s in chosen]
    log.info("found %d item(s), %d pass the filters, keeping %d", len(items),
             len(candidates), len(chosen))
    return chosen


def run_search(
    settings: SearchSettings,
    api_url: str,
    geometry_lonlat: BaseGeometry,
    out_path: str | Path,
    *,
    tile_id: str | None,
    region: str | None,
    year: int,
    start_date: str | None = None,
    end_date: str | None = None,
    allow_empty: bool = False,
) -> list[SceneInfo]:
    """The search stage: find a footprint's scenes and write its scene list.

    Args:
        settings: the stage's settings (config ``stac``).
        api_url: the STAC API to search (``settings.api_url``, or the demo's loopback API).
        geometry_lonlat: the footprint (a tile's, :meth:`jointseg.grid.Tile.footprint_lonlat`).
        out_path: scene list to write (``results/{region}/{year}/scenes/{tile}.json``).
        tile_id, region, year: recorded in the scene list; ``year`` and
            ``settings.date_start`` / ``date_end`` give the dates unless
            ``start_date`` / ``end_date`` (ISO dates) are given.
        allow_empty: write an empty list instead of raising :class:`NoScenesError`.

    Returns:
        The scenes written.
    """
    first, last = date_window(int(year), settings.date_start, settings.date_end)
    try:
        scenes = search_scenes(
            api_url, settings.collection, geometry_lonlat, start_date or first,
            end_date or last, max_cloud_cover=settings.max_cloud_cover,
            max_scenes=settings.max_scenes, provider=settings.provider, sign=settings.sign,
            timeout_s=settings.timeout_s, retries=settings.retries,
            backoff_s=settings.backoff_s, allow_http=settings.allow_http,
        )  # fmt: skip
    except NoScenesError as exc:
        if not allow_empty:
            raise
        log.warning("%s", exc)
        scenes = []
    write_scene_list(out_path, tile_id or "bbox", region or "custom", year, scenes)
    for s in scenes:
        log.info("%s: %s cloud %.1f%% boa_offset_dn %d", tile_id or "bbox", s.id,
                 s.cloud_cover, s.boa_offset_dn)
    return scenes


def _search_items(
    api_url: str, collection: str, geometry_lonlat: BaseGeometry, window: str,
    max_cloud_cover: float, page_size: int, timeout_s: float, retries: int,
    backoff_s: float, allow_http: bool,
) -> list[dict]:
    """Every Item dict the API returns for the search (all pages), retried as documented
    in :func:`search_scenes`.

    Raises:
        StacError: a refused URL, an unreachable API or a failed search.
    """
    import pystac_client
    from pystac_client.exceptions import APIError

    shown = redact_url(api_url)
    if urllib.parse.urlsplit(api_url).scheme not in ("http", "https"):
        raise StacError(f"STAC API URL {shown}: expected http(s)://")
    if plain_http_refused(api_url, allow_http):
        raise StacError(f"STAC API URL {shown}: refusing plain http:// to a non-loopback "
                        "host (use https, or allow_http to permit it)")
    errors = (APIError, OSError, ValueError)
    stac_io = stac_api_io(timeout_s, retries, backoff_s)
    # urllib3 retries statuses, resets and timeouts before a body is read; a body cut
    # short (or not JSON) surfaces later, so that request is redone here.
    try:
        client = retrying(lambda: pystac_client.Client.open(
            api_url, stac_io=stac_io, timeout=timeout_s), f"opening STAC API {shown}",
            retries, backoff_s, errors)
    except errors as exc:
        raise StacError(f"cannot reach STAC API {shown}: {reason(exc)}") from None
    kwargs: dict[str, Any] = {"collections": [collection], "intersects": mapping(geometry_lonlat),
                              "datetime": window, "limit": page_size}
    if _conforms_to_query(client):
        kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud_cover}}
    log.info("searching %s collection %s over %s, %s, cloud <= %g%%", shown, collection,
             _bounds_text(geometry_lonlat), window, max_cloud_cover)
    try:
        return retrying(lambda: list(client.search(**kwargs).items_as_dicts()),
                        f"STAC search at {shown}", retries, backoff_s, errors)
    except errors as exc:
        raise StacError(f"STAC search at {shown} failed: {reason(exc)}") from None


def _covering_items(
    items: Sequence[Mapping[str, Any]], geometry_lonlat: BaseGeometry,
    max_cloud_cover: float, min_coverage: float,
) -> list[Mapping[str, Any]]:
    """Items with ``eo:cloud_cover <= max_cloud_cover`` (percent) whose geometry
    intersects the footprint and covers at least ``min_coverage`` (0-1) of it."""
    footprint_area = geometry_lonlat.area
    kept = []
    for item in items:
        cloud = (item.get("properties") or {}).get("eo:cloud_cover")
        if cloud is None or float(cloud) > max_cloud_cover:
            continue
        geom = shape(item["geometry"]) if item.get("geometry") else None
        if geom is None or not geom.intersects(geometry_lonlat):
            continue
        if min_coverage > 0 and footprint_area > 0:
            if geom.intersection(geometry_lonlat).area / footprint_area < min_coverage:
                continue
        kept.append(item)
    return kept


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
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        return (str(doc["tile_id"]), str(doc["region"]), int(doc["year"]),
                [SceneInfo.from_dict(s) for s in doc["scenes"]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ItemError(f"{path}: not a scene list: {exc}") from None
