"""The land-cover classes of a 1 m reference: one table for the product and the demo.

Codes of a uint8 land-cover raster. The accuracy report's per-class rates
(:mod:`jointseg.assess.perclass`) read a land-cover reference with these codes unless a
run names its own class table (``accuracy.landcover_classes``); the simulator
(:mod:`jointseg.simulate.materials`) writes its truth ``landcover_1m.tif`` with them.
"""

from __future__ import annotations

#: Land-cover code (uint8) -> class name; :data:`NODATA` is no reference.
LANDCOVER_CLASSES: dict[int, str] = {
    0: "nodata",
    1: "road",
    2: "building",
    3: "paved",
    4: "industrial_ground",
    5: "tree",
    6: "grass",
    7: "crop",
    8: "water",
    9: "bare_soil",
    10: "snow",
}
#: The impervious codes (road, building, paved, industrial ground).
ISA_CODES: tuple[int, ...] = (1, 2, 3, 4)
#: The code of "no reference here".
NODATA = 0
