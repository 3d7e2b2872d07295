"""Dirac against exact answers, with the exact Gaussian Phi (no training) and an oracle Phi.

1. Data consistency (seed 002's claim): with the exact posterior mean as Phi, ||y - A_1 Phi(y_t, t)||
   stays at the noise floor sigma_1 sqrt(n) at every step. Measured over 256 runs, 100 steps, 36
   pixels: the mean ratio to the floor lies in 0.93-0.96 (blur) and 0.89-0.92 (mask) at every step,
   already 0.94 / 0.93 at t = 1 (the exact E||y - A_1 E[x0|y]||^2 = sigma_1^4 tr S^-1); each run's
   residual moves at most 23% from its value at t = 1 (the noise norm itself spreads 0.64-1.29 across
   runs). Tolerance: mean ratio in [0.85, 1.05] at every step; per-run drift below 35%.
2. Oracle Phi = x0: each iterate is A_t x0 plus zero-mean Gaussian noise of the variance the update
   predicts, v_{t-dt} = (sigma_{t-dt}^2 / sigma_t^2)^2 v_t + sigma_t^2 - sigma_{t-dt}^2 (pooled over
   pixels and runs: mean within 4.5 standard errors, variance within 5 relative standard errors),
   and v_t = sigma_t^2 up to the O(dt) excess of the Euler-Maruyama step: the relative excess obeys
   r_{t-dt} = (1 - c) r_t + c^2 / (1 - c), c = 1 - sigma_{t-dt}^2 / sigma_t^2, so 0 <= r < c / (1 - c)
   (6.6% for 50 uniform steps of the 0.01..0.05 geometric noise; 6.4% reached at t = 0).
3. Guidance is a descent step of the stated size; one-shot is Phi(y, 1); early stopping returns
   Phi(y_{t_stop}, t_stop) after exactly the iterates of a full run; A must be A_1.
4. The greedy scheduler splits the widest gap, its largest gap never grows, and its warp is monotone.
"""

import math

import pytest
import torch

import linops
from priors.dirac import DegradationAware, DegradationProcess
from priors.dirac_gaussian import GaussianDegradationAwarePrior
from solvers.dirac import Dirac, ErrorScaledGuidance, StdScaledGuidance
from solvers.dirac_schedule import (
    GreedyDegradationScheduler,
    SeverityTimes,
    UniformSeverities,
    compose,
    greedy_severities,
    rms_distance,
)
from solvers.tracking import NonFiniteError

f64 = torch.float64
SHAPE = (1, 6, 6)
N = 36


pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_covariance(length=1.5, variance=0.04):
    """Sigma_ij = variance exp(-|p_i - p_j|^2 / (2 length^2)) + 1e-3 delta_ij on the pixel grid."""
    H, W = SHAPE[-2:]
    i, j = torch.meshgrid(torch.arange(H, dtype=f64), torch.arange(W, dtype=f64), indexing="ij")
    p = torch.stack([i.reshape(-1), j.reshape(-1)], 1)
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    return variance * torch.exp(-d2 / (2 * length**2)) + 1e-3 * torch.eye(N, dtype=f64)


def exact_prior(process):
    return GaussianDegradationAwarePrior(0.5, smooth_covariance(), process, max_cached=512)


def sample_x0(n, seed=0):
    L = torch.linalg.cholesky(smooth_covariance())
    z = torch.randn(n, N, generator=torch.Generator().manual_seed(seed), dtype=f64)
    return (0.5 + z @ L.T).reshape(n, *SHAPE)


def measure(process, x0, seed=1):
    return process.sample(x0, 1.0, torch.Generator().manual_seed(seed))


def run(solver, y, process, prior, seed=2, **kwargs):
    return solver(
        y, process.operator(1.0), prior, generator=torch.Generator().manual_seed(seed), progress=False, **kwargs
    )


