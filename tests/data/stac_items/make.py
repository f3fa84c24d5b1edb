"""Write one Sentinel-2 L2A STAC Item per provider and baseline era into this folder.

The layouts follow the real providers' items (asset keys, property names, href
patterns, ``raster:bands`` / STAC 1.1 ``raster:*`` fields) as published by
Earth Search v0/v1, Microsoft Planetary Computer and the CDSE STAC catalogue;
ids, footprints and numbers are made up but plausible (a granule near Nanjing,
MGRS 50SPA, EPSG:32650). Items are trimmed to the fields JointSeg reads plus a
few it must ignore (thumbnails, jp2 duplicates, TCI, AOT...).

Run: ``python tests/data/stac_items/make.py`` (writes ``*.json`` beside itself).

Expected ``boa_offset_dn`` per file (asserted in tests/test_stac.py):

=============================  =====  ============================================
file                           DN     deciding evidence
=============================  =====  ============================================
earth_search_v0_2020.json         0   baseline 02.14 from sentinel:product_id
earth_search_2021.json            0   raster:bands offset 0
earth_search_2022.json        -1000   raster:bands offset -0.1, flag false
earth_search_2023.json            0   earthsearch:boa_offset_applied true
planetary_computer_2021.json      0   s2:processing_baseline 03.00
planetary_computer_2023.json  -1000   s2:processing_baseline 05.09
cdse_2021.json                    0   processing:version 03.00 (no raster offset)
cdse_2023.json                -1000   raster:offset -0.1 (STAC 1.1)
=============================  =====  ============================================
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
EPSG = 32650
# Granule 50SPA: UL corner (600000, 3600000) in EPSG:32650, 109.8 km square.
GEOMETRY = {"type": "Polygon", "coordinates": [[
    [118.0618, 32.5312], [119.2216, 32.5201], [119.2069, 31.5306],
    [118.0593, 31.5412], [118.0618, 32.5312]]]}
BBOX = [118.0593, 31.5306, 119.2216, 32.5312]

# band id, Earth Search v1 key, common name, resolution m, centre wavelength um
BANDS = [
    ("B01", "coastal", "coastal", 60, 0.443), ("B02", "blue", "blue", 10, 0.49),
    ("B03", "green", "green", 10, 0.56), ("B04", "red", "red", 10, 0.665),
    ("B05", "rededge1", "rededge", 20, 0.704), ("B06", "rededge2", "rededge", 20, 0.74),
    ("B07", "rededge3", "rededge", 20, 0.783), ("B08", "nir", "nir", 10, 0.842),
    ("B8A", "nir08", "nir08", 20, 0.865), ("B09", "nir09", "nir09", 60, 0.945),
    ("B11", "swir16", "swir16", 20, 1.61), ("B12", "swir22", "swir22", 20, 2.19),
]


def proj(res: int) -> dict:
    n = 109800 // res
    return {"proj:shape": [n, n], "proj:transform": [res, 0, 600000, 0, -res, 3600000]}


def earth_search_v1(date: str, time: str, baseline: str, offset: float, applied: bool,
                    cloud: float, platform: str = "S2B") -> dict:
    y, m, d = date.split("-")
    item_id = f"{platform}_50SPA_{y}{m}{d}_0_L2A"
    prefix = f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/50/S/PA/{y}/{int(m)}/{item_id}"
    assets = {}
    for band, key, common, res, wl in BANDS:
        raster = {"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                  "spatial_resolution": res, "scale": 0.0001, "offset": offset}
        assets[key] = {
            "href": f"{prefix}/{band}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": f"{common} ({band}) - {res}m",
            "eo:bands": [{"name": key, "common_name": common, "center_wavelength": wl}],
            "gsd": res, **proj(res), "raster:bands": [raster],
            "roles": ["data", "reflectance"],
        }
        # the jp2 originals: same band, other bucket; must be ignored
        assets[f"{key}-jp2"] = {
            "href": f"s3://sentinel-s2-l2a/tiles/50/S/PA/{y}/{int(m)}/{int(d)}/0/R{res}m/{band}.jp2",
            "type": "image/jp2", "roles": ["data", "reflectance"],
        }
    assets["scl"] = {"href": f"{prefix}/SCL.tif",
                     "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                     "title": "Scene classification map (SCL)", **proj(20),
                     "raster:bands": [{"nodata": 0, "data_type": "uint8",
                                       "spatial_resolution": 20}],
                     "roles": ["data", "reflectance"]}
    assets["visual"] = {"href": f"{prefix}/TCI.tif", "roles": ["visual"]}
    assets["thumbnail"] = {"href": f"{prefix}/thumbnail.jpg", "type": "image/jpeg",
                           "roles": ["thumbnail"]}
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id, "collection": "sentinel-2-l2a", "bbox": BBOX, "geometry": GEOMETRY,
        "properties": {
            "created": f"{date}T12:00:00.000Z", "platform": f"sentinel-2{platform[-1].lower()}",
            "constellation": "sentinel-2", "instruments": ["msi"], "eo:cloud_cover": cloud,
            "proj:epsg": EPSG, "mgrs:utm_zone": 50, "mgrs:latitude_band": "S",
            "mgrs:grid_square": "PA", "grid:code": "MGRS-50SPA",
            "s2:product_type": "S2MSI2A", "s2:processing_baseline": baseline,
            "s2:product_uri": f"{platform}_MSIL2A_{y}{m}{d}T{time.replace(':', '')[:6]}_N"
                              f"{baseline.replace('.', '')}_R032_T50SPA_{y}{m}{d}T050000.SAFE",
            "datetime": f"{date}T{time}Z", "s2:sequence": "0",
            "earthsearch:s3_path": f"s3://sentinel-cogs/sentinel-s2-l2a-cogs/50/S/PA/{y}/{int(m)}/{item_id}",
            "earthsearch:boa_offset_applied": applied,
            "processing:software": {"sentinel2-to-stac": "0.1.0"},
        },
        "links": [
            {"rel": "self", "type": "application/geo+json",
             "href": f"https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/{item_id}"},
            {"rel": "parent", "type": "application/json",
             "href": "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a"},
            {"rel": "root", "type": "application/json",
             "href": "https://earth-search.aws.element84.com/v1"},
        ],
        "assets": assets,
    }


def earth_search_v0() -> dict:
    item_id = "S2A_50SPA_20200418_0_L2A"
    prefix = ("https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/"
              f"50/S/PA/2020/4/{item_id}")
    assets = {band: {"href": f"{prefix}/{band}.tif", "title": f"Band {band}",
                     "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                     "proj:shape": proj(res)["proj:shape"],
                     "proj:transform": proj(res)["proj:transform"],
                     "eo:bands": [{"name": band, "common_name": common,
                                   "center_wavelength": wl}]}
              for band, _, common, res, wl in BANDS}
    assets["SCL"] = {"href": f"{prefix}/SCL.tif", "title": "Scene Classification Map (SCL)",
                     "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
    assets["overview"] = {"href": f"{prefix}/L2A_PVI.tif", "title": "True color image"}
    assets["info"] = {"href": f"{prefix}/tileInfo.json", "type": "application/json"}
    return {
        "type": "Feature", "stac_version": "1.0.0-beta.2",
        "stac_extensions": ["eo", "view", "proj"],
        "id": item_id, "collection": "sentinel-s2-l2a-cogs", "bbox": BBOX, "geometry": GEOMETRY,
        "properties": {
            "datetime": "2020-04-18T02:56:41Z", "platform": "sentinel-2a",
            "constellation": "sentinel-2", "instruments": ["msi"], "gsd": 10,
            "view:off_nadir": 0, "proj:epsg": EPSG, "sentinel:utm_zone": 50,
            "sentinel:latitude_band": "S", "sentinel:grid_square": "PA",
            "sentinel:sequence": "0",
            "sentinel:product_id": "S2A_MSIL2A_20200418T025541_N0214_R032_T50SPA_20200418T070119",
            "sentinel:data_coverage": 100, "eo:cloud_cover": 7.31,
            "sentinel:valid_cloud_cover": True,
        },
        "links": [{"rel": "self", "href": "https://earth-search.aws.element84.com/v0/collections/"
                                          f"sentinel-s2-l2a-cogs/items/{item_id}"}],
        "assets": assets,
    }


def planetary_computer(date: str, time: str, baseline: str, cloud: float) -> dict:
    y, m, d = date.split("-")
    stamp = f"{y}{m}{d}T{time.replace(':', '')[:6]}"
    product = f"S2A_MSIL2A_{stamp}_N{baseline.replace('.', '')}_R032_T50SPA_{y}{m}{d}T071503"
    item_id = f"S2A_MSIL2A_{stamp}_R032_T50SPA_{y}{m}{d}T071503"
    granule = (f"https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/50/S/PA/{y}/{m}/{d}/"
               f"{product}.SAFE/GRANULE/L2A_T50SPA_A030123_{stamp}/IMG_DATA")
    assets = {}
    for band, _, common, res, wl in BANDS:
        assets[band] = {
            "href": f"{granule}/R{res}m/T50SPA_{stamp}_{band}_{res}m.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": f"Band {band[1:].lstrip('0')} - {common} - {res}m", "gsd": float(res),
            "proj:bbox": [600000.0, 3490200.0, 709800.0, 3600000.0], **proj(res),
            "eo:bands": [{"name": band, "common_name": common, "center_wavelength": wl}],
            "roles": ["data"],
        }
    assets["SCL"] = {"href": f"{granule}/R20m/T50SPA_{stamp}_SCL_20m.tif",
                     "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                     "title": "Scene classfication map (SCL)", "gsd": 20.0, **proj(20),
                     "roles": ["data"]}
    assets["AOT"] = {"href": f"{granule}/R10m/T50SPA_{stamp}_AOT_10m.tif", "roles": ["data"]}
    assets["visual"] = {"href": f"{granule}/R10m/T50SPA_{stamp}_TCI_10m.tif",
                        "roles": ["data"]}
    assets["tilejson"] = {
        "href": "https://planetarycomputer.microsoft.com/api/data/v1/item/tilejson.json?"
                f"collection=sentinel-2-l2a&item={item_id}&assets=visual",
        "type": "application/json", "roles": ["tiles"]}
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
        ],
        "id": item_id, "collection": "sentinel-2-l2a", "bbox": BBOX, "geometry": GEOMETRY,
        "properties": {
            "datetime": f"{date}T{time}Z", "platform": "Sentinel-2A", "proj:epsg": EPSG,
            "instruments": ["msi"], "s2:mgrs_tile": "50SPA", "constellation": "Sentinel 2",
            "eo:cloud_cover": cloud, "s2:product_uri": f"{product}.SAFE",
            "s2:product_type": "S2MSI2A", "sat:orbit_state": "descending",
            "sat:relative_orbit": 32, "s2:processing_baseline": baseline,
            "s2:generation_time": f"{date}T07:15:03.000000Z",
            "s2:water_percentage": 4.1, "s2:high_proba_clouds_percentage": cloud / 2,
        },
        "links": [
            {"rel": "collection", "type": "application/json",
             "href": "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-2-l2a"},
            {"rel": "self", "type": "application/geo+json",
             "href": "https://planetarycomputer.microsoft.com/api/stac/v1/collections/"
                     f"sentinel-2-l2a/items/{item_id}"},
        ],
        "assets": assets,
    }


def cdse(date: str, time: str, baseline: str, cloud: float, raster_offset: bool) -> dict:
    y, m, d = date.split("-")
    stamp = f"{y}{m}{d}T{time.replace(':', '')[:6]}"
    item_id = f"S2B_MSIL2A_{stamp}_N{baseline.replace('.', '')}_R032_T50SPA_{y}{m}{d}T063912"
    granule = (f"s3://eodata/Sentinel-2/MSI/L2A/{y}/{m}/{d}/{item_id}.SAFE/GRANULE/"
               f"L2A_T50SPA_A031877_{stamp}/IMG_DATA")
    assets = {}
    for band, _, common, native, wl in BANDS:
        for res in sorted({native, 20, 60} if native < 60 else {60}):
            asset = {
                "href": f"{granule}/R{res}m/T50SPA_{stamp}_{band}_{res}m.jp2",
                "type": "image/jp2", "title": f"{band} - {res}m", "gsd": res,
                "roles": ["data", "reflectance", "sampling:original" if res == native
                          else "sampling:downsampled"],
                "proj:code": f"EPSG:{EPSG}", **proj(res),
                "bands": [{"name": band, "eo:common_name": common,
                           "eo:center_wavelength": wl}],
                "nodata": 0, "data_type": "uint16",
                "alternate": {"https": {
                    "href": f"https://eodata.dataspace.copernicus.eu/{granule[len('s3://eodata/'):]}"
                            f"/R{res}m/T50SPA_{stamp}_{band}_{res}m.jp2"}},
                "auth:refs": ["s3"],
            }
            if raster_offset:
                asset["raster:scale"] = 0.0001
                asset["raster:offset"] = -0.1
            assets[f"{band}_{res}m"] = asset
    for res in (20, 60):
        assets[f"SCL_{res}m"] = {"href": f"{granule}/R{res}m/T50SPA_{stamp}_SCL_{res}m.jp2",
                                 "type": "image/jp2", "roles": ["data"], "gsd": res,
                                 "nodata": 0, "data_type": "uint8"}
    assets["TCI_10m"] = {"href": f"{granule}/R10m/T50SPA_{stamp}_TCI_10m.jp2",
                         "roles": ["visual"]}
    assets["AOT_10m"] = {"href": f"{granule}/R10m/T50SPA_{stamp}_AOT_10m.jp2", "roles": ["data"]}
    assets["Product"] = {
        "href": "https://download.dataspace.copernicus.eu/odata/v1/Products("
                "'8f0c5b0e-2c3d-4c34-9a36-0c2f8d9a1e11')/$value",
        "type": "application/zip", "roles": ["data", "archive"]}
    return {
        "type": "Feature", "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
            "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
        ],
        "id": item_id, "collection": "sentinel-2-l2a", "bbox": BBOX, "geometry": GEOMETRY,
        "properties": {
            "datetime": f"{date}T{time}Z", "start_datetime": f"{date}T{time}Z",
            "end_datetime": f"{date}T{time}Z", "platform": "sentinel-2b",
            "constellation": "sentinel-2", "instruments": ["msi"], "eo:cloud_cover": cloud,
            "eo:snow_cover": 0.0, "grid:code": "MGRS-50SPA", "processing:level": "L2",
            "processing:version": baseline, "processing:facility": "ESA",
            "product:type": "S2MSI2A", "sat:relative_orbit": 32,
            "sat:orbit_state": "descending", "proj:code": f"EPSG:{EPSG}",
        },
        "links": [
            {"rel": "self", "type": "application/geo+json",
             "href": "https://stac.dataspace.copernicus.eu/v1/collections/sentinel-2-l2a/"
                     f"items/{item_id}"},
            {"rel": "collection", "type": "application/json",
             "href": "https://stac.dataspace.copernicus.eu/v1/collections/sentinel-2-l2a"},
        ],
        "assets": assets,
    }


ITEMS = {
    "earth_search_v0_2020": earth_search_v0(),
    "earth_search_2021": earth_search_v1("2021-09-12", "02:56:48.123000", "03.00", 0.0, False,
                                         12.4),
    "earth_search_2022": earth_search_v1("2022-01-26", "02:56:40.771000", "04.00", -0.1, False,
                                         3.9),
    "earth_search_2023": earth_search_v1("2023-05-04", "02:56:51.006000", "05.09", -0.1, True,
                                         21.7, platform="S2A"),
    "planetary_computer_2021": planetary_computer("2021-10-17", "02:55:41.024000", "03.00",
                                                  1.5),
    "planetary_computer_2023": planetary_computer("2023-03-09", "02:55:39.024000", "05.09",
                                                  34.0),
    "cdse_2021": cdse("2021-11-06", "02:57:59.024000", "03.01", 0.8, raster_offset=False),
    "cdse_2023": cdse("2023-08-21", "02:55:49.024000", "05.09", 9.6, raster_offset=True),
}


def main() -> None:
    for name, item in ITEMS.items():
        (HERE / f"{name}.json").write_text(json.dumps(item, indent=1) + "\n")
        print(f"wrote {name}.json")


if __name__ == "__main__":
    main()
