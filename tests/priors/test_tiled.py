"""Tiled prior: the bump window (largest in the centre, never zero), a one-tile image is the plain prior,
pointwise denoisers are unchanged by tiling, normalised weights sum to one, DDGM's 128 x 1568 strip is
16 tiles in one batched call (or chunks), agreement with a tile-by-tile loop, protocol views agree."""

import math

import pytest
import torch
import torch.nn.functional as F

import linops
from priors.analytic import GaussianPrior
from priors.protocol import Prior, per_sample_sigma
from priors.tiled import TiledPrior, bump, bump_window

f64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


def _s(sigma, x):
    return per_sample_sigma(sigma, x, x.ndim - 1).reshape(-1, *([1] * (x.ndim - 1)))


class Pointwise(Prior):
    """A nonlinear pointwise denoiser (any image size)."""

    def denoise(self, x, sigma):
        return torch.tanh(x) / (1 + _s(sigma, x) ** 2)


class LocalMean(Prior):
    """A non-pointwise denoiser: 3 x 3 mean with zero padding (any image size)."""

    def denoise(self, x, sigma):
        planes = x.reshape(-1, 1, *x.shape[-2:])
        m = F.avg_pool2d(planes, 3, stride=1, padding=1, count_include_pad=True).reshape(x.shape)
        return m / (1 + _s(sigma, x))


class Counting(Prior):
    def __init__(self):
        self.batches = []

    def denoise(self, x, sigma):
        self.batches.append(x.shape[0])
        return x / (1 + _s(sigma, x) ** 2)


def test_bump_is_largest_in_the_centre_and_never_zero():
    """b(u) = exp(-1 / max(1 - u^2, 0.2)): e^-1 in the centre, decreasing in |u|, e^-5 near the edges
    (the printed 1 - exp(...) would be the reverse: smallest in the centre)."""
    u = torch.linspace(-1, 1, 201, dtype=f64)
    b = bump(u)
    assert float(b[100]) == pytest.approx(math.exp(-1))
    assert float(b[0]) == float(b[-1]) == pytest.approx(math.exp(-5))
    assert bool((b[101:] <= b[100:-1]).all()) and bool((b[:100] <= b[1:101]).all())
    printed = 1 - torch.exp(-1 / torch.clamp(1 - u**2, min=0.2))
    assert float(printed[100]) < float(printed[0])  # the printed formula is an inverted bump
    w = bump_window(8)
    torch.testing.assert_close(w, w.flip(0))
    torch.testing.assert_close(w, w.T)
    centre = 2 * (torch.arange(8, dtype=f64) + 0.5) / 8 - 1
    torch.testing.assert_close(w, torch.outer(bump(centre), bump(centre)))
    assert float(w.min()) > 0


def test_one_tile_image_is_the_plain_prior():
    cov = linops.gaussian_blur((1, 8, 8), 1.0, "circular", size=5, dtype=f64)
    prior = GaussianPrior(0.1, cov @ cov.H + 0.05 * linops.Identity((1, 8, 8), dtype=f64))
    tiled = TiledPrior(prior, 8, 4)
    x = randn(2, 1, 8, 8)
    sigma = torch.tensor([0.3, 1.0], dtype=f64)
    torch.testing.assert_close(tiled.denoise(x, sigma), prior.denoise(x, sigma), rtol=0, atol=1e-14)


def test_pointwise_denoiser_is_unchanged_by_tiling():
    x = randn(2, 3, 13, 29)
    tiled = TiledPrior(Pointwise(), (5, 8), (3, 5))
    torch.testing.assert_close(tiled.denoise(x, 0.4), Pointwise().denoise(x, 0.4), rtol=0, atol=1e-14)


def test_normalised_weights_sum_to_one_everywhere():
    tiled = TiledPrior(Pointwise(), 8, 5)
    window, norm = tiled.weights((1, 21, 30), dtype=f64)
    tiles = linops.Tiles((1, 21, 30), 8, 5, dtype=f64)
    total = tiles.H @ window.expand(tiles.num_tiles, 1, 8, 8)
    torch.testing.assert_close(total[0] / norm, torch.ones(21, 30, dtype=f64))
    assert float(norm.min()) >= math.exp(-10)  # corners: one tile edge only, still no 0/0


def test_ddgm_strip_is_16_tiles_in_one_call_or_chunks():
    prior = Counting()
    tiled = TiledPrior(prior, 128, 96)
    x = torch.randn(2, 1, 128, 1568, generator=torch.Generator().manual_seed(0))
    out = tiled.denoise(x, 0.5)
    assert tiled.tiles((1, 128, 1568)).num_tiles == 16
    assert prior.batches == [32]
    torch.testing.assert_close(out, x / 1.25)
    chunked = Counting()
    TiledPrior(chunked, 128, 96, max_batch=10).denoise(x, 0.5)
    assert chunked.batches == [10, 10, 10, 2]


def test_agrees_with_a_tile_by_tile_loop():
    x = randn(2, 1, 11, 14)
    sigma = torch.tensor([0.2, 0.9], dtype=f64)
    p, s = (5, 6), (3, 4)
    out = TiledPrior(LocalMean(), p, s, max_batch=3).denoise(x, sigma)
    rows = [0, 3, 6]
    cols = [0, 4, 8]
    num = torch.zeros_like(x)
    den = torch.zeros(11, 14, dtype=f64)
    for r in rows:
        for c in cols:
            w = torch.zeros(11, 14, dtype=f64)
            w[r : r + 5, c : c + 6] = bump_window(p)
            tile = x[..., r : r + 5, c : c + 6]
            d = torch.zeros_like(x)
            d[..., r : r + 5, c : c + 6] = LocalMean().denoise(tile, sigma)
            num += w * d
            den += w
    torch.testing.assert_close(out, num / den)


def test_protocol_views_and_per_sample_sigma():
    tiled = TiledPrior(LocalMean(), 6, 4)
    x = randn(3, 2, 10, 14)
    sigma = torch.tensor([0.1, 0.5, 2.0], dtype=f64)
    d = tiled.denoise(x, sigma)
    s = sigma.reshape(-1, 1, 1, 1)
    torch.testing.assert_close(tiled.eps(x, sigma), (x - d) / s)
    torch.testing.assert_close(tiled.score(x, sigma), (d - x) / s**2)
    for b in range(3):
        torch.testing.assert_close(d[b : b + 1], tiled.denoise(x[b : b + 1], float(sigma[b])))


def test_differentiable_and_errors():
    tiled = TiledPrior(LocalMean(), 4, 3)
    x = randn(1, 1, 7, 8).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: tiled.denoise(z, 0.5), (x,))
    with pytest.raises(ValueError, match="tile size 4 must lie in 1..3"):
        tiled.denoise(torch.zeros(1, 1, 3, 8, dtype=f64), 0.5)
    with pytest.raises(ValueError, match="stride 5 must lie in 1..4"):
        TiledPrior(LocalMean(), 4, 5).denoise(torch.zeros(1, 1, 8, 8), 0.5)
    with pytest.raises(ValueError, match="batched images"):
        tiled.denoise(torch.zeros(8, 8), 0.5)
