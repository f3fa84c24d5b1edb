"""Render Sentinel-2 L2A-like scenes (and the 1 m HR image) from a simulated landscape.

For each acquisition date and band:

1. the 1 m surface reflectance is looked up from the material map
   (:func:`jointseg.simulate.spectra.material_spectra` for that day) and
   multiplied by a fixed texture (per-object brightness + pixel noise);
2. it is integrated over each Sentinel-2 pixel with a Gaussian point-spread
   function (sigma = 0.45 of the band's pixel: MTF at Nyquist ~ 0.27, within
   the Sentinel-2 MSI specification) on a sub-grid of res/5, shifted by the
   date's sub-pixel misregistration (~0.1-0.3 px), then block-averaged;
3. clouds (fractal opacity field), cirrus (smooth thin haze) and the clouds'
   shadows (the cloud field displaced away from the sun) are composited in;
4. sensor noise is added (0.003 + 1 % of reflectance, 1 sigma) and the value is
   stored as L2A DN: reflectance x 10000, plus 1000 from processing baseline
   04.00 on (25 January 2022), uint16 with 0 = no data.

The Scene Classification Layer (SCL, 20 m) is derived from the truth and the
atmosphere *with errors like Sen2Cor's*: thin cloud edges are partly missed,
some cirrus is not flagged, and bright roofs are sometimes called cloud.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from jointseg.simulate.landcover import Landscape, M
from jointseg.simulate.noise import fractal_noise, smooth_noise, to_uniform
from jointseg.simulate.spectra import BAND_RES_M, S2_BANDS, band_index, material_spectra

#: Start of processing baseline 04.00: the BOA offset (+1000 DN) from this date on.
BOA_OFFSET_START = dt.date(2022, 1, 25)
BOA_OFFSET_DN = 1000
#: Top-of-cloud reflectance per band (bright, slightly darker in the SWIR).
_CLOUD_REFL = np.array([0.55, 0.55, 0.56, 0.56, 0.56, 0.56, 0.57, 0.57, 0.45, 0.35], np.float32)
_CIRRUS_REFL = np.array([0.30, 0.29, 0.28, 0.28, 0.27, 0.27, 0.26, 0.26, 0.18, 0.12], np.float32)
#: Cloud-cover fractions cycled over the dates: some clear, some heavily clouded.
_CLOUD_CYCLE = (0.02, 0.55, 0.06, 0.0, 0.30, 0.10, 0.85, 0.04)

# SCL class codes (Sen2Cor)
SCL_NODATA, SCL_SATURATED, SCL_DARK, SCL_SHADOW, SCL_VEG, SCL_NOTVEG, SCL_WATER = range(7)
SCL_UNCLASSIFIED, SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW = 7, 8, 9, 10, 11


@dataclass(frozen=True)
class Acquisition:
    """One simulated overpass.

    Attributes:
        scene_id: Earth-Search-style id, e.g. ``S2B_50SPA_20210412_0_L2A``.
        date: acquisition date (overpass ~10:30 local, 02:30 UTC).
        platform: ``sentinel-2a`` or ``sentinel-2b``.
        cloud_fraction: target fraction of the scene under cloud.
        cirrus: peak cirrus opacity (0 = none).
        shift_m: (dx, dy) misregistration in metres.
        swath_edge: whether a corner of the scene lies outside the swath (no data).
    """

    scene_id: str
    date: dt.date
    platform: str
    cloud_fraction: float
    cirrus: float
    shift_m: tuple[float, float]
    swath_edge: bool

    @property
    def doy(self) -> int:
        return self.date.timetuple().tm_yday

    @property
    def boa_offset_dn(self) -> int:
        """DN added to the stored values (1000 from baseline 04.00 on)."""
        return BOA_OFFSET_DN if self.date >= BOA_OFFSET_START else 0

    @property
    def processing_baseline(self) -> str:
        if self.date < dt.date(2021, 6, 30):
            return "02.14" if self.date.year >= 2020 else "02.12"
        if self.date < BOA_OFFSET_START:
            return "03.00"
        if self.date < dt.date(2022, 12, 6):
            return "04.00"
        return "05.09"


def plan_acquisitions(
    year: int, n_dates: int, rng: np.random.Generator, mgrs_tile: str = "50SPA"
) -> list[Acquisition]:
    """``n_dates`` acquisitions spread over ``year`` with a realistic mix of cloudiness."""
    out = []
    for i in range(n_dates):
        doy = int(15 + i * 345 / n_dates + rng.integers(0, 5))
        date = dt.date(year, 1, 1) + dt.timedelta(days=doy - 1)
        sat = "A" if i % 2 == 0 else "B"
        shift = tuple(float(v) for v in rng.uniform(-3.0, 3.0, 2))
        out.append(
            Acquisition(
                scene_id=f"S2{sat}_{mgrs_tile}_{date:%Y%m%d}_0_L2A",
                date=date,
                platform=f"sentinel-2{sat.lower()}",
                cloud_fraction=_CLOUD_CYCLE[i % len(_CLOUD_CYCLE)],
                cirrus=0.12 if i % 3 == 1 else 0.0,
                shift_m=shift,  # 0.3 px of 10 m at most
                swath_edge=(i % len(_CLOUD_CYCLE)) == 5,
            )
        )
    return out


def texture(land: Landscape, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative brightness texture at 1 m: per object (parcel) x pixel noise."""
    n = int(land.parcel.max()) + 1
    per_object = rng.normal(1.0, 0.07, n).astype(np.float32)
    tex = per_object[land.parcel]
    tex *= 1.0 + 0.04 * rng.standard_normal(land.parcel.shape, dtype=np.float32)
    # building roofs: one brightness per building height class + some structure
    return np.clip(tex, 0.6, 1.4, out=tex)


