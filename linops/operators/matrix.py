"""A dense matrix as an operator."""

from __future__ import annotations

import math

import torch

from ..base import LinearOperator, as_shape
from ..rules import adjoint_rules, composition_rules, norm_rules, sum_rules


class Matrix(LinearOperator):
    """y = M x for a dense (m, n) matrix M acting on row-major flattened tensors.

    `in_shape` and `out_shape` default to (n,) and (m,); any shapes with those sizes may be given.
    """

    def __init__(self, matrix, in_shape=None, out_shape=None):
        m = torch.as_tensor(matrix)
        if m.ndim != 2:
            raise ValueError(f"Matrix needs a 2-D tensor, got shape {tuple(m.shape)}")
        if not (m.dtype.is_floating_point or m.dtype.is_complex):
            m = m.to(torch.get_default_dtype())
        in_shape = as_shape(in_shape if in_shape is not None else m.shape[1], "in_shape")
        out_shape = as_shape(out_shape if out_shape is not None else m.shape[0], "out_shape")
        if (math.prod(out_shape), math.prod(in_shape)) != tuple(m.shape):
            raise ValueError(f"Matrix of shape {tuple(m.shape)} cannot map {in_shape} -> {out_shape}")
        super().__init__(in_shape, out_shape, dtype=m.dtype, device=m.device)
        self.matrix = m

    def _apply(self, x):
        return (x.reshape(x.shape[0], -1) @ self.matrix.T).reshape(x.shape[0], *self.out_shape)

    def _adjoint(self, y):
        return (y.reshape(y.shape[0], -1) @ self.matrix.conj()).reshape(y.shape[0], *self.in_shape)

    def __repr__(self):
        return f"Matrix({self.shape[0]}x{self.shape[1]})"


@adjoint_rules.register(Matrix)
def _adjoint_of_matrix(a):
    """(M)^H is the matrix conj(M)^T."""
    return Matrix(a.matrix.conj().T, a.out_shape, a.in_shape)


@composition_rules.register(Matrix, Matrix)
def _matrix_product(a, b):
    """M N is one dense matrix."""
    return Matrix(a.matrix @ b.matrix, b.in_shape, a.out_shape)


@sum_rules.register(Matrix, Matrix)
def _matrix_sum(a, b):
    """M + N is one dense matrix."""
    return Matrix(a.matrix + b.matrix, a.in_shape, a.out_shape)


# ----------------------------------------------------------------------------------------------
# spectral facts (linops.rules tables)


@norm_rules.register(Matrix)
def _matrix_norm(op):
    """The largest singular value of a small dense matrix (torch.linalg.matrix_norm, ord=2)."""
    if math.prod(op.shape) > 2**22:
        return None
    return float(torch.linalg.matrix_norm(op.matrix, ord=2))
