"""Random fields for the simulator: smooth Gaussian noise, fractal (1/f) noise and a
per-id hash.

The noise fields are float32, zero mean, unit standard deviation, and deterministic
for a given ``numpy.random.Generator`` state; :func:`hash01` needs no generator.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special


def smooth_noise(
    shape: tuple[int, int], scale_px: float, rng: np.random.Generator
) -> np.ndarray:
    """Gaussian-filtered white noise with correlation length ``scale_px`` pixels.

    Built on a coarse grid (a few samples per correlation length) and upsampled
    bilinearly, so the cost does not grow with ``scale_px``.

    Returns:
        float32 array of ``shape``, mean 0, std 1.
    """
    step = max(1.0, scale_px / 3.0)
    coarse = (int(np.ceil(shape[0] / step)) + 3, int(np.ceil(shape[1] / step)) + 3)
    white = rng.standard_normal(coarse).astype(np.float32)
    field = ndimage.gaussian_filter(white, sigma=scale_px / step, mode="wrap")
    if step > 1.0:
        rows = np.arange(shape[0], dtype=np.float32) / step + 1.0
        cols = np.arange(shape[1], dtype=np.float32) / step + 1.0
        field = _bilinear(field, rows, cols)
    else:
        field = field[: shape[0], : shape[1]]
    return _standardise(field)


def fractal_noise(
    shape: tuple[int, int], beta: float, rng: np.random.Generator, min_scale_px: float = 1.0
) -> np.ndarray:
    """Spectral-synthesis noise with power spectrum ~ f^-beta (clouds: beta ~ 3).

    Returns:
        float32 array of ``shape``, mean 0, std 1.
    """
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0) * np.exp(-((f * min_scale_px) ** 2))
    amp[0, 0] = 0.0
    spec = (
        rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)
    ) * amp
    field = np.fft.irfft2(spec, s=shape).astype(np.float32)
    return _standardise(field)


def to_uniform(field: np.ndarray) -> np.ndarray:
    """Map a standard-normal field to ~uniform [0, 1] through the normal CDF (float32)."""
    return special.ndtr(field).astype(np.float32)


def hash01(ids: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random float32 uniform [0, 1) per integer id (e.g. a parcel)."""
    x = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt * 7919 + 1))
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(32)
    return ((x >> np.uint64(40)).astype(np.float64) / float(1 << 24)).astype(np.float32)


def _standardise(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(dtype=np.float64)
    sd = float(a.std(dtype=np.float64)) or 1.0
    return (a / sd).astype(np.float32)


def _bilinear(field: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample ``field`` at the outer product of fractional ``rows`` x ``cols``."""
    r0 = np.floor(rows).astype(np.intp)
    c0 = np.floor(cols).astype(np.intp)
    wr = (rows - r0)[:, None]
    wc = (cols - c0)[None, :]
    top = field[r0][:, c0] * (1 - wc) + field[r0][:, c0 + 1] * wc
    bot = field[r0 + 1][:, c0] * (1 - wc) + field[r0 + 1][:, c0 + 1] * wc
    return (top * (1 - wr) + bot * wr).astype(np.float32)
