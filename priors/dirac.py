"""Degradation-aware priors (Dirac; Fabian et al. 2023, seed 002): Phi(y_t, t) predicts the clean image
from a degraded, noisy observation of severity t, and is trained with the incremental-reconstruction loss.

The stochastic degradation process (`DegradationProcess`) couples a severity family A_t
(`linops.GaussianBlurFamily`, `linops.GaussianMaskFamily`, ...) with a geometric noise schedule:

    y_t = A_t x0 + sigma_t z,   z ~ N(0, I),   sigma_t = sigma_0 (sigma_1 / sigma_0)^t,  t in [0, 1]

([inferred] sigma_0 = 0.01, sigma_1 = 0.05 for images in [0, 1]). t may differ per sample: a float,
or a tensor of shape (B,) for a batch (then A_t acts sample-wise, see linops.operators.severity).

A `DegradationAware` object maps (y_t, t) to x0_hat = Phi(y_t, t) and carries its `process`, which a
Dirac sampler needs (A_t, sigma_t). `DegradationAwarePrior` wraps a network; the exact posterior mean
for Gaussian data is `priors.dirac_gaussian.GaussianDegradationAwarePrior`.

Incremental-reconstruction loss (the paper's Eq. 14), with tau = max(t - dt, 0) and t ~ U[0, 1]:

    L_IR = E_{t, x0, z} w(t) || A_tau(Phi(y_t, t)) - A_tau(x0) ||^2 / n,    w(t) = 1 / sigma_t^2 [inferred]

dt = 0 is score matching in the degraded domain (A_t Phi vs A_t x0), tau = 0 (dt = 1) a plain x0 loss
(A_0 close to I). Since E[x0 | y_t] minimises E || L (Phi(y_t) - x0) ||^2 for every linear L, the exact
posterior mean minimises L_IR for every dt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from linops import LinearOperator, SeverityFamily

from .protocol import UNIT, Convention


@dataclass(frozen=True)
class GeometricNoise:
    """sigma_t = sigma_0 (sigma_1 / sigma_0)^t for t in [0, 1] (float64 tensor of t's shape)."""

    sigma_0: float = 0.01
    sigma_1: float = 0.05

    def __post_init__(self):
        if not 0 < self.sigma_0 <= self.sigma_1:
            raise ValueError(f"need 0 < sigma_0 <= sigma_1, got {self.sigma_0}, {self.sigma_1}")

    def __call__(self, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        return self.sigma_0 * (self.sigma_1 / self.sigma_0) ** t


def _severity(t, x: torch.Tensor) -> torch.Tensor:
    """t as a (B,) float64 tensor for a batch x of B samples (a float is broadcast)."""
    t = torch.as_tensor(t, dtype=torch.float64, device="cpu") if not isinstance(t, torch.Tensor) else t.double()
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    B = x.shape[0]
    if t.ndim != 1 or t.shape[0] != B:
        raise ValueError(f"t must be a float or of shape ({B},) for a batch of {B}, got shape {tuple(t.shape)}")
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError(f"severity t must lie in [0, 1], got {t.tolist()}")
    return t


@dataclass(frozen=True)
class DegradationProcess:
    """y_t = A_t x0 + sigma_t z: a severity family and a noise schedule, on images of family.image_shape."""

    family: SeverityFamily
    noise: GeometricNoise = field(default_factory=GeometricNoise)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.family.image_shape

    def _check(self, x: torch.Tensor, name: str) -> None:
        shape = self.image_shape
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"{name} must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")

    def operator(self, t) -> LinearOperator:
        """A_t (for t of shape (B,), the sample-wise operator on (B, *image_shape))."""
        return self.family.at(t)

    def sigma(self, t) -> torch.Tensor:
        """sigma_t."""
        return self.noise(t)

    def degrade(self, x0: torch.Tensor, t) -> torch.Tensor:
        """A_t x0 for x0 (B, *image_shape), t a float or (B,)."""
        self._check(x0, "x0")
        return self.family.at(_severity(t, x0)) @ x0

    def sample(self, x0: torch.Tensor, t, generator: torch.Generator | None = None) -> torch.Tensor:
        """y_t = A_t x0 + sigma_t z with z drawn from `generator`."""
        t = _severity(t, x0)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=_device(generator)).to(x0.device)
        s = self.sigma(t).to(device=x0.device, dtype=x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
        return self.degrade(x0, t) + s * z


def _device(generator: torch.Generator | None):
    return generator.device if generator is not None else None


class DegradationAware:
    """Phi(y_t, t) ~ E[x0 | y_t], with the `process` y_t comes from. Subclasses implement `predict`."""

    process: DegradationProcess
    convention: Convention = UNIT

    def predict(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0_hat for y_t (B, *image_shape) and t of shape (B,) (float64)."""
        raise NotImplementedError

    def __call__(self, y_t: torch.Tensor, t) -> torch.Tensor:
        """Phi(y_t, t) for t a float or of shape (B,)."""
        self.process._check(y_t, "y_t")
        return self.predict(y_t, _severity(t, y_t))


class DegradationAwarePrior(DegradationAware, nn.Module):
    """A network Phi(y_t, t) predicting x0: called as model(y_t, t) with t a (B,) tensor in y_t's dtype.

    It is an nn.Module (parameters, `.to(device)`), differentiable in y_t (for guidance). Train the
    wrapped model with `IncrementalReconstructionLoss(process)` (the loss calls model(y_t, t) too).
    """

    def __init__(self, model: nn.Module, process: DegradationProcess, *, convention: Convention = UNIT):
        nn.Module.__init__(self)
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module), got {type(model).__name__}")
        if not isinstance(process, DegradationProcess):
            raise TypeError(f"process must be a DegradationProcess, got {type(process).__name__}")
        self.model = model
        self.process = process
        self.convention = convention

    def predict(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model(y_t, t.to(device=y_t.device, dtype=y_t.dtype))
        if not isinstance(out, torch.Tensor) or out.shape != y_t.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the network returned {got} for y_t of shape {tuple(y_t.shape)}; it must match")
        return out

    __call__ = nn.Module.__call__  # hooks and all; forward checks the shapes

    def forward(self, y_t: torch.Tensor, t) -> torch.Tensor:
        return DegradationAware.__call__(self, y_t, t)


def inverse_variance(sigma_t: torch.Tensor) -> torch.Tensor:
    """w(t) = 1 / sigma_t^2, the paper's weighting [inferred]."""
    return 1 / sigma_t**2


@dataclass(frozen=True)
class IncrementalReconstructionLoss:
    """loss(model, x0, generator) = mean_b w(t_b) || A_{tau_b}(model(y_{t_b}, t_b) - x0_b) ||^2 / n.

    t_b ~ U[0, 1] per image, y_t = A_t x0 + sigma_t z (z from `generator`), tau = max(t - dt, 0), n the
    number of pixels of one image, and the mean over the batch. `model` is any callable (y_t, t) -> x0_hat
    with t a (B,) tensor: the network being trained, or a `DegradationAware` prior.

    Attributes:
        process: the degradation process (family and noise schedule).
        dt: the look-ahead, 0 <= dt <= 1 (0: score matching; 1: the plain x0 loss).
        weight: w as a function of sigma_t (default 1 / sigma_t^2).
    """

    process: DegradationProcess
    dt: float = 0.0
    weight: Callable[[torch.Tensor], torch.Tensor] = inverse_variance

    def __post_init__(self):
        if not 0 <= self.dt <= 1:
            raise ValueError(f"the look-ahead dt must lie in [0, 1], got {self.dt}")

    def __call__(self, model, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        self.process._check(x0, "x0")
        B = x0.shape[0]
        t = torch.rand(B, generator=generator, dtype=torch.float64, device=_device(generator)).cpu()
        y_t = self.process.sample(x0, t, generator)
        x0_hat = model(y_t, t) if isinstance(model, DegradationAware) else model(y_t, t.to(x0.device, x0.dtype))
        tau = (t - self.dt).clamp(min=0)
        residual = self.process.family.at(tau) @ (x0_hat - x0)
        w = self.weight(self.process.sigma(t)).to(device=x0.device, dtype=x0.dtype)
        return torch.mean(w * residual.reshape(B, -1).pow(2).mean(1))
