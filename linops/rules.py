"""Rule tables: structural identities keyed by operator types.

A rule is one pure function stating one identity. It receives operators and returns the rewritten
operator, or None when its precondition does not hold. Registering a rule touches nothing else:

    @composition_rules.register(Diagonal, Diagonal)
    def _diagonal_product(a, b):
        '''diag(a) diag(b) = diag(a * b).'''
        return Diagonal(a.weights * b.weights, a.in_shape)

Rules are looked up along the method resolution order of the argument types, most specific first,
so a rule for (Mask, Mask) wins over one for (Diagonal, Diagonal).

Tables (an operator module registers the rules of its own types next to its class; the generic
expression nodes register theirs in linops.algebra, linops.blocks, linops.kron and linops.spectral):
  adjoint_rules      A      -> A^H      consulted by `A.H` when the adjoint is built (cheap rewrites)
  composition_rules  (L, R) -> L @ R    applied by `linops.simplify` to adjacent factors
  sum_rules          (A, B) -> A + B    applied by `linops.simplify` to any two terms (both orders)
  svd_rules          (A, child) -> SVD  the structured SVD A = U diag(s) V^H (`linops.svd`); child(B)
                                        gives the SVD of a sub-operator B, or None
  norm_rules         A      -> float    the exact ||A||_2 (`linops.norm`)
  isometry_rules     A      -> bool     A^H A = I (orthonormal columns), known from the type
  coisometry_rules   A      -> bool     A A^H = I (orthonormal rows), known from the type
  basis_rules        A      -> key      a hashable key equal for operators that are the same
                                        parameter-free orthonormal basis (`spectral.bases.same_basis`)
  symmetry_rules     A      -> (Symmetry, ...)  the involutions A commutes with (`linops.symmetries`)

A rule returns None when its precondition does not hold, and the next, less specific rule is tried.
A composition rule returns a single operator (not a longer product), so rewriting terminates.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable


class RuleTable:
    """Functions keyed by a tuple of operator types, dispatched along the MRO."""

    def __init__(self, name: str, arity: int):
        self.name = name
        self.arity = arity
        self._rules: dict[tuple[type, ...], list[Callable]] = {}

    def register(self, *types: type):
        if len(types) != self.arity:
            raise TypeError(f"{self.name} rules take {self.arity} operator types, got {len(types)}")

        def decorator(fn):
            self._rules.setdefault(types, []).append(fn)
            return fn

        return decorator

    def registered(self) -> list[tuple[tuple[type, ...], Callable]]:
        """Every (types, rule) pair, in registration order (for introspection and tests)."""
        return [(types, rule) for types, rules in self._rules.items() for rule in rules]

    def candidates(self, *ops):
        """Registered rules that apply to these argument types, most specific first."""
        mros = [type(op).__mro__ for op in ops]
        keyed = []
        for combo in itertools.product(*(enumerate(m) for m in mros)):
            key = tuple(cls for _, cls in combo)
            if key in self._rules:
                keyed.append((sum(depth for depth, _ in combo), key))
        for _, key in sorted(keyed, key=lambda item: item[0]):
            yield from self._rules[key]

    def rewrite(self, *ops):
        """The first rule result that is not None, or None."""
        for rule in self.candidates(*ops):
            out = rule(*ops)
            if out is not None:
                return out
        return None


adjoint_rules = RuleTable("adjoint", 1)
composition_rules = RuleTable("composition", 2)
sum_rules = RuleTable("sum", 2)
svd_rules = RuleTable("svd", 1)
norm_rules = RuleTable("norm", 1)
isometry_rules = RuleTable("isometry", 1)
coisometry_rules = RuleTable("coisometry", 1)
basis_rules = RuleTable("basis", 1)
symmetry_rules = RuleTable("symmetry", 1)
