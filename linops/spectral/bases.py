"""Orthonormal bases used by structured SVDs, the complement projector, and isometry predicates.

    Hartley2        the real orthonormal 2-D Hartley transform (symmetric, H H = I)
    PairRotation    a real rotation of each frequency pair (w, -w): the phase of a real circulant
    ComplementProjector   P = I - V V^H for V with orthonormal columns

`is_isometry(W)` (W^H W = I) and `is_coisometry(W)` (W W^H = I) are answered per type, with
False as the fallback; the structured SVD peels such factors off the ends of a composition.
"""

from __future__ import annotations

from functools import singledispatch

import torch

from ..algebra import Adjoint, Composition, Scaled, Transpose
from ..base import LinearOperator, as_shape
from ..operators import FFT2, Crop, Decimate, Downsample, Identity, Pad, Reshape
from ..operators.padding import Boundary


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


# ----------------------------------------------------------------------------------------------
# isometry predicates


@singledispatch
def is_isometry(op: LinearOperator) -> bool:
    """True when W^H W = I is known from the type (orthonormal columns); False when unknown."""
    return False


@singledispatch
def is_coisometry(op: LinearOperator) -> bool:
    """True when W W^H = I is known from the type (orthonormal rows); False when unknown."""
    return False


def is_unitary(op: LinearOperator) -> bool:
    """W^H W = W W^H = I."""
    return is_isometry(op) and is_coisometry(op)


for _cls in (Identity, FFT2, Reshape, Hartley2, PairRotation):
    is_isometry.register(_cls)(lambda op: True)
    is_coisometry.register(_cls)(lambda op: True)


@is_isometry.register
def _(op: Pad) -> bool:
    # zero padding: P^H P = crop(pad(x)) = x; other boundaries fold samples back (P^H P != I)
    return op.boundary is Boundary.ZERO


@is_coisometry.register
def _(op: Crop) -> bool:
    return True


@is_coisometry.register
def _(op: Decimate) -> bool:
    return True


@is_isometry.register
def _(op: Adjoint) -> bool:
    return is_coisometry(op.op)


@is_coisometry.register
def _(op: Adjoint) -> bool:
    return is_isometry(op.op)


@is_isometry.register
def _(op: Transpose) -> bool:
    # (W^T)^H W^T = conj(W W^H)
    return is_coisometry(op.op)


@is_coisometry.register
def _(op: Transpose) -> bool:
    return is_isometry(op.op)


@is_isometry.register
def _(op: Composition) -> bool:
    return all(is_isometry(f) for f in op.factors)


@is_coisometry.register
def _(op: Composition) -> bool:
    return all(is_coisometry(f) for f in op.factors)


@is_isometry.register
def _(op: Scaled) -> bool:
    return abs(op.c) == 1 and is_isometry(op.op)


@is_coisometry.register
def _(op: Scaled) -> bool:
    return abs(op.c) == 1 and is_coisometry(op.op)


# ----------------------------------------------------------------------------------------------
# basis identity: when two operators are the same orthonormal basis


@singledispatch
def basis_key(op: LinearOperator):
    """A hashable key equal for operators that are the same linear map (None: unknown, never equal).

    Keys exist only for parameter-free bases (no tensors to compare), so equal keys mean equal maps."""
    return None


@basis_key.register
def _(op: Identity):
    return ("identity", op.in_shape)


@basis_key.register
def _(op: Hartley2):
    return ("hartley", op.in_shape)


@basis_key.register
def _(op: FFT2):
    return ("fft2", op.in_shape)


@basis_key.register
def _(op: Downsample):
    return ("downsample", op.in_shape, op.factor)


@basis_key.register
def _(op: Decimate):
    return ("decimate", op.in_shape, op.factor, op.offset)


@basis_key.register
def _(op: Scaled):
    inner = basis_key(op.op)
    return None if inner is None else ("scaled", op.c, inner)


@basis_key.register
def _(op: Adjoint):
    inner = basis_key(op.op)
    return None if inner is None else ("adjoint", inner)


def same_basis(a: LinearOperator, b: LinearOperator) -> bool:
    """True when a and b are known to be the same operator with orthonormal columns."""
    if a is b:
        return True
    if (a.in_shape, a.out_shape) != (b.in_shape, b.out_shape):
        return False
    ka = basis_key(a)
    return ka is not None and ka == basis_key(b)
