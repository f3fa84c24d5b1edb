"""Quicklook PNGs of products: decimated reads, a fixed colour ramp, no basemap."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rasterio.enums import Resampling

from jointseg.io import atomic_path
from jointseg.products import ISA_CLASSES, PROB_RAMP


def quicklook_png(
    src_path: str | Path,
    png_path: str | Path,
    *,
    kind: Literal["binary", "prob"],
    max_size: int = 1024,
    title: str | None = None,
) -> Path:
    """Render a product COG to a PNG of at most ``max_size`` pixels per side.

    Binary maps: non-ISA light grey, ISA dark red, nodata transparent.
    Probability maps (uint8 scaled): the ``magma`` ramp from 0 to 1.
    Reads come from the COG overviews (``out_shape``), so memory stays small.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    with rasterio.open(src_path) as ds:
        f = max(ds.width, ds.height) / max_size
        shape = (max(1, round(ds.height / max(f, 1))), max(1, round(ds.width / max(f, 1))))
        resampling = Resampling.nearest if kind == "binary" else Resampling.average
        arr = ds.read(1, out_shape=shape, resampling=resampling, masked=True)
        scale = ds.scales[0] or 1.0
        bounds, crs = ds.bounds, ds.crs
    fig, ax = plt.subplots(figsize=(8, 8 * shape[0] / shape[1] + 0.6), dpi=max_size / 8)
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top)
    if kind == "binary":
        cmap = ListedColormap([ISA_CLASSES[0][0], ISA_CLASSES[1][0]])
        im = ax.imshow(arr, cmap=cmap, vmin=0, vmax=1, extent=extent, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, ticks=[0.25, 0.75], fraction=0.04)
        cb.ax.set_yticklabels([ISA_CLASSES[0][1], ISA_CLASSES[1][1]])
    else:
        im = ax.imshow(np.ma.asarray(arr) * scale, cmap=PROB_RAMP, vmin=0, vmax=1, extent=extent)
        fig.colorbar(im, ax=ax, fraction=0.04, label="ISA probability")
    ax.set_xlabel(f"x (m, {crs})")
    ax.set_ylabel("y (m)")
    ax.ticklabel_format(style="plain", useOffset=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    try:
        with atomic_path(png_path) as tmp:  # a full disk: one-line OutputError
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(png_path)
