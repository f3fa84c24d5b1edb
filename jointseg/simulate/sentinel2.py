"""Sentinel-2 L2A-like scenes rendered from the 1 m scene.

Per date: material fractions on a 5 m grid (weighted by the 1 m brightness) are mixed
with that date's spectra, clouds/cirrus/shadows are composited, the result is blurred
with a Gaussian PSF (sigma 0.45 output pixel: MTF at Nyquist ~0.37 -> with the 5 m
block averaging ~0.25) and shifted by a sub-pixel misregistration in Fourier space,
block-averaged to 10 m / 20 m, given noise and quantised to L2A DN.

Water bodies are humic, deep, turbid or as is, the same in the HR image
(:func:`~jointseg.simulate.materials.with_water_variants` on the 1 m materials), and
:func:`surface_conditions` may snow-cover a winter date (SCL 11). Conifers, clear-cuts
and dark soil (materials 20-22) have spectra but are not placed
here: they must be 1 m materials so the HR target shows them too.
Snow draws from its own generator, seeded from the region's content and the date, so the
main stream (clouds, noise) is unchanged.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from dataclasses import dataclass

import numpy as np

from jointseg.bands import BANDS_10M, BANDS_20M
from jointseg.simulate.materials import (
    ISA_CLASSES,
    MATERIAL_TO_CLASS,
    N_MATERIALS,
    M,
    with_water_variants,
)
from jointseg.simulate.noise import fractal_noise, smooth_noise, to_uniform
from jointseg.simulate.s2errors import ac_error_fields, draw_shifts, noise_sigma
from jointseg.simulate.spectra import (
    CIRRUS,
    CLOUD,
    S2_BANDS,
    SHADOW_RESIDUAL,
    band_index,
    spectra_table,
)
from jointseg.simulate.variability import ISA_MATERIALS, TILT_VECTOR, isa_variability

FRAC_RES_M = 5
PSF_SIGMA_PX = 0.45
BOA_OFFSET_DATE = dt.date(2022, 1, 25)

# SCL codes
SCL_NODATA, SCL_DARK, SCL_SHADOW, SCL_VEG, SCL_NOTVEG, SCL_WATER = 0, 2, 3, 4, 5, 6
SCL_UNCLASSIFIED, SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW = 7, 8, 9, 10, 11

_ISA_MATERIALS = np.flatnonzero(np.isin(MATERIAL_TO_CLASS, ISA_CLASSES))
_WATER_MATERIALS = (M["water_river"], M["water_pond"])


def material_fractions(material: np.ndarray, tex: np.ndarray,
                       variability: bool = True) -> np.ndarray:
    """float32 (N_MATERIALS + len(ISA_MATERIALS), rows/5, cols/5) per 5 m cell: the
    brightness-weighted fraction of each material (water bodies in their variant colours,
    as the HR image renders them), then per ISA material the weighted sum of its spectral
    tilt. With ``variability`` the weights include each ISA object's brightness factor
    (:func:`~jointseg.simulate.variability.isa_variability`)."""
    if variability:
        factor, tilt = isa_variability(material)
        weight = tex * factor
    else:
        weight, tilt = tex, np.zeros(material.shape, dtype=np.float32)
    material = with_water_variants(material)
    h, w = material.shape
    h5, w5 = h // FRAC_RES_M, w // FRAC_RES_M
    cell = (np.arange(h, dtype=np.int64)[:, None] // FRAC_RES_M) * w5 + (
        np.arange(w, dtype=np.int64)[None, :] // FRAC_RES_M)
    idx = cell * N_MATERIALS + material
    sums = np.bincount(idx.ravel(), weights=weight.ravel(), minlength=h5 * w5 * N_MATERIALS)
    f = sums.reshape(h5, w5, N_MATERIALS).transpose(2, 0, 1) / FRAC_RES_M**2
    isa_k = np.full(N_MATERIALS, len(ISA_MATERIALS), dtype=np.int64)
    isa_k[list(ISA_MATERIALS)] = np.arange(len(ISA_MATERIALS))
    n_t = len(ISA_MATERIALS) + 1  # last slot collects non-ISA pixels (tilt 0) and is dropped
    tsum = np.bincount((cell * n_t + isa_k[material]).ravel(), weights=(weight * tilt).ravel(),
                       minlength=h5 * w5 * n_t)
    t = tsum.reshape(h5, w5, n_t).transpose(2, 0, 1)[:-1] / FRAC_RES_M**2
    return np.ascontiguousarray(np.concatenate([f, t]), dtype=np.float32)


def sun_position(date: dt.date, lat_deg: float, hour_local_solar: float = 10.5):
    """(elevation, azimuth) in degrees of the sun (simple declination model)."""
    doy = date.timetuple().tm_yday
    decl = math.radians(23.44 * math.sin(2 * math.pi * (284 + doy) / 365))
    lat = math.radians(lat_deg)
    ha = math.radians(15 * (hour_local_solar - 12))
    sin_e = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(ha)
    elev = math.asin(sin_e)
    cos_az = (math.sin(decl) - math.sin(elev) * math.sin(lat)) / (math.cos(elev) * math.cos(lat))
    az = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    return math.degrees(elev), az if ha <= 0 else 360 - az


@dataclass
class Scene:
    """One rendered date: DN per band (10 m / 20 m grids), SCL (20 m), truth (10 m)."""

    dn: dict[str, np.ndarray]
    scl: np.ndarray
    truth_clouds: np.ndarray
    cloud_fraction: float
    shift_px: tuple[float, float]
    sun_elev_deg: float
    sun_az_deg: float
    snow_fraction: float = 0.0
    #: band -> (dy, dx) band-to-band misregistration in the band's native pixels.
    band_shift_px: dict[str, tuple[float, float]] | None = None


def render_scene(
    fractions: np.ndarray,
    date: dt.date,
    rng: np.random.Generator,
    cloud_cover: float,
    lat_deg: float = 32.0,
    boa_offset_dn: int = 0,
    swath_edge: bool = False,
) -> Scene:
    """Render one L2A-like date from 5 m ``fractions``.

    Args:
        fractions: (N_MATERIALS, h5, w5) from :func:`material_fractions`.
        date: acquisition date (drives phenology and sun).
        cloud_cover: target fraction (0-1) of thick cloud in the region.
        boa_offset_dn: 1000 for baseline >= 04.00 (stored DN = refl x 10000 + 1000).
        swath_edge: blank a corner (DN 0, SCL 0) as at the edge of an orbit swath.
    """
    _, h5, w5 = fractions.shape
    table = spectra_table(date)
    refl, snow = surface_conditions(fractions, table, date, lat_deg)
    elev, az = sun_position(date, lat_deg)
    alpha, shade, cirrus = _cloud_layers((h5, w5), elev, az, cloud_cover, rng)
    lit = 1 - (shade / 0.75)[None] * (1 - SHADOW_RESIDUAL)[:, None, None]
    refl = refl * lit * (1 - alpha)[None] + alpha[None] * CLOUD[:, None, None]
    refl = refl * (1 - cirrus)[None] + cirrus[None] * CIRRUS[:, None, None]

    date_m, band_px = draw_shifts(date, BANDS_10M + BANDS_20M, rng)
    dn = _to_dn(refl, date_m, band_px, boa_offset_dn, elev, rng)
    shift = (date_m[0] / 10, date_m[1] / 10)  # 10 m pixels

    # Truth at 10 m.
    a10 = alpha.reshape(h5 // 2, 2, w5 // 2, 2).mean((1, 3))
    c10 = cirrus.reshape(h5 // 2, 2, w5 // 2, 2).mean((1, 3))
    s10 = shade.reshape(h5 // 2, 2, w5 // 2, 2).mean((1, 3))
    truth = np.zeros(a10.shape, dtype=np.uint8)
    truth[s10 > 0.15] = 2
    truth[(a10 > 0.03) | (c10 > 0.04)] = 1

    scl = _scl(fractions, refl, alpha, cirrus, shade, rng, snow)
    if swath_edge:
        for arr in dn.values():
            _blank_corner(arr, 0)
        _blank_corner(scl, SCL_NODATA)
    return Scene(dn, scl, truth, float((truth == 1).mean()), shift, elev, az,
                 float(snow.mean()) if snow is not None else 0.0, band_px)


def snow_probability(date: dt.date, lat_deg: float) -> float:
    """Chance (0-1) that a date is snow-covered: winter (1 Dec - 15 Mar, either
    hemisphere) only, rising with |latitude| from 0 at 25 deg to 0.9 at 55 deg."""
    doy = date.timetuple().tm_yday
    winter = doy >= 335 or doy <= 74 if lat_deg >= 0 else 152 <= doy <= 258
    return float(np.clip((abs(lat_deg) - 25.0) / 33.0, 0.0, 0.9)) if winter else 0.0


def surface_conditions(fractions: np.ndarray, table: np.ndarray, date: dt.date,
                       lat_deg: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Surface reflectance (S2_BANDS, h5, w5) of ``fractions`` mixed with ``table``, with,
    on a snowy winter date, snow.

    Returns:
        (float32 reflectance, float32 snow cover 0-1 on the 5 m grid or None).
    """
    refl = np.einsum("mb,mhw->bhw", table, fractions[:N_MATERIALS], optimize=True)
    isa = list(ISA_MATERIALS)
    if fractions.shape[0] > N_MATERIALS:  # per-object spectral tilt of the ISA materials
        tilted = np.einsum("mb,mhw->bhw", table[isa], fractions[N_MATERIALS:], optimize=True)
        refl += TILT_VECTOR[:, None, None] * tilted
    key = zlib.crc32(np.ascontiguousarray(fractions[:, ::7, ::7]).tobytes())
    rng = np.random.default_rng([key, date.toordinal()])
    if rng.random() >= snow_probability(date, lat_deg):
        return refl, None
    cover = np.clip(0.35 + 0.9 * to_uniform(smooth_noise(refl.shape[1:], 40.0, rng)), 0, 1)
    water = fractions[list(_WATER_MATERIALS)].sum(0)
    cleared = fractions[_ISA_MATERIALS].sum(0)  # roads ploughed, roofs shed part of it
    snow = (cover * np.clip(1 - water - 0.5 * cleared, 0, 1)).astype(np.float32)
    refl = refl * (1 - snow)[None] + snow[None] * table[M["snow"]][:, None, None]
    return refl, snow


