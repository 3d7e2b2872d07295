"""PaDIS against exact answers.

1. P = N: PaDIS with a one-patch PatchPrior is the whole-image DPS-Langevin loop, written out
   independently below with plain autograd (same seed, same result to rounding).
2. Posterior means. A Gaussian prior used as the denoiser (P = N), and a patch prior built from a
   position-dependent pointwise Gaussian (P < N, four grid shifts, each pixel denoised exactly, so
   the assembled denoiser is the whole-image one for every shift): the sample mean over many runs
   approaches the closed-form posterior mean up to PaDIS's bias. PaDIS is not an exact posterior
   sampler (a DPS data step of fixed normalised length, one Langevin step per noise level), so a bias
   remains. Measured relative bias of the mean, sqrt(error^2 - s.e.^2) over 8192 runs (nearly
   noise-free, 300 steps, epsilon 0.3, zeta 0.5): 0.021 for the whole-image prior under a mask, 0.012
   for the pointwise patch prior under mask @ blur (1024 runs: errors 0.025-0.034, s.e. 0.023-0.029).
   Tolerance: a bias bound of 0.04 (about twice the measured bias) plus four standard errors of the
   mean, and the error must stay below a fifth of the naive estimate's (A^H y: 0.54 and 0.78).
3. The data step descends ||A d(x) - y|| (sign check); same seed, same result; shifts are drawn per
   step through the generator; NaN raises with the step.
"""

import math
import warnings

import pytest
import torch

import linops
from priors.analytic import GaussianPrior
from priors.network import Prediction
from priors.patch import PatchPrior
from solvers.padis import PaDIS, random_grid_shift, tracking_epsilon
from solvers.schedules import Constant, Geometric
from solvers.tracking import NonFiniteError

f64 = torch.float64
SHAPE = (1, 8, 8)


pytestmark = pytest.mark.usefixtures("one_thread")


def whole_image_patch_prior(prior):
    """A PatchPrior with P = N whose (position-blind) patch network is the Gaussian denoiser."""
    return PatchPrior(lambda v, s, q: prior.denoise(v, s), SHAPE[-2:], prediction=Prediction.X0)


def measurement(prior, A, sigma_y, seed=1):
    x = prior.sample(1, generator=torch.Generator().manual_seed(seed), dtype=f64)
    noise = torch.randn(1, *A.out_shape, generator=torch.Generator().manual_seed(seed + 1), dtype=f64)
    return A @ x + sigma_y * noise


