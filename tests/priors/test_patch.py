"""PaDIS patch prior: P = N is the whole-image prior, each pixel comes from the one patch holding it (for
every shift), positions reach the network, random shifts come from the generator, one batched network
call, differentiable, the Prior protocol views agree; patch DSM training runs."""

import itertools

import pytest
import torch

import linops
from priors.analytic import GaussianPrior
from priors.nets import UNet, patch_position_channels
from priors.network import Prediction
from priors.patch import PatchDSMLoss, PatchPrior
from priors.training import random_batches, train

f64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


def pointwise_gaussian(v, s, q):
    """Exact denoiser of independent pixels x0 ~ N(mu, lam) with mu, lam depending on the position."""
    u, w = q[:, :1], q[:, 1:2]
    mu, lam = 0.3 * u - 0.2 * w, 0.5 + 0.4 * u * w
    s2 = s.reshape(-1, 1, 1, 1) ** 2
    return mu + lam / (lam + s2) * (v - mu)


def image_coordinates(grid):
    """(1, 2, N1, N2): the canvas coordinates of the image pixels (shift-independent)."""
    (N1, N2), (M1, M2) = grid.image_size, grid.margins
    i = torch.arange(N1, dtype=f64)[:, None].expand(N1, N2)
    j = torch.arange(N2, dtype=f64)[None, :].expand(N1, N2)
    return torch.stack([2 * (M1 + i + 0.5) / (N1 + 2 * M1) - 1, 2 * (M2 + j + 0.5) / (N2 + 2 * M2) - 1])[None]


def patch_mean(v, s, q):
    return v.mean(dim=(-1, -2), keepdim=True).expand_as(v) / (1 + s.reshape(-1, 1, 1, 1) ** 2)


def test_patch_equal_to_image_is_the_whole_image_prior():
    """P = N: one patch, no shift; a position-blind patch denoiser is exactly the whole-image one."""
    cov = linops.gaussian_blur((1, 6, 7), 0.8, "circular", size=5, dtype=f64)
    whole = GaussianPrior(0.2, cov @ cov.H + 0.1 * linops.Identity((1, 6, 7), dtype=f64))
    prior = PatchPrior(lambda v, s, q: whole.denoise(v, s), (6, 7), prediction=Prediction.X0)
    assert prior.grid((1, 6, 7)).num_shifts == 1
    x = randn(3, 1, 6, 7)
    sigma = torch.tensor([0.1, 0.5, 2.0], dtype=f64)
    for _ in range(3):
        torch.testing.assert_close(prior.denoise(x, sigma), whole.denoise(x, sigma), rtol=0, atol=1e-14)


def test_each_pixel_comes_from_the_patch_holding_it_for_every_shift():
    """A pointwise, position-dependent patch denoiser gives the same whole-image result for every shift,
    equal to the pointwise formula at each pixel's canvas coordinates."""
    prior = PatchPrior(pointwise_gaussian, (3, 4), prediction=Prediction.X0)
    x = randn(2, 1, 7, 9)
    grid = prior.grid((1, 7, 9))
    expected = pointwise_gaussian(x, torch.tensor([0.3, 0.3], dtype=f64), image_coordinates(grid).expand(2, 2, 7, 9))
    for shift in itertools.product(range(grid.margins[0] + 1), range(grid.margins[1] + 1)):
        torch.testing.assert_close(prior.denoise(x, 0.3, shift=shift), expected, rtol=0, atol=1e-14)


