"""The discrete gradient: forward differences with a Neumann boundary, one component per axis."""

from __future__ import annotations

import math

import torch

from ..base import LinearOperator, as_shape


class Gradient(LinearOperator):
    """D x = (D_a x)_a over the differentiated axes a (default the last two, rows then columns), with

        (D_a x)[..., i, ...] = x[..., i + 1, ...] - x[..., i, ...]   for i < n_a - 1,
                               0                                     for i = n_a - 1    (Neumann),

    stacked on a new leading axis: in_shape (*s) -> out_shape (len(axes), *s), e.g. (C, H, W) ->
    (2, C, H, W) with [0] the vertical and [1] the horizontal difference. The exact adjoint is the
    negative divergence by backward differences,

        (D^H g) = sum_a (D_a^H g_a),   (D_a^H g)[i] = g[i - 1] - g[i],  with g[-1] = g[n_a - 1] = 0,

    so <D x, g> = <x, D^H g> holds to rounding, and D^H D is the Neumann Laplacian. Its spectral norm is
    ||D||^2 = sum_a 4 sin^2(pi (n_a - 1) / (2 n_a)) < 4 len(axes) (`norm_squared`); isotropic total
    variation is TV(x) = sum_pixels ||(D x)[:, pixel]||_2, the norm over the leading component axis.
    """

    def __init__(self, in_shape, axes=(-2, -1), *, dtype: torch.dtype = torch.float32, device="cpu"):
        in_shape = as_shape(in_shape, "in_shape")
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
            raise TypeError(f"Gradient: axes must be a non-empty tuple of ints, got {axes!r}")
        if any(not -len(in_shape) <= a < len(in_shape) for a in axes):
            raise ValueError(f"Gradient: axes {axes} out of range for in_shape {in_shape}")
        positive = tuple(a % len(in_shape) for a in axes)
        if len(set(positive)) != len(positive):
            raise ValueError(f"Gradient: axes {axes} name the same axis twice for in_shape {in_shape}")
        super().__init__(in_shape, (len(axes), *in_shape), dtype=dtype, device=device)
        self.axes = positive

    @property
    def norm_squared(self) -> float:
        """||D||_2^2 = sum_a 4 sin^2(pi (n_a - 1) / (2 n_a)): the top eigenvalue of the Neumann Laplacian."""
        return sum(4 * math.sin(math.pi * (n - 1) / (2 * n)) ** 2 for n in (self.in_shape[a] for a in self.axes))

    def _apply(self, x):
        out = x.new_zeros((x.shape[0], len(self.axes), *self.in_shape))
        for j, a in enumerate(self.axes):
            n, dim = self.in_shape[a], a + 1
            out[:, j].narrow(dim, 0, n - 1).copy_(x.narrow(dim, 1, n - 1) - x.narrow(dim, 0, n - 1))
        return out

    def _adjoint(self, g):
        out = g.new_zeros((g.shape[0], *self.in_shape))
        for j, a in enumerate(self.axes):
            n, dim = self.in_shape[a], a + 1
            h = g[:, j].narrow(dim, 0, n - 1)
            out.narrow(dim, 1, n - 1).add_(h)
            out.narrow(dim, 0, n - 1).sub_(h)
        return out

    def __repr__(self):
        return f"Gradient(in_shape={self.in_shape}, axes={self.axes})"
