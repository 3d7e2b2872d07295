"""The PaDIS patch prior (Hu et al. 2024; seed 001): a noise-conditional, position-aware patch denoiser
d(v; m, k, sigma) made into a whole-image denoiser by a random non-overlapping patch grid.

For an image x of N1 x N2 pixels and patch size P1 x P2, `linops.PatchGrid` gives, for a grid shift m,
the extraction E_m: x -> the K1 K2 patches of the zero-padded image (see linops.operators.patches for
K_i = 1 + floor(N_i / P_i), M_i = K_i P_i - N_i and the range 0 <= m_i <= M_i). With q_k the position
channels of patch k (the canvas coordinates of its pixels, `priors.nets.patch_position_channels`):

    denoise(x, sigma) = E_m^H [ d(E_m x)_k ; q_k, sigma ]_{k = 1..K1 K2},   m drawn uniformly,

i.e. every pixel is taken from the denoised patch that holds it (E_m^H E_m = I). All patches go
through the network in one batched call. The result is differentiable in x (E_m and E_m^H are linops
operators, whose backward is their adjoint), as DPS-style PaDIS needs.

Random shifts come from a `torch.Generator`: the one passed to the call, else the prior's own
(seeded at construction), so a run is reproducible. P = N is the whole-image model (one patch, no
shift), so a position-blind d is then exactly the whole-image denoiser.

`PatchDSMLoss` trains d by denoising score matching on the patches of random grid shifts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from linops import PatchGrid

from .nets.position import patch_position_channels, position_channel_count
from .network import Prediction
from .protocol import UNIT, Convention, Prior, per_sample_sigma


def _from_prediction(f: torch.Tensor, v: torch.Tensor, s: torch.Tensor, prediction: Prediction) -> torch.Tensor:
    """The denoised patches from a network output f (VE Tweedie; s broadcast to v)."""
    if prediction is Prediction.X0:
        return f
    if prediction is Prediction.EPS:
        return v - s * f
    return v + s**2 * f


def _grid_patches(grid: PatchGrid, x: torch.Tensor, frequencies: int):
    """(patches (B K, *lead, P1, P2), positions (B K, F, P1, P2)) for x of shape (B, *grid.in_shape)."""
    B, K = x.shape[0], grid.num_patches
    v = (grid @ x).reshape(B * K, *grid.out_shape[1:])
    q = patch_position_channels(
        grid.padded_size, grid.patch, grid.origins(), frequencies=frequencies, dtype=x.dtype, device=x.device
    )
    return v, q.repeat(B, 1, 1, 1)


class PatchPrior(Prior, nn.Module):
    """A patch network as a whole-image prior (PaDIS).

    Args:
        model: the patch network, called once per denoise as model(v, sigma, q) with v the patches
            (B K1 K2, C, P1, P2), sigma (B K1 K2,) and q their position channels (B K1 K2, F, P1, P2),
            F = 2 + 4 frequencies (e.g. `priors.nets.UNet(extra_channels=F)`).
        patch: P or (P1, P2).
        prediction: what the network outputs (`Prediction.EPS`, `.X0` or `.SCORE`) for its patches.
        frequencies: Fourier frequencies of the position encoding (0: the two coordinate maps).
        seed: seeds the prior's own generator for grid shifts (used when a call passes none).
        convention, sigma_range: as for every prior.
    """

    def __init__(
        self,
        model: nn.Module,
        patch,
        *,
        prediction: Prediction,
        frequencies: int = 0,
        seed: int = 0,
        convention: Convention = UNIT,
        sigma_range: tuple[float, float] | None = None,
    ):
        nn.Module.__init__(self)
        if not isinstance(prediction, Prediction):
            raise TypeError(f"prediction must be a Prediction (e.g. Prediction.EPS), got {prediction!r}")
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module), got {type(model).__name__}")
        self.model = model
        self.patch = patch
        self.prediction = prediction
        self.frequencies = int(frequencies)
        self.position_channels = position_channel_count(self.frequencies)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.convention = convention
        self.sigma_range = sigma_range

    def extra_repr(self) -> str:
        return f"patch={self.patch}, prediction={self.prediction.name}, position_channels={self.position_channels}"

    def grid(self, image_shape, shift=(0, 0), *, dtype=torch.float32, device="cpu") -> PatchGrid:
        """The patch grid for images of shape (C, N1, N2) (or (..., N1, N2)) at `shift`."""
        return PatchGrid(image_shape, self.patch, shift, dtype=dtype, device=device)

    def denoise(self, x: torch.Tensor, sigma, shift=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """E[x0 | x] assembled from the patches of grid shift `shift` (drawn with `generator`, else the
        prior's generator, when None). x has shape (B, C, N1, N2); sigma a float or (B,)."""
        if x.ndim < 3:
            raise ValueError(f"PatchPrior takes batched images (B, ..., N1, N2), got shape {tuple(x.shape)}")
        grid = self.grid(x.shape[1:], dtype=x.dtype, device=x.device)
        if shift is None:
            shift = grid.random_shift(generator if generator is not None else self.generator)
        grid = grid.with_shift(shift)
        s = per_sample_sigma(sigma, x, x.ndim - 1).repeat_interleave(grid.num_patches)  # (B K,)
        v, q = _grid_patches(grid, x, self.frequencies)
        f = self.model(v, s, q)
        if not isinstance(f, torch.Tensor) or f.shape != v.shape:
            got = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"the patch network returned {got} for patches of shape {tuple(v.shape)}; it must match")
        d = _from_prediction(f, v, s.reshape(-1, *([1] * (v.ndim - 1))), self.prediction)
        return grid.H @ d.reshape(x.shape[0], *grid.out_shape)

    def score(self, x: torch.Tensor, sigma, shift=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """(denoise - x) / sigma^2 for one grid shift (drawn as in `denoise`)."""
        s = per_sample_sigma(sigma, x, x.ndim - 1).reshape(-1, *([1] * (x.ndim - 1)))
        return (self.denoise(x, sigma, shift, generator) - x) / s**2

    def eps(self, x: torch.Tensor, sigma, shift=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """(x - denoise) / sigma for one grid shift (drawn as in `denoise`)."""
        s = per_sample_sigma(sigma, x, x.ndim - 1).reshape(-1, *([1] * (x.ndim - 1)))
        return (x - self.denoise(x, sigma, shift, generator)) / s

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.denoise(x, sigma)


@dataclass(frozen=True)
class PatchDSMLoss:
    """loss(model, x0, generator): denoising score matching on the patches of a random grid shift.

    For a batch of clean images x0 (B, C, N1, N2): a shift m drawn uniformly, the K1 K2 patches v0 of
    each image with their position channels q, one log-uniform sigma per patch, eps ~ N(0, I), and

        L = mean || f(v0 + sigma eps, sigma, q) - target ||^2,   target = eps (EPS) or v0 (X0),

    over all patches and pixels, padding included (the model is a density of whole padded patches).
    Its minimiser is the MMSE patch predictor E[target | v, m, k, sigma].
    """

    patch: int | tuple[int, int]
    sigma_min: float
    sigma_max: float
    target: Prediction = Prediction.EPS
    frequencies: int = 0

    def __post_init__(self):
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.target not in (Prediction.EPS, Prediction.X0):
            raise ValueError(f"PatchDSMLoss trains EPS or X0 targets, got {self.target!r}")

    def __call__(self, model: nn.Module, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        grid = PatchGrid(x0.shape[1:], self.patch, dtype=x0.dtype, device=x0.device)
        grid = grid.with_shift(grid.random_shift(generator))
        v0, q = _grid_patches(grid, x0, self.frequencies)
        n = v0.shape[0]
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        sigma = torch.exp(lo + u * (hi - lo)).to(device=x0.device, dtype=x0.dtype)
        eps = torch.randn(v0.shape, generator=generator, dtype=x0.dtype, device=generator.device).to(x0.device)
        f = model(v0 + sigma.reshape(-1, *([1] * (v0.ndim - 1))) * eps, sigma, q)
        return torch.mean((f - (eps if self.target is Prediction.EPS else v0)) ** 2)
