"""Co-registration: phase correlation finds a known displacement, with its sign."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from jointseg.trainingdata.coregister import estimate_shift


def _texture(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), 1.5)


@pytest.mark.parametrize("true", [(4.0, -3.0), (-12.5, 7.5), (0.0, 0.0)])
def test_known_shift(true: tuple[float, float]) -> None:
    """A 10 m scene whose HR shows every feature at (x + dx, y + dy)."""
    ground = _texture((120, 120), 1)
    s2 = ground[None, 10:-10, 10:-10]
    dx, dy = true

    def warp(shift: tuple[float, float]) -> np.ndarray:
        # HR content displaced by (dx, dy) m; reading with shift s leaves (dx - sx, dy - sy)
        rx, ry = dx - shift[0], dy - shift[1]
        moved = ndimage.shift(ground, (-ry / 10.0, rx / 10.0), order=3, mode="nearest")
        return moved[None, 10:-10, 10:-10] * 3.0 + 7.0  # other gain and offset

    est = estimate_shift(warp, s2, np.ones(s2.shape[1:], bool), 10.0)
    assert est.shift_m == pytest.approx(true, abs=1.0)
    assert est.correlation > 0.95


def test_unrelated_images_correlate_weakly() -> None:
    s2 = _texture((100, 100), 2)[None]
    est = estimate_shift(lambda s: _texture((100, 100), 3)[None], s2,
                         np.ones((100, 100), bool), 10.0)
    assert est.correlation < 0.5
