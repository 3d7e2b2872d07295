"""Dirac degradation-aware priors: the noise schedule's endpoints, the process y_t = A_t x0 + sigma_t z,
the exact Gaussian Phi against brute-force dense posterior means, the incremental-reconstruction loss
(its definition, zero for an oracle, minimised by the exact prior), and a few training steps of a tiny
network lowering it."""

import math

import pytest
import torch
from torch import nn

import linops
from priors.analytic import Dense, GaussianPrior
from priors.dirac import (
    DegradationAwarePrior,
    DegradationProcess,
    GeometricNoise,
    IncrementalReconstructionLoss,
)
from priors.dirac_gaussian import GaussianDegradationAwarePrior
from priors.training import random_batches, train

f64 = torch.float64
SHAPE = (1, 5, 4)
N = 20


def smooth_covariance(shape=SHAPE, length=1.5, variance=0.04):
    """Sigma_ij = variance exp(-|p_i - p_j|^2 / (2 length^2)) + 1e-3 delta_ij on the pixel grid."""
    H, W = shape[-2:]
    i, j = torch.meshgrid(torch.arange(H, dtype=f64), torch.arange(W, dtype=f64), indexing="ij")
    p = torch.stack([i.reshape(-1), j.reshape(-1)], 1)
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    return variance * torch.exp(-d2 / (2 * length**2)) + 1e-3 * torch.eye(H * W, dtype=f64)


def sample_x0(n, seed=0, mean=0.5, cov=None):
    cov = smooth_covariance() if cov is None else cov
    L = torch.linalg.cholesky(cov)
    z = torch.randn(n, cov.shape[0], generator=torch.Generator().manual_seed(seed), dtype=f64)
    return (mean + z @ L.T).reshape(n, *SHAPE)


def test_noise_schedule_endpoints():
    noise = GeometricNoise()
    assert float(noise(0.0)) == pytest.approx(0.01)
    assert float(noise(1.0)) == pytest.approx(0.05)
    assert float(noise(0.5)) == pytest.approx(math.sqrt(0.01 * 0.05))
    s = noise(torch.linspace(0, 1, 11))
    assert bool((s[1:] > s[:-1]).all())
    with pytest.raises(ValueError, match="0 < sigma_0 <= sigma_1"):
        GeometricNoise(0.05, 0.01)


def test_process_sample_is_degraded_plus_scaled_noise(process):
    x0 = sample_x0(3)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=f64)
    y = process.sample(x0, t, torch.Generator().manual_seed(7))
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7), dtype=f64)
    expected = process.family.at(t) @ x0 + process.sigma(t).reshape(-1, 1, 1, 1) * z
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(process.degrade(x0, 0.4)[1], process.family.at(0.4) @ x0[1])
    with pytest.raises(ValueError, match=r"x0 must have shape \(B, 1, 5, 4\), got \(3, 5, 4\)"):
        process.sample(x0[:, 0], t)
    with pytest.raises(ValueError, match=r"t must be a float or of shape \(3,\)"):
        process.sample(x0, t[:2])


def brute_force_posterior_mean(A, y, mu, cov, sigma):
    """The information form (Sigma^-1 + A^T A / sigma^2)^-1 (Sigma^-1 mu + A^T y / sigma^2)."""
    P = torch.linalg.inv(cov)
    precision = P + A.T @ A / sigma**2
    return torch.linalg.solve(precision, P @ mu + A.T @ y / sigma**2)


