"""Tiny synthetic Sentinel-2 stacks for the download / cloudmask / composite tests.

Arrays are written with the project's own COG writer onto a tile's grids and
described by a download manifest, exactly as ``jointseg.data.stack`` lays them out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from jointseg.bands import NATIVE_RES_M
from jointseg.grid import GeoBox, Tile
from jointseg.io import sha256_file, write_cog, write_json

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")


def write_tif(path: Path, data: np.ndarray, grid: GeoBox, nodata: float | None = None) -> Path:
    """A plain single-band GeoTIFF (a provider's asset) on ``grid``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", count=1, dtype=data.dtype.name,
                       nodata=nodata, tiled=True, blockxsize=16, blockysize=16,
                       **grid.profile()) as ds:
        ds.write(data, 1)
    return path


def make_stack(root: Path, tile: Tile, scenes: list[dict]) -> Path:
    """Write ``root/<id>/<band>.tif`` + ``root/manifest.json`` for ``scenes``.

    Each scene dict has ``id``, ``datetime``, ``boa_offset_dn`` and ``bands``
    (band id -> array on that band's tile grid).
    """
    entries = []
    for s in scenes:
        files, sha = {}, {}
        for band, arr in s["bands"].items():
            rel = f"{s['id']}/{band}.tif"
            write_cog(root / rel, arr, tile.geobox(NATIVE_RES_M[band]), nodata=0,
                      band_names=[band])
            files[band], sha[band] = rel, sha256_file(root / rel)
        entries.append({"id": s["id"], "datetime": s["datetime"],
                        "boa_offset_dn": s.get("boa_offset_dn", 0),
                        "cloud_cover": s.get("cloud_cover", 0.0), "files": files, "sha256": sha})
    write_json(root / "manifest.json", {"tile_id": tile.tile_id, "scenes": entries})
    return root / "manifest.json"


def constant_bands(tile: Tile, value_10m: np.ndarray, scl_20m: np.ndarray | None = None,
                   bands: tuple[str, ...] = BANDS_10M + BANDS_20M) -> dict[str, np.ndarray]:
    """All bands from one 10 m uint16 array (20 m bands = its top-left 2x2 subsample)."""
    out: dict[str, np.ndarray] = {}
    for b in bands:
        if NATIVE_RES_M[b] == 10:
            out[b] = value_10m.astype(np.uint16)
        else:
            out[b] = value_10m[::2, ::2].astype(np.uint16)
    if scl_20m is not None:
        out["SCL"] = scl_20m.astype(np.uint8)
    return out
