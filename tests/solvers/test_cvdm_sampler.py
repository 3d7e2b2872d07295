"""The CVDM sampler with an exact (untrained) oracle: for x | y ~ N(m(y), diag(v)) per pixel, the noise
predictor E[eps | z_t] is known in closed form, so the sampler's output distribution is known exactly for
each T (its moments follow an affine recursion) and tends to N(m, v) as T grows."""

from __future__ import annotations

import pytest
import torch

from priors.cvdm import GlobalSchedule, LinearSchedule, PixelSchedule
from solvers import CVDM
from solvers.cvdm import discretize

F64 = torch.float64


class GaussianOracle:
    """x | y ~ N(y, diag(v)) per pixel (the condition is y itself), with a given lambda map and the linear
    tau of `LinearSchedule`; eps(z, c, gamma) = E[eps | z] = sqrt(1 - g) (z - sqrt(g) c) / (g v + 1 - g)."""

    def __init__(self, v: torch.Tensor, lam: torch.Tensor):
        self.v, self.lam_map = v, lam
        self.image_shape = tuple(v.shape[1:])
        self.schedule = LinearSchedule().build(1)

    def condition(self, y):
        return y

    def lam(self, c):
        return self.lam_map.to(c).expand(c.shape[0], *self.lam_map.shape[1:])

    def tau(self, t):
        return self.schedule.tau(t)

    def eps(self, z, c, gamma):
        g = gamma.to(F64)
        return (torch.sqrt(1 - g) * (z.to(F64) - torch.sqrt(g) * c) / (g * self.v + 1 - g)).to(z.dtype)


def exact_moments(oracle: GaussianOracle, m: torch.Tensor, steps: int):
    """The mean and variance of the sampler's output, per pixel, by propagating (mean, var) of z through the
    affine steps z_{i-1} = a_i z_i + b_i + sigma_i n (z_T ~ N(0, 1)); independent of the sampler's loop."""
    beta, gamma = discretize(oracle, m, steps)
    gamma = torch.cat([torch.ones_like(gamma[:1]), gamma])
    mean, var = torch.zeros_like(m), torch.ones_like(m)
    for i in range(steps, 0, -1):
        g, g_prev, b = gamma[i], gamma[i - 1], beta[i - 1]
        k = torch.sqrt(1 - g) / (g * oracle.v + 1 - g)  # eps = k (z - sqrt(g) m)
        p, q = (1 - torch.sqrt(1 - g) * k) / torch.sqrt(g), torch.sqrt(1 - g) * k * m  # x0 = p z + q
        if i == 1:
            return p * mean + q, p**2 * var
        c_x0, c_z = torch.sqrt(g_prev) * b / (1 - g), torch.sqrt(1 - b) * (1 - g_prev) / (1 - g)
        mean = (c_x0 * p + c_z) * mean + c_x0 * q
        var = (c_x0 * p + c_z) ** 2 * var + (1 - g_prev) * b / (1 - g)


def _problem(side: int, seed: int = 0, v_min: float = 0.02):
    g = torch.Generator().manual_seed(seed)
    n = side * side
    v = torch.linspace(v_min, 2.0, n, dtype=F64)[torch.randperm(n, generator=g)].reshape(1, 1, side, side)
    lam = torch.linspace(0.7, 2.0, n, dtype=F64)[torch.randperm(n, generator=g)].reshape(1, 1, side, side)
    m = torch.randn(1, 1, side, side, generator=g, dtype=F64)
    return GaussianOracle(v, lam), m


def test_samples_have_the_exact_moments_of_the_discrete_sampler():
    """Per-pixel lambda and v: the empirical mean and variance over S samples match the exact finite-T moments
    to sampling precision (a wrong step, a lost noise term or a per-pixel mix-up breaks this)."""
    oracle, m = _problem(10)
    S, T = 300, 60
    result = CVDM(steps=T, samples=S)(m, None, oracle, generator=torch.Generator().manual_seed(1), progress=False)
    mean, var = exact_moments(oracle, m, T)
    samples = result.samples[0]
    z = (samples.mean(0) - mean) / torch.sqrt(var / S)
    assert float(z.abs().max()) < 4.5 and 0.5 < float((z**2).mean()) < 1.5  # 100 pixels: +-3.5 std
    ratio = samples.var(0) / var
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.03)
    torch.testing.assert_close(result.variance, samples.var(0)[None])
    torch.testing.assert_close(result.x, samples.mean(0)[None])
    # at this T the sampler is measurably off the closed form, and the exact recursion says by how much
    assert float((var / oracle.v).mean()) < 0.95