def _blank_corner(arr: np.ndarray, value: int) -> None:
    """Set the upper-left corner triangle (col + row < 0.35 rows) of ``arr`` to ``value``
    in place, as at the edge of an orbit swath."""
    r = arr.shape[0]
    yy, xx = np.mgrid[0:r, 0:arr.shape[1]]
    arr[xx + yy < 0.35 * r] = value


def _cloud_layers(shape5: tuple[int, int], elev: float, az: float, cloud_cover: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cloud opacity, shadow darkening, cirrus opacity), float (rows, cols) in [0, 1] on
    the 5 m grid, for a sun at ``elev``/``az`` degrees and a thick-cloud fraction
    ``cloud_cover``. Clouds are drawn on a padded domain so that shadows of clouds
    outside the region fall inside."""
    h5, w5 = shape5
    cloud_h_m = rng.uniform(1000, 2500)
    shadow_len = cloud_h_m / math.tan(math.radians(elev)) / FRAC_RES_M
    dc = int(round(-math.sin(math.radians(az)) * shadow_len))
    dr = int(round(math.cos(math.radians(az)) * shadow_len))
    pad = abs(dc) + abs(dr) + 2
    big = (h5 + 2 * pad, w5 + 2 * pad)
    alpha_big = np.zeros(big, dtype=np.float32)
    if cloud_cover > 0:
        n = fractal_noise(big, 3.2, rng, min_scale_px=2.0)
        thr = np.quantile(n[pad:-pad, pad:-pad], 1 - cloud_cover)
        alpha_big = 1 - np.exp(-np.maximum(n - thr, 0) * 4.0)
    alpha = alpha_big[pad:pad + h5, pad:pad + w5]
    shadow = alpha_big[pad - dr:pad - dr + h5, pad - dc:pad - dc + w5]
    cirrus = np.zeros((h5, w5), dtype=np.float32)
    if cloud_cover > 0.05 and rng.random() < 0.6:
        c = smooth_noise((h5, w5), 60.0, rng)
        cirrus = (np.clip(c - 0.8, 0, None) * 0.25).astype(np.float32)
    shade = np.clip(shadow * 1.2, 0, 1) * 0.75
    return alpha, shade, cirrus


def _to_dn(refl: np.ndarray, date_m: tuple[float, float],
           band_px: dict[str, tuple[float, float]], boa_offset_dn: int, sun_elev_deg: float,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """uint16 L2A DN (reflectance x 10000 + ``boa_offset_dn``) per band of
    :data:`jointseg.bands.BANDS_10M` (10 m) and ``BANDS_20M`` (20 m) from the 5 m
    reflectance ``refl`` (S2_BANDS, rows, cols): PSF blur, sub-pixel shift (the date's
    ``date_m`` metres + the band's ``band_px`` native pixels), block averaging, the L2A
    atmospheric-correction error and the SNR-derived noise (:mod:`.s2errors`)."""
    _, h5, w5 = refl.shape
    dn: dict[str, np.ndarray] = {}
    common = float(rng.standard_normal())  # the scene's aerosol error, shared by all bands
    for bands, res in ((BANDS_10M, 10), (BANDS_20M, 20)):
        k = res // FRAC_RES_M
        ac = ac_error_fields((h5 // k, w5 // k), res, bands, common, rng)
        for b, bi in zip(bands, band_index(bands), strict=True):
            dy = date_m[0] / FRAC_RES_M + band_px[b][0] * k
            dx = date_m[1] / FRAC_RES_M + band_px[b][1] * k
            img = _psf_shift(refl[bi], PSF_SIGMA_PX * k, dy, dx)
            img = img.reshape(h5 // k, k, w5 // k, k).mean((1, 3)) + ac[b]
            sd = noise_sigma(b, sun_elev_deg)
            img = img + rng.standard_normal(img.shape).astype(np.float32) * sd
            dn[b] = np.clip(np.round(img * 10000) + boa_offset_dn, 1, 65535).astype(np.uint16)
    return dn


def _psf_shift(img: np.ndarray, sigma: float, dy: float, dx: float) -> np.ndarray:
    """Gaussian blur (sigma px) + sub-pixel shift (dy, dx px) in Fourier space, edge-padded."""
    p = int(4 * sigma + 4)
    a = np.pad(img, p, mode="reflect")
    fy = np.fft.fftfreq(a.shape[0])[:, None]
    fx = np.fft.rfftfreq(a.shape[1])[None, :]
    otf = np.exp(-2 * (math.pi * sigma) ** 2 * (fx**2 + fy**2)) * np.exp(
        -2j * math.pi * (fx * dx + fy * dy))
    out = np.fft.irfft2(np.fft.rfft2(a) * otf, s=a.shape)
    return out[p:-p, p:-p].astype(np.float32)


def _scl(fractions, refl, alpha, cirrus, shade, rng, snow=None) -> np.ndarray:
    """Scene classification (20 m) with realistic errors: thin cloud edges missed,
    some bright roofs flagged as cloud; snow (cover > 0.5) is class 11."""
    def avg(a):
        return a.reshape(a.shape[0] // 4, 4, a.shape[1] // 4, 4).mean((1, 3))

    a, c, s = avg(alpha), avg(cirrus), avg(shade)
    red, nir = avg(refl[S2_BANDS.index("B04")]), avg(refl[S2_BANDS.index("B08")])
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    water = avg(fractions[M["water_river"]] + fractions[M["water_pond"]])
    bright_roof = avg(fractions[M["roof_bright"]])
    scl = np.full(a.shape, SCL_NOTVEG, dtype=np.uint8)
    scl[ndvi > 0.4] = SCL_VEG
    scl[water > 0.5] = SCL_WATER
    scl[(nir < 0.05) & (water <= 0.5)] = SCL_DARK
    if snow is not None:
        scl[avg(snow) > 0.5] = SCL_SNOW
    scl[s > 0.3] = SCL_SHADOW
    thr = 0.12 + 0.05 * rng.random(a.shape)
    scl[(a > 0.03) & (a <= thr) & (rng.random(a.shape) < 0.3)] = SCL_UNCLASSIFIED
    scl[c > 0.06] = SCL_CIRRUS
    scl[a > thr] = SCL_CLOUD_MED
    scl[a > 0.6] = SCL_CLOUD_HIGH
    false_cloud = (bright_roof > 0.35) & (rng.random(a.shape) < 0.5)
    scl[false_cloud] = SCL_CLOUD_MED
    return scl
