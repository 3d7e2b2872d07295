"""Expression nodes of the operator algebra and the constructors that build them.

The constructors do only cheap rewrites that are always valid:

    compose: (A @ B) @ C -> Composition(A, B, C)   flatten
             I @ A -> A                            identities drop out
             (c A) @ (d B) -> (c d) (A @ B)        scalars move to the front and fold
             0 @ A -> 0                            zero absorbs
    add:     (A + B) + C -> Sum(A, B, C), A + 0 -> A
    scale:   c (d A) -> (c d) A, 1 A -> A, 0 A -> 0

The laws of these nodes are registered in the rule tables of `linops.rules` at the end of this
module; laws of concrete operators (Diagonal @ Diagonal -> Diagonal, ...) sit beside those operators.
Shapes, devices and precisions are checked when an expression is built. The constructors and the adjoint and
transpose nodes are registered in `linops.base.operations` at the end of this module: `A @ B`, `A + B`, `c * A`,
`A ** k`, `A.H` and `A.T` call them.
"""

from __future__ import annotations

import cmath
import numbers

from .base import LinearOperator, as_scalar, check_devices, operations, result_dtype
from .operators.identity import Identity, Zero
from .rules import adjoint_rules, sum_rules

# ----------------------------------------------------------------------------------------------
# adjoint and transpose


class Adjoint(LinearOperator):
    """A^H: the conjugate transpose of A, applied through A's `_adjoint` hook."""

    def __init__(self, op: LinearOperator):
        super().__init__(op.out_shape, op.in_shape, dtype=op.dtype, device=op.device)
        self.op = op

    @property
    def operands(self):
        return (self.op,)

    def rebuild(self, operands):
        return operands[0].H

    def _apply(self, x):
        return self.op._adjoint(x)

    def _adjoint(self, y):
        return self.op._apply(y)

    def __repr__(self):
        return f"{self.op!r}.H"


class Transpose(LinearOperator):
    """A^T x = conj(A^H conj(x)) for a complex operator (a real one has A^T = A^H)."""

    def __init__(self, op: LinearOperator):
        super().__init__(op.out_shape, op.in_shape, dtype=op.dtype, device=op.device)
        self.op = op

    @property
    def operands(self):
        return (self.op,)

    def rebuild(self, operands):
        return operands[0].T

    def _apply(self, x):
        return self.op._adjoint(x.conj()).conj_physical()

    def _adjoint(self, y):
        return self.op._apply(y.conj()).conj_physical()

    def __repr__(self):
        return f"{self.op!r}.T"


# ----------------------------------------------------------------------------------------------
# composition


