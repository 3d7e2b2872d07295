"""Diffusion solvers against exact answers for Gaussian priors.

1. Exact recursions. When the prior covariance and A share a basis (a circular blur and a stationary
   Gaussian prior are both diagonal in the Hartley basis of A's SVD), every DDRM and DDGM step is
   linear-Gaussian in each spectral coordinate, so the output is exactly c * y_bar + N(0, v) per
   coordinate with (c, v) given by a scalar recursion through the solver's update rules. The sample
   mean and variance over many runs must match that recursion to sampling error: this checks every
   branch of the implementation (DDRM's three cases, eta, eta_b, DDGM's gradient/noise/denoise).

2. Posterior means. With a correlated (stationary) Gaussian prior and a mask, the sample means of
   DDRM, DDGM and DPS* approach the closed-form posterior mean up to each method's bias. None of
   them is an exact posterior sampler with an unconditional denoiser: DDRM and DDGM re-noise
   unobserved coordinates ancestrally (x0_hat + sigma' z), which under-disperses them, and DPS
   approximates p(y | x_t). Measured relative biases of the mean (4096 runs, nearly noise-free
   mask): DDRM(eta=1) 0.11, DDGM 0.06, DPS* 0.05. The tolerance is that bias bound plus four
   standard errors of the mean, which shrink as 1 / sqrt(runs); the tests also check the error
   is far below that of naive estimates (zero filling, the prior mean).
"""

import math
import warnings

import pytest
import torch

import linops
from priors.analytic import GaussianPrior
from solvers.ddgm import DDGM
from solvers.ddrm import DDRM
from solvers.dps import DPS
from solvers.schedules import DDGMUnconditionalSchedule, Geometric, append_zero
from solvers.steps import guidance_gradient

f64 = torch.float64
SHAPE = (1, 8, 8)


pytestmark = pytest.mark.usefixtures("one_thread")


def measurement(prior, A, sigma_y, seed=1):
    x = prior.sample(1, generator=torch.Generator().manual_seed(seed), dtype=f64)
    noise = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(seed + 1), dtype=f64)
    return A @ x + sigma_y * noise


def runs(solver, y, A, prior, M, seed=3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return solver(y.expand(M, *SHAPE).clone(), A, prior, generator=torch.Generator().manual_seed(seed),
                      progress=False).x


def assert_matches_gaussian(samples, mean, var):
    """Per coordinate: sample mean within 4.5 standard errors, sample variance within 5 s.e. (relative)."""
    M = samples.shape[0]
    z = (samples.mean(0) - mean) / (var / M).sqrt().clamp(min=1e-12)
    assert float(z.abs().max()) < 4.5, f"sample means off by {float(z.abs().max()):.1f} standard errors"
    ratio = samples.var(0) / var
    bound = 5 * math.sqrt(2 / M)
    spread = f"[{float(ratio.min()):.3f}, {float(ratio.max()):.3f}]"
    assert float((ratio - 1).abs().max()) < bound, f"variance ratios in {spread}"


@pytest.fixture(scope="module")
def blur_problem(stationary_prior):
    prior = stationary_prior
    A = linops.CircularBlur(linops.gaussian_kernel(1.0, 5, dtype=f64), SHAPE)
    svd = A.svd()
    Vd = svd.V.to_dense()
    p = torch.diagonal(Vd.T @ prior.covariance.to_dense() @ Vd).reshape(SHAPE)  # prior variances per coordinate
    return prior, A, svd, p


@pytest.mark.parametrize(("eta", "eta_b"), [(1.0, 1.0), (0.85, 1.0), (0.5, 0.7)])
def test_ddrm_follows_its_exact_recursion(blur_problem, eta, eta_b):
    prior, A, svd, p = blur_problem
    s, sigma_y = svd.s, 0.1
    y = measurement(prior, A, sigma_y)
    y_bar = (svd.U.H @ y) / s
    schedule = Geometric(20.0, 0.01, 30)
    sigmas = schedule.sigmas().tolist()
    noise = sigma_y / s
    assert bool((s * sigmas[-1] < sigma_y).any()) and bool((s * sigmas[0] >= sigma_y).any())  # all branches

    confident = s * sigmas[0] >= sigma_y
    c = confident.double()
    v = torch.where(confident, sigmas[0] ** 2 - noise**2, torch.full_like(s, sigmas[0] ** 2))
    for sigma, nxt in zip(sigmas, append_zero(torch.tensor(sigmas))[1:].tolist()):
        k = p / (p + sigma**2)  # the Gaussian denoiser per coordinate
        q = math.sqrt(1 - eta**2) * nxt / noise
        c_weak, v_weak = k * (1 - q) * c + q, (k * (1 - q)) ** 2 * v + (eta * nxt) ** 2
        c_strong = (1 - eta_b) * k * c + eta_b
        v_strong = ((1 - eta_b) * k) ** 2 * v + (nxt**2 - eta_b**2 * noise**2).clamp(min=0)
        weak = s * nxt < sigma_y
        c, v = torch.where(weak, c_weak, c_strong), torch.where(weak, v_weak, v_strong)

    x = runs(DDRM(schedule, sigma_y=sigma_y, eta=eta, eta_b=eta_b), y, A, prior, M=4096)
    assert_matches_gaussian(svd.V.H @ x, (c * y_bar)[0], v)


def test_ddgm_follows_its_exact_recursion(blur_problem):
    prior, A, svd, p = blur_problem
    s, sigma_y = svd.s, 0.1
    y = measurement(prior, A, sigma_y)
    u_bar = svd.U.H @ y
    schedule, K = Geometric(3.0, 0.03, 12), 4
    lam = 0.45 / A.norm() ** 2
    g = (1 - 2 * lam * s**2) ** K  # K gradient steps contract each coordinate by g
    c, v = torch.zeros_like(s), torch.zeros_like(s)
    for sigma in schedule.sigmas().tolist():
        k = p / (p + sigma**2)
        c = k * (g * c + (1 - g) / s)
        v = k**2 * (g**2 * v + sigma**2)
    x = runs(DDGM(schedule, gradient_steps=K, step_size=lam), y, A, prior, M=4096)
    assert_matches_gaussian(svd.V.H @ x, (c * u_bar)[0], v)


@pytest.fixture(scope="module")
def mask_problem(stationary_prior):
    prior = stationary_prior
    A = linops.Mask(torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)) > 0.5, dtype=f64)
    sigma_y = 0.01
    y = measurement(prior, A, sigma_y)
    return prior, A, y, sigma_y, prior.posterior(A, y, sigma_y).mean[0]


