"""Pointwise scaling: Diagonal (real or complex weights) and Mask (0/1, an orthogonal projector)."""

from __future__ import annotations

import torch

from ..base import LinearOperator, as_shape, require_finite
from ..rules import adjoint_rules, composition_rules, norm_rules, sum_rules
from .identity import Identity


def _broadcast_in_shape(weights: torch.Tensor, in_shape, name: str):
    if in_shape is None:
        return tuple(weights.shape)
    in_shape = as_shape(in_shape, "in_shape")
    try:
        full = torch.broadcast_shapes(weights.shape, in_shape)
    except RuntimeError:
        full = None
    if full != in_shape:
        raise ValueError(f"{name} weights of shape {tuple(weights.shape)} do not broadcast to in_shape {in_shape}")
    return in_shape


class Diagonal(LinearOperator):
    """D x = w ⊙ x, with D^H y = conj(w) ⊙ y.

    `weights` has shape `in_shape` or broadcasts to it (e.g. a (1, H, W) map shared by channels),
    and finite entries. Integer or boolean weights become the default floating dtype.
    """

    def __init__(self, weights, in_shape=None):
        w = torch.as_tensor(weights)
        if not (w.dtype.is_floating_point or w.dtype.is_complex):
            w = w.to(torch.get_default_dtype())
        require_finite(w, f"{type(self).__name__} weights")
        in_shape = _broadcast_in_shape(w, in_shape, type(self).__name__)
        super().__init__(in_shape, in_shape, dtype=w.dtype, device=w.device)
        self.weights = w

    @property
    def is_self_adjoint(self):
        return not self.weights.is_complex()

    def _apply(self, x):
        return self.weights * x

    def _adjoint(self, y):
        return self.weights.conj() * y

    def __repr__(self):
        return f"{type(self).__name__}(in_shape={self.in_shape})"


class Mask(Diagonal):
    """M x = m ⊙ x with m in {0, 1}: self-adjoint and idempotent (M M = M), an orthogonal projector.

    `mask` is boolean or 0/1-valued. `dtype` (floating or complex) sets the precision of the
    operator; by default that of a floating `mask`, else the default dtype (float32).
    """

    is_self_adjoint = True

    def __init__(self, mask, in_shape=None, *, dtype: torch.dtype | None = None):
        m = torch.as_tensor(mask)
        if m.dtype != torch.bool:
            if not bool(((m == 0) | (m == 1)).all()):
                raise ValueError("Mask entries must be 0 or 1; use Diagonal for general weights")
        if dtype is None:
            dtype = m.dtype if (m.dtype.is_floating_point or m.dtype.is_complex) else torch.get_default_dtype()
        elif not isinstance(dtype, torch.dtype) or not (dtype.is_floating_point or dtype.is_complex):
            raise TypeError(f"Mask: dtype must be a floating or complex torch.dtype, got {dtype!r}")
        super().__init__(m.to(dtype), in_shape)


@adjoint_rules.register(Diagonal)
def _adjoint_of_diagonal(d):
    """diag(w)^H = diag(conj(w)) (reached only for complex weights; real ones are self-adjoint)."""
    return Diagonal(d.weights.conj(), d.in_shape)


@composition_rules.register(Diagonal, Diagonal)
def _diagonal_product(a, b):
    """diag(a) diag(b) = diag(a ⊙ b)."""
    return Diagonal(a.weights * b.weights, a.in_shape)


@composition_rules.register(Mask, Mask)
def _mask_product(a, b):
    """mask(a) mask(b) = mask(a ⊙ b): the product of 0/1 masks is a 0/1 mask (M M = M)."""
    return Mask(a.weights * b.weights, a.in_shape, dtype=a.dtype)


@sum_rules.register(Diagonal, Diagonal)
def _diagonal_sum(a, b):
    """diag(a) + diag(b) = diag(a + b)."""
    return Diagonal(a.weights + b.weights, a.in_shape)


@sum_rules.register(Identity, Diagonal)
def _identity_plus_diagonal(i, d):
    """I + diag(w) = diag(1 + w)."""
    return Diagonal(1 + d.weights, d.in_shape)


# ----------------------------------------------------------------------------------------------
# spectral facts (linops.rules tables; the SVDs of Diagonal and Mask are stated in decomposition.py, beside the
# SVD value U diag(s) V^H, which is built on Diagonal)


@norm_rules.register(Diagonal)
def _diagonal_norm(op):
    """||diag(w)|| = max |w| (a mask: 1, or 0 when empty)."""
    return float(op.weights.abs().max())
