"""STAC Items describing the products (one Item per mosaic COG).

Extensions used: ``proj`` (CRS, shape, transform), ``raster`` (one entry per band:
name, nodata, dtype, scale), ``file`` (size, checksum), and ``classification`` for
class maps (classes of band 1) and the QA band of the ISA map (bit fields).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pystac
import rasterio
from pystac.extensions.classification import Bitfield, Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from jointseg import __version__
from jointseg.bands import QA
from jointseg.io import recorded_sha256, sha256_file, write_json


def _sha256_multihash(path: Path) -> str:
    """``file:checksum`` of ``path``: the digest its writer recorded (no second read of a
    large mosaic), else hashed here; multihash prefix sha2-256, 32 bytes."""
    return "1220" + (recorded_sha256(path) or sha256_file(path))


def _classes(classes: dict[int, str]) -> list[Classification]:
    return [Classification.create(value=v, description=n, name=n.replace(" ", "_"))
            for v, n in classes.items()]


def _raster_bands(
    ds: rasterio.DatasetReader, scale: float | None, classes: dict[int, str] | None,
    qa_flags: dict[int, tuple[str, str]] | None,
) -> list[RasterBand]:
    """One ``raster:bands`` entry per band of ``ds``, named by its description.

    ``scale`` and ``classes`` describe band 1; ``qa_flags`` (bit value -> (name,
    meaning)) become one-bit ``classification:bitfields`` of the band described ``QA``.
    """
    bands = []
    for i, (name, dtype) in enumerate(zip(ds.descriptions, ds.dtypes, strict=True)):
        band = RasterBand.create(nodata=ds.nodata, data_type=DataType(dtype),
                                 spatial_resolution=ds.res[0], scale=scale if i == 0 else None)
        if name:
            band.properties["name"] = name
        if i == 0 and classes:
            ClassificationExtension.ext(band).classes = _classes(classes)
        if name == QA and qa_flags:
            ClassificationExtension.ext(band).bitfields = [
                Bitfield.create(offset=int(math.log2(flag)), length=1, name=name,
                                description=text, classes=_classes({1: name}))
                for flag, (name, text) in qa_flags.items()]
        bands.append(band)
    return bands


def product_item(
    cog_path: str | Path,
    *,
    item_id: str,
    year: int,
    product: str,
    description: str,
    classes: dict[int, str] | None = None,
    scale: float | None = None,
    qa_flags: dict[int, tuple[str, str]] | None = None,
    properties: dict | None = None,
) -> pystac.Item:
    """A STAC Item for one product COG covering calendar ``year``.

    Args:
        cog_path: the COG (its href in the Item is its file name, relative).
        item_id: Item id, e.g. ``isa-1m-demo-2021``.
        year: the mapped year (start/end datetime span the year).
        product: asset key, e.g. ``isa`` or ``isa_probability``.
        classes: class value -> name of band 1 for class maps (classification extension).
        scale: physical = DN * scale of band 1 for continuous products (raster extension).
        qa_flags: bit flag value (a power of 2) -> (name, meaning) of a band described
            ``QA`` (classification bit fields).
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
        res = ds.res[0]
        bands = _raster_bands(ds, scale, classes, qa_flags)
    item = pystac.Item(
        id=item_id, geometry=geom, bbox=bbox, datetime=None,
        start_datetime=dt.datetime(year, 1, 1, tzinfo=dt.UTC),
        end_datetime=dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        properties={"description": description, "gsd": res,
                    "processing:software": {"jointseg": __version__}, **(properties or {})},
    )
    asset = pystac.Asset(href=cog_path.name, media_type=pystac.MediaType.COG, roles=["data"],
                         title=description)
    item.add_asset(product, asset)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = epsg
    if wkt:
        proj.wkt2 = wkt
    proj.shape = shape_
    proj.transform = transform
    RasterExtension.ext(asset, add_if_missing=True).bands = bands
    fext = FileExtension.ext(asset, add_if_missing=True)
    fext.size = cog_path.stat().st_size
    fext.checksum = _sha256_multihash(cog_path)
    if classes or qa_flags:
        ClassificationExtension.add_to(item)
    if classes:
        ClassificationExtension.ext(asset).classes = _classes(classes)
    return item


def write_item(item: pystac.Item, path: str | Path) -> Path:
    """Write the Item JSON atomically (self link omitted; hrefs stay relative)."""
    write_json(path, item.to_dict(include_self_link=False, transform_hrefs=False))
    return Path(path)
