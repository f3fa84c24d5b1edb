"""A quicklook PNG of a layer of the manifest (for the Snakemake report), e.g. the SR
1 m RGB quicklooks, which exist only per tile: merged at a coarse resolution, read
from the COG overviews, drawn with the viewer's style."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.merge import merge

from jointseg.io import atomic_path
from jointseg.view.layers import Layer, Manifest


def layer_quicklook_png(manifest: Manifest, layer: Layer, png_path: Path,
                        max_size: int = 1024) -> Path:
    """Merge the layer's files that share the first file's CRS into an image of at most
    ``max_size`` pixels a side, stretched as in the viewer (RGB layers only)."""
    if layer.kind != "rgb":
        raise ValueError(f"layer {layer.id}: quicklooks are drawn for RGB layers only")
    paths = [manifest.path(f) for f in layer.files]
    with rasterio.open(paths[0]) as first:
        crs = first.crs
    srcs = []
    try:
        for p in paths:
            ds = rasterio.open(p)
            if ds.crs == crs:
                srcs.append(ds)
            else:
                ds.close()
        left = min(s.bounds.left for s in srcs)
        right = max(s.bounds.right for s in srcs)
        bottom = min(s.bounds.bottom for s in srcs)
        top = max(s.bounds.top for s in srcs)
        res = max(right - left, top - bottom) / max_size
        res = max(res, min(abs(s.res[0]) for s in srcs))
        arr, _ = merge(srcs, res=res, indexes=layer.bands, nodata=0)
    finally:
        for s in srcs:
            s.close()
    rgba = np.zeros((*arr.shape[1:], 4), np.uint8)
    valid = (arr != 0).any(axis=0)
    for i, (lo, hi) in enumerate(layer.rescale):
        scaled = (arr[i].astype(np.float32) - lo) / (hi - lo) * 255
        rgba[..., i] = np.clip(scaled, 0, 255).astype(np.uint8)
    rgba[..., 3] = np.where(valid, 255, 0)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    with atomic_path(png_path) as tmp:
        Path(tmp).write_bytes(buf.getvalue())
    return Path(png_path)
