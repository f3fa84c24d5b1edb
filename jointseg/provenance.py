"""Where a figure came from: file hashes, raster tags and the simulated flag.

Every report and table of ``jointseg`` says which data each number was computed from.
A raster is described by its path, size, sha256 and the tags that identify it
(``JOINTSEG_PRODUCT``, ``MODEL_NAME``, ``REGION``, ``YEAR``...). A raster tagged
``JOINTSEG_SIMULATED=true`` (everything the simulator writes and every product made
from it) is *simulated*: figures measured on it are not real-world accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path

import rasterio
from rasterio.errors import RasterioIOError

from jointseg.io import sha256_file

SIMULATED_TAG = "JOINTSEG_SIMULATED"
KEPT_TAGS = ("JOINTSEG_PRODUCT", "JOINTSEG_VERSION", "MODEL_NAME", "MODEL_VERSION",
             "MODEL_SHA256", "MODEL_TRAINING_SIMULATED", "MODEL_TRAINING_DATA",
             "REGION", "YEAR", "THRESHOLD", SIMULATED_TAG, "SCENES")


class ProvenanceError(RuntimeError):
    """An input file cannot be read to describe it."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a local file (:func:`jointseg.io.sha256_file`).

    Raises:
        ProvenanceError: naming the file, if it cannot be read.
    """
    try:
        return sha256_file(path)
    except OSError as exc:
        raise ProvenanceError(f"{path}: cannot read for sha256 ({exc})") from exc


def raster_tags(path: str | os.PathLike) -> dict[str, str]:
    """Dataset-level metadata tags of a raster (``{}`` for a remote file that fails)."""
    try:
        with rasterio.open(path) as ds:
            return dict(ds.tags())
    except RasterioIOError as exc:
        raise ProvenanceError(f"{path}: cannot open raster ({exc})") from exc


def is_simulated(path: str | os.PathLike) -> bool:
    """True when the raster carries ``JOINTSEG_SIMULATED=true``."""
    return raster_tags(path).get(SIMULATED_TAG, "").lower() == "true"


def raster_provenance(path: str | os.PathLike, *, sha256: bool = True) -> dict:
    """JSON-ready description of a raster input.

    Keys: ``path``, ``bytes`` and ``sha256`` (local files; ``sha256`` only when asked),
    ``tags`` (the identifying subset of :data:`KEPT_TAGS`), ``simulated`` (bool).
    """
    tags = raster_tags(path)
    out: dict[str, object] = {"path": str(path)}
    p = Path(path)
    if p.is_file():
        out["bytes"] = p.stat().st_size
        if sha256:
            out["sha256"] = file_sha256(p)
    out["tags"] = {k: tags[k] for k in KEPT_TAGS if k in tags}
    out["simulated"] = tags.get(SIMULATED_TAG, "").lower() == "true"
    return out


def vector_provenance(path: str | os.PathLike, field: str) -> dict:
    """JSON-ready description of a polygon layer: path, sha256 (local files), name field."""
    out: dict[str, object] = {"path": str(path), "field": field}
    if Path(path).is_file():
        out["sha256"] = file_sha256(path)
    return out
