"""The Sentinel-2 band table: band ids, native resolutions and the model's input order.

One definition for every module that names bands (STAC mapping, download, cloud
mask, composite, scene reading, model, simulator). Band ids are ESA's (``B02``...,
``B8A``, ``SCL``); resolutions are metres.
"""

from __future__ import annotations

#: Native resolution (m) of every band an L2A product may carry.
NATIVE_RES_M: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20,
}
#: Reflectance bands at 10 m, in the model's input order (blue, green, red, NIR).
BANDS_10M: tuple[str, ...] = ("B02", "B03", "B04", "B08")
#: Reflectance bands at 20 m, in the model's input order.
BANDS_20M: tuple[str, ...] = ("B05", "B06", "B07", "B8A", "B11", "B12")
#: Reflectance bands the model reads (10 m then 20 m).
REFLECTANCE_BANDS: tuple[str, ...] = BANDS_10M + BANDS_20M
#: The L2A scene classification layer (20 m, categorical).
SCL = "SCL"
#: Bands the pipeline downloads by default: reflectance for the model + SCL for the mask.
DEFAULT_BANDS: tuple[str, ...] = REFLECTANCE_BANDS + (SCL,)
#: Every band id an L2A item may carry (spectral + classification), in ESA's order.
ALL_L2A_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", SCL,
)
#: Bands resampled with nearest neighbour when reprojection is needed (classes).
CATEGORICAL_BANDS = frozenset({SCL})
#: Name of the composite band that counts clear observations per 10 m pixel.
COUNT = "COUNT"
#: The composite's QA band (bit flags, see :mod:`jointseg.products`).
QA = "QA"
#: Bands of the 10 m composite, in file order: reflectance, COUNT, QA.
COMPOSITE_10M: tuple[str, ...] = BANDS_10M + (COUNT, QA)
#: The model's 10 m input tensor channels.
MODEL_INPUT_10M: tuple[str, ...] = BANDS_10M + (COUNT,)
#: Bands of the 1 m super-resolved quicklook the model emits (HR image order).
SR_BANDS: tuple[str, ...] = ("R", "G", "B", "NIR")
#: The Sentinel-2 band each SR band corresponds to (keys in :data:`SR_BANDS` order).
SR_FROM_S2: dict[str, str] = {"R": "B04", "G": "B03", "B": "B02", "NIR": "B08"}
