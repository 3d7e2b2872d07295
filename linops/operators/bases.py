"""Orthonormal bases and the complement projector that structured SVDs are built from.

    Hartley2        the real orthonormal 2-D Hartley transform (symmetric, H H = I)
    PairRotation    a real rotation of each frequency pair (w, -w): the phase of a real circulant
    ComplementProjector   P = I - V V^H for V with orthonormal columns

They are operators like any other (the spectral toolkit re-exports them as `linops.spectral.Hartley2`...);
this module imports only the base class, so an operator module can build its SVD from them.
"""

from __future__ import annotations

import torch

from ..base import LinearOperator, as_shape
from ..rules import basis_rules, coisometry_rules, isometry_rules


def reflect_frequencies(z: torch.Tensor) -> torch.Tensor:
    """(J z)[..., u, v] = z[..., -u mod H, -v mod W]: the frequency reflection w -> -w."""
    return torch.roll(torch.flip(z, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))


class Hartley2(LinearOperator):
    """The orthonormal 2-D discrete Hartley transform over the last two axes:

        (H x)[u, v] = (1 / sqrt(H W)) sum_{p, q} x[p, q] cas(2 pi (u p / H + v q / W)),
        cas(t) = cos(t) + sin(t),

    computed as Re(F x) - Im(F x) with F the orthonormal DFT. It is real, symmetric and its own
    inverse (H^T = H, H H = I), so it is a real orthonormal basis of R^(H x W) in which every real
    circular convolution is block diagonal with 2 x 2 blocks (frequency pairs w, -w).
    """

    is_self_adjoint = True

    def __init__(self, in_shape, *, dtype: torch.dtype = torch.float32, device="cpu"):
        in_shape = as_shape(in_shape, "in_shape")
        if len(in_shape) < 2:
            raise ValueError(f"Hartley2 needs in_shape (..., H, W), got {in_shape}")
        if dtype.is_complex:
            raise TypeError(f"Hartley2 is a real transform; got dtype {dtype}")
        super().__init__(in_shape, in_shape, dtype=dtype, device=device)

    def _apply(self, x):
        X = torch.fft.fft2(x, norm="ortho")
        return X.real - X.imag

    def _adjoint(self, y):
        return self._apply(y)

    def __repr__(self):
        return f"Hartley2(in_shape={self.in_shape})"


class PairRotation(LinearOperator):
    """A real orthogonal map in Hartley coordinates: rotate each frequency pair (w, -w) by angle phi(w),

        (R z)[w] = cos(phi[w]) z[w] - sin(phi[w]) z[-w],     R^T z = cos(phi) z + sin(phi) (J z),

    where cos(phi) = c is even (c[-w] = c[w]) and sin(phi) = t is odd (t[-w] = -t[w]), with
    c^2 + t^2 = 1 and t = 0 at the self-paired frequencies (w = -w). Then R^T R = C^2 + T^2 = I.
    For a real circulant with transfer function k^ = |k^| (c + i t): H C H = R diag(|k^|).
    """

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor, in_shape):
        in_shape = as_shape(in_shape, "in_shape")
        super().__init__(in_shape, in_shape, dtype=cos.dtype, device=cos.device)
        self.cos, self.sin = cos, sin

    def _apply(self, z):
        return self.cos * z - self.sin * reflect_frequencies(z)

    def _adjoint(self, z):
        return self.cos * z + self.sin * reflect_frequencies(z)

    def __repr__(self):
        return f"PairRotation(in_shape={self.in_shape})"


class ComplementProjector(LinearOperator):
    """P x = x - V (V^H x): the orthogonal projector onto the complement of range(V), for V with
    orthonormal columns. Self-adjoint and idempotent (P = P^H = P^2); V^H P = 0.
    """

    is_self_adjoint = True

    def __init__(self, V: LinearOperator):
        super().__init__(V.out_shape, V.out_shape, dtype=V.dtype, device=V.device)
        self.V = V

    @property
    def operands(self):
        return (self.V,)

    def rebuild(self, operands):
        return ComplementProjector(operands[0])

    def _apply(self, x):
        return x - self.V._apply_any(self.V.H._apply_any(x))

    def _adjoint(self, y):
        return self._apply(y)

    def __repr__(self):
        return f"ComplementProjector({self.V!r})"


@isometry_rules.register(Hartley2)
@coisometry_rules.register(Hartley2)
@isometry_rules.register(PairRotation)
@coisometry_rules.register(PairRotation)
def _orthogonal(op) -> bool:
    """H and R are real orthogonal: W^H W = W W^H = I."""
    return True


@basis_rules.register(Hartley2)
def _hartley_basis(op):
    return ("hartley", op.in_shape)
