"""Structural tests: construction and `simplify` really produce the simpler types."""

import pytest
import torch

import linops
from linops import rules
from linops.algebra import Composition, Scaled, Sum
from linops.base import LinearOperator
from linops.testing import entries


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


f64 = {"dtype": torch.float64}
SHAPE = (1, 6, 6)


def mask(seed=0):
    return linops.Mask(torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed)) > 0.5, **f64)


def diagonal(seed=0):
    return linops.Diagonal(torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))


def same_map(a, b):
    torch.testing.assert_close(a.to_dense(), b.to_dense())


def test_mask_times_mask_is_mask():
    m1, m2 = mask(0), mask(1)
    s = (m1 @ m2).simplify()
    assert type(s) is linops.Mask
    same_map(s, m1 @ m2)
    assert type((m1.H @ m1).simplify()) is linops.Mask


def test_diagonal_products_and_sums_are_diagonal():
    d1, d2 = diagonal(0), diagonal(1)
    assert type((d1 @ d2).simplify()) is linops.Diagonal
    assert type((mask(0) @ d1).simplify()) is linops.Diagonal
    assert type((d1 + d2).simplify()) is linops.Diagonal
    ident_plus = (linops.Identity(SHAPE, **f64) + d1).simplify()
    assert type(ident_plus) is linops.Diagonal
    same_map(ident_plus, linops.Identity(SHAPE, **f64) + d1)


def test_scalars_fold_at_construction():
    d = diagonal()
    s = 2 * (3 * d)
    assert type(s) is Scaled and s.c == 6 and s.op is d
    p = (2 * d) @ (3 * mask())
    assert type(p) is Scaled and p.c == 6 and type(p.op) is Composition
    assert 1 * d is d
    assert type(0 * d) is linops.Zero
    assert type(d / 4) is Scaled and d / 4 is not d


def test_identity_drops_and_zero_absorbs():
    d = diagonal()
    eye = linops.Identity(SHAPE, **f64)
    assert eye @ d is d and d @ eye is d
    assert type(eye @ eye) is linops.Identity
    zero = linops.Zero(SHAPE, **f64)
    assert type(zero @ d) is linops.Zero
    assert d + zero is d


def test_compositions_and_sums_flatten():
    a, b, c = diagonal(0), mask(1), linops.Blur(torch.rand(3, 3, dtype=torch.float64, generator=gen(100)), SHAPE)
    comp = (a @ b) @ c
    assert type(comp) is Composition and comp.factors == (a, b, c)
    assert (a @ (b @ c)).factors == (a, b, c)
    total = (a + b) + (c + a)
    assert type(total) is Sum and len(total.terms) == 4


def test_adjoint_of_composition_reverses():
    a, c = diagonal(0), linops.Blur(torch.rand(3, 3, dtype=torch.float64, generator=gen(101)), SHAPE)
    adj = (a @ c).H
    assert type(adj) is Composition and adj.factors == (c.H, a.H)
    assert adj.H.factors == (a, c)


def test_self_adjoint_adjoint_is_self():
    m = mask()
    assert m.H is m
    blur = linops.Blur(torch.rand(3, 3, dtype=torch.float64, generator=gen(102)), SHAPE, "reflect")
    normal = blur.H @ blur
    assert normal.is_self_adjoint and normal.H is normal
    eye = linops.Identity(SHAPE)
    assert eye.H is eye


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e.name)
def test_double_adjoint_is_identity_of_objects(entry):
    op = entry.build(torch.float64, torch.Generator().manual_seed(0))
    assert op.H.H is op
    assert op.T.T is op


def test_circular_convolutions_merge():
    g = gen(103)
    k1, k2 = torch.rand(3, 3, dtype=torch.float64, generator=g), torch.rand(5, 2, dtype=torch.float64, generator=g)
    a, b = linops.CircularBlur(k1, SHAPE), linops.CircularBlur(k2, SHAPE)
    merged = (a @ b).simplify()
    assert type(merged) is linops.CircularBlur
    same_map(merged, a @ b)
    assert type((a + b).simplify()) is linops.CircularBlur
    cubed = (a**3).simplify()
    assert type(cubed) is linops.CircularBlur
    same_map(cubed, a @ a @ a)


def test_powers():
    m = mask()
    assert type((m**4).simplify()) is linops.Mask
    assert type(m**0) is linops.Identity
    assert m**1 is m


def test_crop_after_pad_is_identity():
    pad = linops.Pad(SHAPE, ((2, 1), (0, 3)), "reflect", **f64)
    crop = linops.Crop(pad.out_shape, ((2, 1), (0, 3)), **f64)
    assert type((crop @ pad).simplify()) is linops.Identity
    assert type(linops.Pad(SHAPE, 2, **f64).H) is linops.Crop


def test_kron_products_and_block_rules():
    g = gen(105)
    shapes = ((3, 2), (2, 4), (2, 2), (4, 3))
    a, b, c, d = (linops.Matrix(torch.rand(*s, dtype=torch.float64, generator=g)) for s in shapes)
    k = (linops.kron(a, b) @ linops.kron(c, d)).simplify()
    assert type(k) is linops.Kron
    same_map(k, linops.kron(a, b) @ linops.kron(c, d))
    h = linops.hstack([a, linops.Matrix(torch.rand(3, 5, dtype=torch.float64, generator=gen(109)))])
    v = linops.vstack([c, linops.Matrix(torch.rand(5, 2, dtype=torch.float64, generator=gen(110)))])
    rv = (h @ v).simplify()
    assert type(rv) is linops.Matrix  # A1 B1 + A2 B2, then dense products and sums fold
    same_map(rv, h @ v)


def test_collecting_terms():
    d = linops.Blur(torch.rand(3, 3, dtype=torch.float64, generator=gen(111)), SHAPE)
    s = (2 * d + 3 * d - d).simplify()
    assert type(s) is Scaled and s.c == 4 and s.op is d


def test_registering_a_rule_touches_nothing_else():
    class Shift(LinearOperator):
        """Cyclic shift by k: (S_k x)[i] = x[i - k]."""

        def __init__(self, n, k):
            super().__init__((n,), (n,), dtype=torch.float64)
            self.k = k

        def _apply(self, x):
            return torch.roll(x, self.k, dims=-1)

        def _adjoint(self, y):
            return torch.roll(y, -self.k, dims=-1)

    s2, s3 = Shift(7, 2), Shift(7, 3)
    assert type((s2 @ s3).simplify()) is Composition

    @rules.composition_rules.register(Shift, Shift)
    def _shifts_add(a, b):
        """S_j S_k = S_{j+k}."""
        return Shift(a.in_shape[0], a.k + b.k)

    merged = (s2 @ s3).simplify()
    assert type(merged) is Shift and merged.k == 5
    same_map(merged, s2 @ s3)
