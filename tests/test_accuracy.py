"""Metrics on hand-computed matrices and the Olofsson et al. (2014) worked example.

The published example (Olofsson et al. 2014, Sect. 5, Tables 8-9 and p. 54): a
four-class change map of 10,000,000 Landsat pixels (30 m = 0.09 ha) and a stratified
sample of 640 units. Rows below are **map** classes (strata), columns reference:

    deforestation      66   0    5    4     (n = 75)
    forest gain         0  55    8   12     (n = 75)
    stable forest       1   0  153   11     (n = 165)
    stable non-forest   2   1    9  313     (n = 325)

(The reference-by-row transpose [[66,0,1,2],[0,55,0,1],[5,8,153,9],[4,12,11,313]] is
how the counts are often quoted.) Published estimates, 95 % CI half-widths:
user's accuracy 0.88 +/- 0.07, 0.73 +/- 0.10, 0.93 +/- 0.04, 0.96 +/- 0.02;
producer's accuracy 0.75 +/- 0.21, 0.85, 0.93 +/- 0.03, 0.96; overall accuracy
0.95 +/- 0.02; areas 21,158 +/- 6,158 ha, 11,686 +/- 3,756 ha, 285,770 +/- 15,510 ha,
581,386 +/- 16,282 ha. The printed producer's-accuracy half-widths of forest gain
(0.23) and stable non-forest (0.01) disagree with the paper's own eq. 7 (0.254 and
0.018; also found by others reproducing the example), so those two are pinned to
eq. 7 rather than to the print. Sources checked: the values above as transcribed from
the paper in a public reproduction note (NewGraphEnvironment drift, issue #81 findings)
and the R package mapaccuracy's ``olofsson()`` example built on the same table.
"""

from __future__ import annotations

import numpy as np
import pytest

from jointseg.assess.estimators import (
    estimates_by_group,
    olofsson_estimates,
    stratified_estimates,
)
from jointseg.assess.matrices import (
    confusion_matrix,
    f1_scores,
    iou_scores,
    overall_accuracy,
    producers_accuracy,
    users_accuracy,
)
from jointseg.metrics import BinaryCounts, binary_counts, binary_metrics, cohen_kappa

COUNTS_MAP_ROWS = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
MAP_PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]
HA_PER_PIXEL = 0.09


@pytest.fixture(scope="module")
def olofsson():
    """The paper's numbers: its plain (Wald) variance."""
    return olofsson_estimates(COUNTS_MAP_ROWS, MAP_PIXELS, area_scale=HA_PER_PIXEL,
                              area_unit="ha", interval="wald")


def test_olofsson_2014_users_and_overall_accuracy(olofsson):
    assert np.round(olofsson.ua, 2).tolist() == [0.88, 0.73, 0.93, 0.96]
    assert np.round(1.96 * olofsson.ua_se, 2).tolist() == [0.07, 0.10, 0.04, 0.02]
    assert round(olofsson.oa, 2) == 0.95
    assert round(1.96 * olofsson.oa_se, 2) == 0.02
    assert olofsson.oa == pytest.approx(0.9465, abs=5e-5)  # 0.947 +/- 0.018 unrounded
    assert 1.96 * olofsson.oa_se == pytest.approx(0.0185, abs=5e-5)


def test_olofsson_2014_producers_accuracy(olofsson):
    assert np.round(olofsson.pa, 2).tolist() == [0.75, 0.85, 0.93, 0.96]
    half = 1.96 * olofsson.pa_se
    assert round(half[0], 2) == 0.21 and round(half[2], 2) == 0.03
    # printed 0.23 and 0.01 contradict eq. 7; eq. 7 gives these:
    assert half[1] == pytest.approx(0.254, abs=5e-4)
    assert half[3] == pytest.approx(0.018, abs=5e-4)