class Composition(LinearOperator):
    """A_1 A_2 ... A_k x: the factors are applied right to left. Build it with `compose` or `@`."""

    def __init__(self, factors: tuple[LinearOperator, ...]):
        super().__init__(
            factors[-1].in_shape,
            factors[0].out_shape,
            dtype=result_dtype(factors),
            device=check_devices(factors),
        )
        self.factors = tuple(factors)

    @property
    def operands(self):
        return self.factors

    def rebuild(self, operands):
        return compose(*operands)

    @property
    def is_self_adjoint(self):
        # A B ... B^H A^H is self-adjoint: the factor list is a palindrome under .H
        fs = self.factors
        return all(fs[i].H is fs[-1 - i] for i in range(len(fs) // 2 + 1))

    def _apply(self, x):
        for op in reversed(self.factors):
            x = op._apply_any(x)
        return x

    def _adjoint(self, y):
        for op in self.factors:
            y = op.H._apply_any(y)
        return y

    def __repr__(self):
        return " @ ".join(_wrap(f) for f in self.factors)


def compose(*ops: LinearOperator) -> LinearOperator:
    """The composition ops[0] @ ops[1] @ ... (the last one is applied first)."""
    if not ops:
        raise ValueError("compose needs at least one operator")
    for left, right in zip(ops, ops[1:]):
        if left.in_shape != right.out_shape:
            raise ValueError(
                f"Cannot compose {left!r} with {right!r}: the left operator takes inputs of shape "
                f"{left.in_shape} but the right one produces outputs of shape {right.out_shape}."
            )
    dtype = result_dtype(ops)
    device = check_devices(ops)
    c, factors = 1.0, []
    for op in ops:
        if isinstance(op, Scaled):
            c, op = c * op.c, op.op
        factors.extend(op.factors if isinstance(op, Composition) else (op,))
    in_shape, out_shape = ops[-1].in_shape, ops[0].out_shape
    if any(isinstance(f, Zero) for f in factors):
        return Zero(in_shape, out_shape, dtype=dtype, device=device)
    factors = [f for f in factors if not isinstance(f, Identity)]
    if not factors:
        core = Identity(in_shape, dtype=dtype, device=device)
    elif len(factors) == 1:
        core = factors[0]
    else:
        core = Composition(tuple(factors))
    return scale(c, core)


# ----------------------------------------------------------------------------------------------
# sum


class Sum(LinearOperator):
    """(A_1 + ... + A_k) x = A_1 x + ... + A_k x. Build it with `add` or `+`."""

    def __init__(self, terms: tuple[LinearOperator, ...]):
        super().__init__(
            terms[0].in_shape,
            terms[0].out_shape,
            dtype=result_dtype(terms),
            device=check_devices(terms),
        )
        self.terms = tuple(terms)

    @property
    def operands(self):
        return self.terms

    def rebuild(self, operands):
        return add(*operands)

    @property
    def is_self_adjoint(self):
        return all(t.is_self_adjoint for t in self.terms)

    def _apply(self, x):
        out = self.terms[0]._apply_any(x)
        for t in self.terms[1:]:
            out = out + t._apply_any(x)
        return out

    def _adjoint(self, y):
        out = self.terms[0].H._apply_any(y)
        for t in self.terms[1:]:
            out = out + t.H._apply_any(y)
        return out

    def __repr__(self):
        return "(" + " + ".join(repr(t) for t in self.terms) + ")"


def add(*ops: LinearOperator) -> LinearOperator:
    """The sum ops[0] + ops[1] + ... of operators with equal shapes."""
    if not ops:
        raise ValueError("add needs at least one operator")
    for op in ops[1:]:
        if (op.in_shape, op.out_shape) != (ops[0].in_shape, ops[0].out_shape):
            raise ValueError(
                f"Cannot add {ops[0]!r} ({ops[0].in_shape} -> {ops[0].out_shape}) and "
                f"{op!r} ({op.in_shape} -> {op.out_shape}): shapes differ."
            )
    dtype = result_dtype(ops)
    device = check_devices(ops)
    terms = []
    for op in ops:
        terms.extend(op.terms if isinstance(op, Sum) else (op,))
    terms = [t for t in terms if not isinstance(t, Zero)]
    if not terms:
        return Zero(ops[0].in_shape, ops[0].out_shape, dtype=dtype, device=device)
    return terms[0] if len(terms) == 1 else Sum(tuple(terms))


# ----------------------------------------------------------------------------------------------
# scalar multiple and power


class Scaled(LinearOperator):
    """(c A) x = c (A x) for a real or complex scalar c. Build it with `scale` or `c * A`."""

    def __init__(self, c: float | complex, op: LinearOperator):
        super().__init__(op.in_shape, op.out_shape, dtype=result_dtype((op,), (c,)), device=op.device)
        self.c = c
        self.op = op

    @property
    def operands(self):
        return (self.op,)

    def rebuild(self, operands):
        return scale(self.c, operands[0])

    @property
    def is_self_adjoint(self):
        return not isinstance(self.c, complex) and self.op.is_self_adjoint

    def _apply(self, x):
        return self.c * self.op._apply_any(x)

    def _adjoint(self, y):
        return self.c.conjugate() * self.op.H._apply_any(y)

    def __repr__(self):
        return f"{self.c:g} * {_wrap(self.op)}"


def scale(c, op: LinearOperator) -> LinearOperator:
    """The scalar multiple c * op, folding nested scalars; c must be finite (NaN or infinity would
    make every output NaN or infinite, or 0 * inf, silently)."""
    c = as_scalar(c)
    if not cmath.isfinite(c):
        raise ValueError(f"Cannot scale {op!r} by {c}: the scalar must be a finite number.")
    if isinstance(op, Scaled):
        c, op = c * op.c, op.op
    if c == 1:
        return op
    if c == 0 or isinstance(op, Zero):
        return Zero(op.in_shape, op.out_shape, dtype=result_dtype((op,), (c,)), device=op.device)
    return Scaled(c, op)


def power(op: LinearOperator, k: int) -> LinearOperator:
    """A^k = A @ A @ ... @ A (k times) for a square operator; A^0 = I."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
        raise ValueError(f"A ** k needs an integer k >= 0, got {k!r}")
    if op.in_shape != op.out_shape:
        raise ValueError(f"A ** k needs in_shape == out_shape, but {op!r} maps {op.in_shape} -> {op.out_shape}")
    if k == 0:
        return Identity(op.in_shape, dtype=op.dtype, device=op.device)
    return compose(*([op] * int(k)))


def _wrap(op: LinearOperator) -> str:
    return f"({op!r})" if isinstance(op, (Sum, Scaled)) else repr(op)


# ----------------------------------------------------------------------------------------------
# laws of the algebra nodes


@adjoint_rules.register(Composition)
def _adjoint_of_composition(op):
    """(A_1 A_2 ... A_k)^H = A_k^H ... A_2^H A_1^H."""
    return compose(*(f.H for f in reversed(op.factors)))


@adjoint_rules.register(Sum)
def _adjoint_of_sum(op):
    """(A + B)^H = A^H + B^H."""
    return add(*(t.H for t in op.terms))


@adjoint_rules.register(Scaled)
def _adjoint_of_scaled(op):
    """(c A)^H = conj(c) A^H."""
    return scale(op.c.conjugate(), op.op.H)


def _split_scalar(op):
    return (op.c, op.op) if isinstance(op, Scaled) else (1.0, op)


@sum_rules.register(LinearOperator, LinearOperator)
def _collect_terms(a, b):
    """c A + d A = (c + d) A (the same operator object on both sides)."""
    (c, core_a), (d, core_b) = _split_scalar(a), _split_scalar(b)
    return scale(c + d, core_a) if core_a is core_b else None


operations.register(compose=compose, add=add, scale=scale, power=power, Adjoint=Adjoint, Transpose=Transpose)
