"""STAC Items describing the products (one Item per mosaic COG).

Extensions used: ``proj`` (CRS, shape, transform), ``raster`` (nodata, dtype,
scale), ``file`` (size, checksum), and ``classification`` for class maps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from jointseg import __version__
from jointseg.io import write_json


def _sha256_multihash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "1220" + h.hexdigest()  # multihash prefix: sha2-256, 32 bytes


def product_item(
    cog_path: str | Path,
    *,
    item_id: str,
    year: int,
    product: str,
    description: str,
    classes: dict[int, str] | None = None,
    scale: float | None = None,
    properties: dict | None = None,
) -> pystac.Item:
    """A STAC Item for one product COG covering calendar ``year``.

    Args:
        cog_path: the COG (its href in the Item is its file name, relative).
        item_id: Item id, e.g. ``isa-1m-demo-2021``.
        year: the mapped year (start/end datetime span the year).
        product: asset key, e.g. ``isa`` or ``isa_probability``.
        classes: class value -> name for class maps (classification extension).
        scale: physical = DN * scale for continuous products (raster extension).
        properties: extra Item properties (provenance).
    """
    cog_path = Path(cog_path)
    with rasterio.open(cog_path) as ds:
        geom_native = mapping(box(*ds.bounds))
        geom = transform_geom(ds.crs, "EPSG:4326", geom_native)
        bbox = list(shape(geom).bounds)
        epsg = ds.crs.to_epsg()
        wkt = None if epsg else ds.crs.to_wkt()
        shape_ = [ds.height, ds.width]
        transform = list(ds.transform)[:6]
        dtype, nodata = ds.dtypes[0], ds.nodata
        res = ds.res[0]
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    item = pystac.Item(
        id=item_id,
        geometry=geom,
        bbox=bbox,
        datetime=None,
        start_datetime=start,
        end_datetime=end,
        properties={
            "description": description,
            "gsd": res,
            "processing:software": {"jointseg": __version__},
            **(properties or {}),
        },
    )
    asset = pystac.Asset(
        href=cog_path.name,
        media_type=pystac.MediaType.COG,
        roles=["data"],
        title=description,
    )
    item.add_asset(product, asset)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = epsg
    if wkt:
        proj.wkt2 = wkt
    proj.shape = shape_
    proj.transform = transform
    band = RasterBand.create(
        nodata=nodata, data_type=DataType(dtype), spatial_resolution=res, scale=scale
    )
    RasterExtension.ext(asset, add_if_missing=True).bands = [band]
    fext = FileExtension.ext(asset, add_if_missing=True)
    fext.size = cog_path.stat().st_size
    fext.checksum = _sha256_multihash(cog_path)
    if classes:
        cext = ClassificationExtension.ext(asset, add_if_missing=True)
        cext.classes = [Classification.create(value=v, description=n, name=n.replace(" ", "_"))
                        for v, n in classes.items()]
    return item


def write_item(item: pystac.Item, path: str | Path) -> Path:
    """Write the Item JSON atomically (self link omitted; hrefs stay relative)."""
    write_json(path, item.to_dict(include_self_link=False, transform_hrefs=False))
    return Path(path)
