"""Sentinel-2 L2A STAC Items of any provider, described uniformly as :class:`SceneInfo`.

Three providers publish Sentinel-2 L2A through STAC with different conventions;
:func:`scene_info_from_item` turns an Item from any of them into one
:class:`SceneInfo` (the "Search output" contract in ``docs/architecture.md``):

* **earth-search** (Element 84): v1 ``sentinel-2-l2a`` asset keys ``blue`` ...
  ``swir22``, ``scl``; v0 ``sentinel-s2-l2a-cogs`` keys ``B02`` ... ``SCL``. Baseline in
  ``s2:processing_baseline`` (v0: ``sentinel:processing_baseline``). ``s3://sentinel-cogs``
  hrefs map to the bucket's public https endpoint.
* **planetary-computer**: keys ``B02`` ... ``B12``, ``SCL``; ``s2:processing_baseline``;
  Azure blob https hrefs, SAS-signed on request (:func:`jointseg.data.signing.sign_href`).
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
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from jointseg.bands import ALL_L2A_BANDS, BANDS_10M, NATIVE_RES_M
from jointseg.data.errors import ItemError

log = logging.getLogger(__name__)

PROVIDERS = ("earth-search", "planetary-computer", "cdse", "unknown")
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
        return parse_datetime(self.datetime).date()


# --------------------------------------------------------------------------------------
# Item -> SceneInfo


def _item_dict(item: Any) -> dict:
    """An Item as a plain dict (``pystac.Item`` or a mapping)."""
    if isinstance(item, Mapping):
        return dict(item)
    to_dict = getattr(item, "to_dict", None)
    if to_dict is None:
        raise ItemError(f"not a STAC Item: {type(item).__name__}")
    return to_dict(include_self_link=False, transform_hrefs=False)


def parse_datetime(value: str) -> dt.datetime:
    """An ISO 8601 time (``Z`` or offset; naive means UTC) as an aware UTC datetime."""
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC)


def iso_utc(t: dt.datetime) -> str:
    """``2021-03-01T02:50:11Z`` (microseconds only when non-zero)."""
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


def find_band_assets(assets: Mapping[str, Any]) -> dict[str, tuple[str, dict]]:
    """Band id -> (asset key, asset) for every band asset, preferring native resolution."""
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
        band_assets = {b: a for b, (_, a) in find_band_assets(item.get("assets") or {}).items()}
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
    date = parse_datetime(str(when)).date()
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
    bands_found = find_band_assets(d.get("assets") or {})
    missing = [b for b in BANDS_10M if b not in bands_found]
    if missing:
        raise ItemError(f"item {item_id!r}: no asset for band(s) {', '.join(missing)} "
                        f"(asset keys: {', '.join(sorted(d.get('assets') or {}))})")
    offset_dn, why = decide_boa_offset_dn(d, {b: a for b, (_, a) in bands_found.items()})
    epsg = props.get("proj:epsg")
    if epsg is None and str(props.get("proj:code", "")).upper().startswith("EPSG:"):
        epsg = props["proj:code"].split(":", 1)[1]
    if epsg is None:  # STAC 1.1 items may put proj:code on the assets only
        codes = {str(a.get("proj:code")) for _, a in bands_found.values() if a.get("proj:code")}
        if len(codes) == 1:
            epsg = codes.pop().split(":", 1)[-1]
    bands = {b: map_href(str(bands_found[b][1]["href"]), provider)
             for b in ALL_L2A_BANDS if b in bands_found}
    info = SceneInfo(
        id=item_id,
        datetime=iso_utc(parse_datetime(str(when))),
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


