"""Cloud mask: one clear/masked layer per scene on the tile's 10 m grid.

The mask of a scene is built from

* the L2A Scene Classification (SCL, 20 m, each pixel = 2 x 2 pixels at 10 m by
  nearest neighbour): classes 0 no data, 1 saturated/defective, 3 cloud shadow,
  8 cloud medium probability, 9 cloud high probability, 10 thin cirrus and
  11 snow/ice are masked by default (configurable);
* a dilation of the cloud/shadow part (classes 3, 8, 9, 10 among the masked
  ones) by ``dilation_m`` metres with a disk (``scipy.ndimage.binary_dilation``);
  no-data and saturated pixels are masked but not grown;
* pixels where any 10 m band is 0 (no data);
* optionally s2cloudless (see :func:`s2cloudless_mask`), combined with SCL by a rule;
* for a scene without SCL, snow by the NDSI test (:func:`ndsi_snow_mask`), unless
  ``snow=None``.

Output (``docs/architecture.md``): uint8 GeoTIFF (COG), one band per scene in
manifest order, band description = scene id, 1 = clear, 0 = masked.

:func:`scl_fill_rank` ranks a masked observation by how cloudy its SCL class says
it is; the composite uses it to fill pixels that no scene saw clear.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from scipy import ndimage
from tqdm import tqdm

from jointseg.bands import BANDS_10M, SCL
from jointseg.data.settings import CloudMaskSettings
from jointseg.data.stack import read_manifest, verify_stack
from jointseg.grid import GeoBox
from jointseg.io import write_cog

log = logging.getLogger(__name__)

#: SCL classes masked by default: no data, saturated, shadow, cloud medium/high, cirrus,
#: snow/ice (a snow-covered date shows the snow, not the surface; bright, it reads as ISA).
DEFAULT_SCL_CLASSES = (0, 1, 3, 8, 9, 10, 11)
#: SCL class "snow / ice".
SCL_SNOW = 11
#: NDSI snow test where a scene has no SCL: the MODIS SNOMAP rule (Hall, Riggs &
#: Salomonson 1995; Hall et al. 2002): NDSI = (green - SWIR1) / (green + SWIR1) >= 0.4,
#: NIR reflectance > 0.11 (excludes water, whose NDSI is also high) and green > 0.10.
#: Sentinel-2 bands: green B03, SWIR1 B11, NIR B08; Sen2Cor's snow detection starts
#: from the same NDSI test (S2 L2A ATBD, snow/ice detection).
SNOW_NDSI_DEFAULTS = {"ndsi": 0.4, "min_nir": 0.11, "min_green": 0.10}
#: SCL classes whose masked area is dilated (cloud shadow, clouds, thin cirrus).
DILATED_SCL_CLASSES = frozenset({3, 8, 9, 10})
#: s2cloudless input order and where each band comes from in an L2A stack.
S2CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Bands an L2A stack lacks: band -> (source band or None for zeros, factor).
S2CLOUDLESS_FILL: dict[str, tuple[str | None, float]] = {
    "B01": ("B02", 1.0), "B09": ("B8A", 0.5), "B10": (None, 0.0),
}
S2CLOUDLESS_DEFAULTS = {"threshold": 0.4, "average_over": 22, "dilation_size": 11}

#: SCL class "no data": an SCL pixel of this class is not an observation at all.
SCL_NO_DATA = 0
#: Fill rank (lower = less cloudy) of an observation the mask calls clear.
FILL_RANK_CLEAR = 0
#: Fill rank of a surface class (2, 4-7) masked only by dilation, s2cloudless or
#: configuration, and of every pixel of a scene without SCL.
FILL_RANK_SURFACE = 1
#: Fill rank of the SCL cloud/shadow/defect/snow classes (see :func:`scl_fill_rank`).
SCL_FILL_RANK: dict[int, int] = {10: 2, 8: 2, 3: 3, SCL_SNOW: 4, 9: 5, 1: 6}
#: Fill rank of SCL "no data": never a candidate.
FILL_RANK_NO_DATA = 255

Combine = Literal["scl", "union", "intersection", "s2cloudless"]


class CloudMaskError(RuntimeError):
    """The cloud mask of a tile could not be built from its stack."""


def scl_clear_mask(
    scl: np.ndarray, masked_classes: Sequence[int] = DEFAULT_SCL_CLASSES
) -> np.ndarray:
    """True where the SCL class is not one of ``masked_classes`` (any grid, any int dtype)."""
    return ~np.isin(scl, np.asarray(masked_classes))


def scl_fill_rank(scl: np.ndarray) -> np.ndarray:
    """uint8 fill rank of each pixel of an SCL array (any grid): how cloudy the observation is.

    Used by the composite where a pixel has no clear observation, to pick the
    least-cloudy one (lower = better): :data:`FILL_RANK_SURFACE` (1) for surface
    classes; 2 for thin cirrus (10) and cloud medium probability (8) (semi-
    transparent, and class 8 is SCL's usual false alarm on bright roofs and
    concrete); 3 for cloud shadow (3: ground visible, but dark); 4 for snow/ice (11:
    the surface is hidden, but ``predict`` recognises snow and leaves it nodata, which
    it cannot do for cloud); 5 for cloud high probability (9: opaque); 6 for
    saturated/defective (1: radiometry unreliable); :data:`FILL_RANK_NO_DATA` (255)
    for no data (0).
    """
    lut = np.full(256, FILL_RANK_SURFACE, np.uint8)
    for cls, rank in SCL_FILL_RANK.items():
        lut[cls] = rank
    lut[SCL_NO_DATA] = FILL_RANK_NO_DATA
    return lut[np.clip(scl, 0, 255).astype(np.uint8)]


def disk(radius_px: int) -> np.ndarray:
    """A boolean disk structuring element of ``radius_px`` pixels (shape 2r+1 square)."""
    r = int(radius_px)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= r * r


def dilate(mask: np.ndarray, dilation_m: float, res_m: float) -> np.ndarray:
    """Grow the True area of ``mask`` by ``dilation_m`` metres on a ``res_m`` metre grid.

    The radius is ``round(dilation_m / res_m)`` pixels with a disk footprint;
    0 returns a copy. Returns a bool array of the same shape.
    """
    mask = np.asarray(mask, dtype=bool)
    r = int(round(dilation_m / res_m))
    if r <= 0:
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=disk(r))


def upsample2(a: np.ndarray) -> np.ndarray:
    """A 20 m array on the 10 m grid of the same origin: each pixel -> 2 x 2 (nearest)."""
    return np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)


def scl_mask_10m(
    scl_20m: np.ndarray,
    masked_classes: Sequence[int] = DEFAULT_SCL_CLASSES,
    dilation_m: float = 0.0,
) -> np.ndarray:
    """Clear mask (True = clear) at 10 m from a 20 m SCL array, with dilation of clouds.

    Masked classes in :data:`DILATED_SCL_CLASSES` are dilated by ``dilation_m``
    (at 10 m); the other masked classes (no data, saturated...) are not grown.
    """
    scl = upsample2(scl_20m)
    masked = ~scl_clear_mask(scl, masked_classes)
    grow = [c for c in masked_classes if c in DILATED_SCL_CLASSES]
    cloudy = np.isin(scl, np.asarray(grow)) if grow else np.zeros(scl.shape, bool)
    return ~(masked | dilate(cloudy, dilation_m, 10.0))


def ndsi_snow_mask(
    green_dn: np.ndarray, swir1_dn: np.ndarray, nir_dn: np.ndarray, boa_offset_dn: int = 0,
    *, ndsi: float = 0.4, min_nir: float = 0.11, min_green: float = 0.10,
) -> np.ndarray:
    """Snow mask (True = snow) by the NDSI test of :data:`SNOW_NDSI_DEFAULTS`.

    Args:
        green_dn, swir1_dn, nir_dn: stored DN of B03, B11, B08 on one grid (any shape).
        boa_offset_dn: added to non-zero DN before scaling by 1e-4 (harmonisation).
        ndsi, min_nir, min_green: thresholds (NDSI; NIR and green reflectance, 0-1).
    """
    def refl(dn: np.ndarray) -> np.ndarray:
        dn = dn.astype(np.float32)
        return np.where(dn > 0, np.maximum(dn + boa_offset_dn, 1), 0) * np.float32(1e-4)

    g, s, n = refl(green_dn), refl(swir1_dn), refl(nir_dn)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = (g - s) / (g + s)
    return (index >= ndsi) & (n > min_nir) & (g > min_green) & (s > 0)


def s2cloudless_mask(
    bands_dn: Mapping[str, np.ndarray], boa_offset_dn: int = 0, **params: float
) -> np.ndarray:
    """Cloudy mask (True = cloud) from s2cloudless on L2A bands, all on the 10 m grid.

    **Approximate second opinion.** s2cloudless' LightGBM model was trained on L1C
    *top-of-atmosphere* reflectance of B01 B02 B04 B05 B08 B8A B09 B10 B11 B12;
    here it gets L2A *bottom-of-atmosphere* reflectance (a common practice that
    shifts the probabilities somewhat, mostly in the blue bands) and the bands an
    L2A stack lacks are filled (:data:`S2CLOUDLESS_FILL`): B01 <- B02 (aerosol
    band ~ blue), B09 <- 0.5 x B8A (the water-vapour band reads roughly half of
    B8A; with B09 = B8A the model misses even bright clouds), B10 (cirrus) <- 0,
    so it cannot see thin cirrus; rely on SCL class 10 for that. Checked on
    spectra: bright cloud -> p > 0.9, vegetation, bare soil, water, concrete
    and roofs -> p < 0.05 (threshold 0.4). Treat the result as experimental.

    Args:
        bands_dn: stored DN per band id (B02 B04 B05 B08 B8A B11 B12; 20 m bands
            already upsampled to 10 m), all of one shape.
        boa_offset_dn: added to non-zero DN before scaling by 1e-4.
        params: ``threshold``, ``average_over``, ``dilation_size`` (pixels at 10 m)
            for ``s2cloudless.S2PixelCloudDetector``; defaults in :data:`S2CLOUDLESS_DEFAULTS`.

    Raises:
        CloudMaskError: if a required band is absent.
    """
    from s2cloudless import S2PixelCloudDetector

    need = [b for b in S2CLOUDLESS_BANDS if b not in S2CLOUDLESS_FILL] + ["B8A"]
    missing = sorted({b for b in need if b not in bands_dn})
    if missing:
        raise CloudMaskError(f"s2cloudless needs bands {missing} in the stack")
    shape = bands_dn["B02"].shape
    layers = []
    for b in S2CLOUDLESS_BANDS:
        src, factor = S2CLOUDLESS_FILL.get(b, (b, 1.0))
        if src is None:
            layers.append(np.zeros(shape, np.float32))
            continue
        dn = bands_dn[src].astype(np.float32)
        refl = np.where(dn > 0, np.maximum(dn + boa_offset_dn, 1), 0) * (1e-4 * factor)
        layers.append(refl.astype(np.float32))
    cube = np.stack(layers, axis=-1)[None]
    kw = {**S2CLOUDLESS_DEFAULTS, **params}
    det = S2PixelCloudDetector(
        threshold=float(kw["threshold"]), all_bands=False,
        average_over=int(kw["average_over"]), dilation_size=int(kw["dilation_size"]),
    )
    prob = det.get_cloud_probability_maps(cube)
    return det.get_mask_from_prob(prob)[0].astype(bool)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def cloud_mask_tile(
    manifest_path: Path,
    out_path: Path,
    *,
    scl_classes: Sequence[int] = DEFAULT_SCL_CLASSES,
    dilation_m: float = 40.0,
    s2cloudless: Mapping[str, float] | None = None,
    combine: Combine = "scl",
    snow: Mapping[str, float] | None = SNOW_NDSI_DEFAULTS,
) -> Path:
    """Write the per-scene clear mask of a tile stack.

    Args:
        manifest_path: download manifest (``.../stack/{tile}/manifest.json``).
        out_path: output GeoTIFF (``results/{region}/{year}/cloudmask/{tile}.tif``).
        scl_classes: SCL classes to mask.
        dilation_m: dilation of the SCL cloud/shadow classes, metres.
        s2cloudless: parameters for :func:`s2cloudless_mask` (``{}`` for defaults),
            or None to not run it. Required unless ``combine == "scl"``.
        combine: ``"scl"`` (SCL only), ``"s2cloudless"`` (s2cloudless only),
            ``"union"`` (masked where either says cloud), ``"intersection"``
            (cloud only where both say so). In every case SCL no data /
            saturated pixels (classes 0 and 1 if listed) and pixels where a 10 m
            band is 0 stay masked.
        snow: thresholds of :func:`ndsi_snow_mask` (``{}`` for defaults), applied to
            scenes without SCL (with SCL, class 11 in ``scl_classes`` masks snow);
            None to not test for snow.

    Returns:
        ``out_path``: uint8 on the 10 m grid, one band per scene, 1 = clear, 0 = masked.

    Raises:
        CloudMaskError: empty stack, a scene without the bands the rule needs.
        ValueError: unknown ``combine`` or unreadable manifest.
    """
    if combine not in ("scl", "union", "intersection", "s2cloudless"):
        raise ValueError(f"combine={combine!r}: expected scl, union, intersection or s2cloudless")
    use_s2c = combine != "scl"
    if use_s2c and s2cloudless is None:
        s2cloudless = {}
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    try:
        verify_stack(manifest_path, manifest)
    except ValueError as exc:
        raise CloudMaskError(str(exc)) from None
    root = manifest_path.parent
    scenes = manifest["scenes"]
    tile_id = manifest["tile_id"]
    if not scenes:
        raise CloudMaskError(f"{manifest_path}: no scenes in the stack of {tile_id}")
    grid = _grid_10m(root, scenes[0], manifest_path)
    invalid_classes = [c for c in scl_classes if c not in DILATED_SCL_CLASSES]
    layers = []
    for scene in tqdm(scenes, desc=f"cloudmask {tile_id}", unit="scene", disable=None):
        files = scene["files"]
        b10 = [b for b in BANDS_10M if b in files]
        if not b10:
            raise CloudMaskError(f"{manifest_path}: scene {scene['id']} has no 10 m band")
        valid = np.ones(grid.shape, bool)
        for b in b10:
            valid &= _read(root / files[b]) != 0
        scl = _read(root / files[SCL]) if SCL in files else None
        if scl is None and combine != "s2cloudless":
            raise CloudMaskError(
                f"{manifest_path}: scene {scene['id']} has no SCL; use combine='s2cloudless'")
        if scl is not None:
            valid &= scl_clear_mask(upsample2(scl), invalid_classes)
            scl_cloud = ~scl_mask_10m(scl, [c for c in scl_classes if c in DILATED_SCL_CLASSES],
                                      dilation_m)
        if use_s2c:
            need = {src for b in S2CLOUDLESS_BANDS
                    for src in [S2CLOUDLESS_FILL.get(b, (b, 1.0))[0]] if src}
            dn = {b: _read(root / p) for b, p in files.items() if b in need}
            dn = {b: (upsample2(a) if a.shape != grid.shape else a) for b, a in dn.items()}
            s2c_cloud = s2cloudless_mask(dn, int(scene.get("boa_offset_dn", 0)),
                                         **(s2cloudless or {}))
        if combine == "scl":
            cloud = scl_cloud
        elif combine == "s2cloudless":
            cloud = s2c_cloud
        elif combine == "union":
            cloud = scl_cloud | s2c_cloud
        else:
            cloud = scl_cloud & s2c_cloud
        clear = valid & ~cloud
        if scl is None and snow is not None:
            clear &= ~_scene_snow(root, files, grid, manifest_path, scene, snow)
        layers.append(clear.astype(np.uint8))
        log.info("%s: scene %s: %.1f%% clear", tile_id, scene["id"], 100.0 * clear.mean())
    write_cog(
        out_path, np.stack(layers), grid, nodata=None,
        band_names=[s["id"] for s in scenes],
        tags={"JOINTSEG_PRODUCT": "cloudmask", "TILE": tile_id, "COMBINE": combine,
              "SCL_CLASSES": ",".join(str(c) for c in scl_classes),
              "DILATION_M": f"{dilation_m:g}"},
    )
    return Path(out_path)


def run_cloudmask(manifest_path: str | Path, out_path: str | Path,
                  settings: CloudMaskSettings) -> Path:
    """The cloudmask stage: :func:`cloud_mask_tile` with ``settings`` (config ``cloudmask``)."""
    return cloud_mask_tile(Path(manifest_path), Path(out_path),
                           scl_classes=settings.scl_classes, dilation_m=settings.dilation_m,
                           s2cloudless=settings.s2cloudless, combine=settings.combine,
                           snow=settings.snow)


def _scene_snow(root: Path, files: Mapping[str, str], grid: GeoBox, manifest_path: Path,
                scene: dict, thresholds: Mapping[str, float]) -> np.ndarray:
    """bool snow mask (10 m) of a scene without SCL: NDSI test on B03, B11 (20 m,
    nearest to 10 m) and B08."""
    missing = [b for b in ("B03", "B08", "B11") if b not in files]
    if missing:
        raise CloudMaskError(f"{manifest_path}: scene {scene['id']} has no SCL and lacks "
                             f"{' '.join(missing)} for the NDSI snow test")
    dn = {b: _read(root / files[b]) for b in ("B03", "B08", "B11")}
    dn = {b: (upsample2(a) if a.shape != grid.shape else a) for b, a in dn.items()}
    snow = ndsi_snow_mask(dn["B03"], dn["B11"], dn["B08"], int(scene.get("boa_offset_dn", 0)),
                          **{**SNOW_NDSI_DEFAULTS, **thresholds})
    log.info("scene %s: no SCL, NDSI snow test masks %.1f%%", scene["id"], 100 * snow.mean())
    return snow


def _grid_10m(root: Path, scene: dict, manifest_path: Path) -> GeoBox:
    """The tile's 10 m grid, read from the scene's first 10 m band file."""
    for b in BANDS_10M:
        if b in scene["files"]:
            with rasterio.open(root / scene["files"][b]) as ds:
                epsg = ds.crs.to_epsg()
                crs = f"EPSG:{epsg}" if epsg else ds.crs.to_string()
                return GeoBox(crs, ds.transform, ds.width, ds.height)
    raise CloudMaskError(f"{manifest_path}: scene {scene['id']} has no 10 m band")
