"""Tiled prior (DDGM on large images; seed 000): any whole-image prior applied on overlapping tiles,
blended by a bump window.

With T the overlapping-tiles operator (`linops.Tiles`: tiles of p1 x p2 at stride s, the last tile on
the border) and B the window of one tile, the blended denoiser is

    denoise(x, sigma) = T^H [B ⊙ d(T x, sigma)] / T^H [B, ..., B]

(division pixel by pixel): each pixel is the B-weighted mean of the tiles holding it. The normalised
weights sum to one at every pixel, so a pointwise denoiser is unchanged by tiling, and eps and score
blend the same way (all three views stay consistent).

The window is B[i, j] = b(u_i) b(u_j), u_i = 2 (i + 1/2) / p - 1 the pixel centres mapped to (-1, 1), and

    b(u) = exp(-1 / max(1 - u^2, 0.2)).

The paper prints b(u) = 1 - exp(-1 / max(1 - u^2, 0.2)). That function is smallest in the tile
centre (1 - e^-1 = 0.63) and largest at the tile edges (1 - e^-5 = 0.99): it would trust each tile
most exactly where the denoiser lacks context (its borders), the opposite of what the blending is
for. The classic bump exp(-1 / (1 - u^2)) is largest in the centre and vanishes at the edges; the
floor 0.2 keeps it positive (e^-5 = 0.0067 for |u| >= sqrt(0.8)), so at the image border, where only
tile edges reach, the weights never become 0/0. We therefore use exp(-1 / max(1 - u^2, 0.2)), as
ALGORITHMS.md infers.
"""

from __future__ import annotations

import torch

from linops import Tiles

from .protocol import Prior, per_sample_sigma


def bump(u: torch.Tensor) -> torch.Tensor:
    """b(u) = exp(-1 / max(1 - u^2, 0.2)): e^-1 at u = 0, e^-5 for |u| >= sqrt(0.8)."""
    return torch.exp(-1 / torch.clamp(1 - u**2, min=0.2))


def bump_window(patch, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """B[i, j] = b(2 (i + 1/2) / p1 - 1) b(2 (j + 1/2) / p2 - 1), shape (p1, p2)."""
    p1, p2 = (patch, patch) if isinstance(patch, int) else patch
    u = [2 * (torch.arange(p, dtype=torch.float64) + 0.5) / p - 1 for p in (p1, p2)]
    return torch.outer(bump(u[0]), bump(u[1])).to(dtype=dtype, device=device)


class TiledPrior(Prior):
    """`prior` applied on overlapping tiles of size `patch` at stride `stride`, bump-blended.

    Args:
        prior: any whole-image prior (its denoise/eps/score are called on (n, C, p1, p2) tile batches).
        patch: p or (p1, p2); stride: s or (s1, s2), at most the patch size.
        max_batch: the most tiles per call of the inner prior (None: all tiles of the batch in one call).

    Images have shape (B, ..., H, W) with H >= p1, W >= p2; sigma is a float or one level per image.
    """

    def __init__(self, prior: Prior, patch, stride, *, max_batch: int | None = None):
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be a positive number of tiles or None, got {max_batch}")
        self.prior = prior
        self.patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
        self.stride = stride
        self.max_batch = max_batch
        self.convention = prior.convention
        self.sigma_range = prior.sigma_range
        self._weights: dict = {}

    def __repr__(self):
        return f"TiledPrior({self.prior!r}, patch={self.patch}, stride={self.stride})"

    def tiles(self, image_shape, *, dtype=torch.float32, device="cpu") -> Tiles:
        """The tiling operator for images of shape (..., H, W)."""
        return Tiles(image_shape, self.patch, self.stride, dtype=dtype, device=device)

    def weights(self, image_shape, *, dtype=torch.float32, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(window (p1, p2), normaliser (H, W) = sum over tiles of their windows in place), cached."""
        key = (tuple(image_shape[-2:]), dtype, torch.device(device))
        if key not in self._weights:
            window = bump_window(self.patch, dtype=torch.float64)
            single = Tiles((1, *image_shape[-2:]), self.patch, self.stride, dtype=torch.float64)
            norm = single.H @ window.expand(single.num_tiles, 1, *self.patch)
            self._weights[key] = (window.to(dtype=dtype, device=device), norm[0].to(dtype=dtype, device=device))
        return self._weights[key]

    def _blend(self, call, x: torch.Tensor, sigma) -> torch.Tensor:
        """T^H [B ⊙ call(T x, sigma)] / T^H [B, ..., B] with call an inner-prior method."""
        if x.ndim < 3:
            raise ValueError(f"TiledPrior takes batched images (B, ..., H, W), got shape {tuple(x.shape)}")
        B = x.shape[0]
        T = self.tiles(x.shape[1:], dtype=x.dtype, device=x.device)
        window, norm = self.weights(x.shape[1:], dtype=x.dtype, device=x.device)
        s = per_sample_sigma(sigma, x, x.ndim - 1).repeat_interleave(T.num_tiles)  # (B T,)
        v = (T @ x).reshape(B * T.num_tiles, *T.out_shape[1:])
        step = self.max_batch or v.shape[0]
        d = torch.cat([call(v[i : i + step], s[i : i + step]) for i in range(0, v.shape[0], step)])
        return (T.H @ (window * d).reshape(B, *T.out_shape)) / norm

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self._blend(self.prior.denoise, x, sigma)

    def eps(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self._blend(self.prior.eps, x, sigma)

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self._blend(self.prior.score, x, sigma)