def test_olofsson_2014_error_adjusted_areas(olofsson):
    assert np.round(olofsson.area).tolist() == [21_158, 11_686, 285_770, 581_386]
    assert np.round(1.96 * olofsson.area_se).tolist() == [6_158, 3_756, 15_510, 16_282]
    assert olofsson.area_prop[0] == pytest.approx(0.0235, abs=5e-5)
    assert olofsson.map_area.tolist() == pytest.approx([18_000, 13_500, 288_000, 580_500])
    # error matrix in area proportions: p_ij = W_i n_ij / n_i.
    assert olofsson.error_matrix[0, 0] == pytest.approx(0.02 * 66 / 75)
    assert olofsson.error_matrix[3, 0] == pytest.approx(0.645 * 2 / 325)
    assert olofsson.error_matrix.sum() == pytest.approx(1.0)


def test_unweighted_accuracy_is_not_the_estimate():
    """Dropping the stratum weights gives a different (wrong) answer."""
    naive_pa = producers_accuracy(COUNTS_MAP_ROWS)
    assert round(naive_pa[0], 2) == round(66 / 69, 2) == 0.96  # not 0.75


@pytest.mark.parametrize("interval", ["wald", "agresti-coull"])
def test_per_unit_estimator_equals_closed_form(interval):
    """Stehman's per-unit form with strata = map classes reproduces the closed form,
    with the paper's variance and with the per-stratum Agresti-Coull pseudo-units."""
    olofsson = olofsson_estimates(COUNTS_MAP_ROWS, MAP_PIXELS, area_scale=HA_PER_PIXEL,
                                  area_unit="ha", interval=interval)
    strata, mapped, ref = [], [], []
    for i in range(4):
        for j in range(4):
            strata += [f"s{i}"] * COUNTS_MAP_ROWS[i, j]
            mapped += [i] * COUNTS_MAP_ROWS[i, j]
            ref += [j] * COUNTS_MAP_ROWS[i, j]
    est = stratified_estimates(strata, mapped, ref, {f"s{i}": n for i, n in
                                                     enumerate(MAP_PIXELS)},
                               [0, 1, 2, 3], area_scale=HA_PER_PIXEL, area_unit="ha",
                               interval=interval)
    for name in ("ua", "ua_se", "pa", "pa_se", "area_prop", "area_prop_se", "area", "area_se"):
        np.testing.assert_allclose(getattr(est, name), getattr(olofsson, name), rtol=1e-10)
    assert est.oa == pytest.approx(olofsson.oa) and est.oa_se == pytest.approx(olofsson.oa_se)
    np.testing.assert_allclose(est.error_matrix, olofsson.error_matrix, atol=1e-15)


def test_fpc_shrinks_variance_only_slightly():
    strata = ["a"] * 4 + ["b"] * 4
    mapped = [1] * 4 + [0] * 4
    ref = [1, 1, 1, 0, 0, 0, 0, 1]
    sizes = {"a": 10, "b": 30}
    no = stratified_estimates(strata, mapped, ref, sizes, [0, 1], interval="wald")
    yes = stratified_estimates(strata, mapped, ref, sizes, [0, 1], fpc=True, interval="wald")
    assert no.oa == yes.oa == pytest.approx((10 * 0.75 + 30 * 0.75) / 40)
    # stratum a: s2 = 0.25, f = 0.4; b: s2 = 0.25 * 4/3, f = 4/30 ... by hand:
    s2 = 0.75 * 0.25 * 4 / 3
    v_no = (10**2 * s2 / 4 + 30**2 * s2 / 4) / 40**2
    v_yes = (10**2 * 0.6 * s2 / 4 + 30**2 * (1 - 4 / 30) * s2 / 4) / 40**2
    assert no.oa_se**2 == pytest.approx(v_no)
    assert yes.oa_se**2 == pytest.approx(v_yes)


