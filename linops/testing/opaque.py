"""`Opaque(A)`: A with its structure erased (CoLA's trick for testing structured algorithms).

An opaque operator knows only how to apply A and A^H: it has no operands, no registered rules and
a type nothing dispatches on, so `svd(Opaque(A))`, `norm(Opaque(A))` and friends take the computed
path. Comparing them with `svd(A)` checks each structured rule against the same linear map.
"""

from __future__ import annotations

from ..base import LinearOperator


class Opaque(LinearOperator):
    """x -> A x and y -> A^H y, and nothing else known about A."""

    def __init__(self, op: LinearOperator):
        super().__init__(op.in_shape, op.out_shape, dtype=op.dtype, device=op.device)
        self._wrapped = op

    def _apply(self, x):
        return self._wrapped._apply_any(x)

    def _adjoint(self, y):
        return self._wrapped.H._apply_any(y)

    def __repr__(self):
        return f"Opaque({self._wrapped!r})"
