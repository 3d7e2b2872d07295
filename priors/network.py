"""Network priors: any `nn.Module` that predicts eps, x0 or the score, as a `Prior`.

The network's output is turned into the three views of the protocol by Tweedie's formula
(VE convention x = x0 + sigma eps, s = sigma per sample):

    prediction EPS:    eps = f,               denoise = x - s f,        score = -f / s
    prediction X0:     denoise = f,           eps = (x - f) / s,        score = (f - x) / s^2
    prediction SCORE:  score = f,             denoise = x + s^2 f,      eps = -s f

What the network is told about the noise level (`Conditioning`):

    BLIND        f = model(x)            told nothing (DDGM's denoiser predicts the unit noise from x alone)
    NOISE_LEVEL  f = model(x, sigma)     sigma a (B,) tensor in the prior's units

VP-trained networks (DDPM: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps) are used through the exact
change of variables between the two conventions,

    x_vp = sqrt(abar) x_ve,   sigma^2 = (1 - abar) / abar   (abar = 1 / (1 + sigma^2)),

so eps and x0 are the same in both, and score_ve(x_ve) = sqrt(abar) score_vp(x_vp). A
NOISE_LEVEL VP network gets its timestep t instead of sigma: `f = model(x_vp, t)`, with t found in
the beta schedule (`VPSchedule`) by `TimestepLookup.NEAREST` (the integer step whose sigma_t is
closest in log sigma) or `TimestepLookup.INTERPOLATE` (a fractional t, linear in log sigma between
steps). The input scaling always uses the exact abar of the requested sigma; with NEAREST the
network is told a step whose noise level differs slightly from it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
from torch import nn

from .protocol import UNIT, Convention, Prior, per_sample_sigma


class Prediction(enum.Enum):
    """What a network outputs: the noise eps, the clean image x0, or the score grad log p_sigma."""

    EPS = "eps"
    X0 = "x0"
    SCORE = "score"


class Conditioning(enum.Enum):
    """What a network is told about the noise: nothing (BLIND) or its level (NOISE_LEVEL: sigma, or t for VP)."""

    BLIND = "blind"
    NOISE_LEVEL = "noise_level"


class TimestepLookup(enum.Enum):
    """How sigma becomes a DDPM timestep: the nearest integer step, or a fractional step interpolated
    linearly in log sigma."""

    NEAREST = "nearest"
    INTERPOLATE = "interpolate"


def linear_betas(beta_start: float, beta_end: float, steps: int) -> torch.Tensor:
    """The DDPM linear beta schedule (Ho et al. 2020: 1000 steps, beta from 1e-4 to 0.02), float64."""
    return torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)


def vp_alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    """abar_t = prod_{s <= t} (1 - beta_s), for t = 0..T-1."""
    return torch.cumprod(1 - betas, dim=0)


def vp_sigmas(betas: torch.Tensor) -> torch.Tensor:
    """sigma_t = sqrt((1 - abar_t) / abar_t): the VE noise level of each VP step (increasing in t). The one
    home of the VP <-> VE map of a beta schedule; `solvers.schedules.VP` lists the same levels from t = T down."""
    ab = vp_alpha_bar(betas)
    return torch.sqrt((1 - ab) / ab)


@dataclass(frozen=True, eq=False)
class VPSchedule:
    """A DDPM beta schedule, with the exact sigma <-> alpha_bar <-> timestep maps.

    Steps are indexed t = 0..T-1 (0-based, as in most DDPM code): abar_t = prod_{s <= t} (1 - beta_s),
    sigma_t = sqrt((1 - abar_t) / abar_t), increasing in t. `t_offset` is added to the timestep
    handed to the network (1 for networks trained with 1-based steps).
    """

    betas: torch.Tensor
    lookup: TimestepLookup = TimestepLookup.INTERPOLATE
    t_offset: int = 0

    def __post_init__(self):
        b = torch.as_tensor(self.betas, dtype=torch.float64).reshape(-1)
        if b.numel() < 2 or not bool(((b > 0) & (b < 1)).all()):
            raise ValueError("a VP schedule needs at least two betas, each in (0, 1)")
        if not isinstance(self.lookup, TimestepLookup):
            raise TypeError(f"lookup must be a TimestepLookup, got {self.lookup!r}")
        object.__setattr__(self, "betas", b)

    @classmethod
    def linear(cls, steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, **kwargs) -> VPSchedule:
        """The DDPM linear schedule (Ho et al. 2020: 1000 steps, beta from 1e-4 to 0.02)."""
        return cls(linear_betas(beta_start, beta_end, steps), **kwargs)

    @classmethod
    def cosine(cls, steps: int = 1000, s: float = 0.008, max_beta: float = 0.999, **kwargs) -> VPSchedule:
        """The cosine schedule (Nichol & Dhariwal 2021): abar(t) = cos^2(((t/T + s)/(1 + s)) pi/2) / abar(0)."""
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
        return cls(betas, **kwargs)

    @property
    def alpha_bar(self) -> torch.Tensor:
        return vp_alpha_bar(self.betas)

    @property
    def sigmas(self) -> torch.Tensor:
        """sigma_t = sqrt((1 - abar_t) / abar_t), the VE noise level of each step."""
        return vp_sigmas(self.betas)

    @property
    def sigma_range(self) -> tuple[float, float]:
        s = self.sigmas
        return float(s[0]), float(s[-1])

    @staticmethod
    def alpha_bar_of(sigma: torch.Tensor) -> torch.Tensor:
        """abar = 1 / (1 + sigma^2) (exact)."""
        return 1 / (1 + sigma**2)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The timestep for each sigma (long for NEAREST, float for INTERPOLATE), plus `t_offset`.

        Sigmas outside the schedule clamp to its first or last step.
        """
        log_table = torch.log(self.sigmas).to(sigma.device)
        ls = torch.log(sigma.to(torch.float64))
        T = log_table.shape[0]
        hi = torch.searchsorted(log_table, ls.contiguous()).clamp(1, T - 1)
        lo = hi - 1
        frac = ((ls - log_table[lo]) / (log_table[hi] - log_table[lo])).clamp(0, 1)
        if self.lookup is TimestepLookup.NEAREST:
            return torch.where(frac < 0.5, lo, hi) + self.t_offset
        return (lo + frac).to(sigma.dtype) + self.t_offset

    def sigma_at(self, t: torch.Tensor) -> torch.Tensor:
        """The inverse map: sigma for a (fractional) timestep t (log sigma linear between steps)."""
        log_table = torch.log(self.sigmas).to(t.device)
        tt = (t.to(torch.float64) - self.t_offset).clamp(0, log_table.shape[0] - 1)
        lo = tt.floor().long().clamp(max=log_table.shape[0] - 2)
        frac = tt - lo
        return torch.exp(log_table[lo] * (1 - frac) + log_table[lo + 1] * frac).to(
            t.dtype if t.is_floating_point() else torch.float64
        )


