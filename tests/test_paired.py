"""jointseg.model.paired: pooled scores and the paired two-level bootstrap."""

import numpy as np
import pytest

from jointseg.model.paired import f1_stat, paired_bootstrap, pooled, recall_stat


def _counts(rng: np.random.Generator, f1_shift: float, noise: float,
            shape: tuple[int, int] = (3, 6)) -> np.ndarray:
    """(seeds, regions, 3) counts with 1000 true pixels per region; fn falls with
    ``f1_shift``, seed/region noise of sd ``noise`` (pixels)."""
    fn = np.clip(400 - 1000 * f1_shift + rng.normal(0, noise, shape), 0, 1000)
    tp = 1000 - fn
    fp = np.full(shape, 200.0)
    return np.stack([tp, fp, fn], axis=-1)


def test_f1_and_recall_of_summed_counts():
    assert f1_stat(np.array([8.0, 2.0, 2.0])) == pytest.approx(0.8)
    assert f1_stat(np.array([0.0, 0.0, 0.0])) == 0.0
    assert recall_stat(np.array([3.0, 4.0])) == pytest.approx(0.75)
    assert np.isnan(recall_stat(np.array([0.0, 0.0])))
    c = np.array([[[8, 2, 2], [0, 0, 4]]], dtype=float)  # one seed, two regions
    assert pooled(c, f1_stat) == pytest.approx(16 / (16 + 2 + 6))
    assert pooled(c, f1_stat, [0]) == pytest.approx(0.8)


def test_identical_models_give_a_zero_interval():
    a = _counts(np.random.default_rng(0), 0.0, 50)
    r = paired_bootstrap(a, a.copy())
    assert (r.delta, r.ci_low, r.ci_high) == (0.0, 0.0, 0.0)


def test_a_clear_gain_has_an_interval_above_zero_and_noise_covers_zero():
    rng = np.random.default_rng(1)
    base = _counts(rng, 0.0, 30)
    better = base.copy()
    better[..., 0] += 100
    better[..., 2] -= 100
    r = paired_bootstrap(better, base)
    assert r.delta > 0 and r.ci_low > 0 and r.ci_low <= r.delta <= r.ci_high
    noisy = _counts(np.random.default_rng(2), 0.0, 150)
    r = paired_bootstrap(noisy, base)
    assert r.ci_low < 0 < r.ci_high


def test_stratum_uses_only_its_regions():
    rng = np.random.default_rng(3)
    base = _counts(rng, 0.0, 0)
    better = base.copy()
    better[:, :2, 0] += 200  # gain only in regions 0 and 1
    better[:, :2, 2] -= 200
    assert paired_bootstrap(better, base, regions=[2, 3, 4, 5]).delta == 0.0
    assert paired_bootstrap(better, base, regions=[0, 1]).ci_low > 0


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap(np.zeros((3, 6, 3)), np.zeros((2, 6, 3)))
