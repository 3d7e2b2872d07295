"""The measurement noise of a tilt series, estimated from the data, in the units of the input file.

Model: y = clean + sigma n, n white standard Gaussian, sigma one number for the whole series.
Projections of a specimen vary smoothly along the detector and from one tilt to the next, so a
high-pass filter that annihilates smooth signals leaves (mostly) noise. We use the separable second
difference d2 (x) d2 over (views, detector), d2 = [1, -2, 1], normalised to unit norm:

    h = (d2 (x) d2) / 6,   (h * y)[v, r, k] = sum_ij h_ij y[v + i, r, k + j]   (valid part only)

For white noise h * (sigma n) has standard deviation sigma exactly (||h|| = 1); signal leaks in only
where the projections curve in both directions at once. The remaining signal is sparse (edges),
so a robust scale is taken: sigma_hat = 1.4826 median |h * y| (the median absolute deviation of a
zero-mean Gaussian is 0.6745 sigma; Donoho and Johnstone's wavelet estimator uses the same idea).

Accuracy (four camera crops and a Shepp-Logan slice projected by scikit-image's radon, 61 views over
+-60 degrees, noise std a fraction f of the projections' std, mean of 3 draws; tests/solvers/test_noise.py):
f = 0.3 and 0.1 within 1 %; f = 0.03 about +5 % at 129 px and +12 % at 65 px; f = 0.01 about +25 %
(129 px) to +66 % (65 px): below a few percent the projections' own curvature leaks in and the
estimate is high. Detector blur or correlated noise makes it low: give the noise with --noise where
it is known.

Memory and time are bounded: at most `max_rows` rows (slices), evenly spaced, are read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: 1 / Phi^-1(3/4): the median absolute value of a standard normal is 0.6745
MAD_TO_STD = 1.482602218505602


@dataclass(frozen=True)
class NoiseEstimate:
    """sigma: the noise std in the input's units; samples: how many filtered values the median used."""

    sigma: float
    samples: int
    method: str = "MAD of the second differences over views x detector"


def second_difference_2d(y: np.ndarray) -> np.ndarray:
    """(d2 (x) d2) / 6 over the first (views) and last (detector) axes of y, valid part only: shape
    (V - 2, ..., K - 2). Unit norm: white noise keeps its standard deviation."""
    y = np.asarray(y, dtype=np.float64)
    along_views = y[:-2] - 2 * y[1:-1] + y[2:]
    return (along_views[..., :-2] - 2 * along_views[..., 1:-1] + along_views[..., 2:]) / 6.0


def estimate_noise(series, *, max_rows: int = 32) -> NoiseEstimate:
    """The noise std of a tilt series (n_views, rows, cols), in its own units (see the module docstring).
    Needs at least 3 views and 3 detector columns."""
    series = np.asarray(series) if not hasattr(series, "shape") else series
    if series.ndim != 3:
        raise ValueError(f"estimate_noise: expected a tilt series (n_views, rows, cols), got shape {series.shape}")
    n_views, rows, cols = series.shape
    if n_views < 3 or cols < 3:
        raise ValueError(
            f"estimate_noise: need at least 3 views and 3 detector columns to estimate the noise, got "
            f"{n_views} views x {cols} columns; give the noise std with --noise"
        )
    picked = np.unique(np.linspace(0, rows - 1, min(rows, max_rows)).round().astype(int))
    filtered = second_difference_2d(np.asarray(series[:, picked, :]))
    sigma = MAD_TO_STD * float(np.median(np.abs(filtered)))
    return NoiseEstimate(sigma, filtered.size)
