"""Sentinel-2 MSI / L2A error model of the simulated scenes: instrument noise from the
mission SNR, the L2A atmospheric-correction error and band / date misregistration.

Reflectances are 0-1 (L2A surface reflectance), shifts in metres or in native pixels of a
band as named. Every parameter is cited in docs/simulation.md ("Sentinel-2 error model",
issue 21); none was tuned on model results.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from jointseg.simulate.noise import smooth_noise

# --- Instrument noise: SNR at the reference radiance L_ref (S2 MSI radiometric
# requirements, ESA Sentinel-2 User Handbook 2015 Table 2-3 / MSI performance pages;
# Gascon et al. 2017, Remote Sens. 9(6):584, Table 5). The requirement, not the higher
# measured in-flight SNR (~1.3-2x), is used: conservative (noisier).
#: W m-2 sr-1 um-1, per band of :data:`S2_BANDS`.
L_REF = dict(B02=128.0, B03=128.0, B04=108.0, B05=74.5, B06=68.0, B07=67.0, B08=103.0,
             B8A=52.5, B11=4.0, B12=1.5)
#: Required SNR at L_REF.
SNR_REF = dict(B02=154.0, B03=168.0, B04=142.0, B05=117.0, B06=89.0, B07=105.0, B08=174.0,
               B8A=72.0, B11=100.0, B12=100.0)
#: Exo-atmospheric solar irradiance, W m-2 um-1 (S2A L1C metadata SOLAR_IRRADIANCE, after
#: Thuillier et al. 2003).
E_SUN = dict(B02=1959.77, B03=1824.93, B04=1512.79, B05=1425.78, B06=1291.13, B07=1175.57,
             B08=1041.28, B8A=955.32, B11=245.59, B12=85.25)

# --- L2A atmospheric-correction (Sen2Cor) error: ACIX (Doxani et al. 2018, Remote Sens.
# 10(2):352) surface-reflectance uncertainty vs the AERONET-based reference, ~0.005-0.02
# by band, largest in the blue (aerosol). 1-sigma, reflectance.
AC_SIGMA = dict(B02=0.012, B03=0.010, B04=0.010, B05=0.010, B06=0.010, B07=0.010,
                B08=0.012, B8A=0.012, B11=0.010, B12=0.008)
#: Share of the AC error variance common to all bands and the whole scene (one aerosol
#: retrieval per scene drives every band with the same sign); the rest is a per-band field
#: correlated over AC_SCALE_M (Sen2Cor's AOT map is smoothed over ~km). Assumption.
AC_COMMON_SHARE = 0.8
AC_SCALE_M = 1000.0

# --- Misregistration (Gascon et al. 2017; S2 MPC L1C Data Quality Reports).
#: Inter-band registration requirement: < 0.3 native pixel at 99.7 % confidence (measured
#: 0.1-0.2 px); we use the requirement (conservative).
BAND_REG_P997_PX = 0.3
#: Multi-temporal registration, 95 % circular radius (m): before the Global Reference
#: Image refinement (processing baseline 03.00, 30 Mar 2021) ~11 m; after it < 5 m.
DATE_REG_R95_M_BEFORE_GRI = 11.0
DATE_REG_R95_M_AFTER_GRI = 5.0
GRI_DATE = dt.date(2021, 3, 30)

# Circular 2-D Gaussian: P(r < R) = 1 - exp(-R^2 / 2 sigma^2) -> sigma = R / sqrt(-2 ln(1-P)).
_K95 = math.sqrt(-2 * math.log(0.05))
_K997 = math.sqrt(-2 * math.log(0.003))


def noise_sigma(band: str, sun_elev_deg: float) -> float:
    """1-sigma surface-reflectance noise of ``band`` at the reference radiance:
    pi * L_ref / SNR / (E_sun * cos(sun zenith)); radiance noise taken as constant."""
    cos_sz = max(math.sin(math.radians(sun_elev_deg)), 0.1)
    return math.pi * L_REF[band] / SNR_REF[band] / (E_SUN[band] * cos_sz)


def date_shift_sigma_m(date: dt.date) -> float:
    """Per-axis sigma (m) of a date's geolocation offset (multi-temporal registration)."""
    r95 = DATE_REG_R95_M_BEFORE_GRI if date < GRI_DATE else DATE_REG_R95_M_AFTER_GRI
    return r95 / _K95


def band_shift_sigma_px() -> float:
    """Per-axis sigma (native pixels of the band) of the band-to-band misregistration."""
    return BAND_REG_P997_PX / _K997


def draw_shifts(date: dt.date, bands: tuple[str, ...], rng: np.random.Generator
                ) -> tuple[tuple[float, float], dict[str, tuple[float, float]]]:
    """(date shift (dy, dx) in metres, {band: (dy, dx) in native pixels}) for one date."""
    s = date_shift_sigma_m(date)
    date_m = (float(rng.normal(0, s)), float(rng.normal(0, s)))
    sb = band_shift_sigma_px()
    per_band = {b: (float(rng.normal(0, sb)), float(rng.normal(0, sb))) for b in bands}
    return date_m, per_band


def ac_error_fields(shape: tuple[int, int], res_m: float, bands: tuple[str, ...],
                    common: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Additive L2A reflectance error per band of ``bands`` (float32 on a ``shape`` grid of
    ``res_m`` pixels): the scene's standard-normal ``common`` (one per scene, shared by all
    bands) plus a per-band offset and a smooth per-band field, total 1-sigma
    :data:`AC_SIGMA`."""
    a, b = math.sqrt(AC_COMMON_SHARE), math.sqrt(1 - AC_COMMON_SHARE)
    out = {}
    for band in bands:
        own = float(rng.standard_normal())
        field = smooth_noise(shape, AC_SCALE_M / res_m, rng)
        z = a * common + b * (0.5 * own + math.sqrt(0.75) * field)
        out[band] = (AC_SIGMA[band] * z).astype(np.float32)
    return out