def surface_1m(land: Landscape, tex: np.ndarray, table: np.ndarray, band: str) -> np.ndarray:
    """Noise-free 1 m surface reflectance of ``band`` (float32)."""
    col = table[:, band_index(band)]
    return np.take(col, land.material) * tex


def integrate(refl_1m: np.ndarray, res_m: int, shift_m: tuple[float, float]) -> np.ndarray:
    """Integrate a 1 m field over ``res_m`` pixels with a Gaussian PSF and a shift.

    Returns:
        float32 (rows / res_m, cols / res_m).
    """
    sub = res_m // 5  # 2 m for 10 m bands, 4 m for 20 m bands
    h, w = refl_1m.shape
    fine = refl_1m.reshape(h // sub, sub, w // sub, sub).mean(axis=(1, 3), dtype=np.float32)
    sigma = 0.45 * res_m / sub
    fine = ndimage.gaussian_filter(fine, sigma, mode="reflect")
    dx, dy = shift_m
    fine = ndimage.shift(fine, (dy / sub, dx / sub), order=1, mode="nearest")
    f = res_m // sub
    hh, ww = fine.shape
    return fine.reshape(hh // f, f, ww // f, f).mean(axis=(1, 3), dtype=np.float32)


@dataclass
class Atmosphere:
    """Cloud opacity, cirrus opacity and cloud-shadow strength on the 20 m grid (0-1)."""

    cloud: np.ndarray
    cirrus: np.ndarray
    shadow: np.ndarray

    def at(self, factor: int) -> Atmosphere:
        """The same fields upsampled by ``factor`` (bilinear), e.g. 2 for 10 m."""
        if factor == 1:
            return self
        z = [
            np.clip(ndimage.zoom(a, factor, order=1, mode="nearest"), 0, 1)
            for a in (self.cloud, self.cirrus, self.shadow)
        ]
        return Atmosphere(*z)

    def true_mask(self) -> np.ndarray:
        """uint8 truth: 0 clear, 1 cloud (incl. thin cloud and cirrus), 2 shadow."""
        out = np.zeros(self.cloud.shape, np.uint8)
        out[self.shadow > 0.3] = 2
        out[(self.cloud >= 0.05) | (self.cirrus >= 0.04)] = 1
        return out


def atmosphere(
    shape_20m: tuple[int, int], acq: Acquisition, rng: np.random.Generator
) -> Atmosphere:
    """Clouds, cirrus and shadows of one acquisition on the 20 m grid."""
    h, w = shape_20m
    cloud = np.zeros(shape_20m, np.float32)
    if acq.cloud_fraction > 0:
        field = fractal_noise(shape_20m, 3.2, rng, min_scale_px=1.5)
        thr = np.quantile(field, 1 - acq.cloud_fraction)
        cloud = np.clip((field - thr) / 0.9, 0, 1) ** 0.6
    cirrus = np.zeros(shape_20m, np.float32)
    if acq.cirrus > 0:
        cirrus = acq.cirrus * to_uniform(smooth_noise(shape_20m, 40.0, rng)) ** 2
    # shadow: the cloud displaced away from the sun (sun in the south-south-east at
    # overpass -> shadows fall north-north-west); cloud tops 1-2 km, zenith ~35 deg
    dist_px = rng.uniform(30, 60)
    dy, dx = -dist_px * math.cos(math.radians(20)), -dist_px * math.sin(math.radians(20))
    displaced = ndimage.shift(cloud, (dy, dx), order=1, mode="constant", cval=0.0)
    shadow = np.clip(displaced * 1.5, 0, 1) * (cloud < 0.05)
    return Atmosphere(
        cloud.astype(np.float32), cirrus.astype(np.float32), shadow.astype(np.float32)
    )


def observe(
    surface: np.ndarray, atm: Atmosphere, band: str, rng: np.random.Generator
) -> np.ndarray:
    """Top-of-canopy-after-correction reflectance as L2A would report it, with noise."""
    i = band_index(band)
    refl = surface * (1 - 0.7 * atm.shadow)
    refl = (1 - atm.cloud) * refl + atm.cloud * _CLOUD_REFL[i]
    refl = refl + atm.cirrus * _CIRRUS_REFL[i]
    refl = refl + (0.003 + 0.01 * refl) * rng.standard_normal(refl.shape, dtype=np.float32)
    return refl


def swath_mask(shape: tuple[int, int], acq: Acquisition) -> np.ndarray:
    """True where the pixel lies inside the swath (a diagonal cut in one corner)."""
    if not acq.swath_edge:
        return np.ones(shape, bool)
    r = np.arange(shape[0])[:, None] / shape[0]
    c = np.arange(shape[1])[None, :] / shape[1]
    return (r + c) > 0.35


def to_dn(refl: np.ndarray, acq: Acquisition, valid: np.ndarray) -> np.ndarray:
    """L2A DN (uint16): reflectance x 10000 (+1000 from baseline 04.00), 0 = no data."""
    dn = np.rint(refl * 10000.0) + acq.boa_offset_dn
    dn = np.clip(dn, 1, 65535).astype(np.uint16)
    dn[~valid] = 0
    return dn


def scl(
    land: Landscape,
    surface_20m: dict[str, np.ndarray],
    atm: Atmosphere,
    valid: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sen2Cor-like scene classification (uint8, 20 m) with realistic errors."""
    shape = atm.cloud.shape
    f = land.material.shape[0] // shape[0]
    water_mat = (land.material == M["water_river"]) | (land.material == M["water_pond"])
    water = water_mat.reshape(shape[0], f, shape[1], f).mean(axis=(1, 3)) >= 0.5
    red, nir = surface_20m["B04"], surface_20m["B8A"]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    out = np.full(shape, SCL_NOTVEG, np.uint8)
    out[ndvi > 0.4] = SCL_VEG
    out[water] = SCL_WATER
    u = rng.random(shape)
    # commission: bright roofs called cloud
    bright = (surface_20m["B02"] > 0.2) & (atm.cloud < 0.05)
    out[bright & (u < 0.35)] = SCL_CLOUD_MED
    shadow = (atm.shadow > 0.3) & (u < 0.85)
    out[shadow] = SCL_SHADOW
    cir = (atm.cirrus >= 0.04) & (rng.random(shape) < 0.85)
    out[cir] = SCL_CIRRUS
    thin = (atm.cloud >= 0.05) & (atm.cloud < 0.15) & (rng.random(shape) < 0.5)
    out[thin] = SCL_CLOUD_MED  # the other half of thin cloud edges is missed
    out[(atm.cloud >= 0.15) & (atm.cloud < 0.5)] = SCL_CLOUD_MED
    out[atm.cloud >= 0.5] = SCL_CLOUD_HIGH
    out[~valid] = SCL_NODATA
    return out


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks (float32)."""
    h, w = a.shape
    return a.reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float32)


def render_scene(
    land: Landscape, tex: np.ndarray, acq: Acquisition, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """All bands of one acquisition.

    Returns:
        (band id -> uint16 DN array at the band's resolution, SCL uint8 at 20 m,
        true cloud mask uint8 at 20 m: 0 clear / 1 cloud / 2 shadow).
    """
    h, w = land.material.shape
    table = material_spectra(acq.doy)
    atm20 = atmosphere((h // 20, w // 20), acq, rng)
    atm10 = atm20.at(2)
    valid = {10: swath_mask((h // 10, w // 10), acq), 20: swath_mask((h // 20, w // 20), acq)}
    bands: dict[str, np.ndarray] = {}
    surface_20m: dict[str, np.ndarray] = {}
    for band in S2_BANDS:
        res = BAND_RES_M[band]
        surf = integrate(surface_1m(land, tex, table, band), res, acq.shift_m)
        if band in ("B02", "B04"):
            surface_20m[band] = block_mean(surf, 2)
        elif band == "B8A":
            surface_20m[band] = surf
        atm = atm10 if res == 10 else atm20
        bands[band] = to_dn(observe(surf, atm, band, rng), acq, valid[res])
    scl_20m = scl(land, surface_20m, atm20, valid[20], rng)
    return bands, scl_20m, atm20.true_mask()


def clear_composite(
    land: Landscape, tex: np.ndarray, year: int, n_dates: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Median of ``n_dates`` cloud-free observations (harmonised DN, uint16) + COUNT.

    What the pipeline's composite would give over a region with clear skies:
    used for training chips so that training inputs look like inference inputs.
    """
    h, w = land.material.shape
    stacks: dict[str, list[np.ndarray]] = {b: [] for b in S2_BANDS}
    for i in range(n_dates):
        doy = int(60 + i * 240 / max(n_dates - 1, 1))
        date = dt.date(year, 1, 1) + dt.timedelta(days=doy - 1)
        acq = Acquisition(
            "clear",
            date,
            "sentinel-2a",
            0.0,
            0.0,
            tuple(float(v) for v in rng.uniform(-3, 3, 2)),
            False,
        )
        table = material_spectra(doy)
        for band in S2_BANDS:
            res = BAND_RES_M[band]
            surf = integrate(surface_1m(land, tex, table, band), res, acq.shift_m)
            noisy = surf + (0.003 + 0.01 * surf) * rng.standard_normal(surf.shape, np.float32)
            stacks[band].append(np.clip(np.rint(noisy * 10000), 1, 65535))
    out = {b: np.median(np.stack(v), axis=0).round().astype(np.uint16) for b, v in stacks.items()}
    count = np.full((h // 10, w // 10), n_dates, np.uint16)
    return out, count


def hr_image(
    land: Landscape, tex: np.ndarray, rng: np.random.Generator, doy: int = 200
) -> np.ndarray:
    """1 m R G B NIR reflectance x 10000 (uint16): the super-resolution target.

    A summer acquisition of a Jilin-1-like sensor: the same spectra at 1 m, a
    slight blur (sigma 0.4 px) and noise; no clouds.
    """
    table = material_spectra(doy)
    out = np.empty((4, *land.material.shape), np.uint16)
    for i, band in enumerate(("B04", "B03", "B02", "B08")):
        refl = ndimage.gaussian_filter(surface_1m(land, tex, table, band), 0.4)
        refl += (0.002 + 0.01 * refl) * rng.standard_normal(refl.shape, dtype=np.float32)
        out[i] = np.clip(np.rint(refl * 10000), 1, 65535).astype(np.uint16)
    return out
