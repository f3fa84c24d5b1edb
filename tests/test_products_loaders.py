"""Loaders of other ISA products on fixtures in their published formats
(tests/data/otherproducts/data.py: the west half of a 300 m UTM square is ISA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jointseg.assess.otherproducts.formats import (
    ProductFormatError,
    gaia_isa,
    isa_fraction,
)
from jointseg.assess.otherproducts.load import ProductSpec, load_fraction
from jointseg.grid import GeoBox

DATA = Path(__file__).parent / "data" / "otherproducts"
GRID = GeoBox.from_bounds("EPSG:32650", (663000, 3548700, 663300, 3549000), 10.0)
WEST, EAST = np.s_[:, 2:13], np.s_[:, 17:28]  # columns clear of the 30 m GAIA boundary


def load(kind: str, year: int, product_year: int | None = None) -> np.ndarray:
    spec = ProductSpec.from_dict({"kind": kind, "path": str(DATA / f"{kind}.tif"),
                                  "year": product_year})
    return load_fraction(spec, GRID, year)


@pytest.mark.parametrize("kind,year", [("gisa", 2016), ("wsf", 2019),
                                       ("dynamic_world", 2021), ("esri_lc", 2021)])
def test_categorical_products_give_the_west_half(kind, year):
    frac = load(kind, year, year)
    rows = slice(4, None)  # below ESRI's 30 m nodata strip
    assert np.all(frac[rows][WEST] == 1.0), kind
    assert np.all(frac[rows][EAST] == 0.0), kind


def test_esri_nodata_class_0_is_nan():
    frac = load("esri_lc", 2021)
    assert np.isnan(frac[:3]).all() and np.isfinite(frac[4:]).all()


def test_wsf_255_is_settlement_not_nodata():
    assert np.nanmean(load("wsf", 2019, 2019)) == pytest.approx(0.5, abs=0.05)


def test_gaia_year_of_change_codes():
    y2009 = load("gaia", 2009)  # code 10 = 2009: only the north-west quarter
    assert np.all(y2009[2:12][WEST] == 1) and np.all(y2009[18:28][WEST] == 0)
    assert np.all(y2009[:, 17:] == 0)
    y2017 = load("gaia", 2017)  # code 1 (2018) not yet
    assert np.array_equal(y2017, y2009)
    y2021 = load("gaia", 2021)  # after 2018: the 2018 state, the whole west half
    assert np.all(y2021[2:28][WEST] == 1) and np.all(y2021[:, 17:] == 0)


def test_gaia_encoding_against_lookup_table():
    codes = np.arange(0, 35)
    # 34 = 1985, 29 = 1990, 1 = 2018 (Earth Engine Tsinghua/FROM-GLC/GAIA/v10 table)
    assert gaia_isa(codes, 1985).tolist() == [v == 34 for v in codes]
    assert set(codes[gaia_isa(codes, 1990)]) == set(range(29, 35))
    assert set(codes[gaia_isa(codes, 2018)]) == set(range(1, 35))
    with pytest.raises(ProductFormatError, match="1985"):
        gaia_isa(codes, 1984)


def test_ghs_built_s_m2_per_cell_to_fraction():
    frac = load("ghs_built_s", 2021, 2020)  # 2500 m² of a 100 m x 100 m cell
    assert np.allclose(frac, 0.25)
    vals = np.array([[0, 5000, 10000, 65535]], np.uint16)
    out = isa_fraction(vals, "ghs_built_s", 2020, cell_area_m2=1e4)
    assert out[0, :3].tolist() == [0.0, 0.5, 1.0] and np.isnan(out[0, 3])


def test_values_outside_the_legend_are_nodata():
    out = isa_fraction(np.array([[6, 9, 200]], np.uint8), "dynamic_world", 2021)
    assert out[0, 0] == 1 and np.isnan(out[0, 1:]).all()


def test_bad_specs_fail_with_one_line():
    with pytest.raises(ProductFormatError, match="unknown product kind 'gisa30'"):
        ProductSpec.from_dict({"kind": "gisa30", "path": "x.tif"})
    with pytest.raises(ProductFormatError, match="missing"):
        ProductSpec.from_dict({"kind": "wsf"})
    with pytest.raises(ProductFormatError, match="2019-2019, not 2021"):
        load("wsf", 2021)
