"""The empirical prior of a finite image set: the exact MMSE denoiser a perfect network would learn.

p(x0) = (1/N) sum_i delta(x0 - x_i), so the noisy marginal is the smoothed empirical distribution
p_sigma(x) = (1/N) sum_i N(x; x_i, sigma^2 I) and

    denoise(x, sigma) = sum_i w_i x_i,   w = softmax_i( -||x - x_i||^2 / (2 sigma^2) )
    log p_sigma(x)    = logsumexp_i( -||x - x_i||^2 / (2 sigma^2) ) - log N - (n / 2) log(2 pi sigma^2)

Squared distances are computed directly (no ||x||^2 - 2 x.x_i + ||x_i||^2 cancellation, which would
swamp the softmax at small sigma), and the softmax is streamed over blocks of the image set with a
running maximum, so memory stays bounded for large sets and batches.
"""

from __future__ import annotations

import math

import torch

from ..protocol import UNIT, Convention, Prior, per_sample_sigma


class EmpiricalPrior(Prior):
    """The exact MMSE denoiser of the images in `images` (shape (N, *event)).

    Args:
        images: the image set, (N, *event), e.g. (N, C, H, W).
        convention: the units of the images (default UNIT).
        block_elements: memory budget, in tensor elements, for one block of the streamed softmax
            (distances of a batch to a block of images, plus that block in the input's dtype).
    """

    sigma_range = None

    def __init__(self, images: torch.Tensor, *, convention: Convention = UNIT, block_elements: int = 2**24):
        images = torch.as_tensor(images)
        if images.ndim < 2 or images.shape[0] < 1:
            raise ValueError(f"images must have shape (N, *event) with N >= 1, got {tuple(images.shape)}")
        if images.is_complex() or not images.dtype.is_floating_point:
            raise TypeError(f"images must be a real floating tensor, got {images.dtype}")
        self.images = images
        self.event_shape = tuple(images.shape[1:])
        self.convention = convention
        self.block_elements = int(block_elements)

    def __repr__(self):
        return f"EmpiricalPrior(N={self.images.shape[0]}, event_shape={self.event_shape})"

    @property
    def size(self) -> int:
        return math.prod(self.event_shape)

    def _flat(self, x):
        k = len(self.event_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != self.event_shape:
            raise ValueError(f"{self!r} expects x of shape (*batch, {self.event_shape}), got {tuple(x.shape)}")
        return x.reshape(-1, self.size)

    def _stream(self, x, sigma, *, want_mean: bool):
        """(log sum_i exp(l_i), sum_i softmax_i x_i) with l_i = -||x - x_i||^2 / (2 sigma^2), per sample."""
        xf = self._flat(x)
        s2 = per_sample_sigma(sigma, x, len(self.event_shape)).reshape(-1, 1) ** 2
        B, n, N = xf.shape[0], self.size, self.images.shape[0]
        block = max(1, min(N, self.block_elements // max(B, n, 1)))
        running_max = torch.full((B,), -math.inf, dtype=x.dtype, device=x.device)
        total = torch.zeros(B, dtype=x.dtype, device=x.device)
        acc = torch.zeros(B, n, dtype=x.dtype, device=x.device) if want_mean else None
        for start in range(0, N, block):
            xi = self.images[start : start + block].reshape(-1, n).to(device=x.device, dtype=x.dtype)
            d2 = torch.cdist(xf[None], xi[None], compute_mode="donot_use_mm_for_euclid_dist")[0] ** 2
            logits = -d2 / (2 * s2)
            new_max = torch.maximum(running_max, logits.max(dim=1).values)
            rescale = torch.exp(running_max - new_max)
            p = torch.exp(logits - new_max[:, None])
            total = total * rescale + p.sum(dim=1)
            if want_mean:
                acc = acc * rescale[:, None] + p @ xi
            running_max = new_max
        return running_max + torch.log(total), (acc / total[:, None] if want_mean else None)

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """sum_i softmax_i(-||x - x_i||^2 / (2 sigma^2)) x_i."""
        _, mean = self._stream(x, sigma, want_mean=True)
        return mean.reshape(x.shape)

    def log_prob(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """log (1/N) sum_i N(x; x_i, sigma^2 I), shape (*batch); needs sigma > 0."""
        lse, _ = self._stream(x, sigma, want_mean=False)
        s2 = per_sample_sigma(sigma, x, len(self.event_shape)).reshape(-1) ** 2
        out = lse - math.log(self.images.shape[0]) - 0.5 * self.size * torch.log(2 * math.pi * s2)
        return out.reshape(x.shape[: x.ndim - len(self.event_shape)])

    def sample(self, n: int = 1, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images drawn uniformly (with replacement) from the set, shape (n, *event)."""
        idx = torch.randint(self.images.shape[0], (int(n),), generator=generator)
        return self.images[idx.to(self.images.device)]

    def to_convention(self, convention: Convention) -> Prior:
        """Exact: the same set in other units, x_i' = a x_i + b."""
        if convention == self.convention:
            return self
        a, b = self.convention.map_to(convention)
        return EmpiricalPrior(a * self.images + b, convention=convention, block_elements=self.block_elements)
