"""`simplify`: rewrite an operator expression with the registered rules (see `linops.rules`).

Registered in `linops.base.operations` (for `A.simplify()`) at the end of this module."""

from __future__ import annotations

import itertools

from .algebra import Composition, Sum, add, compose
from .base import LinearOperator, operations
from .rules import composition_rules, sum_rules


def simplify(op: LinearOperator) -> LinearOperator:
    """Rewrite `op` bottom-up with the registered rules until none applies.

    The result is the same linear map (every rule is an identity); only its structure changes.
    """
    if op.operands:
        op = op.rebuild(tuple(simplify(child) for child in op.operands))
    if isinstance(op, Composition):
        factors = op.factors
        for i in range(len(factors) - 1):
            merged = composition_rules.rewrite(factors[i], factors[i + 1])
            if merged is not None:
                return simplify(compose(*factors[:i], merged, *factors[i + 2 :]))
    elif isinstance(op, Sum):
        terms = op.terms
        for i, j in itertools.combinations(range(len(terms)), 2):
            merged = sum_rules.rewrite(terms[i], terms[j])
            if merged is None:
                merged = sum_rules.rewrite(terms[j], terms[i])
            if merged is not None:
                rest = [t for k, t in enumerate(terms) if k not in (i, j)]
                return simplify(add(merged, *rest))
    return op


operations.register(simplify=simplify)