def test_exact_gaussian_phi_equals_dense_posterior_mean(process):
    cov = smooth_covariance()
    exact = GaussianDegradationAwarePrior(0.5, cov, process)
    t = torch.tensor([0.0, 0.7, 0.7, 1.0], dtype=f64)
    x0 = sample_x0(4, seed=1, cov=cov)
    y = process.sample(x0, t, torch.Generator().manual_seed(2))
    phi = exact(y, t)
    gaussian = GaussianPrior(0.5, linops.Matrix(cov, SHAPE, SHAPE))
    for b in range(4):
        A = process.family.at(float(t[b])).to_dense()
        sigma = float(process.sigma(t[b]))
        mean = brute_force_posterior_mean(A, y[b].reshape(-1), torch.full((N,), 0.5, dtype=f64), cov, sigma)
        torch.testing.assert_close(phi[b].reshape(-1), mean, rtol=1e-9, atol=1e-11)
        other = gaussian.posterior(process.family.at(float(t[b])), y[b], sigma, method=Dense()).mean
        torch.testing.assert_close(phi[b], other, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(exact(y[1:2], 0.7), phi[1:2])  # a float t, a cached gain


def test_exact_phi_is_differentiable_in_y(families):
    process = DegradationProcess(families["blur"])
    exact = GaussianDegradationAwarePrior(0.5, smooth_covariance(), process)
    y = sample_x0(2).requires_grad_()
    exact(y, 0.5).sum().backward()
    G, _ = exact.gain(0.5)
    torch.testing.assert_close(y.grad.reshape(2, -1), G.sum(0).expand(2, -1))


def test_ir_loss_definition(families):
    """With the same generator: t ~ U[0, 1], y_t sampled, residual A_tau(Phi - x0), weight 1 / sigma_t^2."""
    process = DegradationProcess(families["blur"])
    x0 = sample_x0(5)

    def model(y, t):
        return 0.9 * y

    for dt in (0.0, 0.3, 1.0):
        loss = IncrementalReconstructionLoss(process, dt=dt)(model, x0, torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        t = torch.rand(5, generator=g, dtype=f64)
        y = process.sample(x0, t, g)
        tau = (t - dt).clamp(min=0)
        r = process.family.at(tau) @ (model(y, t) - x0)
        expected = torch.mean(r.reshape(5, -1).pow(2).mean(1) / process.sigma(t) ** 2)
        torch.testing.assert_close(loss, expected)


def test_ir_loss_is_zero_for_an_oracle(process):
    x0 = sample_x0(4)
    loss = IncrementalReconstructionLoss(process, dt=0.2)
    assert float(loss(lambda y, t: x0, x0, torch.Generator().manual_seed(0))) == 0


def test_ir_loss_vanishes_for_the_exact_prior_without_noise():
    """sigma -> 0 with an invertible A_t (a discrete Gaussian blur): E[x0 | y_t] -> A_t^-1 y_t = x0."""
    family = linops.GaussianBlurFamily(SHAPE, linops.LinearRamp(0.0, 0.5), dtype=f64)
    process = DegradationProcess(family, GeometricNoise(1e-7, 1e-7))
    exact = GaussianDegradationAwarePrior(0.5, smooth_covariance(), process)
    x0 = sample_x0(6)
    for dt in (0.0, 1.0):
        loss = IncrementalReconstructionLoss(process, dt=dt, weight=lambda s: torch.ones_like(s))
        assert float(loss(exact, x0, torch.Generator().manual_seed(1))) < 1e-10


@pytest.mark.parametrize("dt", [0.0, 0.25, 1.0])
def test_exact_prior_has_the_smallest_ir_loss(process, dt):
    """E[x0 | y_t] minimises E || A_tau (Phi - x0) ||^2: priors with a wrong mean or a wrong covariance,
    and Phi = y_t, do worse (same samples for all: common random numbers)."""
    cov = smooth_covariance()
    x0 = sample_x0(400, seed=4, cov=cov)
    loss = IncrementalReconstructionLoss(process, dt=dt)

    def value(model):
        return float(loss(model, x0, torch.Generator().manual_seed(5)))

    exact = value(GaussianDegradationAwarePrior(0.5, cov, process))
    assert exact < value(GaussianDegradationAwarePrior(0.3, cov, process))
    assert exact < value(GaussianDegradationAwarePrior(0.5, 4 * cov, process))
    assert exact < value(GaussianDegradationAwarePrior(0.5, torch.eye(N, dtype=f64) * 0.04, process))
    assert exact < value(lambda y, t: y)


class TinyPhi(nn.Module):
    """y_t plus a small conv correction fed with a constant t channel."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, y, t):
        t_map = t.reshape(-1, 1, 1, 1).expand(-1, 1, *y.shape[-2:]).to(y.dtype)
        return y + self.net(torch.cat([y, t_map], dim=1))


def test_a_few_training_steps_lower_the_ir_loss():
    family = linops.GaussianMaskFamily((1, 8, 8), linops.LinearRamp(0.1, 2.5))
    process = DegradationProcess(family)
    cov = smooth_covariance((1, 8, 8), length=2.0, variance=0.04).float()
    L = torch.linalg.cholesky(cov.double()).float()
    data = (0.5 + torch.randn(64, 64, generator=torch.Generator().manual_seed(0)) @ L.T).reshape(64, 1, 8, 8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # parameter initialisation only, the global RNG is restored
        model = TinyPhi()
    loss = IncrementalReconstructionLoss(process, dt=0.5, weight=lambda s: torch.ones_like(s))

    def evaluate():
        with torch.no_grad():
            return float(loss(model, data, torch.Generator().manual_seed(99)))

    before = evaluate()
    train(model, loss, random_batches(data, 16), steps=80, seed=0, lr=3e-3, progress=False)
    after = evaluate()
    assert after < 0.7 * before
    prior = DegradationAwarePrior(model, process)
    y = process.sample(data[:4], 0.8, torch.Generator().manual_seed(1))
    assert prior(y, 0.8).shape == (4, 1, 8, 8)


class Recorder(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn, self.seen = fn, []

    def forward(self, y, t):
        self.seen.append((tuple(y.shape), t.dtype, t.tolist()))
        return self.fn(y)


def test_network_prior_calls_the_model_with_per_sample_t(families):
    model = Recorder(lambda y: 2 * y)
    prior = DegradationAwarePrior(model, DegradationProcess(families["mask"]))
    y = sample_x0(2).float().requires_grad_()
    out = prior(y, 0.25)
    assert model.seen == [((2, *SHAPE), torch.float32, [0.25, 0.25])]
    out.sum().backward()
    torch.testing.assert_close(y.grad, torch.full_like(y, 2.0))
    bad = DegradationAwarePrior(Recorder(lambda y: y[:, :, :2]), DegradationProcess(families["mask"]))
    with pytest.raises(ValueError, match=r"returned \(2, 1, 2, 4\) for y_t of shape \(2, 1, 5, 4\)"):
        bad(y, 0.5)
    with pytest.raises(ValueError, match=r"y_t must have shape \(B, 1, 5, 4\)"):
        prior(y[0], 0.5)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        prior(y, 1.5)
