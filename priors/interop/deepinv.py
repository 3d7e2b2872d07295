"""deepinv interop, both ways. deepinv is imported here and nowhere else in `priors`.

deepinv denoisers are `forward(x, sigma)` on images in [0, 1] with sigma in the same units (a float
or a (B,) tensor): exactly `Prior.denoise` in the UNIT convention. So

    from_deepinv(denoiser)      a deepinv `Denoiser` (or any module with forward(x, sigma)) as a Prior
    from_deepinv(score_prior)   a deepinv prior built on a denoiser (ScorePrior, PnP, RED) as a Prior
    to_deepinv(prior)           any Prior as a deepinv `Denoiser` (converted to [0, 1] units first)

deepinv's `ScorePrior.score` is (D(x, sigma) - x) / sigma^2, the same Tweedie score as here.
"""

from __future__ import annotations

import deepinv
import torch
from deepinv.models import Denoiser
from torch import nn

from ..protocol import UNIT, Prior, per_sample_sigma


class DeepinvPrior(Prior, nn.Module):
    """A deepinv denoiser D(x, sigma) as a prior: denoise(x, sigma) = D(x, sigma), convention UNIT.

    Args:
        denoiser: a deepinv `Denoiser` or any module called as denoiser(x, sigma) with sigma of shape (B,).
        sigma_range: the noise levels it is valid for ([0, 1] units), or None.
    """

    convention = UNIT

    def __init__(self, denoiser, *, sigma_range: tuple[float, float] | None = None):
        nn.Module.__init__(self)
        if not callable(denoiser):
            raise TypeError(f"a deepinv denoiser is callable as denoiser(x, sigma), got {type(denoiser).__name__}")
        self.denoiser = denoiser
        self.sigma_range = None if sigma_range is None else (float(sigma_range[0]), float(sigma_range[1]))

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.ndim < 2:
            raise ValueError(f"deepinv denoisers take batched images (B, C, H, W), got shape {tuple(x.shape)}")
        s = per_sample_sigma(sigma, x, x.ndim - 1)
        out = self.denoiser(x, s)
        if out.shape != x.shape:
            raise ValueError(f"the deepinv denoiser returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
        return out

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.denoise(x, sigma)


def from_deepinv(obj, *, sigma_range: tuple[float, float] | None = None) -> DeepinvPrior:
    """A Prior from a deepinv denoiser, or from a deepinv prior that holds one (ScorePrior, PnP, RED)."""
    if isinstance(obj, deepinv.optim.prior.Prior):
        denoiser = getattr(obj, "denoiser", None)
        if denoiser is None:
            raise TypeError(
                f"deepinv prior {type(obj).__name__} is not built on a denoiser (explicit priors such as TVPrior "
                "define a potential and its prox, not an MMSE denoiser); wrap a deepinv denoiser instead."
            )
        return DeepinvPrior(denoiser, sigma_range=sigma_range)
    if isinstance(obj, Prior):
        raise TypeError(f"{type(obj).__name__} is already a priors.Prior; use it directly")
    return DeepinvPrior(obj, sigma_range=sigma_range)


class PriorDenoiser(Denoiser):
    """A Prior as a deepinv `Denoiser`: forward(x, sigma) = prior.to_convention(UNIT).denoise(x, sigma)."""

    def __init__(self, prior: Prior):
        super().__init__()
        if not isinstance(prior, Prior):
            raise TypeError(f"to_deepinv takes a priors.Prior, got {type(prior).__name__}")
        self.prior = prior.to_convention(UNIT)

    def forward(self, x: torch.Tensor, sigma, **kwargs) -> torch.Tensor:
        return self.prior.denoise(x, sigma)


def to_deepinv(prior: Prior) -> PriorDenoiser:
    """Any Prior as a deepinv denoiser on [0, 1] images (for deepinv's PnP, RED, diffusion samplers)."""
    return PriorDenoiser(prior)