class Oracle(DegradationAware):
    """Phi(y_t, t) = x0 whatever y_t: the perfect reconstruction."""

    def __init__(self, x0, process):
        self.x0, self.process = x0, process

    def predict(self, y_t, t):
        return self.x0.expand_as(y_t)


# ------------------------------------------------------------------------------------------------
# data consistency and the law of the iterates


def test_residual_stays_at_the_noise_floor(process):
    prior = exact_prior(process)
    M = 256
    x0 = sample_x0(M)
    y = measure(process, x0)
    result = run(Dirac(UniformSeverities(100)), y, process, prior)
    floor = float(process.sigma(1.0)) * math.sqrt(N)
    ratio = torch.stack(result.trace.residual) / floor  # (steps + 1, M)
    assert ratio.shape == (101, M)
    per_step = ratio.mean(dim=1)
    assert float(per_step.min()) > 0.85 and float(per_step.max()) < 1.05, f"{per_step.min():.3f}..{per_step.max():.3f}"
    drift = float((ratio / ratio[:1] - 1).abs().max())
    assert drift < 0.35, f"a run's residual moved {drift:.0%} from its value at t = 1"


def test_oracle_iterates_are_degraded_x0_plus_noise_of_the_predicted_variance(process):
    M = 2000
    x0 = sample_x0(1, seed=3)
    y = measure(process, x0.expand(M, *SHAPE))
    records = []
    severities = UniformSeverities(50)
    run(Dirac(severities), y, process, Oracle(x0, process), callback=records.append)
    times = severities.times().tolist()
    assert len(records) == len(times)
    sigma2 = process.sigma(torch.tensor(times, dtype=f64)) ** 2
    v = float(sigma2[0])
    for k, (t, record) in enumerate(zip(times, records)):
        if k > 0:
            drop = float(sigma2[k - 1] - sigma2[k])
            v = (float(sigma2[k]) / float(sigma2[k - 1])) ** 2 * v + drop
        e = record.x - process.operator(t) @ x0
        count = e.numel()
        assert abs(float(e.mean())) < 4.5 * math.sqrt(v / count), f"t = {t}: mean {float(e.mean()):.2e}"
        assert abs(float(e.var()) / v - 1) < 5 * math.sqrt(2 / count), f"t = {t}: variance ratio {float(e.var()) / v}"
        c = 1 - float(sigma2[-1] / sigma2[-2])  # the same for every step of a geometric noise on a uniform grid
        assert 0 <= v / float(sigma2[k]) - 1 < c / (1 - c)
        torch.testing.assert_close(record.estimate, x0.expand(M, *SHAPE))


# ------------------------------------------------------------------------------------------------
# guidance, one shot, early stopping


@pytest.mark.parametrize("guidance", [StdScaledGuidance(0.5), ErrorScaledGuidance(0.5)], ids=lambda g: type(g).__name__)
def test_guidance_is_a_descent_step_of_the_stated_size(process, guidance):
    prior = exact_prior(process)
    x0 = sample_x0(2, seed=4)
    y = measure(process, x0)
    A_1 = process.operator(1.0)
    steps = UniformSeverities(10)
    plain, guided = [], []
    run(Dirac(steps, t_stop=0.9), y, process, prior, callback=plain.append)
    run(Dirac(steps, t_stop=0.9, guidance=guidance), y, process, prior, callback=guided.append)
    step = guided[1].x - plain[1].x  # same seed: the iterates differ by the guidance term only

    v = y.clone().requires_grad_(True)
    squared = (y - A_1 @ prior(v, 1.0)).pow(2).reshape(2, -1).sum(1)
    (grad,) = torch.autograd.grad(squared.sum(), v)
    residual = squared.detach().sqrt()
    s1, s09 = float(process.sigma(1.0)), float(process.sigma(0.9))
    if isinstance(guidance, StdScaledGuidance):
        eta_t = torch.full((2,), 0.5 * (s1**2 - s09**2) / (2 * s1**2), dtype=f64)
    else:
        eta_t = 0.5 * (s1**2 - s09**2) / residual
    torch.testing.assert_close(step, -eta_t.reshape(-1, 1, 1, 1) * grad, rtol=1e-8, atol=1e-12)
    assert bool(((step * grad).reshape(2, -1).sum(1) < 0).all())
    after = (y - A_1 @ prior(y + step, 1.0)).reshape(2, -1).norm(dim=1)
    assert bool((after < residual).all()), f"{after} vs {residual}"


