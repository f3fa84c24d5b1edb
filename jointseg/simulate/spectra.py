"""Per-material surface reflectance at the Sentinel-2 bands, with phenology.

Values are **approximate** band-averaged surface reflectances (0-1) chosen after
published spectral libraries, not measurements of any real place:

* urban materials (asphalt, concrete, roofing: bright coated metal, blue steel,
  red clay tile, dark bitumen): after the Santa Barbara urban spectral library
  (Herold et al. 2004, Remote Sens. Environ. 91) and the USGS Spectral Library
  v7 (Kokaly et al. 2017, USGS Data Series 1035) manmade-materials chapter;
* vegetation, soils and water: after the ECOSTRESS spectral library
  (Meerdink et al. 2019, Remote Sens. Environ. 230) and typical Sentinel-2 L2A
  values over the Yangtze plain (turbid river water, paddy rice, winter wheat).

Vegetated materials mix a green-canopy and a senescent/soil spectrum with a
seasonal green fraction (double cropping of winter wheat and summer rice in the
Yangtze delta; deciduous share of trees; grass browning in winter). Flooded
paddies (June) mix in water.
"""

from __future__ import annotations

import math

import numpy as np

from jointseg.simulate.landcover import MATERIALS, N_MATERIALS

#: Band order of every spectrum below.
S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
#: Native resolution (m) of each band.
BAND_RES_M: dict[str, int] = {
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B08": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B8A": 20,
    "B11": 20,
    "B12": 20,
}
#: HR (Jilin-1-like) bands, taken as the matching S2 bands' reflectance.
HR_BANDS: tuple[str, ...] = ("B04", "B03", "B02", "B08")  # R G B NIR

_R = np.array
# B02   B03   B04   B05   B06   B07   B08   B8A   B11   B12
_STATIC: dict[str, np.ndarray] = {
    "asphalt": _R([0.070, 0.080, 0.090, 0.100, 0.105, 0.110, 0.115, 0.120, 0.140, 0.130]),
    "concrete_road": _R([0.180, 0.210, 0.230, 0.240, 0.250, 0.260, 0.270, 0.275, 0.300, 0.270]),
    "roof_concrete": _R([0.160, 0.180, 0.200, 0.210, 0.220, 0.230, 0.240, 0.245, 0.280, 0.250]),
    "roof_bright": _R([0.400, 0.420, 0.430, 0.430, 0.435, 0.440, 0.450, 0.450, 0.420, 0.360]),
    "roof_blue_steel": _R([0.220, 0.200, 0.140, 0.130, 0.130, 0.135, 0.140, 0.140, 0.160, 0.140]),
    "roof_red_tile": _R([0.070, 0.090, 0.180, 0.240, 0.270, 0.290, 0.300, 0.310, 0.360, 0.300]),
    "roof_dark": _R([0.050, 0.052, 0.058, 0.060, 0.062, 0.066, 0.070, 0.072, 0.080, 0.070]),
    "paved": _R([0.140, 0.160, 0.180, 0.190, 0.200, 0.210, 0.220, 0.225, 0.260, 0.230]),
    "industrial_ground": _R([0.120, 0.140, 0.160, 0.180, 0.190, 0.200, 0.210, 0.220, 0.270, 0.250]),
    "water_river": _R([0.070, 0.085, 0.075, 0.060, 0.030, 0.022, 0.020, 0.015, 0.005, 0.003]),
    "water_pond": _R([0.040, 0.060, 0.040, 0.038, 0.020, 0.015, 0.014, 0.010, 0.004, 0.002]),
    "bare_soil": _R([0.100, 0.130, 0.170, 0.200, 0.220, 0.240, 0.250, 0.260, 0.330, 0.280]),
}
_GREEN: dict[str, np.ndarray] = {
    "tree": _R([0.030, 0.060, 0.035, 0.090, 0.250, 0.310, 0.340, 0.360, 0.170, 0.080]),
    "grass": _R([0.040, 0.080, 0.050, 0.120, 0.280, 0.330, 0.360, 0.380, 0.220, 0.110]),
    "crop": _R([0.030, 0.070, 0.040, 0.110, 0.300, 0.380, 0.420, 0.440, 0.220, 0.100]),
}
_SENESCENT = _R([0.080, 0.110, 0.140, 0.170, 0.190, 0.210, 0.230, 0.240, 0.300, 0.240])


def _bump(doy: float, peak: float, width: float) -> float:
    """A periodic seasonal bump in [0, 1] centred on day ``peak``."""
    d = (doy - peak + 182.5) % 365.0 - 182.5
    return math.exp(-0.5 * (d / width) ** 2)


def green_fraction(material: str, doy: float) -> float:
    """Green-canopy fraction of a vegetated material on day-of-year ``doy``."""
    if material == "tree":  # evergreen + deciduous mix
        return 0.55 + 0.4 * _bump(doy, 200, 60)
    if material == "grass":
        return 0.25 + 0.65 * _bump(doy, 190, 70)
    if material == "crop_rice":  # single summer rice
        return 0.05 + 0.9 * _bump(doy, 235, 35)
    if material == "crop_wheat_rice":  # winter wheat (peak early April) + summer rice
        return 0.05 + max(0.85 * _bump(doy, 95, 30), 0.9 * _bump(doy, 240, 32))
    return 0.0


def paddy_flooding(material: str, doy: float) -> float:
    """Fraction of standing water in a paddy field (transplanting in June)."""
    if material in ("crop_rice", "crop_wheat_rice"):
        return 0.6 * _bump(doy, 170, 12)
    return 0.0


def material_spectra(doy: float) -> np.ndarray:
    """Reflectance of every material on day ``doy``.

    Returns:
        float32 (N_MATERIALS, 10) table in :data:`S2_BANDS` order; row 0 (no
        material) is zero.
    """
    table = np.zeros((N_MATERIALS, len(S2_BANDS)), np.float32)
    for mid, (name, _cls) in MATERIALS.items():
        if name in _STATIC:
            table[mid] = _STATIC[name]
            continue
        base = "crop" if name.startswith("crop") else name
        g = green_fraction(name, doy)
        spec = g * _GREEN[base] + (1 - g) * _SENESCENT
        w = paddy_flooding(name, doy)
        table[mid] = (1 - w) * spec + w * _STATIC["water_pond"]
    return table


def band_index(band: str) -> int:
    """Column of ``band`` in :func:`material_spectra` tables."""
    return S2_BANDS.index(band)
