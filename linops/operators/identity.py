"""The identity and zero operators."""

from __future__ import annotations

import torch

from ..base import LinearOperator
from ..rules import adjoint_rules, basis_rules, coisometry_rules, isometry_rules, norm_rules, sum_rules


class Identity(LinearOperator):
    """I x = x on tensors of shape `shape`."""

    is_self_adjoint = True

    def __init__(self, shape, *, dtype: torch.dtype = torch.float32, device="cpu"):
        super().__init__(shape, shape, dtype=dtype, device=device)

    def _apply(self, x):
        return x

    def _adjoint(self, y):
        return y

    def __repr__(self):
        return f"Identity({self.in_shape})"


class Zero(LinearOperator):
    """0 x = 0 (of shape `out_shape`, default `in_shape`)."""

    def __init__(self, in_shape, out_shape=None, *, dtype: torch.dtype = torch.float32, device="cpu"):
        super().__init__(in_shape, in_shape if out_shape is None else out_shape, dtype=dtype, device=device)

    @property
    def is_self_adjoint(self):
        return self.in_shape == self.out_shape

    def _apply(self, x):
        return x.new_zeros((x.shape[0], *self.out_shape))

    def _adjoint(self, y):
        return y.new_zeros((y.shape[0], *self.in_shape))

    def __repr__(self):
        return f"Zero({self.in_shape} -> {self.out_shape})"


@adjoint_rules.register(Zero)
def _adjoint_of_zero(op):
    """0^H = 0 with the shapes swapped."""
    return Zero(op.out_shape, op.in_shape, dtype=op.dtype, device=op.device)


@sum_rules.register(Identity, Identity)
def _identity_sum(a, b):
    """I + I = 2 I."""
    return 2 * a


# ----------------------------------------------------------------------------------------------
# spectral facts (linops.rules tables)


@isometry_rules.register(Identity)
@coisometry_rules.register(Identity)
def _identity_is_unitary(op) -> bool:
    """I^H I = I I^H = I (its SVD is the unitary one: U = I, s = 1, V = I)."""
    return True


@basis_rules.register(Identity)
def _identity_basis(op):
    return ("identity", op.in_shape)


@norm_rules.register(Identity)
def _identity_norm(op):
    """||I|| = 1."""
    return 1.0


@norm_rules.register(Zero)
def _zero_norm(op):
    """||0|| = 0."""
    return 0.0
