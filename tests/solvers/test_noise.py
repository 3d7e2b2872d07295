"""The noise estimator: the std of white noise added to tilt series made outside the project, recovered
in the input's units (second differences over views x detector, MAD)."""

import numpy as np
import pytest

from solvers.app.noise import estimate_noise, second_difference_2d


def test_the_filter_has_unit_norm_and_kills_bilinear_signals():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((200, 3, 400))
    assert second_difference_2d(noise).std() == pytest.approx(1.0, rel=0.01)
    v, k = np.meshgrid(np.arange(20.0), np.arange(30.0), indexing="ij")
    smooth = (3 + 2 * v + 5 * k + v * k + v**2 + k**2)[:, None, :]  # killed: d2 in one direction suffices
    np.testing.assert_allclose(second_difference_2d(smooth), 0, atol=1e-9)


def test_pure_noise_is_measured_exactly():
    rng = np.random.default_rng(1)
    assert estimate_noise(3.0 * rng.standard_normal((61, 16, 128))).sigma == pytest.approx(3.0, rel=0.02)


@pytest.fixture(scope="module")
def projections():
    """Camera crops and a Shepp-Logan slice in the detector's disc, projected by scikit-image's radon
    over 61 views in +-60 degrees: (views, rows, cols) in arbitrary units."""
    from skimage import data, transform
    from skimage.transform import radon

    camera = data.camera().astype(np.float64) / 255
    size = 65
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 <= 31**2
    slices = [transform.resize(camera[i : i + 256, j : j + 256], (size, size), anti_aliasing=True)
              for i in (0, 256) for j in (0, 256)]
    slices.append(transform.resize(data.shepp_logan_phantom(), (size, size)))
    angles = np.linspace(-60, 60, 61)
    return 40 * np.stack([radon(s * disc, angles, circle=True).T for s in slices]).transpose(1, 0, 2)


@pytest.mark.parametrize("fraction, tolerance", [(0.3, 0.03), (0.1, 0.03), (0.03, 0.15)])
def test_known_noise_on_projections(projections, fraction, tolerance):
    sigma = fraction * projections.std()
    noisy = projections + sigma * np.random.default_rng(2).standard_normal(projections.shape)
    assert estimate_noise(noisy).sigma == pytest.approx(sigma, rel=tolerance)


def test_too_small_a_series_asks_for_the_noise():
    with pytest.raises(ValueError, match="give the noise std with --noise"):
        estimate_noise(np.zeros((2, 4, 10)))