def runs(solver, y, A, prior, M, seed=3, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return solver(
            y.expand(M, *y.shape[1:]).clone(),
            A,
            prior,
            generator=torch.Generator().manual_seed(seed),
            progress=False,
            **kwargs,
        )


# ------------------------------------------------------------------------------------------------
# P = N is the whole-image loop


def whole_image_dps_langevin(y, A, prior, sigmas, epsilon, zeta, generator):
    """The seed-001 box for a whole-image denoiser, from scratch (no solver helpers)."""
    x = sigmas[0] * torch.randn(y.shape[:1] + A.in_shape, generator=generator, dtype=y.dtype)
    for sigma in sigmas:
        x = x.detach().requires_grad_(True)
        d = prior.denoise(x, sigma)
        r = A @ d - y
        r2 = (r**2).reshape(r.shape[0], -1).sum(1)
        (grad,) = torch.autograd.grad(r2.sum(), x)
        x, d = x.detach(), d.detach()
        s = (d - x) / sigma**2
        x = x - (zeta / r2.sqrt()).reshape(-1, 1, 1, 1) * grad
        alpha = epsilon * sigma**2
        x = x + alpha / 2 * s + math.sqrt(alpha) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


def test_patch_equal_to_image_is_the_whole_image_dps_langevin_loop(stationary_prior):
    prior = stationary_prior
    A = linops.Blur(torch.rand(3, 3, generator=torch.Generator().manual_seed(0), dtype=f64), SHAPE, "reflect")
    y = measurement(prior, A, 0.05).expand(3, *SHAPE).clone()
    schedule = Geometric(5.0, 0.05, 40)
    solver = PaDIS(schedule, epsilon=0.25, zeta=0.3)
    patch = whole_image_patch_prior(prior)
    assert patch.grid(SHAPE).num_shifts == 1
    out = solver(y, A, patch, generator=torch.Generator().manual_seed(11), progress=False)
    expected = whole_image_dps_langevin(
        y, A, prior, schedule.sigmas().tolist(), 0.25, 0.3, torch.Generator().manual_seed(11)
    )
    torch.testing.assert_close(out.x, expected, rtol=1e-10, atol=1e-10)
    plain = solver(y, A, prior, generator=torch.Generator().manual_seed(11), progress=False)
    torch.testing.assert_close(plain.x, expected, rtol=1e-10, atol=1e-10)
    assert out.trace.prior_calls == out.trace.gradient_evaluations == 40


# ------------------------------------------------------------------------------------------------
# the Langevin chain keeps up with the schedule


def test_tracking_epsilon_is_twice_the_minimiser_of_the_linear_lag():
    """For a geometric schedule with ratio r, e = 2 sqrt(1 - r^2) minimises e r^2 / (r^2 - (1 - e/2)^2),
    the lag of the components with variance << sigma^2; the default is 2 e, clipped to [0.1, 1.6]."""
    r = (0.005 / 10.0) ** (1 / 299)
    eps = tracking_epsilon(Geometric(10.0, 0.005, 300).sigmas().tolist())
    assert eps == pytest.approx(4 * math.sqrt(1 - r**2), rel=1e-6)
    lag = lambda e: e * r**2 / (r**2 - (1 - e / 2) ** 2)  # noqa: E731
    assert lag(eps / 2) == pytest.approx(1 + eps / 4, rel=1e-9)
    assert lag(eps / 2) < min(lag(0.45 * eps), lag(0.55 * eps))
    assert tracking_epsilon(Constant(0.5, 3).sigmas().tolist()) == 0.1
    assert tracking_epsilon(Geometric(10.0, 0.01, 5).sigmas().tolist()) == 1.6


def test_unconditional_chain_ends_at_the_prior_variance_and_a_lagging_one_warns(stationary_prior):
    """zeta = 0 samples the prior. On a fast schedule (30 steps from 10 to 0.01) the default epsilon
    (1.6) ends near the prior's unit pixel variance (measured 1.54: one step per level cannot settle
    fully); epsilon = 0.1 contracts too slowly (0.95 per step against r = 0.79), warns, and leaves
    most of the initial noise (sigma_T^2 = 100; measured 45)."""
    prior = stationary_prior
    A = linops.Identity(SHAPE, dtype=f64)
    y = torch.zeros(1, *SHAPE, dtype=f64)
    schedule = Geometric(10.0, 0.01, 30)
    x = runs(PaDIS(schedule, zeta=0.0), y, A, prior, 512).x
    variance = float(x.var(0).mean())
    assert 0.8 < variance < 1.75, variance
    with pytest.warns(RuntimeWarning, match="falls behind"):
        lagging = PaDIS(schedule, epsilon=0.1, zeta=0.0)(
            y.expand(512, *SHAPE).clone(), A, prior, generator=torch.Generator().manual_seed(3), progress=False
        )
    assert float(lagging.x.var(0).mean()) > 3.0


# ------------------------------------------------------------------------------------------------
# sample means against the exact posterior mean


def pointwise_gaussian(v, s, q):
    """Exact denoiser of independent pixels x0 ~ N(mu, lam), mu and lam functions of the position q."""
    u, w = q[:, :1], q[:, 1:2]
    mu, lam = 0.3 * u - 0.2 * w, 0.5 + 0.4 * u * w
    return mu + lam / (lam + s.reshape(-1, 1, 1, 1) ** 2) * (v - mu)


def pointwise_as_whole_image_prior(patch):
    """The GaussianPrior N(mu, diag(lam)) that `pointwise_gaussian` describes on the image pixels."""
    grid = patch.grid(SHAPE, dtype=f64)
    (N1, N2), (M1, M2) = grid.image_size, grid.margins
    i = torch.arange(N1, dtype=f64)[:, None].expand(N1, N2)
    j = torch.arange(N2, dtype=f64)[None, :].expand(N1, N2)
    u, w = 2 * (M1 + i + 0.5) / (N1 + 2 * M1) - 1, 2 * (M2 + j + 0.5) / (N2 + 2 * M2) - 1
    mu, lam = 0.3 * u - 0.2 * w, 0.5 + 0.4 * u * w
    return GaussianPrior(mu.reshape(SHAPE), linops.Diagonal(lam.reshape(SHAPE)))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["whole image (P = N)", "pointwise patches (P = 3)"])
