"""Rule tables: structural identities keyed by operator types.

A rule is one pure function stating one identity. It receives operators and returns the rewritten
operator, or None when its precondition does not hold. Registering a rule touches nothing else:

    @composition_rules.register(Diagonal, Diagonal)
    def _diagonal_product(a, b):
        '''diag(a) diag(b) = diag(a * b).'''
        return Diagonal(a.weights * b.weights, a.in_shape)

Rules are looked up along the method resolution order of the argument types, most specific first,
so a rule for (Mask, Mask) wins over one for (Diagonal, Diagonal).

Tables:
  adjoint_rules      A      -> A^H      consulted by `A.H` when the adjoint is built (cheap rewrites)
  composition_rules  (L, R) -> L @ R    applied by `linops.simplify` to adjacent factors
  sum_rules          (A, B) -> A + B    applied by `linops.simplify` to any two terms (both orders)

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
