"""Denoising score matching (DSM) for whole-image priors.

For clean images x0, log sigma ~ U[log sigma_min, log sigma_max] (one per image), eps ~ N(0, I) and
x = x0 + sigma eps, the loss is the mean squared error of the network's prediction:

    target EPS:  L = E || f(x, sigma) - eps ||^2 / n        (f predicts the noise)
    target X0:   L = E || f(x, sigma) - x0  ||^2 / n        (f predicts the clean image)

with f(x, sigma) for a noise-conditional network and f(x) for a blind one. Its minimiser is the
MMSE predictor (Tweedie): f* = E[eps | x] or E[x0 | x]. For Gaussian data N(mu, Sigma) with
eigenvalues lam_i the minimum is known in closed form (see `gaussian_dsm_minimum`): the per-pixel
error of E[x0 | x] is lam sigma^2 / (lam + sigma^2), so that of E[eps | x] is lam / (lam + sigma^2),
averaged over the log-uniform sigma:

    EPS: mean_i [log(1 + lam_i / sigma_min^2) - log(1 + lam_i / sigma_max^2)] / (2 log(sigma_max / sigma_min))
    X0:  mean_i lam_i [log(lam_i + sigma_max^2) - log(lam_i + sigma_min^2)] / (2 log(sigma_max / sigma_min))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..network import Conditioning, Prediction


@dataclass(frozen=True)
class DSMLoss:
    """loss(model, x0, generator): the DSM loss of one batch of clean images x0 (B, ...).

    Attributes:
        sigma_min, sigma_max: the log-uniform range of training noise levels (in the data's units).
        target: `Prediction.EPS` or `Prediction.X0`.
        conditioning: `Conditioning.NOISE_LEVEL` (model(x, sigma), sigma of shape (B,)) or `.BLIND` (model(x)).
    """

    sigma_min: float
    sigma_max: float
    target: Prediction = Prediction.EPS
    conditioning: Conditioning = Conditioning.NOISE_LEVEL

    def __post_init__(self):
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.target not in (Prediction.EPS, Prediction.X0):
            raise ValueError(
                f"DSMLoss trains EPS or X0 targets, got {self.target!r}; a score network is an EPS network "
                "divided by -sigma (train it as EPS)."
            )
        if not isinstance(self.conditioning, Conditioning):
            raise TypeError(f"conditioning must be a Conditioning, got {self.conditioning!r}")

    def sample_sigma(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n noise levels, log-uniform on [sigma_min, sigma_max] (float64, on the generator's device)."""
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        return torch.exp(lo + u * (hi - lo))

    def __call__(self, model: nn.Module, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        B = x0.shape[0]
        sigma = self.sample_sigma(B, generator).to(device=x0.device, dtype=x0.dtype)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=generator.device).to(x0.device)
        x = x0 + sigma.reshape(-1, *([1] * (x0.ndim - 1))) * eps
        out = model(x) if self.conditioning is Conditioning.BLIND else model(x, sigma)
        target = eps if self.target is Prediction.EPS else x0
        return torch.mean((out - target) ** 2)

    def gaussian_minimum(self, eigenvalues: torch.Tensor) -> float:
        """The smallest achievable loss on Gaussian data with covariance eigenvalues `eigenvalues`
        (a noise-conditional model; see the module docstring)."""
        return gaussian_dsm_minimum(eigenvalues, self.sigma_min, self.sigma_max, self.target)


def gaussian_dsm_minimum(eigenvalues, sigma_min: float, sigma_max: float, target: Prediction = Prediction.EPS) -> float:
    """E over log-uniform sigma of the per-pixel MMSE of eps (or x0) for Gaussian data with these
    covariance eigenvalues (all n of them, e.g. `GaussianPrior.basis.eigenvalues()`)."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)
    span = 2 * (math.log(sigma_max) - math.log(sigma_min))
    if span == 0:
        s2 = sigma_min**2
        per = lam / (lam + s2) if target is Prediction.EPS else lam * s2 / (lam + s2)
        return float(per.mean())
    if target is Prediction.EPS:
        per = torch.log1p(lam / sigma_min**2) - torch.log1p(lam / sigma_max**2)
    elif target is Prediction.X0:
        per = lam * (torch.log(lam + sigma_max**2) - torch.log(lam + sigma_min**2))
    else:
        raise ValueError(f"target must be Prediction.EPS or Prediction.X0, got {target!r}")
    return float(per.mean() / span)
