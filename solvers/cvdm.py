"""CVDM: sampling a conditional variational diffusion model (della Maggiora et al. 2024; seed 004,
Algorithm 2) with its learned, per-pixel schedule."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .steps import gaussian_like
from .tracking import Result, Tracker


@dataclass
class CVDMResult(Result):
    """A CVDM reconstruction: `x` the per-pixel mean of the samples (one sample when samples = 1),
    `samples` (B, S, *image_shape), and the per-pixel variance over them (`variance`, unbiased; zero for
    one sample), the uncertainty the seed reports."""

    samples: torch.Tensor | None = None

    @property
    def variance(self) -> torch.Tensor:
        if self.samples.shape[1] < 2:
            return torch.zeros_like(self.x)
        return self.samples.var(dim=1)


def discretize(prior, c: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(beta, gamma), each (T, B, 1, H, W) in float64: beta_i = lambda(c) tau(i / T) / T for i = 1..T (clipped
    to [0, 1 - 1e-5] as the public code does) and gamma_i = prod_{j <= i} (1 - beta_j). All T steps at
    once (memory T times the batch); the sampler walks them one at a time."""
    lam, tau = _rates(prior, c, steps)
    beta = torch.stack([_beta(lam, tau, i, steps) for i in range(1, steps + 1)])
    return beta, torch.cumprod(1 - beta, dim=0)


def _rates(prior, c: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lambda(c) (B, 1, H, W), tau(i / T) for i = 1..T), float64."""
    t = torch.arange(1, steps + 1, dtype=torch.float64, device=c.device) / steps
    return prior.lam(c).to(torch.float64), prior.tau(t.to(c.dtype)).to(torch.float64)


def _beta(lam: torch.Tensor, tau: torch.Tensor, i: int, steps: int) -> torch.Tensor:
    return (lam * tau[i - 1] / steps).clamp(0, 1 - 1e-5)


@dataclass(frozen=True)
class CVDM:
    """Ancestral sampling of p(x | y) with the schedule discretised from lambda(y) and tau:

        beta_i = lambda(y) tau(i / T) / T,   gamma_i = prod_{j <= i} (1 - beta_j),   gamma_0 = 1
        z_T ~ N(0, I)
        for i = T..1:
            eps = eps_hat(z_i, y, gamma_i)
            x0 = (z_i - sqrt(1 - gamma_i) eps) / sqrt(gamma_i)
            z_{i-1} = sqrt(gamma_{i-1}) beta_i / (1 - gamma_i) x0
                      + sqrt(1 - beta_i) (1 - gamma_{i-1}) / (1 - gamma_i) z_i + sigma_i n,
            sigma_i^2 = (1 - gamma_{i-1}) beta_i / (1 - gamma_i)

    every quantity per pixel (the posterior q(z_{i-1} | z_i, x0) of the forward process; at i = 1 it
    returns x0). `prior` is a `priors.cvdm.ConditionalDiffusionPrior` (condition, lam, tau, eps). CVDM is
    supervised: it needs no operator. When A is given (`prior.operator()`), the trace holds the data
    residual ||A x0 - y|| of every step's estimate.

    Attributes:
        steps: T (the seed's QPI inference uses 200).
        samples: S samples per measurement, drawn as one batch; the result holds their mean, all of them
            and their per-pixel variance.

    Trace: one record per step, sigma = sqrt((1 - g) / g) with g the image-mean of gamma_i (the
    equivalent VE noise level), estimate x0; per-sample metrics are over the B S samples.
    """

    steps: int = 200
    samples: int = 1

    def __post_init__(self):
        for name in ("steps", "samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"CVDM: {name} must be a positive int, got {v!r}")

    def __call__(self, y, A, prior, *, generator=None, callback=None, progress=True, x_true=None) -> CVDMResult:
        shape = tuple(prior.image_shape)
        if y.ndim != len(shape) + 1 or tuple(y.shape[1:]) != shape:
            raise ValueError(f"y must have shape (B, {', '.join(map(str, shape))}), got {tuple(y.shape)}")
        if A is not None and (tuple(A.in_shape) != shape or tuple(A.out_shape) != shape):
            raise ValueError(f"A maps {tuple(A.in_shape)} -> {tuple(A.out_shape)}, but the prior's images are {shape}")
        B, S = y.shape[0], self.samples
        y = y.repeat_interleave(S, dim=0)
        x_true = None if x_true is None else x_true.repeat_interleave(S, dim=0)
        track = Tracker("CVDM", self.steps, y, A, x_true=x_true, callback=callback, progress=progress)
        eps_hat = track.watch(prior).eps
        T = self.steps
        with torch.no_grad():
            c = prior.condition(y)
            lam, tau = _rates(prior, c, T)
            log_gamma = sum(torch.log1p(-_beta(lam, tau, i, T)) for i in range(1, T + 1))  # log gamma_T
            z = gaussian_like(y, generator)
            for n, i in enumerate(range(T, 0, -1)):
                b = _beta(lam, tau, i, T)
                # gamma_{i-1} = gamma_i / (1 - beta_i), gamma_0 = 1
                log_prev = log_gamma - torch.log1p(-b) if i > 1 else torch.zeros_like(log_gamma)
                g, g_prev = torch.exp(log_gamma), torch.exp(log_prev.clamp(max=0))
                eps = eps_hat(z, c, g.to(z.dtype)).to(torch.float64)
                x0 = (z - torch.sqrt(1 - g) * eps) / torch.sqrt(g)
                mean = torch.sqrt(g_prev) * b / (1 - g) * x0 + torch.sqrt(1 - b) * (1 - g_prev) / (1 - g) * z
                sigma = torch.sqrt((1 - g_prev) * b / (1 - g))
                z = (mean + sigma * gaussian_like(z, generator)).to(y.dtype)
                log_gamma = log_prev
                g_mean = float(g.mean())
                track.step(n, ((1 - g_mean) / g_mean) ** 0.5, z, estimate=x0.to(y.dtype))
        out = track.result(x0.to(y.dtype))
        samples = out.x.reshape(B, S, *shape)
        return CVDMResult(samples.mean(dim=1), out.trace, samples)
