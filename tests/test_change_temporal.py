"""Temporal methods of jointseg.assess.change.temporal on hand-made pixel series."""

from __future__ import annotations

import numpy as np
import pytest

from jointseg.assess.change.temporal import (
    METHODS,
    TemporalSettings,
    evidence,
    fit_block,
    monotone_fit,
)
from jointseg.products import NODATA_U8, encode_prob


def _series(*cols):
    """(T, n) arrays -> {year: row} of uint8 maps."""
    a = np.array(cols, np.uint8).T
    return {2017 + 2 * i: a[i] for i in range(a.shape[0])}


def test_monotone_fit_pools_the_epochs():
    s = np.array([[-1, -1, 2, 2], [-1, 2, -1, 2], [2, 2, -1, 2], [-2, -2, -2, 1.5]],
                 np.float32).T
    k = monotone_fit(list(s), penalty=2.0)
    # [-1,-1,2,2]: change from year 2 (4 - 2 = 2) ties "ISA throughout" (2): the later wins
    # [-1,2,-1,2]: ISA throughout (2) beats a change from year 1 (3 - 2 = 1)
    # [2,2,-1,2]: one dip does not undo ISA; [-2,-2,-2,1.5]: 1.5 < penalty: no change
    assert k.tolist() == [2, 0, 0, 4]
    # without the hysteresis the noisy epochs decide
    assert monotone_fit(list(s), penalty=0.0).tolist() == [2, 1, 0, 3]


def test_evidence_from_probabilities_and_cut():
    isa = np.array([1, 0, 1, NODATA_U8], np.uint8)
    p = encode_prob(np.array([0.9, 0.2, 0.5, 0.5]), np.array([True, True, True, False]))
    s = evidence(isa, p, cut=0.5, cap=4.0)
    assert s[0] == pytest.approx(np.log(9), abs=0.02) and s[1] < 0 and s[3] == 0.0
    assert abs(s[2]) < 0.01
    # no probabilities: +-cap/2 from the map
    assert evidence(isa, None, 0.5, 4.0).tolist() == [2.0, -2.0, 2.0, 0.0]


def test_fit_block_methods():
    raws = _series([0, 1, 0, 1], [0, 0, 1, 1], [1, 1, 0, 1], [0, 0, 0, 1])
    p_isa = {y: encode_prob(np.where(m == 1, 0.75, 0.3), m != NODATA_U8)
             for y, m in raws.items()}
    cuts = dict.fromkeys(raws, 0.5)
    ind = fit_block(raws, p_isa, cuts, TemporalSettings("independent"))
    assert all((ind[y] == raws[y]).all() for y in raws)
    mono = fit_block(raws, p_isa, cuts, TemporalSettings("monotone", penalty=1.0))
    got = np.stack([mono[y] for y in sorted(mono)]).T
    # s = +1.10 (ISA) / -0.85: flicker 0101 -> ISA throughout (0.50 > 1.35 - 1); 0011 kept;
    # 1101 -> ISA throughout; 0001: 1.10 - 1 > 0 -> new in the last year
    assert got.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]]
    for row in got:  # never reverts
        assert (np.diff(row.astype(int)) >= 0).all()
    carry = fit_block(raws, p_isa, cuts, TemporalSettings("carry", confident=0.8))
    assert np.stack([carry[y] for y in sorted(carry)]).T[0].tolist() == [0, 1, 1, 1]


def test_nodata_stays_nodata_and_settings_are_checked():
    raws = _series([0, NODATA_U8, 1, 1])
    out = fit_block(raws, {}, {}, TemporalSettings("monotone"))
    assert [int(out[y][0]) for y in sorted(out)] == [0, NODATA_U8, 1, 1]
    assert set(METHODS) == {"independent", "carry", "monotone"}
    with pytest.raises(ValueError, match="change method 'gaia'"):
        TemporalSettings("gaia")
    with pytest.raises(ValueError, match="confident"):
        TemporalSettings("carry", confident=0.3)
