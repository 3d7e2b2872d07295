"""The Kronecker product node A ⊗ B, acting on tensors of shape (*A.in_shape, *B.in_shape).

It needs nothing but the base class, so it sits below the operators: an operator module can state a
structured SVD in terms of it (a separable blur is B_rows ⊗ B_cols). Its adjoint and product laws are
registered here, its SVD and norm rules with the other generic nodes in linops.spectral. `linops.blocks`
re-exports it beside the block operators.
"""

from __future__ import annotations

from .base import LinearOperator, check_devices, result_dtype
from .rules import adjoint_rules, composition_rules


class Kron(LinearOperator):
    """The Kronecker product (A ⊗ B) acting on X of shape (*A.in_shape, *B.in_shape):

        (A ⊗ B) X = A X B^T   (B along the trailing axes, A along the leading ones),

    which is the matrix kron(A, B) on row-major flattened X.
    """

    def __init__(self, a: LinearOperator, b: LinearOperator):
        super().__init__(
            a.in_shape + b.in_shape, a.out_shape + b.out_shape, dtype=result_dtype((a, b)), device=check_devices((a, b))
        )
        self.a, self.b = a, b

    @property
    def operands(self):
        return (self.a, self.b)

    def rebuild(self, operands):
        return Kron(*operands)

    @staticmethod
    def _both(x, a_fn, b_fn, a_in, a_out, b_in, b_out):
        n = x.shape[0]
        ka = len(a_in)
        x = b_fn(x.reshape(-1, *b_in)).reshape(n, *a_in, *b_out)
        x = x.movedim(tuple(range(1, 1 + ka)), tuple(range(-ka, 0)))  # (n, *b_out, *a_in)
        x = a_fn(x.reshape(-1, *a_in)).reshape(n, *b_out, *a_out)
        return x.movedim(tuple(range(1, 1 + len(b_out))), tuple(range(-len(b_out), 0))).contiguous()

    def _apply(self, x):
        a, b = self.a, self.b
        return self._both(x, a._apply_any, b._apply_any, a.in_shape, a.out_shape, b.in_shape, b.out_shape)

    def _adjoint(self, y):
        a, b = self.a, self.b
        return self._both(y, a.H._apply_any, b.H._apply_any, a.out_shape, a.in_shape, b.out_shape, b.in_shape)

    def __repr__(self):
        return f"kron({self.a!r}, {self.b!r})"


def kron(a: LinearOperator, b: LinearOperator, *more: LinearOperator) -> LinearOperator:
    """A ⊗ B (⊗ C ...), left-associative."""
    out = Kron(a, b)
    for c in more:
        out = Kron(out, c)
    return out


@adjoint_rules.register(Kron)
def _adjoint_of_kron(op):
    """(A ⊗ B)^H = A^H ⊗ B^H."""
    return Kron(op.a.H, op.b.H)


@composition_rules.register(Kron, Kron)
def _kron_product(k1, k2):
    """(A ⊗ B)(C ⊗ D) = (A C) ⊗ (B D) when A, C and B, D compose."""
    if k1.a.in_shape != k2.a.out_shape or k1.b.in_shape != k2.b.out_shape:
        return None
    return Kron(k1.a @ k2.a, k1.b @ k2.b)