class NetworkPrior(Prior, nn.Module):
    """A network as a prior. It is an `nn.Module` (`.to(device)`, `.eval()`, `.parameters()`), and
    every method is differentiable in x.

    Args:
        model: the network; called as model(x) (BLIND) or model(x, sigma_or_t) (NOISE_LEVEL), returning
            a tensor of x's shape.
        prediction: `Prediction.EPS`, `.X0` or `.SCORE`.
        conditioning: `Conditioning.BLIND` or `.NOISE_LEVEL`.
        convention: the units the network was trained in (UNIT, SYMMETRIC, standardized(...)).
        sigma_range: (sigma_min, sigma_max) it was trained for, in those units (default: the VP
            schedule's range, else None).
        vp: the beta schedule of a VP-trained (DDPM) network, or None for a VE network.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        prediction: Prediction,
        conditioning: Conditioning,
        convention: Convention = UNIT,
        sigma_range: tuple[float, float] | None = None,
        vp: VPSchedule | None = None,
    ):
        nn.Module.__init__(self)
        if not isinstance(prediction, Prediction):
            raise TypeError(f"prediction must be a Prediction (e.g. Prediction.EPS), got {prediction!r}")
        if not isinstance(conditioning, Conditioning):
            raise TypeError(f"conditioning must be a Conditioning (e.g. Conditioning.BLIND), got {conditioning!r}")
        if not isinstance(convention, Convention):
            raise TypeError(f"convention must be a Convention (UNIT, SYMMETRIC, standardized(...)), got {convention!r}")
        if vp is not None and not isinstance(vp, VPSchedule):
            raise TypeError(f"vp must be a VPSchedule or None, got {type(vp).__name__}")
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module), got {type(model).__name__}")
        self.model = model
        self.prediction = prediction
        self.conditioning = conditioning
        self.convention = convention
        self.vp = vp
        if sigma_range is None and vp is not None:
            sigma_range = vp.sigma_range
        if sigma_range is not None:
            lo, hi = (float(v) for v in sigma_range)
            if not 0 < lo <= hi:
                raise ValueError(f"sigma_range must satisfy 0 < sigma_min <= sigma_max, got {sigma_range}")
            sigma_range = (lo, hi)
        self.sigma_range = sigma_range

    def extra_repr(self) -> str:
        vp = ", vp" if self.vp is not None else ""
        return f"prediction={self.prediction.name}, conditioning={self.conditioning.name}, {self.convention.name}{vp}"

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The denoiser (so the prior can be called like a deepinv denoiser)."""
        return self.denoise(x, sigma)

    def predict(self, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, s): the network output in VE terms (the VP score rescaled) and sigma shaped to broadcast with x."""
        if x.ndim < 2:
            raise ValueError(f"network priors take batched tensors (B, ...), got shape {tuple(x.shape)}")
        s = per_sample_sigma(sigma, x, x.ndim - 1)  # (B,)
        s_b = s.reshape(-1, *([1] * (x.ndim - 1)))
        if self.vp is None:
            inp, level = x, s
        else:
            root_ab = torch.sqrt(VPSchedule.alpha_bar_of(s_b))
            inp, level = root_ab * x, self.vp.timestep(s)
        out = self.model(inp) if self.conditioning is Conditioning.BLIND else self.model(inp, level)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the network returned {got} for an input of shape {tuple(x.shape)}; it must match")
        if self.vp is not None and self.prediction is Prediction.SCORE:
            out = root_ab * out
        return out, s_b

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        f, s = self.predict(x, sigma)
        if self.prediction is Prediction.X0:
            return f
        if self.prediction is Prediction.EPS:
            return x - s * f
        return x + s**2 * f

    def eps(self, x: torch.Tensor, sigma) -> torch.Tensor:
        f, s = self.predict(x, sigma)
        if self.prediction is Prediction.EPS:
            return f
        if self.prediction is Prediction.X0:
            return (x - f) / s
        return -s * f

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        f, s = self.predict(x, sigma)
        if self.prediction is Prediction.SCORE:
            return f
        if self.prediction is Prediction.EPS:
            return -f / s
        return (f - x) / s**2