def test_one_shot_is_phi_at_severity_one(process):
    prior = exact_prior(process)
    y = measure(process, sample_x0(3))
    result = run(Dirac.one_shot(), y, process, prior)
    torch.testing.assert_close(result.x, prior(y, 1.0), rtol=0, atol=0)
    assert result.trace.prior_calls == 1 and len(result.trace.sigma) == 1


@pytest.mark.parametrize("t_stop", [0.5, 0.52])
def test_early_stopping_returns_phi_at_t_stop(t_stop, families):
    process = DegradationProcess(families["blur"])
    prior = exact_prior(process)
    y = measure(process, sample_x0(3))
    full, early = [], []
    run(Dirac(UniformSeverities(20)), y, process, prior, callback=full.append)
    result = run(Dirac(UniformSeverities(20), t_stop=t_stop), y, process, prior, callback=early.append)
    expected_times = [1 - k / 20 for k in range(11)] if t_stop == 0.5 else [1 - k / 20 for k in range(10)] + [0.52]
    assert len(early) == len(expected_times) == result.trace.prior_calls
    sigmas = process.sigma(torch.tensor(expected_times, dtype=f64)).tolist()
    assert result.trace.sigma == pytest.approx(sigmas, rel=1e-12)
    torch.testing.assert_close(result.x, prior(early[-1].x, t_stop), rtol=0, atol=0)
    for a, b in zip(early[:-1], full):  # the same iterates as the full run until the last step
        torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)
    if t_stop == 0.5:
        torch.testing.assert_close(early[-1].x, full[len(early) - 1].x, rtol=0, atol=0)


