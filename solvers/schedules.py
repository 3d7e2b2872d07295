"""Noise schedules as values: each is a small frozen dataclass whose `sigmas()` returns a tensor.

VE convention throughout: x_sigma = x0 + sigma eps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from priors.network import linear_betas, vp_alpha_bar, vp_sigmas

from .checks import check_int, check_real


class Schedule:
    """A decreasing sequence of noise levels sigma_1 > ... > sigma_N (float64 tensor)."""

    steps: int

    def sigmas(self) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.steps


def _check_steps(steps: int, name: str):
    check_int(name, "steps", steps, 1)


@dataclass(frozen=True)
class Geometric(Schedule):
    """sigma_n = sigma_1 (sigma_N / sigma_1)^((n - 1) / (N - 1)), n = 1..N (DDGM's schedule)."""

    sigma_first: float = 3.0
    sigma_last: float = 0.03
    steps: int = 150

    def __post_init__(self):
        _check_steps(self.steps, "Geometric")
        check_real("Geometric", "sigma_first", self.sigma_first, 0, low_open=True)
        check_real("Geometric", "sigma_last", self.sigma_last, 0, low_open=True)
        if not self.sigma_last <= self.sigma_first:
            raise ValueError(
                f"Geometric needs 0 < sigma_last <= sigma_first, got sigma_first={self.sigma_first}, "
                f"sigma_last={self.sigma_last}"
            )

    def sigmas(self) -> torch.Tensor:
        if self.steps == 1:
            return torch.tensor([self.sigma_first], dtype=torch.float64)
        n = torch.arange(self.steps, dtype=torch.float64)
        return self.sigma_first * (self.sigma_last / self.sigma_first) ** (n / (self.steps - 1))

    @property
    def ratio(self) -> float:
        """sigma_{n+1} / sigma_n."""
        return 1.0 if self.steps == 1 else (self.sigma_last / self.sigma_first) ** (1 / (self.steps - 1))


@dataclass(frozen=True)
class Constant(Schedule):
    """sigma_n = sigma for every step (sigma = 0 turns a stochastic solver into a deterministic one)."""

    sigma: float = 0.0
    steps: int = 1

    def __post_init__(self):
        _check_steps(self.steps, "Constant")
        check_real("Constant", "sigma", self.sigma, 0)

    def sigmas(self) -> torch.Tensor:
        return torch.full((self.steps,), float(self.sigma), dtype=torch.float64)


def alpha_for_ratio(ratio: float, beta: float) -> float:
    """The step alpha of DDGM's Eq. 2 for which one step lowers the noise by `ratio`:

    x_{n+1} = x_n - alpha sigma_n eps(x_n) + sqrt(alpha beta) sigma_n z keeps a residual noise of
    variance ((1 - alpha)^2 + alpha beta) sigma_n^2, so alpha is the small root of
    alpha^2 - (2 - beta) alpha + (1 - ratio^2) = 0.
    """
    disc = (2 - beta) ** 2 - 4 * (1 - ratio**2)
    if disc < 0:
        smallest = math.sqrt(beta - beta**2 / 4)  # at alpha = 1 - beta / 2
        raise ValueError(
            f"no alpha lowers the noise by a ratio {ratio:.4g} per step with beta={beta}: one Eq. 2 step lowers it "
            f"by {smallest:.4g} at most; use more steps"
        )
    return ((2 - beta) - math.sqrt(disc)) / 2


@dataclass(frozen=True)
class DDGMUnconditionalSchedule(Schedule):
    """DDGM's Eq. 2: sigma_n = sigma_1 ((1 - alpha)^2 + alpha beta)^((n - 1) / 2), with the sampler step
    x_{n+1} = x_n - alpha sigma_n eps(x_n) + sqrt(alpha beta) sigma_n z (paper: 30, 0.183, 0.5, 50)."""

    sigma_first: float = 30.0
    alpha: float = 0.183
    beta: float = 0.5
    steps: int = 50

    def __post_init__(self):
        _check_steps(self.steps, "DDGMUnconditionalSchedule")
        check_real("DDGMUnconditionalSchedule", "sigma_first", self.sigma_first, 0, low_open=True)
        check_real("DDGMUnconditionalSchedule", "alpha", self.alpha, 0, 1, low_open=True, high_open=True)
        check_real("DDGMUnconditionalSchedule", "beta", self.beta, 0)
        if (1 - self.alpha) ** 2 + self.alpha * self.beta >= 1:
            raise ValueError(f"alpha={self.alpha}, beta={self.beta} do not lower the noise level")

    @classmethod
    def from_endpoints(cls, sigma_first: float, sigma_last: float, steps: int, beta: float = 0.5):
        """The Eq. 2 schedule reaching sigma_last after `steps` steps (how DDGM set DPS*'s alpha)."""
        _check_steps(steps, "DDGMUnconditionalSchedule.from_endpoints")
        owner = "DDGMUnconditionalSchedule.from_endpoints"
        check_real(owner, "sigma_first", sigma_first, 0, low_open=True)
        check_real(owner, "sigma_last", sigma_last, 0, sigma_first, low_open=True)
        check_real(owner, "beta", beta, 0, 2, high_open=True)
        ratio = (sigma_last / sigma_first) ** (1 / max(steps - 1, 1))
        smallest = math.sqrt(beta - beta**2 / 4)
        if ratio < smallest:
            needed = math.ceil(math.log(sigma_last / sigma_first) / math.log(smallest)) + 1
            raise ValueError(
                f"Eq. 2 cannot go from sigma {sigma_first:g} to {sigma_last:g} in {steps} steps with beta={beta} "
                f"(at most a factor {smallest:.4g} per step); use at least {needed} steps"
            )
        return cls(sigma_first, alpha_for_ratio(ratio, beta), beta, steps)

    def sigmas(self) -> torch.Tensor:
        n = torch.arange(self.steps, dtype=torch.float64)
        return self.sigma_first * ((1 - self.alpha) ** 2 + self.alpha * self.beta) ** (n / 2)


@dataclass(frozen=True)
class Karras(Schedule):
    """Karras et al. (2022): sigma_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    steps: int = 50

    def __post_init__(self):
        _check_steps(self.steps, "Karras")
        check_real("Karras", "sigma_min", self.sigma_min, 0, low_open=True)
        check_real("Karras", "sigma_max", self.sigma_max, 0, low_open=True)
        check_real("Karras", "rho", self.rho, 0, low_open=True)
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"Karras needs sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")

    def sigmas(self) -> torch.Tensor:
        i = torch.linspace(0, 1, self.steps, dtype=torch.float64)
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        return (hi + i * (lo - hi)) ** self.rho


@dataclass(frozen=True)
class VP(Schedule):
    """A DDPM (variance-preserving) beta schedule seen in VE units: alpha_bar_t = prod_{s<=t} (1 - beta_s)
    and sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), listed from t = T down to t = 1.

    `linear(beta_start=1e-4, beta_end=0.02, steps=1000)` is Ho et al.'s schedule.
    """

    betas: tuple[float, ...]

    @classmethod
    def linear(cls, beta_start: float = 1e-4, beta_end: float = 0.02, steps: int = 1000) -> VP:
        _check_steps(steps, "VP.linear")
        check_real("VP.linear", "beta_start", beta_start, 0, 1, low_open=True, high_open=True)
        check_real("VP.linear", "beta_end", beta_end, 0, 1, low_open=True, high_open=True)
        return cls(tuple(linear_betas(beta_start, beta_end, steps).tolist()))

    def __post_init__(self):
        try:
            betas = tuple(self.betas)
        except TypeError:
            raise TypeError(f"VP: betas must be a sequence of numbers in (0, 1), got {self.betas!r}") from None
        if not betas:
            raise ValueError("VP: betas must not be empty")
        for i, b in enumerate(betas):
            check_real("VP", f"betas[{i}]", b, 0, 1, low_open=True, high_open=True)
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))

    @property
    def steps(self) -> int:
        return len(self.betas)

    def alpha_bar(self) -> torch.Tensor:
        """alpha_bar_t for t = 1..T (`priors.network.vp_alpha_bar`)."""
        return vp_alpha_bar(torch.tensor(self.betas, dtype=torch.float64))

    def sigmas(self) -> torch.Tensor:
        """`priors.network.vp_sigmas` of the betas, from t = T down to t = 1."""
        return vp_sigmas(torch.tensor(self.betas, dtype=torch.float64)).flip(0)


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    """sigma_1, ..., sigma_N, 0: the 'next' noise level of the last step is zero."""
    return torch.cat([sigmas, sigmas.new_zeros(1)])
