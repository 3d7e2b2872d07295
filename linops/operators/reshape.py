"""Reshaping as an operator."""

from __future__ import annotations

import math

import torch

from ..base import LinearOperator, as_shape
from ..rules import adjoint_rules, coisometry_rules, composition_rules, isometry_rules
from .identity import Identity


class Reshape(LinearOperator):
    """R x = x viewed with shape `out_shape` (row-major); R^H = R^{-1} reshapes back."""

    def __init__(self, in_shape, out_shape, *, dtype: torch.dtype = torch.float32, device="cpu"):
        in_shape, out_shape = as_shape(in_shape, "in_shape"), as_shape(out_shape, "out_shape")
        if math.prod(in_shape) != math.prod(out_shape):
            raise ValueError(f"Reshape cannot map {in_shape} ({math.prod(in_shape)} entries) to {out_shape}")
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)

    def _apply(self, x):
        return x.reshape(x.shape[0], *self.out_shape)

    def _adjoint(self, y):
        return y.reshape(y.shape[0], *self.in_shape)

    def __repr__(self):
        return f"Reshape({self.in_shape} -> {self.out_shape})"


@adjoint_rules.register(Reshape)
def _adjoint_of_reshape(r):
    """A reshape is a permutation-free isometry: R^H = R^{-1}, the reshape back."""
    return Reshape(r.out_shape, r.in_shape, dtype=r.dtype, device=r.device)


@composition_rules.register(Reshape, Reshape)
def _reshape_product(a, b):
    """Two reshapes are one reshape (the identity when it maps a shape to itself)."""
    if b.in_shape == a.out_shape:
        return Identity(a.out_shape, dtype=a.dtype, device=a.device)
    return Reshape(b.in_shape, a.out_shape, dtype=a.dtype, device=a.device)


# ----------------------------------------------------------------------------------------------
# spectral facts (linops.rules tables)


@isometry_rules.register(Reshape)
@coisometry_rules.register(Reshape)
def _reshape_is_unitary(op) -> bool:
    """A reshape permutes nothing and drops nothing: R^H R = R R^H = I."""
    return True