def test_same_seed_same_result(families):
    process = DegradationProcess(families["mask"])
    prior = exact_prior(process)
    y = measure(process, sample_x0(2))
    solver = Dirac(UniformSeverities(10), guidance=ErrorScaledGuidance(0.1))
    a, b, c = (run(solver, y, process, prior, seed=s).x for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.allclose(a, c)


# ------------------------------------------------------------------------------------------------
# errors


def test_a_must_be_the_measurement_operator(families):
    process = DegradationProcess(families["blur"])
    prior = exact_prior(process)
    y = measure(process, sample_x0(1))
    with pytest.raises(ValueError, match="not the prior's measurement operator"):
        Dirac()(y, process.operator(0.5), prior, progress=False)
    with pytest.raises(ValueError, match=r"A maps \(1, 5, 5\)"):
        Dirac()(y, linops.Identity((1, 5, 5), dtype=f64), prior, progress=False)
    with pytest.raises(ValueError, match=r"y must have shape .*\(B, 1, 6, 6\)"):
        Dirac()(y[0], process.operator(1.0), prior, progress=False)
    with pytest.raises(TypeError, match="degradation-aware prior"):
        Dirac()(y, process.operator(1.0), object(), progress=False)


def test_nan_raises_with_the_step(families):
    process = DegradationProcess(families["blur"])
    prior = exact_prior(process)

    class Poisoned(DegradationAware):
        calls = 0

        def __init__(self):
            self.process = process

        def predict(self, y_t, t):
            type(self).calls += 1
            out = prior.predict(y_t, t)
            return out * float("nan") if type(self).calls == 3 else out

    with pytest.raises(NonFiniteError, match="step 3 of 11"):
        run(Dirac(UniformSeverities(10)), measure(process, sample_x0(1)), process, Poisoned())


def test_invalid_hyperparameters_raise():
    with pytest.raises(ValueError, match="t_stop"):
        Dirac(t_stop=1.5)
    with pytest.raises(TypeError, match="guidance"):
        Dirac(guidance=0.5)
    with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
        StdScaledGuidance(-1.0)
    with pytest.raises(ValueError, match="decrease strictly"):
        SeverityTimes((1.0, 0.5, 0.6, 0.0))


def test_severity_grids():
    grid = UniformSeverities(4)
    assert grid.times().tolist() == [1.0, 0.75, 0.5, 0.25, 0.0] and len(grid) == 4 and grid.dt == 0.25
    assert grid.until(0.5) == [1.0, 0.75, 0.5]
    assert grid.until(0.6) == [1.0, 0.75, 0.6]
    assert grid.until(1.0) == [1.0]
    assert SeverityTimes((1, 0.3, 0)).until(0.0) == [1.0, 0.3, 0.0]


# ------------------------------------------------------------------------------------------------
# the greedy degradation scheduler


def test_greedy_scheduler_splits_the_widest_gap_and_never_widens():
    """With d(a, b) = |sqrt(b) - sqrt(a)| (fast change near 0) the selection crowds towards 0."""
    d = lambda a, b: abs(math.sqrt(b) - math.sqrt(a))  # noqa: E731
    candidates = [k / 100 for k in range(101)]
    history = greedy_severities(d, candidates, 8)
    assert history[0] == (0.0, 1.0) and len(history) == 8 and len(history[-1]) == 9
    widest = []
    for before, after in zip(history, history[1:]):
        assert list(after) == sorted(set(after)) and set(before) < set(after)
        (new,) = set(after) - set(before)
        gaps = list(zip(before, before[1:]))
        largest = max(d(*g) for g in gaps)
        ((a, b),) = [(a, b) for a, b in gaps if a < new < b]
        assert d(a, b) == largest, f"{new} splits ({a}, {b}), not a widest gap"
        widest.append(largest)
    final = history[-1]
    widest.append(max(d(a, b) for a, b in zip(final, final[1:])))
    assert all(w2 <= w1 + 1e-12 for w1, w2 in zip(widest, widest[1:]))
    assert final[1] < 0.05  # sqrt changes fastest near 0
    uniform = [k / 8 for k in range(9)]
    assert widest[-1] < 0.6 * max(d(a, b) for a, b in zip(uniform, uniform[1:]))


def test_greedy_scheduler_on_a_blur_family_gives_a_monotone_warp():
    family = linops.GaussianBlurFamily((1, 12, 12), linops.LinearRamp(0.3, 3.0), dtype=f64)
    images = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(0), dtype=f64)
    scheduler = GreedyDegradationScheduler(intervals=6, candidates=61)
    warp = scheduler(family, images)
    K = 6
    assert warp.times == tuple(k / K for k in range(K + 1))
    assert all(b > a for a, b in zip(warp.values, warp.values[1:]))  # monotone, 0 -> 1
    assert warp.values[0] == 0 and warp.values[-1] == 1
    assert warp.values[1] < 1 / K  # RMS changes fastest at mild blur: knots crowd towards t = 0
    rescheduled = linops.GaussianBlurFamily((1, 12, 12), compose(family.std, warp), dtype=f64)
    for k, s in enumerate(warp.values):
        torch.testing.assert_close(rescheduled.at(k / K) @ images, family.at(s) @ images)
    d = scheduler.distance(family, images)
    greedy = max(d(a, b) for a, b in zip(warp.values, warp.values[1:]))
    uniform = max(d(k / K, (k + 1) / K) for k in range(K))
    assert greedy < uniform
    assert float(rms_distance(images, images).max()) == 0
    with pytest.raises(ValueError, match="at least 7 candidates"):
        GreedyDegradationScheduler(intervals=6, candidates=5)
