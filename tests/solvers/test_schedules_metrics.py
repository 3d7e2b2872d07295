"""Schedules are the stated formulas; metrics agree with independent references."""

import math

import numpy as np
import pytest
import torch

from solvers import metrics
from solvers.schedules import VP, Constant, DDGMUnconditionalSchedule, Geometric, Karras, alpha_for_ratio, append_zero


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_geometric_schedule():
    s = Geometric(3.0, 0.03, 150).sigmas()
    assert s.shape == (150,) and s[0] == pytest.approx(3.0) and s[-1] == pytest.approx(0.03)
    ratios = s[1:] / s[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, Geometric(3.0, 0.03, 150).ratio))
    with pytest.raises(ValueError, match="sigma_last <= sigma_first"):
        Geometric(0.03, 3.0, 10)
    with pytest.raises(ValueError, match="positive int"):
        Geometric(3.0, 0.03, -5)


def test_ddgm_eq2_schedule_and_alpha():
    s = DDGMUnconditionalSchedule()
    sig = s.sigmas()
    assert sig[0] == 30.0
    r2 = (1 - 0.183) ** 2 + 0.183 * 0.5
    torch.testing.assert_close(sig[1:] / sig[:-1], torch.full((49,), math.sqrt(r2), dtype=torch.float64))
    # alpha_for_ratio inverts the variance recursion
    assert alpha_for_ratio(math.sqrt(r2), 0.5) == pytest.approx(0.183)
    fitted = DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, 1000)
    assert fitted.sigmas()[-1] == pytest.approx(0.03, rel=1e-9)
    with pytest.raises(ValueError, match="do not lower"):
        DDGMUnconditionalSchedule(alpha=0.5, beta=3.0)
    # one Eq. 2 step lowers sigma by sqrt(beta - beta^2 / 4) = 0.661 at most (beta = 0.5): 3 -> 0.03 needs 13 steps
    with pytest.raises(ValueError, match="use at least 13 steps"):
        DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, 5)
    assert DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, 13).sigmas()[-1] == pytest.approx(0.03)


def test_karras_vp_constant():
    k = Karras(0.002, 80.0, 7.0, 10).sigmas()
    assert k[0] == pytest.approx(80.0) and k[-1] == pytest.approx(0.002) and bool((k[1:] < k[:-1]).all())
    vp = VP.linear(1e-4, 0.02, 1000)
    ab = vp.alpha_bar()
    sig = vp.sigmas()
    # sigma^2 = (1 - alpha_bar) / alpha_bar, listed from t = T down
    torch.testing.assert_close(sig.flip(0) ** 2, (1 - ab) / ab)
    assert sig[-1] == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)), rel=1e-6)
    torch.testing.assert_close(Constant(0.0, 4).sigmas(), torch.zeros(4, dtype=torch.float64))
    assert append_zero(torch.ones(3)).tolist() == [1, 1, 1, 0]


def test_mse_psnr():
    x_true = torch.zeros(2, 1, 4, 4)
    x_true[:, :, 0, 0] = 1.0
    x = x_true + 0.1
    torch.testing.assert_close(metrics.mse(x, x_true), torch.full((2,), 0.01))
    torch.testing.assert_close(metrics.psnr(x, x_true), torch.full((2,), 20.0))


def test_ssim_matches_torchmetrics_and_skimage():
    torchmetrics = pytest.importorskip("torchmetrics")
    skimage_metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x_true = torch.rand(3, 1, 40, 36, generator=g, dtype=torch.float64)
    x = x_true + 0.1 * torch.randn(3, 1, 40, 36, generator=g, dtype=torch.float64)
    ours = metrics.ssim(x, x_true, data_range=1.0)
    theirs = torchmetrics.functional.image.structural_similarity_index_measure(
        x, x_true, data_range=1.0, reduction="none"
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    # scikit-image with the Gaussian window of Wang et al. (it weights the whole image, border included
    # via its own padding, so agreement is close but not exact)
    sk = [
        skimage_metrics.structural_similarity(
            x[i, 0].numpy(),
            x_true[i, 0].numpy(),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(ours.numpy(), sk, atol=0.02)
    assert metrics.ssim(x_true, x_true).tolist() == pytest.approx([1.0] * 3)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ValueError, match=r"at least 11 x 11 pixels"):
        metrics.ssim(torch.rand(1, 1, 8, 8, generator=gen(100)), torch.rand(1, 1, 8, 8, generator=gen(101)))
