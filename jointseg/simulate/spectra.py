"""Per-material surface reflectance at the Sentinel-2 bands, with vegetation phenology.

Values are approximate band-averaged reflectances (0-1) after the USGS splib07 and
ECOSTRESS spectral libraries (asphalt, concrete, roofing, vegetation, soils, water,
snow) and published Sentinel-2 L2A lake spectra; each source is named in
docs/simulation.md ("Spectra"). Columns follow :data:`S2_BANDS`: the reflectance bands
of :mod:`jointseg.bands` in ESA order (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from jointseg.bands import ALL_L2A_BANDS, REFLECTANCE_BANDS
from jointseg.simulate.materials import N_MATERIALS, M

#: The simulator's spectral columns: the model's reflectance bands in ESA order.
S2_BANDS: tuple[str, ...] = tuple(b for b in ALL_L2A_BANDS if b in REFLECTANCE_BANDS)

_BASE: dict[str, list[float]] = {
    #                B02    B03    B04    B05    B06    B07    B08    B8A    B11    B12
    "asphalt":      [0.070, 0.080, 0.090, 0.100, 0.100, 0.110, 0.110, 0.120, 0.140, 0.130],
    "concrete_road": [0.200, 0.220, 0.240, 0.250, 0.260, 0.270, 0.270, 0.280, 0.300, 0.270],
    "roof_concrete": [0.160, 0.180, 0.200, 0.210, 0.220, 0.220, 0.230, 0.230, 0.260, 0.240],
    "roof_bright":  [0.380, 0.400, 0.420, 0.430, 0.430, 0.440, 0.440, 0.440, 0.400, 0.350],
    "roof_blue_steel": [0.200, 0.150, 0.080, 0.080, 0.090, 0.100, 0.120, 0.130, 0.170, 0.150],
    "roof_red_tile": [0.070, 0.090, 0.200, 0.250, 0.280, 0.300, 0.310, 0.320, 0.380, 0.330],
    "roof_dark":    [0.060, 0.065, 0.070, 0.075, 0.080, 0.080, 0.085, 0.090, 0.100, 0.090],
    "paved":        [0.170, 0.190, 0.210, 0.220, 0.230, 0.240, 0.240, 0.250, 0.280, 0.260],
    "industrial_ground": [0.130, 0.150, 0.180, 0.200, 0.210, 0.220, 0.230, 0.240, 0.300, 0.280],
    "bare_soil":    [0.080, 0.110, 0.150, 0.180, 0.200, 0.220, 0.230, 0.240, 0.310, 0.260],
    "water_river":  [0.060, 0.070, 0.050, 0.035, 0.020, 0.015, 0.015, 0.012, 0.005, 0.003],
    "water_pond":   [0.060, 0.090, 0.070, 0.055, 0.030, 0.022, 0.020, 0.018, 0.006, 0.004],
    # Scene-condition materials (ids 17-23, see materials.py and sentinel2.surface_conditions).
    # Humic (CDOM-rich) boreal lake, Sen2Cor L2A: < 0.02 in the visible (Toming et al. 2016),
    # NIR/SWIR ~0.01 from adjacency and residual glint (the real Finnish patch: 0.015 / 0.012).
    "water_humic":  [0.014, 0.013, 0.010, 0.010, 0.010, 0.011, 0.012, 0.012, 0.009, 0.006],
    # Clear deep water: blue-green peak, NIR/SWIR absorbed (splib07 Seawater_Open_Ocean).
    "water_deep":   [0.045, 0.035, 0.015, 0.008, 0.005, 0.004, 0.004, 0.003, 0.002, 0.001],
    # Sediment-laden river/lake: red and NIR raised, SWIR still ~0 (splib07 Seawater_Coast_Chl
    # + suspended sediment; Vanhellemont & Ruddick 2016 turbid-water spectra).
    "water_turbid": [0.080, 0.110, 0.100, 0.090, 0.050, 0.040, 0.035, 0.030, 0.010, 0.006],
    # Boreal conifer stand: darker in NIR than broadleaf (ECOSTRESS Picea/Pinus canopy).
    "tree_conifer": [0.020, 0.035, 0.022, 0.060, 0.150, 0.190, 0.210, 0.220, 0.100, 0.045],
    # Recent clear-cut: slash, dry grass, exposed soil (mix of DRY_VEG and bare soil).
    "clearcut":     [0.045, 0.070, 0.080, 0.120, 0.190, 0.220, 0.240, 0.250, 0.240, 0.150],
    # Moist / organic (peaty) soil: dark, flat (splib07 / ECOSTRESS dark loam, moist).
    "bare_soil_dark": [0.040, 0.050, 0.060, 0.070, 0.080, 0.090, 0.100, 0.100, 0.120, 0.090],
    # Old (coarse-grained) snow: bright VIS/NIR, ice absorbs SWIR (splib07 Snow / melting_snow
    # mSnw series; NDSI ~ 0.75).
    "snow":         [0.800, 0.800, 0.780, 0.760, 0.730, 0.700, 0.670, 0.640, 0.120, 0.090],
}
#: Fraction of the surface signal left in full cloud shadow, per band: the diffuse
#: (skylight) share of clear-sky irradiance, higher in the blue (Rayleigh ~ lambda^-4).
SHADOW_RESIDUAL = np.array([0.30, 0.22, 0.17, 0.15, 0.13, 0.12, 0.11, 0.11, 0.07, 0.06],
                           dtype=np.float32)
GREEN_TREE = np.array([0.030, 0.060, 0.035, 0.090, 0.250, 0.320, 0.350, 0.360, 0.170, 0.080])
GREEN_GRASS = np.array([0.040, 0.080, 0.050, 0.120, 0.280, 0.340, 0.380, 0.390, 0.220, 0.120])
GREEN_CROP = np.array([0.030, 0.070, 0.035, 0.110, 0.320, 0.420, 0.460, 0.470, 0.210, 0.100])
DRY_VEG = np.array([0.070, 0.100, 0.130, 0.160, 0.190, 0.210, 0.230, 0.240, 0.330, 0.250])
CLOUD = np.array([0.55, 0.55, 0.56, 0.56, 0.57, 0.57, 0.58, 0.58, 0.45, 0.30])
CIRRUS = np.array([0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.28, 0.25])

# Greenness (0 bare/dry .. 1 full canopy) at day-of-year knots.
_DOY = [1, 60, 100, 130, 150, 175, 200, 230, 260, 290, 320, 366]
_G = {
    "tree": [0.55, 0.58, 0.80, 0.95, 1.0, 1.0, 1.0, 1.0, 0.95, 0.80, 0.62, 0.55],
    "grass": [0.35, 0.40, 0.70, 0.90, 0.95, 0.95, 0.95, 0.90, 0.85, 0.70, 0.50, 0.35],
    # single rice: flooded/bare until June, green Jul-Sep, harvested in October
    "crop_rice": [0.0, 0.0, 0.05, 0.05, 0.10, 0.30, 0.80, 1.0, 0.85, 0.30, 0.05, 0.0],
    # winter wheat (green Mar-Apr, harvested late May) then rice
    "crop_wheat_rice": [0.25, 0.35, 0.85, 0.80, 0.20, 0.25, 0.80, 1.0, 0.85, 0.30, 0.15, 0.25],
}


def greenness(material: str, date: dt.date) -> float:
    """Vegetation greenness (0-1) of ``material`` on ``date`` (Nanjing-like calendar)."""
    return float(np.interp(date.timetuple().tm_yday, _DOY, _G[material]))


def spectra_table(date: dt.date) -> np.ndarray:
    """float32 (N_MATERIALS, 10) reflectance of every material on ``date`` (S2_BANDS order)."""
    t = np.zeros((N_MATERIALS, len(S2_BANDS)), dtype=np.float32)
    for name, vals in _BASE.items():
        t[M[name]] = vals
    doy = date.timetuple().tm_yday
    for name, green in (("tree", GREEN_TREE), ("grass", GREEN_GRASS),
                        ("crop_rice", GREEN_CROP), ("crop_wheat_rice", GREEN_CROP)):
        g = greenness(name, date)
        under = DRY_VEG if name in ("tree", "grass") else np.array(_BASE["bare_soil"])
        if name == "crop_rice" and 130 <= doy <= 175:  # flooded paddies before transplanting
            under = 0.5 * np.array(_BASE["water_pond"]) + 0.5 * np.array(_BASE["bare_soil"])
        t[M[name]] = g * green + (1 - g) * under
    return t


def band_index(bands: tuple[str, ...]) -> list[int]:
    """Indices of ``bands`` in :data:`S2_BANDS`."""
    return [S2_BANDS.index(b) for b in bands]
