"""Conditional variational diffusion (CVDM; della Maggiora et al. 2024, seed 004): a conditional prior p(x | y)
trained on pairs (x, y), whose variance schedule is learned, per pixel, from y.

Forward process (variance preserving), for t in [0, 1] and every pixel:

    z_t = sqrt(gamma) x + sqrt(1 - gamma) eps,     gamma(t, y) = exp(-lambda(y) rho(t)),

with lambda(y) > 0 a map over the image (a small U-Net with a softplus output) and rho increasing in t with
rho(0) = 0 (a positive-weight monotone network times t), so gamma(0) = 1 and gamma is non-increasing in t
for every pixel by construction. The schedule's rate is beta(t, y) = lambda(y) tau(t), tau > 0 a second
monotone network; continuous time ties the two by d gamma / dt = -beta gamma, which the loss enforces.

The schedule is a `ConditionalSchedule` of three parts, and the seed's ablation differs only in which:

    PixelSchedule   lambda(y) a U-Net of the condition, rho and tau learned      (CVDM)
    GlobalSchedule  lambda a learned constant, rho and tau learned               (CVDM-simple)
    LinearSchedule  lambda = 1, tau(t) = b0 + (b1 - b0) t, rho its integral      (conditional DDPM: fixed,
                    beta_i = tau(i / T) / T is DDPM's linear schedule, b0 = 0.1, b1 = 20 <-> 1e-4..0.02 at T = 1000)

The denoiser eps_hat(z_t, y, gamma) gets the gamma map as an input channel, beside z_t and the condition
(`ConditionalDenoiser`).

Loss (Sections 3.2-3.4, eq. 6; per pixel, averaged; the public code's weights w = (1, 2, 2, 2), alpha = 1e-3):

    L = w0 ||eps - eps_hat(z_t, y, gamma)||^2
      + w1 [ (d gamma/dt + beta gamma)^2 + (gamma(t_0, y) - 1)^2 + gamma(t_1, y)^2 ]        (L_beta)
      + w2 KL(q(z_{t_1} | x, y) || N(0, I))                                              (prior term)
      + w3 alpha (d^2 gamma / dt^2)^2                                                    (regulariser)

t ~ U[0, 1] per image, t_0 = 1 / T and t_1 = 1 - 1 / T (the public code's boundary times, T = 200). The
time derivatives are exact (autograd through rho): d gamma/dt = -lambda rho' gamma and d^2 gamma/dt^2 =
gamma (lambda^2 rho'^2 - lambda rho''). The KL of q(z_1 | x) = N(sqrt(g) x, (1 - g) I) to N(0, I) is
(g (x^2 - 1) - log(1 - g)) / 2 per pixel, as in the seed's ELBO (the public code evaluates the reverse
direction, KL(N(0, I) || q); both vanish only at g = 0).

Sampling (Algorithm 2) is `solvers.CVDM`: beta_i = lambda(y) tau(i / T) / T, gamma_i = prod_{j <= i} (1 - beta_j),
then ancestral steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .nets import UNet
from .protocol import Convention
from .qpi import PhaseFromDefocus

GAMMA_MIN, GAMMA_MAX = 1e-6, 1 - 1e-5  # the public code's clip of gamma


def inverse_softplus(y: float) -> float:
    """softplus^{-1}(y) = log(e^y - 1), stable for large y."""
    return y + math.log(-math.expm1(-y))


# ----------------------------------------------------------------------------------------------
# the parts of a schedule


class MonotoneNet(nn.Module):
    """An increasing, positive function of t in [0, 1] (seed Appendix G: a residual block of three layers,
    the middle one a sigmoid, all weights positive):

        a(t) = w1 t + b1,   h(t) = sigmoid(W2 a(t) + b2),   g(t) = a(t) + w3 . h(t) / n + b3,
        f(t) = softplus(g(t)) * t   (`through_zero`, so f(0) = 0)   or   softplus(g(t)),

    with w1, W2, w3 >= 0 (softplus of free parameters), so g is non-decreasing and f is increasing.
    [ours] The output softplus makes f positive (the public code's output is linear); it starts near
    `initial` * t (or `initial`). t is a (N,) tensor; so is f(t).
    """

    def __init__(self, hidden: int = 64, initial: float = 10.0, through_zero: bool = True):
        super().__init__()
        self.through_zero = through_zero
        self.w1 = nn.Parameter(torch.tensor(-3.0))
        self.b1 = nn.Parameter(torch.tensor(0.0))
        self.w2 = nn.Parameter(torch.linspace(-2.0, 2.0, hidden))
        self.b2 = nn.Parameter(torch.linspace(-4.0, 4.0, hidden))
        self.w3 = nn.Parameter(torch.full((hidden,), -3.0))
        self.b3 = nn.Parameter(torch.tensor(inverse_softplus(initial)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        a = F.softplus(self.w1) * t + self.b1
        h = torch.sigmoid(F.softplus(self.w2) * a[..., None] + self.b2)
        g = a + (h * F.softplus(self.w3)).mean(-1) + self.b3
        out = F.softplus(g)
        return out * t if self.through_zero else out


class PixelLambda(nn.Module):
    """lambda(c) = softplus(UNet(c)) > 0, one value per pixel (c the condition, (B, C, H, W)); it starts
    at 1 everywhere (the U-Net's head is zero-initialised)."""

    def __init__(self, condition_channels: int, channels=(16, 32), seed: int | None = None):
        super().__init__()
        self.net = UNet(condition_channels, 1, channels=channels, conditional=False, seed=seed)
        self.offset = inverse_softplus(1.0)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.net(c) + self.offset)


class GlobalLambda(nn.Module):
    """lambda = softplus(g l), one learned constant for every pixel and every condition (starts at 1).

    [ours] The gain g = 10 makes the lone parameter l move as fast under Adam as the output of the pixel
    schedule's U-Net does (Adam bounds each parameter's step by the learning rate, and that output sums
    many weights): without it, CVDM-simple's schedule would lag behind CVDM's for optimisation reasons
    alone in a short run (1 unit of lr-sum moves softplus(l) by about 0.5)."""

    gain = 10.0

    def __init__(self):
        super().__init__()
        self.raw = nn.Parameter(torch.tensor(inverse_softplus(1.0) / self.gain))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.gain * self.raw).expand(c.shape[0], 1, *c.shape[2:])


