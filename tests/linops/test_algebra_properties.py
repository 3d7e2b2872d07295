"""Property-based tests: random expression trees of operators agree with the same expression on
dense matrices, before and after simplification, and so do their adjoints and transposes."""

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linops
from linops.testing import dottest

SHAPES = [(2,), (3,), (4,), (6,), (2, 2), (2, 3), (3, 2)]
FLAT_BY_SIZE = {n: [s for s in SHAPES if math.prod(s) == n] for n in (2, 3, 4, 6)}
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tensor(draw, shape):
    seed = draw(st.integers(0, 2**31 - 1))
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@st.composite
def leaves(draw, in_shape, out_shape):
    kinds = ["matrix", "zero"]
    if in_shape == out_shape:
        kinds += ["identity", "diagonal", "mask"]
        if len(in_shape) == 2:
            kinds += ["circular-blur", "blur"]
    elif math.prod(in_shape) == math.prod(out_shape):
        kinds += ["reshape"]
    kind = draw(st.sampled_from(kinds))
    f64 = {"dtype": torch.float64}
    if kind == "matrix":
        return linops.Matrix(_tensor(draw, (math.prod(out_shape), math.prod(in_shape))), in_shape, out_shape)
    if kind == "zero":
        return linops.Zero(in_shape, out_shape, **f64)
    if kind == "identity":
        return linops.Identity(in_shape, **f64)
    if kind == "diagonal":
        return linops.Diagonal(_tensor(draw, in_shape))
    if kind == "mask":
        return linops.Mask(_tensor(draw, in_shape) > 0, **f64)
    if kind == "reshape":
        return linops.Reshape(in_shape, out_shape, **f64)
    kernel = _tensor(draw, (2, 2))
    if kind == "circular-blur":
        return linops.CircularBlur(kernel, in_shape)
    boundary = draw(st.sampled_from(list(linops.Boundary)))
    method = draw(st.sampled_from(list(linops.ConvolutionMethod)))
    return linops.Blur(kernel, in_shape, boundary, method=method)


def _splits(shape):
    """Ways to write a flat shape (n,) as two blocks of pool shapes."""
    if len(shape) != 1:
        return []
    n = shape[0]
    return [(a, b) for a in FLAT_BY_SIZE for b in FLAT_BY_SIZE if a + b == n]


@st.composite
def expressions(draw, in_shape, out_shape, depth):
    """A random operator expression with the given shapes and its dense matrix, built independently."""
    kinds = ["leaf"]
    if depth > 0:
        kinds += ["compose", "add", "sub", "neg", "scale", "adjoint", "transpose"]
        if in_shape == out_shape:
            kinds.append("power")
        if _splits(out_shape):
            kinds.append("vstack")
        if _splits(in_shape):
            kinds.append("hstack")
        if _splits(in_shape) and _splits(out_shape):
            kinds.append("block_diag")
        if len(in_shape) == 2 and len(out_shape) == 2:
            kinds.append("kron")
    kind = draw(st.sampled_from(kinds))
    sub = lambda i, o: draw(expressions(i, o, depth - 1))  # noqa: E731
    if kind == "leaf":
        op = draw(leaves(in_shape, out_shape))
        return op, op.to_dense()
    if kind == "compose":
        mid = draw(shapes)
        (a, da), (b, db) = sub(mid, out_shape), sub(in_shape, mid)
        da, db = _promote(da, db)
        return a @ b, da @ db
    if kind in ("add", "sub"):
        (a, da), (b, db) = sub(in_shape, out_shape), sub(in_shape, out_shape)
        return (a + b, da + db) if kind == "add" else (a - b, da - db)
    if kind == "neg":
        a, da = sub(in_shape, out_shape)
        return -a, -da
    if kind == "scale":
        c = draw(st.sampled_from([2.0, -0.5, 0.0, 1.0, 1.5 - 2j, 1j]))
        a, da = sub(in_shape, out_shape)
        return c * a, c * da
    if kind == "adjoint":
        a, da = sub(out_shape, in_shape)
        return a.H, da.conj().T
    if kind == "transpose":
        a, da = sub(out_shape, in_shape)
        return a.T, da.T
    if kind == "power":
        k = draw(st.integers(0, 3))
        a, da = sub(in_shape, out_shape)
        return a**k, torch.linalg.matrix_power(da, k)
    if kind == "vstack":
        na, nb = draw(st.sampled_from(_splits(out_shape)))
        (a, da), (b, db) = sub(in_shape, draw(st.sampled_from(FLAT_BY_SIZE[na]))), sub(
            in_shape, draw(st.sampled_from(FLAT_BY_SIZE[nb]))
        )
        return linops.vstack([a, b]), torch.cat(_promote(da, db), dim=0)
    if kind == "hstack":
        na, nb = draw(st.sampled_from(_splits(in_shape)))
        (a, da), (b, db) = sub(draw(st.sampled_from(FLAT_BY_SIZE[na])), out_shape), sub(
            draw(st.sampled_from(FLAT_BY_SIZE[nb])), out_shape
        )
        return linops.hstack([a, b]), torch.cat(_promote(da, db), dim=1)
    if kind == "block_diag":
        ia, ib = draw(st.sampled_from(_splits(in_shape)))
        oa, ob = draw(st.sampled_from(_splits(out_shape)))
        (a, da) = sub(draw(st.sampled_from(FLAT_BY_SIZE[ia])), draw(st.sampled_from(FLAT_BY_SIZE[oa])))
        (b, db) = sub(draw(st.sampled_from(FLAT_BY_SIZE[ib])), draw(st.sampled_from(FLAT_BY_SIZE[ob])))
        return linops.block_diag([a, b]), torch.block_diag(*_promote(da, db))
    # kron
    (a, da), (b, db) = sub((in_shape[0],), (out_shape[0],)), sub((in_shape[1],), (out_shape[1],))
    return linops.kron(a, b), torch.kron(*_promote(da, db))


def _promote(*ts):
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return [t.to(dtype).contiguous() for t in ts]


def _close(a, b):
    a, b = _promote(a, b)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-10), f"max deviation {(a - b).abs().max():.3e}"


# 2-D shapes are drawn more often: only they admit Kronecker products
shapes = st.sampled_from(SHAPES + [(2, 2), (2, 3), (3, 2)] * 2)


@SETTINGS
@given(data=st.data(), in_shape=shapes, out_shape=shapes)
def test_expression_equals_dense_algebra(data, in_shape, out_shape):
    op, dense = data.draw(expressions(in_shape, out_shape, depth=3))
    assert op.in_shape == in_shape and op.out_shape == out_shape
    _close(op.to_dense(), dense)
    _close(op.simplify().to_dense(), dense)


@SETTINGS
@given(data=st.data(), in_shape=shapes, out_shape=shapes)
def test_adjoint_and_transpose_of_expressions(data, in_shape, out_shape):
    op, dense = data.draw(expressions(in_shape, out_shape, depth=3))
    _close(op.H.to_dense(), dense.conj().T)
    _close(op.T.to_dense(), dense.T)
    assert op.H.H is op
    simplified = op.simplify()
    _close(simplified.H.to_dense(), dense.conj().T)
    if dense.abs().max() > 1e-8:  # A + B - A - B cancels to rounding (~1e-17), where a ratio means nothing
        dottest(op)