def test_samples_approach_the_closed_form_posterior():
    """With many steps the output is N(m, v): mean and variance within a few percent for every pixel (v >= 0.3;
    the variance's deficit, O(1 / T), is largest where v is small)."""
    oracle, m = _problem(3, seed=2, v_min=0.3)
    S, T = 1000, 500
    mean, var = exact_moments(oracle, m, T)
    assert float((mean - m).abs().max()) < 0.03 * float(oracle.v.sqrt().max())
    assert 0.95 < float((var / oracle.v).min()) and float((var / oracle.v).max()) <= 1.0
    result = CVDM(steps=T, samples=S)(m, None, oracle, generator=torch.Generator().manual_seed(3), progress=False)
    samples = result.samples[0]
    z = (samples.mean(0) - m) / torch.sqrt(oracle.v / S)
    assert float(z.abs().max()) < 4.5
    assert float((samples.var(0) / oracle.v).mean()) == pytest.approx(1.0, abs=0.05)


def test_constant_lambda_pixel_schedule_samples_like_the_global_schedule():
    """The same denoiser under a per-pixel schedule whose lambda is constant and under the global schedule
    with that constant: identical samples from the same generator."""
    from priors.cvdm import ConditionalDenoiser, ConditionalDiffusionModel, ConditionalDiffusionPrior
    from priors.nets import UNet
    from priors.qpi import PhaseFromDefocus

    measurement = PhaseFromDefocus(size=16)
    net = UNet(1, channels=(4, 8), extra_channels=3, conditional=True, seed=0)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    pixel = PixelSchedule(channels=(4, 8)).build(2, seed=0)
    global_ = GlobalSchedule().build(2)
    global_.load_state_dict({k: v for k, v in pixel.state_dict().items() if not k.startswith("lam.")}, strict=False)
    priors_ = [
        ConditionalDiffusionPrior(ConditionalDiffusionModel(s, ConditionalDenoiser(net)), measurement, convention=None)
        for s in (pixel, global_)
    ]
    y = measurement.simulate(torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)), sigma_I=0.1,
                             generator=torch.Generator().manual_seed(2))
    runs = [CVDM(steps=20)(y, None, p, generator=torch.Generator().manual_seed(5), progress=False) for p in priors_]
    torch.testing.assert_close(runs[0].x, runs[1].x)
    assert float(runs[0].x.std()) > 0


def test_trace_residual_with_an_operator_and_errors():
    from priors.qpi import PhaseFromDefocus

    oracle, m = _problem(8)
    A = PhaseFromDefocus(size=8).operator(F64)
    y = m
    result = CVDM(steps=10, samples=3)(y, A, oracle, generator=torch.Generator().manual_seed(0), progress=False,
                                       x_true=m.repeat(2, 1, 1, 1)[:1])
    trace = result.trace
    assert len(trace.residual) == 10 and trace.residual[-1].shape == (3,)
    expected = (A @ result.samples[0] - y).reshape(3, -1).norm(dim=1)
    torch.testing.assert_close(trace.residual[-1], expected)
    assert trace.prior_calls == 10 and len(trace.mse) == 10 and trace.sigma[0] > trace.sigma[-1]
    again = CVDM(steps=10, samples=3)(y, A, oracle, generator=torch.Generator().manual_seed(0), progress=False)
    torch.testing.assert_close(again.samples, result.samples)  # same generator, same samples
    with pytest.raises(ValueError, match=r"y must have shape \(B, 1, 8, 8\)"):
        CVDM(steps=2)(y[..., :4], None, oracle, progress=False)
    with pytest.raises(ValueError, match="A maps"):
        CVDM(steps=2)(y, PhaseFromDefocus(size=16).operator(F64), oracle, progress=False)
    with pytest.raises(ValueError, match="samples must be a positive int"):
        CVDM(samples=0)
