"""The simulator's material table, and the truth classes the materials belong to.

``material`` rasters (uint8 :data:`MATERIALS` ids) are what the spectra are rendered
from; ``landcover`` rasters (uint8 :data:`CLASSES` codes, the product's land-cover
table :data:`jointseg.landcover.LANDCOVER_CLASSES`) are the truth classes. Each
material belongs to exactly one class (:data:`MATERIAL_TO_CLASS`). Materials 17-23 are
variants the renderer puts in place of part of a class (humic, deep and turbid water:
:func:`with_water_variants`, for the HR image and the scenes alike; conifers, clear-cuts,
dark soil) or over it (snow on a winter date); they never appear in
the 1 m truth, so class 10 (snow) is never a truth code.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from jointseg.landcover import ISA_CODES, LANDCOVER_CLASSES
from jointseg.simulate.noise import hash01

#: Land-cover truth codes (uint8): the product's table (:mod:`jointseg.landcover`),
#: 0 = nodata. ISA = 1-4.
CLASSES: dict[int, str] = LANDCOVER_CLASSES
ISA_CLASSES: tuple[int, ...] = ISA_CODES

#: Surface materials (uint8 ids) -> (name, land-cover class).
MATERIALS: dict[int, tuple[str, int]] = {
    1: ("asphalt", 1),
    2: ("concrete_road", 1),
    3: ("roof_concrete", 2),
    4: ("roof_bright", 2),
    5: ("roof_blue_steel", 2),
    6: ("roof_red_tile", 2),
    7: ("roof_dark", 2),
    8: ("paved", 3),
    9: ("industrial_ground", 4),
    10: ("tree", 5),
    11: ("grass", 6),
    12: ("crop_rice", 7),
    13: ("crop_wheat_rice", 7),
    14: ("water_river", 8),
    15: ("bare_soil", 9),
    16: ("water_pond", 8),
    # Rendered only as scene conditions (jointseg.simulate.sentinel2.surface_conditions),
    # never in the 1 m material raster: they vary what an existing class looks like.
    17: ("water_humic", 8),
    18: ("water_deep", 8),
    19: ("water_turbid", 8),
    20: ("tree_conifer", 5),
    21: ("clearcut", 9),
    22: ("bare_soil_dark", 9),
    23: ("snow", 10),
}
N_MATERIALS = 24  # ids 0..23
#: material name -> uint8 id.
M = {name: mid for mid, (name, _) in MATERIALS.items()}

#: material id -> land-cover class (lookup table).
MATERIAL_TO_CLASS = np.zeros(N_MATERIALS, dtype=np.uint8)
for _mid, (_name, _cls) in MATERIALS.items():
    MATERIAL_TO_CLASS[_mid] = _cls


#: Water variants, each in place of the base colour of about a quarter of the water bodies.
WATER_VARIANTS = ("water_humic", "water_deep", "water_turbid")
_WATER_VARIANT_SALT = 17


def with_water_variants(material: np.ndarray) -> np.ndarray:
    """uint8 material map (rows, cols) with each water body (4-connected river/pond pixels)
    recoloured as a whole: a quarter each humic, deep, turbid, the rest as is.

    A body's variant hashes from its first pixel (row-major), so every renderer of the same
    1 m map (the HR image and the Sentinel-2 scenes) and every year with the same water
    gets the same colour, without drawing from any random stream.
    """
    water = np.isin(material, (M["water_river"], M["water_pond"]))
    labels, n = ndimage.label(water)
    if n == 0:
        return material
    first = ndimage.minimum(np.arange(material.size).reshape(material.shape), labels,
                            np.arange(1, n + 1))
    u = hash01(np.asarray(first, dtype=np.int64), _WATER_VARIANT_SALT)
    variant = np.zeros(n + 1, dtype=np.int16)  # 0 = as is
    for i, name in enumerate(WATER_VARIANTS):
        variant[1:][(u >= i / 4) & (u < (i + 1) / 4)] = M[name]
    out = material.copy()
    moved = variant[labels] > 0
    out[moved] = variant[labels][moved]
    return out
