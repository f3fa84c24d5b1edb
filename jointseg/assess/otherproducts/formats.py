"""Published formats of other ISA products and the rule that turns their values into ISA.

Each :class:`ProductFormat` states the facts a loader relies on (CRS, pixel size, value
encoding, nodata) with the source they come from. :func:`isa_fraction` turns a block of
product values into an ISA fraction in [0, 1] (float32, NaN = no data): 0/1 for the
categorical products, built-up share for GHS-BUILT-S.

Sources:

* GAIA: Gong, P. et al. (2020) Annual maps of global artificial impervious area (GAIA)
  between 1985 and 2018. Remote Sens. Environ. 236, 111510; data readme and the Earth
  Engine catalogue entry ``Tsinghua/FROM-GLC/GAIA/v10``: 30 m, EPSG:4326 tiles, band
  ``change_year_index`` = year of the change from pervious to impervious, 34 = 1985 ...
  1 = 2018 (lookup table: value v <-> year 2019 - v), 0 = never impervious by 2018.
  Impervious in year Y means v >= 2019 - Y (the catalogue's "1990 = value greater than
  29" is off by one against its own table, where 29 = 1990; we follow the table).
* GISA-10m: Huang, X. et al. (2022) Toward accurate mapping of 10-m global impervious
  surface area (GISA-10m). Earth Syst. Sci. Data: 10 m, EPSG:4326 tiles, 1 = impervious,
  0 = not.
* WSF 2019: Marconcini, M. et al. (2020) Outlining where humans live, the World
  Settlement Footprint 2015. Sci. Data 7, 242, and the WSF 2019 release (DLR): 10 m
  (0.0000898 degree), EPSG:4326 2 x 2 degree tiles, 255 = settlement, 0 = not.
* ESRI 10 m Land Cover: Karra, K. et al. (2021) Global land use/land cover with
  Sentinel-2 and deep learning. IGARSS 2021 (Impact Observatory): uint8 tiles per UTM
  zone, 10 m; classes 1 water, 2 trees, 4 flooded vegetation, 5 crops, 7 built area,
  8 bare ground, 9 snow/ice, 10 clouds, 11 rangeland; 0 = no data.
* Dynamic World: Brown, C. F. et al. (2022) Dynamic World, near real-time global 10 m
  land use land cover mapping. Sci. Data 9, 251: band ``label`` 0 water, 1 trees,
  2 grass, 3 flooded vegetation, 4 crops, 5 shrub and scrub, 6 built, 7 bare,
  8 snow and ice; 10 m in the UTM zone of its Sentinel-2 tile (exports keep it).
* GHS-BUILT-S R2023A: Pesaresi, M., Politis, P. (2023) GHS-BUILT-S R2023A - GHS
  built-up surface grid, derived from Sentinel-2 composite and Landsat, multitemporal
  (1975-2030). European Commission, JRC; GHSL Data Package 2023: built-up surface in
  m² per cell, World Mollweide (ESRI:54009), 100 m (uint16, nodata 65535) or 10 m
  (epoch 2018); fraction = value / cell area (Mollweide is equal-area).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GAIA_FIRST_YEAR = 1985
GAIA_LAST_YEAR = 2018
#: GAIA code v <-> year of change GAIA_CODE_BASE - v (34 = 1985, 1 = 2018)
GAIA_CODE_BASE = 2019


class ProductFormatError(ValueError):
    """A product kind is unknown, or its values or year do not fit its format."""


@dataclass(frozen=True)
class ProductFormat:
    """Published facts about one product kind.

    Attributes:
        kind: config key (``gaia``, ``gisa``, ``wsf``, ``esri_lc``, ``dynamic_world``,
            ``ghs_built_s``).
        label: name in tables.
        crs: CRS the product is published in (a UTM zone: ``"UTM"``).
        res: nominal pixel size in CRS units (degrees for EPSG:4326).
        res_m: nominal pixel size in metres.
        isa_values: values meaning ISA (categorical products); empty for GAIA/GHS.
        valid_values: every value with a meaning (others are no data); None = any.
        nodata: the published nodata value, if any.
        dtype: published data type.
        citation: the source of these facts.
        years: (first, last) year the product exists for.
    """

    kind: str
    label: str
    crs: str
    res: float
    res_m: float
    isa_values: tuple[int, ...]
    valid_values: tuple[int, ...] | None
    nodata: int | None
    dtype: str
    citation: str
    years: tuple[int, int]


FORMATS: dict[str, ProductFormat] = {f.kind: f for f in (
    ProductFormat("gaia", "GAIA", "EPSG:4326", 0.00025, 30.0, (), tuple(range(0, 35)), None,
                  "uint8", "Gong et al. 2020, Remote Sens. Environ. 236, 111510",
                  (GAIA_FIRST_YEAR, GAIA_LAST_YEAR)),
    ProductFormat("gisa", "GISA-10m", "EPSG:4326", 0.0000898315284, 10.0, (1,), (0, 1), None,
                  "uint8", "Huang et al. 2022, Earth Syst. Sci. Data", (2016, 2016)),
    ProductFormat("wsf", "WSF 2019", "EPSG:4326", 0.0000898315284, 10.0, (255,), (0, 255), None,
                  "uint8", "Marconcini et al. 2020, Sci. Data 7, 242 (WSF 2019 release)",
                  (2019, 2019)),
    ProductFormat("esri_lc", "ESRI 10 m Land Cover", "UTM", 10.0, 10.0, (7,),
                  (1, 2, 4, 5, 7, 8, 9, 10, 11), 0, "uint8",
                  "Karra et al. 2021, IGARSS (Impact Observatory)", (2017, 2023)),
    ProductFormat("dynamic_world", "Dynamic World", "UTM", 10.0, 10.0, (6,), tuple(range(9)),
                  None, "uint8", "Brown et al. 2022, Sci. Data 9, 251", (2015, 2100)),
    ProductFormat("ghs_built_s", "GHS-BUILT-S R2023A", "ESRI:54009", 100.0, 100.0, (), None,
                  65535, "uint16", "Pesaresi & Politis 2023, JRC GHSL Data Package 2023",
                  (1975, 2030)),
)}


def product_format(kind: str) -> ProductFormat:
    """The :class:`ProductFormat` of ``kind``.

    Raises:
        ProductFormatError: for an unknown kind (names the known ones).
    """
    try:
        return FORMATS[kind]
    except KeyError:
        raise ProductFormatError(f"unknown product kind {kind!r}; expected one of "
                                 f"{sorted(FORMATS)}") from None


def gaia_code(year_of_change: int | np.ndarray) -> int | np.ndarray:
    """GAIA value for a year of change (1985 -> 34, 2018 -> 1)."""
    return GAIA_CODE_BASE - year_of_change


def gaia_isa(values: np.ndarray, year: int) -> np.ndarray:
    """bool: GAIA pixels impervious in ``year`` (code v in 1..34 and v >= 2019 - year).

    Years after 2018 use the 2018 state (GAIA ends there).

    Raises:
        ProductFormatError: for a year before 1985.
    """
    if year < GAIA_FIRST_YEAR:
        raise ProductFormatError(f"GAIA starts in {GAIA_FIRST_YEAR}; no map for {year}")
    first_code = gaia_code(min(year, GAIA_LAST_YEAR))
    return (values >= first_code) & (values <= gaia_code(GAIA_FIRST_YEAR))


def isa_fraction(
    values: np.ndarray, kind: str, year: int, *,
    nodata: Sequence[int] = (), cell_area_m2: float | None = None,
) -> np.ndarray:
    """ISA fraction (float32 in [0, 1], NaN = no data) of a block of product values.

    Args:
        values: the product's values on its native grid.
        kind: product kind (:data:`FORMATS`).
        year: the year the ISA is asked for (GAIA: impervious by then).
        nodata: values that mean no data (the file's nodata, the fill value).
        cell_area_m2: GHS-BUILT-S cell area (m²) on the native grid.

    Raises:
        ProductFormatError: for GHS-BUILT-S without ``cell_area_m2``.
    """
    fmt = product_format(kind)
    bad = np.isin(values, list(nodata)) if len(nodata) else np.zeros(values.shape, bool)
    if fmt.nodata is not None:
        bad |= values == fmt.nodata
    if kind == "ghs_built_s":
        if not cell_area_m2:
            raise ProductFormatError("GHS-BUILT-S needs the cell area (m²) of its grid")
        frac = np.clip(values.astype(np.float32) / np.float32(cell_area_m2), 0, 1)
    elif kind == "gaia":
        frac = gaia_isa(values, year).astype(np.float32)
    else:
        frac = np.isin(values, list(fmt.isa_values)).astype(np.float32)
    if fmt.valid_values is not None:
        bad |= ~np.isin(values, list(fmt.valid_values))
    frac[bad] = np.nan
    return frac
