"""Downsampling by an integer factor: block averaging and decimation, with their adjoints."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..base import LinearOperator, as_shape, precision_of
from ..rules import basis_rules, coisometry_rules, norm_rules, svd_rules
from .decomposition import SVD, coisometry_svd, identity_like, unit_values
from .diagonal import Mask


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


# ----------------------------------------------------------------------------------------------
# spectral facts (linops.rules tables)


@svd_rules.register(Downsample)
def _downsample_svd(op, child):
    """Block averaging A with A A^H = I / f^2: A = I diag(1/f) (f A^H)^H, V = f A^H has orthonormal columns."""
    f = op.factor
    s = unit_values(op.out_shape, op) / f
    return SVD(identity_like(op.out_shape, op), s, f * op.H, complete=False, range_complete=True, structured=True)


@norm_rules.register(Downsample)
def _downsample_norm(op):
    """Block averaging by f: A A^H = I / f^2, ||A|| = 1/f."""
    return 1.0 / op.factor


@basis_rules.register(Downsample)
def _downsample_basis(op):
    return ("downsample", op.in_shape, op.factor)


@coisometry_rules.register(Decimate)
def _decimate_is_coisometry(op) -> bool:
    """D D^H = I: the adjoint inserts zeros that D drops again."""
    return True


@svd_rules.register(Decimate)
def _decimate_svd(op, child):
    """Decimation D with D D^H = I: D = I diag(1) (D^H)^H; the complement I - D^H D is the mask of
    the samples it drops."""
    keep = torch.zeros(op.in_shape, dtype=torch.bool, device=op.device)
    keep[..., op.offset :: op.factor, op.offset :: op.factor] = True
    return coisometry_svd(op, complement=Mask(~keep, dtype=precision_of(op.dtype)))


@norm_rules.register(Decimate)
def _decimate_norm(op):
    """D D^H = I: ||D|| = 1."""
    return 1.0


@basis_rules.register(Decimate)
def _decimate_basis(op):
    return ("decimate", op.in_shape, op.factor, op.offset)
