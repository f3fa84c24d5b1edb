"""The estimator against independent sources: Stehman's (2014) worked example, the
``lulc-validation`` package (an implementation of Stehman 2014, tests only), and the
interval's behaviour when a stratum shows no error.

Stehman (2014) example: ``tests/data/stehman2014/`` (see its README). lulc-validation
applies the finite-population correction (1 - n_h / N_h) and the plain variance, so it
is compared with ``fpc=True, interval="wald"``; it reports a class that has no sample
units as accuracy 0 where this module gives NaN (none here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jointseg.assess.estimators import olofsson_estimates, stratified_estimates
from jointseg.assess.variance import INTERVALS, pseudo_units

DATA = Path(__file__).parent / "data" / "stehman2014" / "samples.csv"
SIZES = {1: 40_000, 2: 30_000, 3: 20_000, 4: 10_000}
CLASSES = [1, 2, 3, 4]


@pytest.fixture(scope="module")
def units() -> pd.DataFrame:
    return pd.read_csv(DATA)


def _est(units: pd.DataFrame, **kw: object):
    return stratified_estimates(units["stratum"], units["map_class"], units["ref_class"],
                                SIZES, CLASSES, **kw)


def test_stehman_2014_published_example(units):
    est = _est(units, interval="wald")
    assert round(est.oa, 2) == 0.63
    assert round(est.ua[1], 3) == 0.574
    assert round(est.pa[1], 3) == 0.794
    # the area proportions are the strata-weighted reference shares and sum to 1
    assert est.area_prop.sum() == pytest.approx(1.0)
    # class A: 6 / 10, 3 / 10, 1 / 10 and 0 / 10 of the strata's units (published 0.35)
    assert est.area_prop[0] == pytest.approx((0.6 * 40_000 + 0.3 * 30_000 + 0.1 * 20_000)
                                             / 100_000)
    assert round(est.area_prop[0], 2) == 0.35


def test_lulc_validation_package_agrees(units):
    lv = pytest.importorskip("lulc_validation.lulc_val")
    ref = lv.StratVal(strata_list=list(SIZES), class_list=CLASSES,
                      n_strata=list(SIZES.values()), samples_df=units.copy(),
                      strata_col="stratum", ref_class="ref_class", map_class="map_class")
    est = _est(units, fpc=True, interval="wald")
    assert est.oa == pytest.approx(ref.accuracy(), rel=1e-12)
    assert est.oa_se == pytest.approx(ref.accuracy_se(), rel=1e-12)
    ua, ua_se = ref.users_accuracy(), ref.users_accuracy_se()
    pa, pa_se = ref.producers_accuracy(), ref.producers_accuracy_se()
    for k, c in enumerate(CLASSES):
        assert est.ua[k] == pytest.approx(ua[str(c)], rel=1e-12)
        assert est.ua_se[k] == pytest.approx(ua_se[str(c)], rel=1e-12)
        assert est.pa[k] == pytest.approx(pa[str(c)], rel=1e-12)
        assert est.pa_se[k] == pytest.approx(pa_se[str(c)], rel=1e-12)


def test_intervals_are_named():
    assert set(INTERVALS) == {"wald", "agresti-coull"}
    assert pseudo_units("wald", 1.96) == 0.0
    assert pseudo_units("agresti-coull", 1.96) == pytest.approx(1.96**2)
    with pytest.raises(ValueError, match="interval 'exact'"):
        pseudo_units("exact", 1.96)


def test_stratum_without_error_still_has_variance():
    """Stratum 0 shows no omission: Wald gives it 0 variance, Agresti-Coull does not."""
    counts = np.array([[500, 0], [20, 80]])  # rows map 0 / 1, cols reference 0 / 1
    area = [9_000, 1_000]
    wald = olofsson_estimates(counts, area, interval="wald")
    ac = olofsson_estimates(counts, area, interval="agresti-coull")
    np.testing.assert_allclose(ac.area, wald.area)  # the estimates do not change
    assert ac.ua[0] == wald.ua[0] == 1.0 and wald.ua_se[0] == 0.0
    # stratum 0: p~ = (0 + z²/2) / (500 + z²), V(U_0) = p~ (1 - p~) / 499
    pt = 1.96**2 / 2 / (500 + 1.96**2)
    assert ac.ua_se[0] == pytest.approx(np.sqrt(pt * (1 - pt) / 499))
    # the ISA area's variance now includes stratum 0's possible omission
    p1 = (80 + 1.96**2 / 2) / (100 + 1.96**2)
    var = 9_000**2 * pt * (1 - pt) / 499 + 1_000**2 * p1 * (1 - p1) / 99
    assert ac.area_se[1] == pytest.approx(np.sqrt(var))
    assert wald.area_se[1] == pytest.approx(1_000 * np.sqrt(0.8 * 0.2 / 99))


def test_domain_pseudo_units_copy_domain_units_only():
    """A domain absent from a stratum's sample gets no pseudo-variance there."""
    strata = ["a"] * 6 + ["b"] * 6
    mapped = [1] * 6 + [0] * 6
    ref = [1] * 6 + [0] * 6
    dom = np.array([True] * 3 + [False] * 3 + [False] * 6)
    est = stratified_estimates(strata, mapped, ref, {"a": 60, "b": 600}, [0, 1], domain=dom)
    # only stratum a holds domain units; its three are all ISA
    assert est.area[1] == pytest.approx(30.0) and est.area[0] == 0.0
    m, kap = 3, 1.96**2
    y = np.r_[np.ones(3), np.zeros(3), np.ones(m), np.zeros(m)]  # real, then pseudo r=1, r=0
    w = np.r_[np.ones(6), np.full(2 * m, kap / (2 * m))]
    mu = np.average(y, weights=w)
    s2 = np.sum(w * (y - mu) ** 2) / w.sum() * 6 / 5
    assert est.area_se[1] ** 2 == pytest.approx(60**2 * s2 / 6)
    wald = stratified_estimates(strata, mapped, ref, {"a": 60, "b": 600}, [0, 1],
                                domain=dom, interval="wald")
    assert wald.area_se[0] == 0.0 and est.area_se[0] > 0.0