def test_sample_mean_approaches_the_posterior_mean(case, stationary_prior):
    if case.startswith("whole"):
        gaussian = stationary_prior
        prior = whole_image_patch_prior(gaussian)
        A = linops.Mask(torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)) > 0.5, dtype=f64)
    else:
        prior = PatchPrior(pointwise_gaussian, 3, prediction=Prediction.X0)
        assert prior.grid(SHAPE).num_shifts == 4  # K = 3, M = 1 per axis
        gaussian = pointwise_as_whole_image_prior(prior)
        A = linops.Mask(torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)) > 0.5, dtype=f64) @ (
            linops.Blur(linops.gaussian_kernel(0.7, 3, dtype=f64), SHAPE, "reflect")
        )
    sigma_y = 0.01
    y = measurement(gaussian, A, sigma_y)
    post_mean = gaussian.posterior(A, y, sigma_y).mean[0]
    M = 1024
    x = runs(PaDIS(Geometric(10.0, 0.01, 300), epsilon=0.3, zeta=0.5), y, A, prior, M).x
    scale = post_mean.norm()
    error = float((x.mean(0) - post_mean).norm() / scale)
    standard_error = float((x.var(0) / M).sqrt().norm() / scale)
    assert error < 0.04 + 4 * standard_error, f"{case}: relative error {error:.3f} (s.e. {standard_error:.3f})"
    zero_filled = float(((A.H @ y)[0] - post_mean).norm() / scale)
    assert error < 0.2 * zero_filled


# ------------------------------------------------------------------------------------------------
# the data step, randomness, failures


def test_data_step_descends_the_measurement_residual():
    """With a negligible Langevin step, step 1 moves x by -zeta grad ||A d(x) - y||^2 / ||A d(x) - y||,
    grad = 2 k A^T (A k x - y) for the linear denoiser d = k x of a diagonal Gaussian, and the next
    residual ||A d(x) - y|| is smaller."""
    g = torch.Generator().manual_seed(4)
    weights = 0.5 + torch.rand(SHAPE, generator=g, dtype=f64)
    prior = GaussianPrior(torch.zeros(SHAPE, dtype=f64), linops.Diagonal(weights))
    A = linops.Blur(torch.rand(3, 3, generator=g, dtype=f64), SHAPE, "reflect")
    y = torch.randn(2, *SHAPE, generator=g, dtype=f64)
    sigma, zeta = 0.5, 0.05
    records = []
    out = runs(PaDIS(Constant(sigma, 2), epsilon=1e-14, zeta=zeta), y[:1], A, prior, 1, seed=9, callback=records.append)
    x0 = sigma * torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(9), dtype=f64)
    k = weights / (weights + sigma**2)
    r = A @ (k * x0) - y[:1]
    grad = 2 * k * (A.H @ r)
    step = records[0].x - x0
    torch.testing.assert_close(step, -zeta * grad / r.norm(), rtol=1e-5, atol=1e-6)
    assert float((step * grad).sum()) < 0
    assert float(out.trace.residual[1]) < float(out.trace.residual[0])


def test_same_seed_same_result_and_one_shift_per_step(stationary_prior):
    shifts = []

    class Recording(PatchPrior):
        def denoise(self, x, sigma, shift=None, generator=None):
            shifts.append(shift)
            return super().denoise(x, sigma, shift, generator)

    prior = Recording(pointwise_gaussian, 3, prediction=Prediction.X0)
    A = linops.Blur(linops.gaussian_kernel(0.7, 3, dtype=f64), SHAPE, "reflect")
    y = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=f64)
    solver = PaDIS(Geometric(3.0, 0.05, 30), epsilon=0.3, zeta=0.2)
    a = runs(solver, y[:1], A, prior, 2, seed=5).x
    first, shifts[:] = list(shifts), []
    b = runs(solver, y[:1], A, prior, 2, seed=5).x
    assert torch.equal(a, b) and shifts == first
    assert len(first) == 30 and len(set(first)) == 4  # a fresh shift per step, all four reached
    c = runs(solver, y[:1], A, prior, 2, seed=6).x
    assert not torch.allclose(a, c)
    x = torch.zeros(1, *SHAPE, dtype=f64)
    assert random_grid_shift(stationary_prior, x, None) is None
    assert random_grid_shift(whole_image_patch_prior(stationary_prior), x, None) == (0, 0)


def test_nan_raises_with_the_step(stationary_prior):
    prior = stationary_prior

    class Poisoned(GaussianPrior):
        calls = 0

        def denoise(self, x, sigma):
            type(self).calls += 1
            out = super().denoise(x, sigma)
            return out * float("nan") if type(self).calls == 3 else out

    poisoned = Poisoned(prior.mean, prior.covariance)
    A = linops.Identity(SHAPE, dtype=f64)
    with pytest.raises(NonFiniteError, match="step 3 of 10"):
        runs(PaDIS(Geometric(1.0, 0.1, 10)), torch.zeros(1, *SHAPE, dtype=f64), A, poisoned, 1)


def test_invalid_hyperparameters_raise():
    with pytest.raises(ValueError, match=r"epsilon must be a finite number in \(0, 4\)"):
        PaDIS(epsilon=0.0)
    with pytest.raises(ValueError, match="zeta must be a finite number >= 0"):
        PaDIS(zeta=-1.0)
    assert len(PaDIS().schedule) == 1000