@pytest.mark.parametrize(
    ("name", "bias"),
    [("DDRM", 0.15), ("DDGM", 0.10), ("DPS*", 0.10)],
)
def test_sample_means_approach_the_posterior_mean(mask_problem, name, bias):
    prior, A, y, sigma_y, post_mean = mask_problem
    solver = {
        "DDRM": DDRM(Geometric(20.0, 0.01, 50), sigma_y=sigma_y, eta=1.0, eta_b=1.0),
        "DDGM": DDGM(Geometric(3.0, 0.01, 100), gradient_steps=10),
        "DPS*": DPS(DDGMUnconditionalSchedule.from_endpoints(10.0, 0.01, 300), zeta=0.5),
    }[name]
    M = 1024 if name != "DPS*" else 512
    x = runs(solver, y, A, prior, M=M)
    scale = post_mean.norm()
    error = float((x.mean(0) - post_mean).norm() / scale)
    standard_error = float((x.var(0) / M).sqrt().norm() / scale)
    assert error < bias + 4 * standard_error, f"{name}: relative error {error:.3f}"
    # far better than naive estimates: zero filling the unobserved pixels, or the prior mean (error 1)
    zero_filled = float(((A @ y)[0] - post_mean).norm() / scale)
    assert error < 0.5 * zero_filled


def test_dps_guidance_gradient_equals_the_analytic_one():
    """For a linear denoiser D(x) = k * x (a diagonal Gaussian prior), grad ||A D(x) - y||^2 = 2 D^H A^H (A D x - y)."""
    g = torch.Generator().manual_seed(4)
    weights = 0.5 + torch.rand(SHAPE, generator=g, dtype=f64)
    prior = GaussianPrior(torch.zeros(SHAPE, dtype=f64), linops.Diagonal(weights))
    A = linops.Blur(torch.rand(3, 3, generator=g, dtype=f64), SHAPE, "reflect")
    x = torch.randn(2, *SHAPE, generator=g, dtype=f64)
    y = torch.randn(2, *SHAPE, generator=g, dtype=f64)
    sigma = 0.7
    x0, grad, norm = guidance_gradient(x, y, A, prior.denoise, sigma)
    k = weights / (weights + sigma**2)
    torch.testing.assert_close(x0, k * x)
    torch.testing.assert_close(grad, 2 * k * (A.H @ (A @ (k * x) - y)))
    torch.testing.assert_close(norm, (A @ (k * x) - y).reshape(2, -1).norm(dim=1))
