"""How each kind of product is drawn: class palettes, colour ramps, legends, attributions.

One definition for the viewer (``server``) and the QGIS project (``qgis``), so both draw
a product with the same colours. The ISA colours match the mosaic quicklooks
(``jointseg.mosaic.quicklook``).
"""

from __future__ import annotations

from rio_tiler.colormap import cmap

from jointseg.products import ISA_CLASSES, PROB_RAMP

__all__ = ["ISA_CLASSES", "PROB_RAMP", "WORLDCOVER_CLASSES"]

#: ESA WorldCover v100/v200 classes with the official palette (product user manual).
WORLDCOVER_CLASSES: dict[int, tuple[str, str]] = {
    10: ("#006400", "Tree cover"),
    20: ("#ffbb22", "Shrubland"),
    30: ("#ffff4c", "Grassland"),
    40: ("#f096ff", "Cropland"),
    50: ("#fa0000", "Built-up"),
    60: ("#b4b4b4", "Bare / sparse vegetation"),
    70: ("#f0f0f0", "Snow and ice"),
    80: ("#0064c8", "Permanent water bodies"),
    90: ("#0096a0", "Herbaceous wetland"),
    95: ("#00cf75", "Mangroves"),
    100: ("#fae6a0", "Moss and lichen"),
}

WORLDCOVER_ATTRIBUTION = (
    "© ESA WorldCover project {year} / Contains modified Copernicus Sentinel data ({year}) "
    "processed by ESA WorldCover consortium — CC BY 4.0"
)
WORLDCOVER_SIMULATED_ATTRIBUTION = (
    "Simulated map in the ESA WorldCover format; classes and palette: ESA WorldCover "
    "project — CC BY 4.0"
)
SENTINEL_ATTRIBUTION = "Contains modified Copernicus Sentinel data {year}"
SIMULATED_ATTRIBUTION = "SIMULATED data (JointSeg demo region)"


def hex_to_rgba(colour: str, alpha: int = 255) -> tuple[int, int, int, int]:
    """``"#rrggbb"`` -> (r, g, b, alpha), each 0..255."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), alpha


def class_colormap(classes: dict[int, tuple[str, str]]) -> dict[int, tuple[int, int, int, int]]:
    """rio-tiler colormap (value -> RGBA) of a class table; other values transparent."""
    out = {v: (0, 0, 0, 0) for v in range(256)}
    out.update({v: hex_to_rgba(colour) for v, (colour, _) in classes.items()})
    return out


def ramp_colormap(name: str) -> dict[int, tuple[int, int, int, int]]:
    """rio-tiler's 256-entry colormap of a named ramp (matplotlib names)."""
    return cmap.get(name)


def ramp_stops(name: str, n: int = 11) -> list[str]:
    """``n`` evenly spaced colours ``"#rrggbb"`` of a ramp, from low to high."""
    table = cmap.get(name)
    idx = [round(i * 255 / (n - 1)) for i in range(n)]
    return ["#{:02x}{:02x}{:02x}".format(*table[i][:3]) for i in idx]


def class_legend(classes: dict[int, tuple[str, str]]) -> list[dict]:
    """Legend entries ``{"value", "colour", "label"}`` of a class table."""
    return [{"value": v, "colour": c, "label": label} for v, (c, label) in classes.items()]