def test_domain_estimates_split_by_zone():
    """Strata = class x zone; per-zone domains equal separate per-zone estimates."""
    rng = np.random.default_rng(0)
    strata, mapped, ref, zone = [], [], [], []
    sizes = {"1|a": 500, "0|a": 4500, "1|b": 100, "0|b": 9900}
    for label, n, p_isa in (("1|a", 40, 0.9), ("0|a", 60, 0.05), ("1|b", 30, 0.7),
                            ("0|b", 70, 0.02)):
        strata += [label] * n
        mapped += [int(label[0])] * n
        ref += (rng.random(n) < p_isa).astype(int).tolist()
        zone += [label[2]] * n
    est = estimates_by_group(strata, mapped, ref, zone, sizes, [0, 1])
    assert set(est) == {"all", "a", "b"}
    for z in ("a", "b"):
        keep = [i for i, v in enumerate(zone) if v == z]
        alone = stratified_estimates(
            [strata[i] for i in keep], [mapped[i] for i in keep], [ref[i] for i in keep],
            {k: v for k, v in sizes.items() if k.endswith(z)}, [0, 1])
        np.testing.assert_allclose(est[z].ua, alone.ua)
        np.testing.assert_allclose(est[z].pa, alone.pa)
        np.testing.assert_allclose(est[z].area, alone.area)
        np.testing.assert_allclose(est[z].area_se, alone.area_se)
        assert est[z].oa == pytest.approx(alone.oa)
    # areas of the zones add up to the whole
    np.testing.assert_allclose(est["a"].area + est["b"].area, est["all"].area)
    assert est["all"].area.sum() == pytest.approx(15_000)


def test_stratum_without_samples_is_an_error():
    with pytest.raises(ValueError, match=r"\['c'\] have positive size but no sample units"):
        stratified_estimates(["a", "b"], [0, 1], [0, 1], {"a": 5, "b": 5, "c": 3}, [0, 1])
    with pytest.raises(ValueError, match=r"map classes \[1\] have mapped area"):
        olofsson_estimates([[3, 1], [0, 0]], [10, 5])


# ------------------------------------------------------------------ pixel metrics


def test_binary_counts_and_metrics_by_hand():
    m = np.array([[1, 1, 0, 0, 255], [1, 0, 0, 1, 1]], np.uint8)
    r = np.array([[1, 0, 0, 1, 1], [1, 0, 0, 255, 0]], np.uint8)
    c = binary_counts(m, r)
    # valid: (1,1) (1,0) (0,0) (0,1) | (1,1) (0,0) (0,0) (1,0)
    assert c == BinaryCounts(tn=3, fp=2, fn=1, tp=2)
    assert c.confusion() == [[3, 2], [1, 2]]
    s = binary_metrics(c)
    assert s["precision"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(4 / 7)
    assert s["oa"] == pytest.approx(5 / 8)
    assert s["iou"] == pytest.approx(2 / 5)
    po, pe = 5 / 8, (4 / 8) * (3 / 8) + (4 / 8) * (5 / 8)
    assert s["kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert s["n_pixels"] == 8


def test_binary_counts_rejects_other_values():
    with pytest.raises(ValueError, match=r"map holds values \[2\]"):
        binary_counts(np.array([0, 2], np.uint8), np.array([0, 1], np.uint8))


def test_metrics_undefined_without_positives_are_nan():
    s = binary_metrics(BinaryCounts(tn=10, fp=0, fn=0, tp=0))
    assert np.isnan(s["precision"]) and np.isnan(s["recall"]) and s["oa"] == 1.0


def test_multiclass_matrix_helpers():
    m = np.array([0, 0, 1, 1, 2, 2, 2, 9])
    r = np.array([0, 1, 1, 1, 2, 0, 2, 2])
    n = confusion_matrix(m, r, [0, 1, 2])
    assert n.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert overall_accuracy(n) == pytest.approx(5 / 7)
    np.testing.assert_allclose(users_accuracy(n), [1 / 2, 1, 2 / 3])
    np.testing.assert_allclose(producers_accuracy(n), [1 / 2, 2 / 3, 1])
    np.testing.assert_allclose(f1_scores(n), [0.5, 0.8, 0.8])
    np.testing.assert_allclose(iou_scores(n), [1 / 3, 2 / 3, 2 / 3])
    pe = (2 * 2 + 2 * 3 + 3 * 2) / 49
    assert cohen_kappa(n) == pytest.approx((5 / 7 - pe) / (1 - pe))
