"""`svd(A)`: structured where the operator's type knows its SVD, computed otherwise.

Dispatch follows CoLA: a rule table keyed by operator type (looked up along the MRO, like the
algebra's rule tables), one pure function per law returning an `SVD` or None when its precondition
fails. When no rule applies to an expression, it is simplified once (`linops.simplify`) and the
rules are tried on the result; when still none applies, the SVD is computed (dense for small
operators, `RandomizedSVD` on request for large ones).

The rules live in `linops.rules.svd_rules`: each operator module states the SVD of its own types next to
the class (a diagonal's phases and magnitudes, a circular blur's Hartley basis, a downsampling's
incomplete basis, ...), and a type registered as an isometry or co-isometry gets the rule below. This
module holds the dispatch and the rules of the generic nodes (spectral shape in brackets):

    isometry W         U = W, s = 1, V = I                                             [in_shape]
    co-isometry W      U = I, s = 1, V = W^H (incomplete)                              [out_shape]
    Kron(A, B)         U_A (x) U_B, s_A (x) s_B, V_A (x) V_B                     [(*s_A, *s_B)]
    c A                U -> (c / |c|) U, s -> |c| s
    A^H, A^T           swap U and V (conjugated for the transpose)
    Composition        isometries peeled off the left, co-isometries off the right;
                       adjacent factors merged when V of the left one is the same basis as U of
                       the right one: (U1 s1 V1^H)(V1 s2 V2^H) = U1 (s1 s2) V2^H
                       (a mask after a diagonal, a mask after a downsampling, F^H M F, ...; powers
                       of a circular blur and products of diagonals are simplified first)

Results are remembered on the operator (`linops.memo`) under `SVDOf(algorithm)` and, for the rules alone,
`StructuredSVD()`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..algebra import Adjoint, Composition, Scaled, Transpose, compose
from ..base import LinearOperator
from ..kron import Kron
from ..memo import MemoKey, holds, recall, remember, store
from ..operators.decomposition import SVD, coisometry_svd, identity_like, unit_values
from ..operators.identity import Identity
from ..rules import svd_rules
from ..simplify import simplify
from . import cache
from .bases import is_coisometry, is_isometry, is_unitary, same_basis
from .computed import (
    DENSE_LIMIT,
    DenseSVD,
    GramEigh,
    RandomizedSVD,
    dense_size_message,
    dense_svd,
    gram_eigh_svd,
    randomized_svd,
)
from .symmetric import SymmetricGramEigh, symmetric_gram_eigh_svd

#: svd rules (`linops.rules.svd_rules`): fn(op, child) -> SVD | None, child(B) the SVD of a sub-operator or None
ChildSVD = Callable[[LinearOperator], "SVD | None"]


@dataclass(frozen=True)
class SVDOf(MemoKey):
    """Memo key of `svd(A, algorithm)` (algorithm None: the default choice)."""

    algorithm: object


@dataclass(frozen=True)
class StructuredSVD(MemoKey):
    """Memo key of `structured_svd(A)`: the SVD from the rules alone, or `NO_STRUCTURE`."""


#: remembered under StructuredSVD() when no rule knows the operator's structure (so it is asked once)
NO_STRUCTURE = object()
STRUCTURED = StructuredSVD()


def svd(
    A: LinearOperator,
    algorithm: DenseSVD | GramEigh | SymmetricGramEigh | RandomizedSVD | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    cache_max_bytes: int | None = None,
) -> SVD:
    """The SVD A = U diag(s) V^H, with U and V as operators (conventions in `SVD`).

    algorithm:
      None             structured if a rule knows A's structure; else dense if A has at most
                       `DENSE_LIMIT` = 2^24 matrix entries; else a ValueError saying what to pass.
      DenseSVD()       the dense SVD, whatever the structure.
      GramEigh()       the exact SVD from eigh of the smaller Gram matrix (float64).
      SymmetricGramEigh()  the same, one block per isotypic component of the symmetries A declares
                       (`linops.symmetries`): about 16x cheaper with four blocks; GramEigh without any.
      RandomizedSVD()  top-k or above-threshold randomized SVD through A and A^H only.

    The result is cached on the operator instance (one entry per algorithm value: the second call
    returns the same object). `cache_dir` opts in to an on-disk cache of computed SVDs (see
    `linops.spectral.cache`): keyed by A's exact parameters and the algorithm value, verified on a
    probe before use, (m + n + 1) k itemsize bytes per entry; an unreadable or mismatched file is
    recomputed with a warning, an unwritable folder costs a warning, not the result.
    `cache_max_bytes` caps the folder's size (default: $LINOPS_CACHE_MAX_BYTES, else no cap), evicting
    the least recently used entries.
    """
    if not isinstance(A, LinearOperator):
        raise TypeError(f"svd takes a LinearOperator, got {type(A).__name__}")
    if algorithm is not None and not isinstance(algorithm, (DenseSVD, RandomizedSVD, GramEigh, SymmetricGramEigh)):
        raise TypeError(
            "svd: algorithm must be DenseSVD(...), GramEigh(...), SymmetricGramEigh(...), RandomizedSVD(...) or "
            f"None, got {algorithm!r}"
        )
    key = SVDOf(algorithm)
    out = recall(A, key)
    if out is not None:
        return out
    if algorithm is None:
        out = _rule_svd(A, _child_auto)
        if out is None:
            if math.prod(A.shape) > DENSE_LIMIT:
                raise ValueError(dense_size_message(A, DENSE_LIMIT))
            out = remember(A, SVDOf(DenseSVD()), lambda: _computed(A, DenseSVD(), cache_dir, cache_max_bytes))
        elif out.structured and not holds(A, STRUCTURED):
            store(A, STRUCTURED, out)
    else:
        out = _computed(A, algorithm, cache_dir, cache_max_bytes)
    return store(A, key, out)


def cached_svd(
    A: LinearOperator, algorithm: DenseSVD | GramEigh | SymmetricGramEigh | RandomizedSVD | None = None
) -> SVD | None:
    """The SVD `svd(A, algorithm)` already computed for this operator instance, or None (never computes)."""
    return recall(A, SVDOf(algorithm))


def structured_svd(A: LinearOperator) -> SVD | None:
    """The SVD of A from structural rules alone (never computed), or None when A has no known structure."""

    def rules():
        found = _rule_svd(A, structured_svd)
        return NO_STRUCTURE if found is None else found

    out = remember(A, STRUCTURED, rules)
    return None if out is NO_STRUCTURE else out


def _child_auto(A: LinearOperator) -> SVD | None:
    """Sub-operator SVDs for rules under svd(A): structured, else dense when small, else None."""
    out = structured_svd(A)
    if out is None and math.prod(A.shape) <= DENSE_LIMIT // 16:
        out = svd(A, DenseSVD())
    return out


def _rule_svd(A: LinearOperator, child: ChildSVD) -> SVD | None:
    out = _apply_rules(A, child)
    if out is None and A.operands:
        simplified = simplify(A)
        if not _same_expression(simplified, A):
            out = _apply_rules(simplified, child)
    return out


def _apply_rules(A: LinearOperator, child: ChildSVD) -> SVD | None:
    for rule in svd_rules.candidates(A):
        out = rule(A, child)
        if out is not None:
            return out
    return None


def _same_expression(a: LinearOperator, b: LinearOperator) -> bool:
    if a is b:
        return True
    if type(a) is not type(b) or len(a.operands) != len(b.operands) or not a.operands:
        return False
    return all(_same_expression(x, y) for x, y in zip(a.operands, b.operands))


def _computed(A: LinearOperator, algorithm, cache_dir, cache_max_bytes=None) -> SVD:
    key = None
    if cache_dir is not None:
        max_bytes = cache.max_bytes_setting(cache_max_bytes)  # a bad setting fails now, not after the work
        key = cache.fingerprint(A, algorithm)
        hit = cache.load(cache_dir, key, A, algorithm)
        if hit is not None:
            return hit
    if isinstance(algorithm, DenseSVD):
        out = dense_svd(A, algorithm)
    elif isinstance(algorithm, GramEigh):
        out = gram_eigh_svd(A, algorithm)
    elif isinstance(algorithm, SymmetricGramEigh):
        out = symmetric_gram_eigh_svd(A, algorithm)
    else:
        out = randomized_svd(A, algorithm)
    if key is not None:
        cache.save(cache_dir, key, out, A, algorithm, max_bytes=max_bytes)
    return out


# ----------------------------------------------------------------------------------------------
# isometries and co-isometries (the facts are registered by the operator modules)


@svd_rules.register(LinearOperator)
def _isometry_svd(op, child):
    """W with W^H W = I: W = W I I (s = 1 on in_shape); W with W W^H = I: W = I I (W^H)^H."""
    if is_isometry(op):
        ones, eye = unit_values(op.in_shape, op), identity_like(op.in_shape, op)
        return SVD(op, ones, eye, complete=True, range_complete=is_coisometry(op), structured=True)
    if is_coisometry(op):
        return coisometry_svd(op)
    return None


# ----------------------------------------------------------------------------------------------
# expression nodes


@svd_rules.register(Scaled)
def _scaled_svd(op, child):
    """c A = (c/|c| U) diag(|c| s) V^H."""
    inner = child(op.op)
    return None if inner is None else inner.scaled(op.c)


@svd_rules.register(Adjoint)
def _adjoint_svd(op, child):
    """(U s V^H)^H = V s U^H."""
    inner = child(op.op)
    return None if inner is None else inner.adjoint()


@svd_rules.register(Transpose)
def _transpose_svd(op, child):
    """(U s V^H)^T = conj(V) s conj(U)^H, with conj(W) = (W^T)^H."""
    inner = child(op.op)
    if inner is None:
        return None
    return SVD(
        _conj(inner.V),
        inner.s,
        _conj(inner.U),
        complete=inner.range_complete,
        range_complete=inner.complete,
        structured=inner.structured,
    )


def _conj(W: LinearOperator) -> LinearOperator:
    """The entrywise conjugate conj(W) = (W^T)^H (W itself for the identity or a real operator)."""
    return W if isinstance(W, Identity) or not W.dtype.is_complex else W.T.H


@svd_rules.register(Kron)
def _kron_svd(op, child):
    """A ⊗ B = (U_A ⊗ U_B) diag(s_A ⊗ s_B) (V_A ⊗ V_B)^H."""
    a, b = child(op.a), child(op.b)
    if a is None or b is None:
        return None
    ka = a.s.ndim
    s = a.s.reshape(*a.s.shape, *([1] * b.s.ndim)) * b.s.reshape(*([1] * ka), *b.s.shape)
    return SVD(
        Kron(a.U, b.U),
        s,
        Kron(a.V, b.V),
        complete=a.complete and b.complete,
        range_complete=a.range_complete and b.range_complete,
        structured=a.structured and b.structured,
    )


def _merge(left: SVD, right: SVD) -> SVD | None:
    """(U1 s1 V1^H)(U2 s2 V2^H) = U1 (s1 s2) V2^H when V1 and U2 are the same basis (V1^H U2 = I)."""
    if left.spectral_shape != right.spectral_shape or not same_basis(left.V, right.U):
        return None
    return SVD(
        left.U,
        left.s * right.s,
        right.V,
        complete=right.complete,
        range_complete=left.range_complete,
        structured=left.structured and right.structured,
    )


@svd_rules.register(Composition)
def _composition_svd(op, child):
    """L_1..L_a M_1..M_c R_1..R_b with isometries L (L^H L = I) and co-isometries R (R R^H = I):
    A = (L U) diag(s) (R^H V)^H where U s V^H is the SVD of M, merged factor by factor."""
    factors = list(op.factors)
    left, right = [], []
    while len(factors) > 1 and is_isometry(factors[0]):
        left.append(factors.pop(0))
    while len(factors) > 1 and is_coisometry(factors[-1]):
        right.insert(0, factors.pop())
    parts = [structured_svd(f) for f in factors]  # merging needs known bases, never dense ones
    if any(p is None for p in parts):
        return None
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = _merge(part, acc)
        if acc is None:
            return None
    if not left and not right:
        return acc
    U = compose(*left, acc.U)
    V = compose(*(r.H for r in reversed(right)), acc.V)
    return SVD(
        U,
        acc.s,
        V,
        complete=acc.complete and all(is_unitary(r) for r in right),
        range_complete=acc.range_complete and all(is_unitary(f) for f in left),
        structured=acc.structured,
    )
