"""The radiometric offset of a band directory (single-scene ``predict``).

From processing baseline 04.00 (products from 25 January 2022, and the reprocessed
Collection 1) ESA stores ``DN = reflectance x 10000 - offset`` with an offset of
-1000 (L2A ``BOA_ADD_OFFSET``, L1C ``RADIO_ADD_OFFSET``), so a band directory of
such a product must have ``offset`` added to every non-zero DN before the model sees
it, as the DAG's ``composite`` does from the STAC item (:mod:`jointseg.data.providers`,
"BOA offset"). A band directory has no STAC item, so the evidence is the product's
own, in this order:

1. ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml`` in the directory or up to four folders
   above it (a ``.SAFE``: ``SAFE/GRANULE/<granule>/IMG_DATA/R10m``): its
   ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` values (``band_id`` 0-12 = B01 ... B12,
   B8A at 8), which must agree over the bands the model reads; a file without them
   (baseline < 04.00) means 0;
2. a ``_N<baseline>_`` in a folder name of the path (a ``.SAFE`` or product id):
   >= 04.00 means -1000, below 0;
3. else 0: BigEarthNet and most GeoTIFF exports are pre-2022 or already harmonised.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

#: ESA's ``band_id`` order in the product metadata.
ESA_BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                "B10", "B11", "B12")
METADATA_FILES = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")
OFFSET_TAGS = ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")
_BASELINE_RE = re.compile(r"_N(\d{4})(?:_|\.|$)")


class OffsetError(ValueError):
    """Product metadata that cannot give one offset (unreadable, or bands disagree)."""


def find_metadata(directory: Path, levels: int = 4) -> Path | None:
    """The product metadata file in ``directory`` or up to ``levels`` folders above."""
    for d in [directory, *directory.resolve().parents][: levels + 1]:
        for name in METADATA_FILES:
            if (d / name).is_file():
                return d / name
    return None


def metadata_offset(path: Path, bands: tuple[str, ...]) -> int:
    """The offset (DN to add) of ``bands`` from a product metadata file; 0 without
    offset elements (baseline < 04.00).

    Raises:
        OffsetError: unreadable XML, a non-integer value, or bands that disagree.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise OffsetError(f"{path}: cannot read product metadata ({exc})") from None
    values: dict[str, int] = {}
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]  # without its namespace
        if tag not in OFFSET_TAGS:
            continue
        try:
            band = ESA_BAND_IDS[int(el.get("band_id", ""))]
            values[band] = int(float((el.text or "").strip()))
        except (ValueError, IndexError):
            raise OffsetError(f"{path}: bad {tag} element band_id={el.get('band_id')!r} "
                              f"value={el.text!r}") from None
    used = {values[b] for b in bands if b in values}
    if len(used) > 1:
        raise OffsetError(f"{path}: the bands' offsets differ ({sorted(used)}); "
                          "the model needs one")
    return used.pop() if used else 0


def baseline_offset(directory: Path) -> int | None:
    """-1000 / 0 from a ``_N<baseline>_`` in the path's folder names, or None."""
    for part in reversed(directory.resolve().parts):
        m = _BASELINE_RE.search(part)
        if m:
            return -1000 if int(m.group(1)) >= 400 else 0
    return None


def band_dir_offset(directory: Path, bands: tuple[str, ...]) -> tuple[int, str]:
    """(offset in DN to add to non-zero DN, where it came from) of a band directory.

    Raises:
        OffsetError: see :func:`metadata_offset`.
    """
    meta = find_metadata(directory)
    if meta is not None:
        return metadata_offset(meta, bands), str(meta)
    offset = baseline_offset(directory)
    if offset is not None:
        return offset, "processing baseline in the path"
    return 0, "no product metadata (assumed harmonised or pre-2022)"