class UnitLambda(nn.Module):
    """lambda = 1 (a fixed schedule)."""

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return c.new_ones(c.shape[0], 1, *c.shape[2:])


class LinearBeta(nn.Module):
    """tau(t) = b0 + (b1 - b0) t, or its integral rho(t) = b0 t + (b1 - b0) t^2 / 2 (`integral`)."""

    def __init__(self, beta_min: float, beta_max: float, integral: bool):
        super().__init__()
        self.beta_min, self.beta_max, self.integral = float(beta_min), float(beta_max), integral

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        b0, b1 = self.beta_min, self.beta_max
        return b0 * t + (b1 - b0) * t**2 / 2 if self.integral else b0 + (b1 - b0) * t


class ConditionalSchedule(nn.Module):
    """gamma(t, c) = exp(-lambda(c) rho(t)) and beta(t, c) = lambda(c) tau(t), from three modules:
    `lam` (c (B, C, H, W) -> (B, 1, H, W), positive), `rho` and `tau` ((N,) -> (N,))."""

    def __init__(self, lam: nn.Module, rho: nn.Module, tau: nn.Module):
        super().__init__()
        self.lam, self.rho, self.tau = lam, rho, tau

    @staticmethod
    def _per_sample(v: torch.Tensor) -> torch.Tensor:
        return v.reshape(-1, 1, 1, 1)

    def gamma(self, t: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """gamma for t (B,) and a lambda map (B, 1, H, W) (or t a float)."""
        t = torch.as_tensor(t, dtype=lam.dtype, device=lam.device).expand(lam.shape[0])
        return torch.exp(-lam * self._per_sample(self.rho(t)))

    def beta(self, t: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=lam.dtype, device=lam.device).expand(lam.shape[0])
        return lam * self._per_sample(self.tau(t))

    def rho_derivatives(self, t: torch.Tensor):
        """(rho, rho', rho'') at t (B,), differentiable (for the loss)."""
        t = t.detach().requires_grad_(True)
        with torch.enable_grad():
            r = self.rho(t)
            (r_t,) = torch.autograd.grad(r.sum(), t, create_graph=True)
            (r_tt,) = torch.autograd.grad(r_t.sum(), t, create_graph=True, allow_unused=True)
        return r, r_t, torch.zeros_like(r_t) if r_tt is None else r_tt


@dataclass(frozen=True)
class PixelSchedule:
    """CVDM: lambda(y) per pixel (a U-Net of the condition with these channels), rho and tau learned."""

    channels: tuple[int, ...] = (16, 32)
    hidden: int = 64

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    def build(self, condition_channels: int, seed: int | None = None) -> ConditionalSchedule:
        return ConditionalSchedule(
            PixelLambda(condition_channels, self.channels, seed),
            MonotoneNet(self.hidden, through_zero=True),
            MonotoneNet(self.hidden, through_zero=False),
        )


@dataclass(frozen=True)
class GlobalSchedule:
    """CVDM-simple: one learned lambda for every pixel, rho and tau learned."""

    hidden: int = 64

    def build(self, condition_channels: int, seed: int | None = None) -> ConditionalSchedule:
        return ConditionalSchedule(
            GlobalLambda(), MonotoneNet(self.hidden, through_zero=True), MonotoneNet(self.hidden, through_zero=False)
        )


@dataclass(frozen=True)
class LinearSchedule:
    """The conditional DDPM: fixed, lambda = 1, tau(t) = beta_min + (beta_max - beta_min) t."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        if not 0 < self.beta_min <= self.beta_max:
            raise ValueError(f"need 0 < beta_min <= beta_max, got {self.beta_min}, {self.beta_max}")

    def build(self, condition_channels: int, seed: int | None = None) -> ConditionalSchedule:
        return ConditionalSchedule(
            UnitLambda(),
            LinearBeta(self.beta_min, self.beta_max, integral=True),
            LinearBeta(self.beta_min, self.beta_max, integral=False),
        )


ScheduleSpec = PixelSchedule | GlobalSchedule | LinearSchedule
SCHEDULES = {cls.__name__: cls for cls in (PixelSchedule, GlobalSchedule, LinearSchedule)}


# ----------------------------------------------------------------------------------------------
# the denoiser and the model


def equivalent_sigma(gamma: torch.Tensor) -> torch.Tensor:
    """sqrt((1 - g) / g) with g the mean of gamma over each image: the VE noise level of the image's
    average signal-to-noise ratio, shape (B,)."""
    g = gamma.reshape(gamma.shape[0], -1).mean(1).clamp(GAMMA_MIN, GAMMA_MAX)
    return torch.sqrt((1 - g) / g)


class ConditionalDenoiser(nn.Module):
    """eps_hat(z, c, gamma) = UNet([z, c, gamma], equivalent_sigma(gamma)): the noise prediction from the
    latent z (B, 1, H, W), the condition c (B, C, H, W) and the gamma map (B, 1, H, W), all as input
    channels (seed Appendix G). [ours] The U-Net is also told the image's mean noise level through its
    sigma embedding, which a network this small needs to read the level reliably."""

    def __init__(self, net: UNet):
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        return self.net(z, equivalent_sigma(gamma), torch.cat([c, gamma.to(z.dtype)], dim=1))


class ConditionalDiffusionModel(nn.Module):
    """The trained pair: the schedule and the denoiser. `config` records how it was built (JSON-able)."""

    def __init__(self, schedule: ConditionalSchedule, denoiser: ConditionalDenoiser, config: dict | None = None):
        super().__init__()
        self.schedule, self.denoiser = schedule, denoiser
        self.config = dict(config or {})


class LossTerms(NamedTuple):
    """The four terms of the CVDM loss (each already averaged over pixels and the batch) and their
    weighted sum."""

    noise: torch.Tensor
    beta: torch.Tensor
    kl: torch.Tensor
    regularizer: torch.Tensor
    total: torch.Tensor


def prior_kl(gamma_1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """KL(N(sqrt(g) x0, 1 - g) || N(0, 1)) per pixel = (g (x0^2 - 1) - log(1 - g)) / 2."""
    g = gamma_1.clamp(max=GAMMA_MAX)
    return 0.5 * (g * (x0**2 - 1) - torch.log1p(-g))


@dataclass(frozen=True)
class CVDMLoss:
    """loss(model, x0, generator): the CVDM loss (module docstring) of clean images x0 (B, 1, H, W) in
    model units, their measurements simulated by `measurement` (new noise every call).

    Attributes:
        measurement: the forward model that makes y from x0, and the network's view of y.
        alpha: the weight of the second-derivative regulariser (public code: 1e-3).
        weights: (noise, L_beta, KL, regulariser) (public code: 1, 2, 2, 2).
        steps: T; the boundary terms use t_0 = 1 / T and t_1 = 1 - 1 / T (public code: 200).
    """

    measurement: PhaseFromDefocus
    alpha: float = 1e-3
    weights: tuple[float, float, float, float] = (1.0, 2.0, 2.0, 2.0)
    steps: int = 200

    def __call__(self, model: ConditionalDiffusionModel, x0: torch.Tensor, generator: torch.Generator):
        return self.terms(model, x0, generator).total

    def terms(self, model: ConditionalDiffusionModel, x0: torch.Tensor, generator: torch.Generator) -> LossTerms:
        schedule = model.schedule
        B = x0.shape[0]
        c = self.measurement.condition(self.measurement.simulate(x0, generator))
        lam = schedule.lam(c)
        t = torch.rand(B, generator=generator, dtype=x0.dtype, device=generator.device).to(x0.device)
        rho, rho_t, rho_tt = (schedule._per_sample(v) for v in schedule.rho_derivatives(t))
        gamma = torch.exp(-lam * rho)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=generator.device).to(x0.device)
        g = gamma.clamp(GAMMA_MIN, GAMMA_MAX)
        z = torch.sqrt(g) * x0 + torch.sqrt(1 - g) * eps
        noise = torch.mean((model.denoiser(z, c, g) - eps) ** 2)

        beta = lam * schedule._per_sample(schedule.tau(t))
        d_gamma = -lam * rho_t * gamma
        gamma_0 = schedule.gamma(1 / self.steps, lam)
        gamma_1 = schedule.gamma(1 - 1 / self.steps, lam)
        l_beta = torch.mean((d_gamma + beta * gamma) ** 2 + (gamma_0 - 1) ** 2 + gamma_1**2)
        kl = torch.mean(prior_kl(gamma_1, x0))
        d2_gamma = gamma * (lam**2 * rho_t**2 - lam * rho_tt)
        regularizer = self.alpha * torch.mean(d2_gamma**2)
        w = self.weights
        total = w[0] * noise + w[1] * l_beta + w[2] * kl + w[3] * regularizer
        return LossTerms(noise, l_beta, kl, regularizer, total)


class ConditionalDiffusionPrior(nn.Module):
    """p(x | y) as a trained conditional diffusion: what the CVDM sampler (`solvers.CVDM`) calls.

        c = prior.condition(y)            the network's view of a measurement y (B, 1, H, W)
        lam = prior.lam(c)                lambda(y), (B, 1, H, W)
        prior.tau(t), prior.rho(t)        (N,) -> (N,)
        prior.gamma(t, lam)               exp(-lambda rho(t)), the continuous schedule
        prior.eps(z, c, gamma)            the noise prediction
        prior.operator()                  the measurement operator A (model units -> y)

    x is in the model's units (`convention`; see `priors.qpi`). Differentiable; an nn.Module.
    """

    def __init__(self, model: ConditionalDiffusionModel, measurement: PhaseFromDefocus, *, convention: Convention):
        super().__init__()
        if not isinstance(model, ConditionalDiffusionModel):
            raise TypeError(f"model must be a ConditionalDiffusionModel, got {type(model).__name__}")
        self.model = model
        self.measurement = measurement
        self.convention = convention

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.measurement.image_shape

    def operator(self, dtype: torch.dtype = torch.float32, device="cpu"):
        return self.measurement.operator(dtype, device)

    def condition(self, y: torch.Tensor) -> torch.Tensor:
        return self.measurement.condition(y)

    def lam(self, c: torch.Tensor) -> torch.Tensor:
        return self.model.schedule.lam(c)

    def rho(self, t: torch.Tensor) -> torch.Tensor:
        return self.model.schedule.rho(t)

    def tau(self, t: torch.Tensor) -> torch.Tensor:
        return self.model.schedule.tau(t)

    def gamma(self, t, lam: torch.Tensor) -> torch.Tensor:
        return self.model.schedule.gamma(t, lam)

    def eps(self, z: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        out = self.model.denoiser(z, c, gamma)
        if out.shape != z.shape:
            raise ValueError(f"the denoiser returned {tuple(out.shape)} for z of shape {tuple(z.shape)}")
        return out

    def forward(self, z: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        return self.eps(z, c, gamma)
