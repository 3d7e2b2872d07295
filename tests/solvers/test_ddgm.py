"""DDGM and the algebraic baseline against exact answers."""

import pytest
import torch

import linops
from priors import Prior
from solvers.classical import AlgebraicReconstruction
from solvers.ddgm import DDGM, DDGMUnconditional
from solvers.schedules import Constant, DDGMUnconditionalSchedule, Geometric
from solvers.tracking import NonFiniteError, StepRecord

f64 = torch.float64
SHAPE = (1, 12, 12)


def problem(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = linops.Mask(torch.rand(SHAPE, generator=g) > 0.4, dtype=f64) @ linops.gaussian_blur(
        SHAPE, 1.0, "reflect", dtype=f64
    )
    x_true = torch.rand(batch, *SHAPE, generator=g, dtype=f64)
    y = A @ x_true + 0.01 * torch.randn(batch, *SHAPE, generator=g, dtype=f64)
    return A, x_true, y


class Oracle(Prior):
    """eps(x) = (x - x_true) / sigma: one denoising step returns x_true exactly."""

    def __init__(self, x_true):
        self.x_true = x_true

    def eps(self, x, sigma):
        return (x - self.x_true) / sigma


class ZeroEps(Prior):
    def eps(self, x, sigma):
        return torch.zeros_like(x)


class BlowsUp(Prior):
    def __init__(self, at_call):
        self.calls, self.at_call = 0, at_call

    def eps(self, x, sigma):
        self.calls += 1
        return torch.full_like(x, float("nan")) if self.calls == self.at_call else torch.zeros_like(x)


def test_oracle_denoiser_returns_the_truth():
    A, x_true, y = problem()
    result = DDGM(Geometric(3.0, 0.03, 20), gradient_steps=5)(y, A, Oracle(x_true), progress=False)
    torch.testing.assert_close(result.x, x_true)


def test_zero_denoiser_and_zero_noise_is_algebraic_reconstruction():
    A, x_true, y = problem()
    N, K = 7, 4
    lam = 0.5 / A.norm() ** 2
    ddgm = DDGM(Constant(0.0, N), gradient_steps=K, step_size=lam)(y, A, ZeroEps(), progress=False)
    algebraic = AlgebraicReconstruction(iterations=N * K, step_size=lam)(y, A, progress=False)
    torch.testing.assert_close(ddgm.x, algebraic.x)
    assert ddgm.trace.gradient_evaluations == N * K and ddgm.trace.prior_calls == N


def test_algebraic_reconstruction_converges_to_least_squares():
    g = torch.Generator().manual_seed(3)
    A = linops.Matrix(torch.randn(20, 8, generator=g, dtype=f64))
    y = torch.randn(2, 20, generator=g, dtype=f64)
    x = AlgebraicReconstruction(iterations=3000)(y, A, progress=False).x
    expected = torch.linalg.lstsq(A.matrix, y.T).solution.T
    torch.testing.assert_close(x, expected, rtol=1e-8, atol=1e-8)


def test_same_seed_same_result_and_batches_independent():
    A, x_true, y = problem(batch=3)
    solver = DDGM(Geometric(1.0, 0.1, 6), gradient_steps=2)
    prior = ZeroEps()
    r1 = solver(y, A, prior, generator=torch.Generator().manual_seed(5), progress=False)
    r2 = solver(y, A, prior, generator=torch.Generator().manual_seed(5), progress=False)
    r3 = solver(y, A, prior, generator=torch.Generator().manual_seed(6), progress=False)
    torch.testing.assert_close(r1.x, r2.x, rtol=0, atol=0)
    assert not torch.allclose(r1.x, r3.x)


def test_nan_raises_with_the_step_number():
    A, x_true, y = problem()
    with pytest.raises(NonFiniteError, match=r"DDGM: .* at step 3 of 10"):
        DDGM(Geometric(1.0, 0.1, 10), gradient_steps=1)(y, A, BlowsUp(3), progress=False)


def test_invalid_hyperparameters():
    A, x_true, y = problem()
    with pytest.raises(ValueError, match=r"outside the stability bound"):
        DDGM(step_size=2.0 / A.norm() ** 2)(y, A, ZeroEps(), progress=False)
    with pytest.raises(ValueError, match=r"non-negative int"):
        DDGM(gradient_steps=-1)
    with pytest.raises(ValueError, match=r"sigma_last <= sigma_first"):
        DDGM(Geometric(0.03, 3.0, 10))


def test_callback_gets_typed_records_and_trace_has_metrics():
    A, x_true, y = problem()
    records = []
    result = DDGM(Geometric(1.0, 0.1, 4), gradient_steps=2)(
        y, A, Oracle(x_true), callback=records.append, progress=False, x_true=x_true
    )
    assert [r.step for r in records] == [1, 2, 3, 4] and all(isinstance(r, StepRecord) for r in records)
    assert records[0].residual.shape == (2,)
    t = result.trace
    assert len(t.sigma) == len(t.residual) == len(t.mse) == len(t.psnr) == len(t.ssim) == 4
    assert float(t.mse[-1].max()) < 1e-20
    assert t.as_dict()["prior_calls"] == 4


def test_unconditional_sampler_follows_the_exact_variance_recursion():
    """With the exact denoiser of N(0, s^2 I), eps(x) = x sigma / (s^2 + sigma^2), so one Eq. 2 step maps
    a variance v to v (1 - alpha sigma^2 / (s^2 + sigma^2))^2 + alpha beta sigma^2, from v_1 = sigma_1^2.
    The samples' variance must follow that recursion (Eq. 2 is not an exact sampler: it loses
    s^2 sigma^2 alpha^2 / (s^2 + sigma^2) per step relative to s^2 + sigma_{n+1}^2)."""

    class Gaussian(Prior):
        def __init__(self, s):
            self.s = s

        def denoise(self, x, sigma):
            return x * self.s**2 / (self.s**2 + sigma**2)

    s = 0.7
    sched = DDGMUnconditionalSchedule(sigma_first=10.0, steps=60)
    result = DDGMUnconditional(sched)(
        (1, 32, 32), Gaussian(s), batch=8, generator=torch.Generator().manual_seed(0), progress=False, dtype=f64
    )
    v = float(sched.sigmas()[0]) ** 2
    for sigma in sched.sigmas().tolist():
        v = v * (1 - sched.alpha * sigma**2 / (s**2 + sigma**2)) ** 2 + sched.alpha * sched.beta * sigma**2
    # 8192 samples: the variance estimate has a relative standard error of sqrt(2 / 8192) = 1.6%
    assert float(result.x.var()) == pytest.approx(v, rel=0.05)
    assert v < s**2  # and the recursion really differs from the exact-sampler value s^2 + sigma_N+1^2
