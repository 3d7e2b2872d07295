"""The prior protocol: denoise / score / eps under the variance-exploding (VE) convention.

A prior describes clean images x0 through its noisy marginals x = x0 + sigma * eps, eps ~ N(0, I).
Tweedie's formula ties the three views together:

    denoise(x, sigma) = E[x0 | x]                 (the MMSE denoiser, the posterior mean)
    score(x, sigma)   = grad_x log p_sigma(x) = (denoise(x, sigma) - x) / sigma^2
    eps(x, sigma)     = E[eps | x]               = (x - denoise(x, sigma)) / sigma

A concrete prior implements one of the three and inherits the others. `sigma` is a float or a
tensor of per-sample noise levels with shape (B,) (or anything broadcastable to x). Every method
is differentiable with respect to x (DPS and PaDIS backpropagate through it).

A prior also declares its data convention (the units its images live in: [0, 1], [-1, 1], or
standardized) and the sigma range it was trained for, in those units. `prior.to_convention(c)`
returns the same prior expressed in another convention, converting x and sigma exactly, so a
solver never mixes [0, 1] and [-1, 1] noise units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class Convention:
    """Model units x_model = scale * u + offset, where u is the image in [0, 1] units.

    Use the constants `UNIT` ([0, 1]), `SYMMETRIC` ([-1, 1]) or `standardized(mean, std)`.
    """

    scale: float
    offset: float
    name: str

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        return self.scale * u + self.offset

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) / self.scale

    def map_to(self, other: Convention) -> tuple[float, float]:
        """(a, b) with x_other = a x_self + b."""
        a = other.scale / self.scale
        return a, other.offset - a * self.offset


UNIT = Convention(1.0, 0.0, "[0, 1]")
SYMMETRIC = Convention(2.0, -1.0, "[-1, 1]")


def standardized(mean: float, std: float) -> Convention:
    """Zero-mean, unit-variance units for data whose [0, 1]-unit mean and std are given."""
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    return Convention(1.0 / std, -mean / std, f"standardized(mean={mean:g}, std={std:g})")


def zero_mean(mean: float) -> Convention:
    """x = 2 (u - mean): the [-1, 1] scale with the mean removed, for data whose [0, 1]-unit mean is given
    (phase images, known only up to a constant)."""
    return Convention(2.0, -2.0 * mean, f"zero-mean(2 (u - {mean:g}))")


def sigma_like(sigma, x: torch.Tensor) -> torch.Tensor:
    """sigma as a tensor broadcastable to x: a float, or a per-sample tensor of shape (B,)."""
    s = torch.as_tensor(sigma, dtype=x.real.dtype if x.is_complex() else x.dtype, device=x.device)
    if s.ndim == 1 and x.ndim > 1:
        if s.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"per-sample sigma of shape {tuple(s.shape)} does not match batch size {x.shape[0]}")
        s = s.reshape(-1, *([1] * (x.ndim - 1)))
    if bool((s <= 0).any()):
        raise ValueError("sigma must be positive")
    return s


def per_sample_sigma(sigma, x: torch.Tensor, event_ndim: int, *, allow_zero: bool = False) -> torch.Tensor:
    """One noise level per sample: a tensor of shape x.shape[:x.ndim - event_ndim].

    x has shape (*batch, *event) with `event_ndim` trailing event axes (e.g. 3 for (C, H, W) images).
    sigma is a float, a per-sample tensor of shape (B,) (B = x.shape[0]), or any tensor that
    broadcasts to x and is constant over the event axes. A per-pixel sigma map raises ValueError.
    `allow_zero` admits sigma = 0 (e.g. the log density of the clean prior); negative sigma always raises.
    """
    s = torch.as_tensor(sigma, dtype=x.real.dtype if x.is_complex() else x.dtype, device=x.device)
    n_batch = x.ndim - event_ndim
    if n_batch < 0:
        raise ValueError(f"x of shape {tuple(x.shape)} has fewer than the {event_ndim} event axes expected")
    if s.ndim == 1 and n_batch >= 1 and x.ndim > 1:
        if s.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"per-sample sigma of shape {tuple(s.shape)} does not match batch size {x.shape[0]}")
        s = s.reshape(-1, *([1] * (x.ndim - 1)))
    if s.ndim > x.ndim:
        raise ValueError(f"sigma of shape {tuple(s.shape)} has more axes than x of shape {tuple(x.shape)}")
    full = (1,) * (x.ndim - s.ndim) + tuple(s.shape)
    if any(d != 1 for d in full[n_batch:]):
        raise ValueError(
            f"sigma of shape {tuple(s.shape)} varies over the event axes of x {tuple(x.shape)}; "
            "give one noise level per sample (a float or a (B,) tensor)."
        )
    batch = tuple(x.shape[:n_batch])
    try:
        s = s.reshape(full[:n_batch]).expand(batch)
    except RuntimeError:
        raise ValueError(f"sigma of shape {tuple(s.shape)} does not broadcast to the batch shape {batch}") from None
    if bool((s < 0).any()) or (not allow_zero and bool((s == 0).any())):
        raise ValueError(f"sigma must be {'non-negative' if allow_zero else 'positive'}")
    return s


class Prior:
    """Base class: implement one of `denoise`, `score` or `eps`; the others follow by Tweedie.

    Attributes:
        convention: the units of x (and of sigma) this prior works in.
        sigma_range: (sigma_min, sigma_max) the prior was trained for, or None if exact for all.
    """

    convention: Convention = UNIT
    sigma_range: tuple[float, float] | None = None

    _implements_one = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._implements_one = any(getattr(cls, m) is not getattr(Prior, m) for m in ("denoise", "score", "eps"))

    def __new__(cls, *args, **kwargs):
        if not cls._implements_one:
            raise TypeError(f"{cls.__name__} must implement one of denoise, score or eps")
        return super().__new__(cls)

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """E[x0 | x0 + sigma eps = x] (Tweedie: x + sigma^2 score = x - sigma eps)."""
        s = sigma_like(sigma, x)
        if type(self).eps is not Prior.eps:
            return x - s * self.eps(x, sigma)
        return x + s**2 * self.score(x, sigma)

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """grad_x log p_sigma(x) = (denoise(x, sigma) - x) / sigma^2."""
        s = sigma_like(sigma, x)
        if type(self).eps is not Prior.eps and type(self).denoise is Prior.denoise:
            return -self.eps(x, sigma) / s
        return (self.denoise(x, sigma) - x) / s**2

    def eps(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """E[eps | x] = (x - denoise(x, sigma)) / sigma."""
        s = sigma_like(sigma, x)
        return (x - self.denoise(x, sigma)) / s

    def to_convention(self, convention: Convention) -> Prior:
        """This prior expressed in other units (exact: the posterior mean is affine-equivariant)."""
        if convention == self.convention:
            return self
        return ConvertedPrior(self, convention)

    def check_sigma(self, sigma_max: float, sigma_min: float | None = None) -> None:
        """Raise if a schedule leaves the sigma range the prior was trained for (by more than 1%)."""
        if self.sigma_range is None:
            return
        lo, hi = self.sigma_range
        if sigma_max > hi * 1.01 or (sigma_min is not None and sigma_min < lo * 0.99):
            raise ValueError(
                f"{type(self).__name__} was trained for sigma in [{lo:g}, {hi:g}] ({self.convention.name} units); "
                f"the schedule asks for [{sigma_min if sigma_min is not None else sigma_max:g}, {sigma_max:g}]."
            )


@runtime_checkable
class SigmaRanged(Protocol):
    """A prior that knows the noise levels it was trained for and refuses a schedule that leaves them
    (every `Prior`; a solver asks `isinstance(prior, SigmaRanged)` before its loop)."""

    def check_sigma(self, sigma_max: float, sigma_min: float | None = None) -> None: ...


class ConvertedPrior(Prior):
    """A prior used in other units: with x_p = a x + b in the inner prior's units,

        denoise(x, sigma) = (inner.denoise(a x + b, |a| sigma) - b) / a.
    """

    def __init__(self, inner: Prior, convention: Convention):
        self.inner = inner
        self.convention = convention
        self.a, self.b = convention.map_to(inner.convention)
        if inner.sigma_range is not None:
            lo, hi = inner.sigma_range
            self.sigma_range = (lo / abs(self.a), hi / abs(self.a))

    def denoise(self, x, sigma):
        a, b = self.a, self.b
        return (self.inner.denoise(a * x + b, sigma * abs(a)) - b) / a

    def to_convention(self, convention: Convention) -> Prior:
        return self.inner.to_convention(convention)


def log_uniform_sigma(n: int, sigma_min: float, sigma_max: float, generator=None, device=None) -> torch.Tensor:
    """n noise levels with log sigma uniform on [log sigma_min, log sigma_max] (training helper)."""
    u = torch.rand(n, generator=generator, device=device)
    return torch.exp(math.log(sigma_min) + u * (math.log(sigma_max) - math.log(sigma_min)))
