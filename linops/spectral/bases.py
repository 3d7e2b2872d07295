"""Isometry predicates and basis identity, answered from the rule tables (`linops.rules`).

`is_isometry(W)` (W^H W = I) and `is_coisometry(W)` (W W^H = I) look up `isometry_rules` and
`coisometry_rules`, with False as the fallback; each operator module registers the facts of its own
types (the identity, the orthonormal DFT, zero padding, cropping, decimation, ...), and the expression
nodes' rules are here. The structured SVD peels such factors off the ends of a composition.

`basis_key(W)` looks up `basis_rules`: a hashable key equal for operators that are the same
parameter-free orthonormal basis, so that `same_basis` can merge adjacent SVD factors.

The bases themselves (Hartley2, PairRotation, ComplementProjector) live with the operators
(`linops.operators.bases`) and are re-exported here.
"""

from __future__ import annotations

from ..algebra import Adjoint, Composition, Scaled, Transpose
from ..base import LinearOperator
from ..operators.bases import ComplementProjector, Hartley2, PairRotation, reflect_frequencies
from ..rules import basis_rules, coisometry_rules, isometry_rules

__all__ = [
    "ComplementProjector",
    "Hartley2",
    "PairRotation",
    "basis_key",
    "is_coisometry",
    "is_isometry",
    "is_unitary",
    "reflect_frequencies",
    "same_basis",
]


def is_isometry(op: LinearOperator) -> bool:
    """True when W^H W = I is known from the type (orthonormal columns); False when unknown."""
    return bool(isometry_rules.rewrite(op))


def is_coisometry(op: LinearOperator) -> bool:
    """True when W W^H = I is known from the type (orthonormal rows); False when unknown."""
    return bool(coisometry_rules.rewrite(op))


def is_unitary(op: LinearOperator) -> bool:
    """W^H W = W W^H = I."""
    return is_isometry(op) and is_coisometry(op)


@isometry_rules.register(Adjoint)
def _adjoint_isometry(op) -> bool:
    return is_coisometry(op.op)


@coisometry_rules.register(Adjoint)
def _adjoint_coisometry(op) -> bool:
    return is_isometry(op.op)


@isometry_rules.register(Transpose)
def _transpose_isometry(op) -> bool:
    # (W^T)^H W^T = conj(W W^H)
    return is_coisometry(op.op)


@coisometry_rules.register(Transpose)
def _transpose_coisometry(op) -> bool:
    return is_isometry(op.op)


@isometry_rules.register(Composition)
def _composition_isometry(op) -> bool:
    return all(is_isometry(f) for f in op.factors)


@coisometry_rules.register(Composition)
def _composition_coisometry(op) -> bool:
    return all(is_coisometry(f) for f in op.factors)


@isometry_rules.register(Scaled)
def _scaled_isometry(op) -> bool:
    return abs(op.c) == 1 and is_isometry(op.op)


@coisometry_rules.register(Scaled)
def _scaled_coisometry(op) -> bool:
    return abs(op.c) == 1 and is_coisometry(op.op)


# ----------------------------------------------------------------------------------------------
# basis identity: when two operators are the same orthonormal basis


def basis_key(op: LinearOperator):
    """A hashable key equal for operators that are the same linear map (None: unknown, never equal).

    Keys exist only for parameter-free bases (no tensors to compare), so equal keys mean equal maps."""
    return basis_rules.rewrite(op)


@basis_rules.register(Scaled)
def _scaled_basis(op):
    inner = basis_key(op.op)
    return None if inner is None else ("scaled", op.c, inner)


@basis_rules.register(Adjoint)
def _adjoint_basis(op):
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