def test_non_pointwise_denoiser_sees_its_patch_with_zero_padding():
    prior = PatchPrior(patch_mean, (2, 3), prediction=Prediction.X0)
    x = randn(1, 1, 5, 4)
    grid = prior.grid((1, 5, 4), (1, 2))  # K = (3, 2), M = (1, 2)
    out = prior.denoise(x, 1.0, shift=(1, 2))
    canvas = torch.zeros(1, 1, 5 + 2, 4 + 4, dtype=f64)
    canvas[..., 1:6, 2:6] = x  # image at offset M on the canvas
    expected = torch.empty_like(x)
    for i, j in itertools.product(range(5), range(4)):
        r, c = i + 1, j + 2  # canvas coordinates
        r0, c0 = 1 + 2 * ((r - 1) // 2), 2 + 3 * ((c - 2) // 3)  # its patch's origin m + k P
        expected[..., i, j] = canvas[..., r0 : r0 + 2, c0 : c0 + 3].mean() / 2
    assert grid.counts == (3, 2)
    torch.testing.assert_close(out, expected)


def test_shifts_come_from_the_generator():
    prior = PatchPrior(patch_mean, 3, prediction=Prediction.X0, seed=5)
    x = randn(1, 1, 8, 8)
    a = prior.denoise(x, 0.5, generator=torch.Generator().manual_seed(1))
    b = prior.denoise(x, 0.5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    grid = prior.grid((1, 8, 8))
    shift = grid.random_shift(torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, prior.denoise(x, 0.5, shift=shift), rtol=0, atol=0)
    outs = {tuple(prior.denoise(x, 0.5).reshape(-1)[:3].tolist()) for _ in range(12)}  # prior's own generator
    assert len(outs) > 1
    again = PatchPrior(patch_mean, 3, prediction=Prediction.X0, seed=5)
    first = PatchPrior(patch_mean, 3, prediction=Prediction.X0, seed=5)
    torch.testing.assert_close(again.denoise(x, 0.5), first.denoise(x, 0.5), rtol=0, atol=0)


def test_one_batched_network_call_with_positions():
    calls = []

    def model(v, s, q):
        calls.append((v.shape, s.shape, q.shape))
        return v

    prior = PatchPrior(model, (3, 4), prediction=Prediction.X0, frequencies=2)
    x = randn(2, 3, 7, 9)
    prior.denoise(x, torch.tensor([0.1, 0.2], dtype=f64), shift=(1, 1))
    assert calls == [((2 * 9, 3, 3, 4), (2 * 9,), (2 * 9, 2 + 4 * 2, 3, 4))]


def test_positions_match_the_grid_encoding():
    grid = linops.PatchGrid((1, 7, 9), (3, 4), (2, 1), dtype=f64)
    q = patch_position_channels(grid.padded_size, grid.patch, grid.origins(), dtype=f64)
    torch.testing.assert_close(q, grid.positions(), rtol=0, atol=1e-15)


def test_prediction_types_and_protocol_views_agree():
    x, sigma = randn(2, 1, 7, 9), torch.tensor([0.2, 0.7], dtype=f64)

    def eps_model(v, s, q):
        return (v - pointwise_gaussian(v, s, q)) / s.reshape(-1, 1, 1, 1)

    def score_model(v, s, q):
        return (pointwise_gaussian(v, s, q) - v) / s.reshape(-1, 1, 1, 1) ** 2

    d = PatchPrior(pointwise_gaussian, (3, 4), prediction=Prediction.X0).denoise(x, sigma, shift=(0, 0))
    for model, pred in [(eps_model, Prediction.EPS), (score_model, Prediction.SCORE)]:
        torch.testing.assert_close(PatchPrior(model, (3, 4), prediction=pred).denoise(x, sigma, shift=(0, 0)), d)
    prior = PatchPrior(patch_mean, (3, 4), prediction=Prediction.X0)
    s = sigma.reshape(-1, 1, 1, 1)
    d = prior.denoise(x, sigma, shift=(1, 2))
    torch.testing.assert_close(prior.score(x, sigma, shift=(1, 2)), (d - x) / s**2)
    torch.testing.assert_close(prior.eps(x, sigma, shift=(1, 2)), (x - d) / s)


def test_denoise_is_differentiable():
    prior = PatchPrior(patch_mean, (3, 4), prediction=Prediction.X0)
    x = randn(1, 1, 5, 6).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: prior.denoise(z, 0.5, shift=(1, 2)), (x,))
    net = UNet(1, extra_channels=2, channels=(8, 8), seed=0).double()
    unet_prior = PatchPrior(net, 4, prediction=Prediction.EPS)
    x = randn(2, 1, 9, 9).requires_grad_()
    loss = (unet_prior.denoise(x, 0.3) - 1).pow(2).sum()
    loss.backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


def test_errors():
    prior = PatchPrior(lambda v, s, q: v[..., :2, :], 3, prediction=Prediction.X0)
    with pytest.raises(ValueError, match=r"returned \(9, 1, 2, 3\) for patches of shape \(9, 1, 3, 3\)"):
        prior.denoise(torch.zeros(1, 1, 6, 6), 0.5, shift=(0, 0))
    with pytest.raises(ValueError, match="batched images"):
        prior.denoise(torch.zeros(6, 6), 0.5)
    with pytest.raises(ValueError, match="varies over the event axes"):
        prior.denoise(torch.zeros(2, 1, 6, 6), torch.ones(2, 1, 6, 6))
    with pytest.raises(TypeError, match="prediction must be a Prediction"):
        PatchPrior(patch_mean, 3, prediction="x0")


def test_patch_dsm_training_decreases_the_loss():
    g = torch.Generator().manual_seed(0)
    i = torch.arange(8.0)
    data = torch.stack(
        [torch.sin(a * i[:, None] / 3 + b * i[None, :] / 4)[None] for a, b in torch.rand(32, 2, generator=g) * 3]
    )
    net = UNet(1, extra_channels=2, channels=(16, 16), seed=0)
    loss = PatchDSMLoss(4, sigma_min=0.05, sigma_max=1.0, target=Prediction.EPS)

    def evaluate():
        with torch.no_grad():
            return float(loss(net, data, torch.Generator().manual_seed(123)))

    before = evaluate()
    train(net, loss, random_batches(data, 8), steps=60, seed=0, lr=3e-3, progress=False)
    assert evaluate() < 0.8 * before
    prior = PatchPrior(net, 4, prediction=Prediction.EPS)
    assert prior.denoise(data[:2], 0.5).shape == (2, 1, 8, 8)
