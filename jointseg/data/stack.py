"""The stack of one tile: its layout on disk, its manifest, and checks of both.

Layout (``docs/architecture.md``)::

    <stack_dir>/<scene_id>/<band>.tif
    <stack_dir>/manifest.json          written last; its presence means "complete"
    <stack_dir>/manifest.partial.json  scenes finished so far, while it is being built

Manifest: ``{"tile_id": ..., "scenes": [entry, ...]}``; each entry (see
:func:`scene_entry`) holds ``id``, ``datetime``, ``boa_offset_dn``, ``cloud_cover``,
``simulated``, ``files`` (band -> path relative to the stack directory), ``sha256``
(band -> hex digest of the file) and ``source`` (band -> :func:`source_key`).
Manifests never hold hrefs (they may be signed).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jointseg.grid import GeoBox
from jointseg.io import sha256_file

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
PARTIAL_MANIFEST_NAME = "manifest.partial.json"


def band_file(scene_id: str, band: str) -> str:
    """Path of a band file relative to the stack directory: ``<scene_id>/<band>.tif``."""
    return f"{scene_id}/{band}.tif"


def source_key(href: str, grid: GeoBox) -> str:
    """Short sha256 of what a band file is made from: the href without its query (the
    signature changes per request) and the target grid. A resumed download reuses a
    file only when this key and the file's recorded sha256 both match."""
    text = f"{href.partition('?')[0]}|{grid.crs}|{tuple(grid.transform)}|" \
        f"{grid.width}x{grid.height}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scene_entry(scene: Any, files: Mapping[str, str], sha256: Mapping[str, str],
                source: Mapping[str, str]) -> dict:
    """The manifest entry of one scene (``scene`` has the SceneInfo fields), bands in the
    order of ``files``."""
    return {
        "id": scene.id,
        "datetime": scene.datetime,
        "boa_offset_dn": scene.boa_offset_dn,
        "cloud_cover": scene.cloud_cover,
        "simulated": scene.simulated,
        "files": dict(files),
        "sha256": {b: sha256[b] for b in files},
        "source": {b: source[b] for b in files},
    }


def load_previous(stack_dir: Path) -> dict[str, dict]:
    """Scene entries of a previous (partial or complete) manifest, by scene id; an
    unreadable manifest is logged and ignored (everything is refetched)."""
    prev: dict[str, dict] = {}
    for name in (PARTIAL_MANIFEST_NAME, MANIFEST_NAME):
        p = Path(stack_dir) / name
        if p.is_file():
            try:
                for entry in json.loads(p.read_text()).get("scenes", []):
                    prev[str(entry["id"])] = entry
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("%s: unreadable previous manifest ignored", p)
    return prev


def read_manifest(path: Path) -> dict:
    """Load a download manifest and check its keys.

    Raises:
        ValueError: if the file is not a manifest (missing ``tile_id``/``scenes``/files).
    """
    path = Path(path)
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read manifest: {exc}") from exc
    if not isinstance(m, dict) or "tile_id" not in m or not isinstance(m.get("scenes"), list):
        raise ValueError(f"{path}: not a download manifest (needs 'tile_id' and 'scenes')")
    for s in m["scenes"]:
        if "id" not in s or not isinstance(s.get("files"), dict):
            raise ValueError(f"{path}: scene entry without 'id'/'files': {str(s)[:80]}")
    return m


def verify_stack(manifest_path: Path, manifest: Mapping[str, Any] | None = None) -> None:
    """Check that every band file of a stack still has the sha256 the manifest recorded.

    Consumers (cloudmask, composite) call this so that a stack file changed or cut
    short after the download is caught, naming the file, instead of being read.

    Raises:
        ValueError: naming the first missing or changed file.
    """
    manifest_path = Path(manifest_path)
    m = manifest if manifest is not None else read_manifest(manifest_path)
    root = manifest_path.parent
    for scene in m["scenes"]:
        recorded = scene.get("sha256") or {}
        for band, rel in scene["files"].items():
            path = root / rel
            if not path.is_file():
                raise ValueError(f"{path}: stack file listed in {manifest_path} is missing")
            if band in recorded and sha256_file(path) != recorded[band]:
                raise ValueError(f"{path}: sha256 differs from {manifest_path} (changed or "
                                 "truncated since the download; rerun download)")
