"""CVDM's schedule and loss (priors.cvdm) and the TIE measurement (priors.qpi): exact properties of the
schedule for every pixel, the loss's derivatives against finite differences, its KL against torch's, the
ablation variants as settings of one class."""

from __future__ import annotations

import math

import pytest
import torch

from priors.cvdm import (
    ConditionalDenoiser,
    ConditionalDiffusionModel,
    ConditionalSchedule,
    CVDMLoss,
    GlobalSchedule,
    LinearSchedule,
    MonotoneNet,
    PixelSchedule,
    prior_kl,
)
from priors.nets import UNet
from priors.qpi import PhaseFromDefocus

F64 = torch.float64


def _perturbed_pixel_schedule(seed: int = 0) -> ConditionalSchedule:
    """A PixelSchedule with random (not zero-initialised) heads, so lambda(y) varies over the pixels and rho
    and tau are not near-linear."""
    schedule = PixelSchedule(channels=(4, 8)).build(2, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in schedule.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return schedule.double()


def test_gamma_is_non_increasing_in_t_for_every_pixel_and_starts_at_one():
    schedule = _perturbed_pixel_schedule()
    c = torch.randn(3, 2, 12, 12, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.no_grad():
        lam = schedule.lam(c)
        assert float(lam.std()) > 0.05 and bool((lam > 0).all())  # a genuinely per-pixel schedule
        t = torch.linspace(0, 1, 201, dtype=F64)
        gammas = torch.stack([schedule.gamma(float(s), lam) for s in t])  # (201, B, 1, H, W)
    assert bool((gammas.diff(dim=0) <= 0).all())
    assert bool((gammas[0] == 1).all())  # rho(0) = 0 exactly
    assert bool((gammas[1:] < 1).all())
    # beta = lambda tau > 0 for every pixel and time
    assert bool((schedule.beta(t[:5], lam[:1].expand(5, -1, -1, -1)) > 0).all())


def test_monotone_net_is_increasing_whatever_its_weights():
    g = torch.Generator().manual_seed(0)
    for through_zero in (True, False):
        net = MonotoneNet(hidden=16, through_zero=through_zero).double()
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(3 * torch.randn(p.shape, generator=g, dtype=F64))
            f = net(torch.linspace(0, 1, 501, dtype=F64))
        assert bool((f.diff() >= 0).all()) and bool((f[1:] > 0).all())
        assert (float(f[0]) == 0.0) is through_zero


def test_constant_lambda_is_a_global_schedule():
    """A PixelSchedule whose lambda network outputs a constant (its zero-initialised head) gives the same
    gamma and beta as the GlobalSchedule with that constant, for every pixel and condition."""
    pixel = PixelSchedule(channels=(4, 8)).build(2, seed=0).double()
    global_ = GlobalSchedule().build(2).double()
    global_.rho.load_state_dict(pixel.rho.state_dict())
    global_.tau.load_state_dict(pixel.tau.state_dict())
    c = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    with torch.no_grad():
        lam_p, lam_g = pixel.lam(c), global_.lam(c)
        torch.testing.assert_close(lam_p, lam_g)
        assert bool((lam_g == lam_g.flatten()[0]).all())
        for t in (0.1, 0.5, 0.9):
            torch.testing.assert_close(pixel.gamma(t, lam_p), global_.gamma(t, lam_g))
            torch.testing.assert_close(pixel.beta(t, lam_p), global_.beta(t, lam_g))


def test_linear_schedule_is_the_ddpm_schedule():
    """lambda = 1, tau(t) = b0 + (b1 - b0) t, gamma = exp(-(b0 t + (b1 - b0) t^2 / 2)); discretised with T = 1000,
    beta_i = tau(i / T) / T runs from 1e-4 to 0.02 (DDPM's linear betas); d gamma/dt = -beta gamma exactly."""
    schedule = LinearSchedule(0.1, 20.0).build(2).double()
    assert not list(schedule.parameters())
    c = torch.zeros(1, 2, 4, 4, dtype=F64)
    lam = schedule.lam(c)
    assert bool((lam == 1).all())
    t = torch.tensor([0.3], dtype=F64)
    torch.testing.assert_close(schedule.gamma(t, lam), torch.full_like(lam, math.exp(-(0.1 * 0.3 + 19.9 * 0.09 / 2))))
    T = 1000
    betas = schedule.tau(torch.arange(1, T + 1, dtype=F64) / T) / T
    assert float(betas[-1]) == pytest.approx(0.02) and float(betas[0]) == pytest.approx(1e-4, rel=0.25)
    _, rho_t, _ = schedule.rho_derivatives(t)
    torch.testing.assert_close(rho_t, schedule.tau(t))


def _tiny_model(spec, condition_channels=2, seed=0) -> ConditionalDiffusionModel:
    net = UNet(1, channels=(4, 8), extra_channels=condition_channels + 1, conditional=True, seed=seed)
    return ConditionalDiffusionModel(spec.build(condition_channels, seed=seed), ConditionalDenoiser(net))


def test_time_derivatives_of_gamma_match_finite_differences():
    """The loss's d gamma/dt = -lambda rho' gamma and d^2 gamma/dt^2 = gamma (lambda^2 rho'^2 - lambda rho'')
    (autograd through rho) against central differences of gamma itself, for every pixel."""
    schedule = _perturbed_pixel_schedule(3)
    c = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=F64)
    t = torch.tensor([0.2, 0.7], dtype=F64)
    with torch.no_grad():
        lam = schedule.lam(c)
    rho, rho_t, rho_tt = (v.detach().reshape(-1, 1, 1, 1) for v in schedule.rho_derivatives(t))
    gamma = torch.exp(-lam * rho)
    d1 = -lam * rho_t * gamma
    d2 = gamma * (lam**2 * rho_t**2 - lam * rho_tt)
    h = 1e-4
    with torch.no_grad():
        g_plus, g_0, g_minus = (schedule.gamma(t + s, lam) for s in (h, 0.0, -h))
    torch.testing.assert_close(g_0, gamma)
    torch.testing.assert_close(d1, (g_plus - g_minus) / (2 * h), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(d2, (g_plus - 2 * g_0 + g_minus) / h**2, rtol=1e-4, atol=1e-5)


def test_prior_kl_is_the_gaussian_kl():
    g = torch.tensor([1e-4, 0.05, 0.5, 0.9], dtype=F64)
    x0 = torch.tensor([0.3, -1.2, 0.7, 2.0], dtype=F64)
    q = torch.distributions.Normal(g.sqrt() * x0, (1 - g).sqrt())
    p = torch.distributions.Normal(torch.zeros(4, dtype=F64), torch.ones(4, dtype=F64))
    torch.testing.assert_close(prior_kl(g, x0), torch.distributions.kl_divergence(q, p))


@pytest.mark.parametrize("spec", [PixelSchedule(channels=(4, 8)), GlobalSchedule(), LinearSchedule()], ids=repr)
def test_loss_terms_and_gradients(spec):
    """Every term is finite and non-negative; the schedule's parameters get gradients (the fixed schedule has
    none, and its ODE term is zero)."""
    measurement = PhaseFromDefocus(size=16)
    model = _tiny_model(spec)
    loss = CVDMLoss(measurement)
    x0 = 0.3 * torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    terms = loss.terms(model, x0, torch.Generator().manual_seed(1))
    assert all(bool(torch.isfinite(v)) and float(v.detach()) >= 0 for v in terms)
    w = loss.weights
    expected = w[0] * terms.noise + w[1] * terms.beta + w[2] * terms.kl + w[3] * terms.regularizer
    torch.testing.assert_close(terms.total, expected)
    terms.total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
    schedule_params = list(model.schedule.parameters())
    if isinstance(spec, LinearSchedule):
        assert not schedule_params
    else:
        assert any(float(p.grad.abs().sum()) > 0 for p in schedule_params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # a different global state changes nothing: all randomness is the generator's
        again = loss.terms(model, x0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.total, terms.total)


def test_loss_refuses_a_measurement_of_another_size():
    from priors.zoo import recipe

    with pytest.raises(ValueError, match="PhaseFromDefocus"):
        recipe("cvdm-qpi").objective.loss((1, 32, 32))


# ----------------------------------------------------------------------------------------------
# the measurement


def test_simulated_noise_has_the_two_shot_level():
    """y - A x = noise of std sigma_I / (sqrt(2) dz)."""
    m = PhaseFromDefocus(size=32, defocus=0.5)
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=F64)
    y = m.simulate(x, torch.Generator().manual_seed(1), sigma_I=0.2)
    noise = y - m.operator(F64) @ x
    assert float(noise.std()) == pytest.approx(0.2 / (math.sqrt(2) * 0.5), rel=0.03)
    drawn = m.simulate(x, torch.Generator().manual_seed(1))  # sigma_I ~ U(0, 0.2) per image
    per_image = (drawn - m.operator(F64) @ x).reshape(4, -1).std(1)
    assert bool((per_image < 0.2 / (math.sqrt(2) * 0.5) * 1.05).all()) and float(per_image.std()) > 0


def test_regularized_inverse_recovers_zero_mean_phase_and_condition_shape():
    m = PhaseFromDefocus(size=16)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    x = x - x.mean((-2, -1), keepdim=True)
    y = m.operator(F64) @ x
    torch.testing.assert_close(m.regularized_inverse(y, 1e-12), x, rtol=1e-6, atol=1e-6)
    assert m.condition(y).shape == (2, 2, 16, 16)
    with pytest.raises(ValueError, match=r"y must have shape \(B, 1, 16, 16\)"):
        m.condition(y[:, :, :8])
    with pytest.raises(ValueError, match="noise"):
        PhaseFromDefocus(noise=(0.3, 0.1))


# ----------------------------------------------------------------------------------------------
# the bundled conditional priors


@pytest.mark.parametrize("name", ["cvdm-qpi", "cvdm-simple-qpi", "cddpm-qpi"])
def test_bundled_schedules_are_monotone_and_meet_their_boundaries(name):
    """On held-out measurements: gamma non-increasing in t for every pixel, gamma(1 / T) close to 1 and
    gamma(1 - 1 / T) small for every pixel (the boundary terms of L_beta, balanced against the regulariser:
    see the model card), lambda(y) varying over the pixels only for the per-pixel schedule."""
    import priors
    from priors.data import Split
    from priors.zoo import recipe, training_images

    r = recipe(name)
    prior = priors.load(name)
    x, _ = training_images(r, Split.TEST, 2)
    with torch.no_grad():
        c = prior.condition(r.objective.measurement.simulate(x, torch.Generator().manual_seed(0), 0.1))
        lam = prior.lam(c)
        gammas = torch.stack([prior.gamma(float(t), lam) for t in torch.linspace(0, 1, 101)])
    T = r.objective.steps
    assert bool((gammas.diff(dim=0) <= 0).all()) and bool((gammas[0] == 1).all())
    assert float(prior.gamma(1 / T, lam).min()) > 0.95
    assert float(prior.gamma(1 - 1 / T, lam).max()) < GAMMA_1_BOUND[name]
    spatial = float(lam.reshape(2, -1).std(1).max())
    assert (spatial > 1e-3) if name == "cvdm-qpi" else (spatial == 0.0)


GAMMA_1_BOUND = {"cvdm-qpi": 0.2, "cvdm-simple-qpi": 0.2, "cddpm-qpi": 1e-4}
