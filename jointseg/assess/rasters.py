"""Reading the assessment's input rasters: their grid and nodata, band 1 in row blocks.

The maps assessed here are the 1 m products of :mod:`jointseg.products`: the binary
ISA map (uint8 1 = ISA, 0 = not, :data:`~jointseg.products.NODATA_U8` = nodata) and
the ISA probability (uint8 DN, ``p = DN x PROB_SCALE``). A product file may carry
more bands (e.g. a QA band after the map): every reader here reads **band 1** only.
"""

from __future__ import annotations

import os

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from jointseg.grid import GeoBox
from jointseg.products import NODATA_U8

#: Rows per block when a map is streamed (one block of a 1 m map row is ~MB-sized).
BLOCK_ROWS = 1024


class RasterError(ValueError):
    """An input raster cannot be opened, or a binary map holds values other than 0/1/nodata."""


def read_grid(path: str | os.PathLike) -> tuple[GeoBox, int]:
    """Grid and band-1 nodata value of a raster (:data:`NODATA_U8` when the file has none).

    Raises:
        RasterError: naming the file, if it cannot be opened.
    """
    try:
        with rasterio.open(path) as ds:
            nodata = ds.nodatavals[0]
            return GeoBox.of(ds), NODATA_U8 if nodata is None else int(nodata)
    except RasterioIOError as exc:
        raise RasterError(f"{path}: cannot open raster ({exc})") from exc


def binary_block(block: np.ndarray, nodata: int, path: str | os.PathLike) -> np.ndarray:
    """A block of a binary map as uint8 0/1/:data:`NODATA_U8` (the file's ``nodata`` -> 255).

    Raises:
        RasterError: if it holds values other than 0, 1 and ``nodata``.
    """
    bad = np.setdiff1d(np.unique(block), [0, 1, nodata])
    if bad.size:
        raise RasterError(f"{path}: map holds values {bad.tolist()}; "
                          f"expected 0, 1 and nodata {nodata}")
    return np.where(block == nodata, NODATA_U8, block).astype(np.uint8)


def read_binary(
    ds: rasterio.io.DatasetReader, nodata: int, window: Window | None = None
) -> np.ndarray:
    """Band 1 of an open binary map (whole or ``window``) as uint8 0/1/255, checked.

    Raises:
        RasterError: if it holds values other than 0, 1 and ``nodata``.
    """
    return binary_block(ds.read(1, window=window), nodata, ds.name)
