"""Downsampling by an integer factor: block averaging and decimation, with their adjoints."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..base import LinearOperator, as_shape


def _downsampled_shape(in_shape, factor: int, name: str):
    in_shape = as_shape(in_shape, "in_shape")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"{name} factor must be a positive int, got {factor!r}")
    if len(in_shape) < 2 or in_shape[-2] % factor or in_shape[-1] % factor:
        raise ValueError(
            f"{name} by {factor} needs in_shape (..., H, W) with H and W divisible by {factor}, got {in_shape}"
        )
    return in_shape, in_shape[:-2] + (in_shape[-2] // factor, in_shape[-1] // factor)


class Downsample(LinearOperator):
    """Block averaging: y[i, j] = (1 / f^2) sum_{a, b < f} x[f i + a, f j + b].

    The adjoint spreads each value evenly over its block: (A^H y)[p, q] = y[p // f, q // f] / f^2.
    Its singular values are all 1 / f (A A^H = I / f^2).
    """

    def __init__(self, in_shape, factor: int, *, dtype: torch.dtype = torch.float32, device="cpu"):
        in_shape, out_shape = _downsampled_shape(in_shape, factor, "Downsample")
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)
        self.factor = factor

    def _planes(self, x):
        return x.reshape(-1, 1, *x.shape[-2:])

    def _apply(self, x):
        y = F.avg_pool2d(self._planes(x), self.factor)
        return y.reshape(x.shape[0], *self.out_shape)

    def _adjoint(self, y):
        f = self.factor
        x = y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / (f * f)
        return x.reshape(y.shape[0], *self.in_shape)

    def __repr__(self):
        return f"Downsample({self.in_shape} -> {self.out_shape}, factor={self.factor})"


class Decimate(LinearOperator):
    """Decimation: y[i, j] = x[f i + o, f j + o] (keep every f-th sample from offset o).

    The adjoint inserts zeros between the samples; A A^H = I.
    """

    def __init__(self, in_shape, factor: int, offset: int = 0, *, dtype: torch.dtype = torch.float32, device="cpu"):
        in_shape, out_shape = _downsampled_shape(in_shape, factor, "Decimate")
        if not 0 <= offset < factor:
            raise ValueError(f"Decimate offset must lie in [0, {factor}), got {offset}")
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)
        self.factor, self.offset = factor, offset

    def _apply(self, x):
        o, f = self.offset, self.factor
        return x[..., o::f, o::f]

    def _adjoint(self, y):
        o, f = self.offset, self.factor
        x = y.new_zeros((y.shape[0], *self.in_shape))
        x[..., o::f, o::f] = y
        return x

    def __repr__(self):
        return f"Decimate({self.in_shape} -> {self.out_shape}, factor={self.factor}, offset={self.offset})"
