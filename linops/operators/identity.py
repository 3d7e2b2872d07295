"""The identity and zero operators."""

from __future__ import annotations

import torch

from ..base import LinearOperator


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
