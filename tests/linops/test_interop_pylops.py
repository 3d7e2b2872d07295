"""pylops interop: our operators as pylops LinearOperators (dot test, pylops' solvers) and pylops
operators as ours (dot test, dense agreement, batching, autograd, composition)."""

import numpy as np
import pytest
import torch

pylops = pytest.importorskip("pylops")

from pylops.optimization.basic import cgls as pylops_cgls  # noqa: E402
from pylops.optimization.basic import lsqr as pylops_lsqr  # noqa: E402
from pylops.utils import dottest as pylops_dottest  # noqa: E402

from linops import (  # noqa: E402
    CircularBlur,
    Diagonal,
    Downsample,
    FourierSampling,
    Mask,
    Matrix,
    SeparableBlur,
)
from linops.interop.pylops import from_pylops, to_pylops  # noqa: E402
from linops.spectral import CGLS, LSQR, norm, solve  # noqa: E402
from linops.testing import dottest  # noqa: E402

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand(*shape, seed=0):
    return torch.rand(shape, generator=gen(seed), dtype=F64)


OPERATORS = {
    "mask @ blur": lambda: Mask(rand(1, 7, 6) > 0.3, dtype=F64) @ CircularBlur(rand(3, 3), (1, 7, 6)),
    "downsample": lambda: Downsample((2, 6, 8), 2, dtype=F64),
    "separable-blur": lambda: SeparableBlur(rand(3), rand(5, seed=1), (6, 7), "reflect"),
    "matrix-shaped": lambda: Matrix(torch.randn(6, 10, generator=gen(2), dtype=F64), (2, 5), (3, 2)),
    "fourier-sampling": lambda: FourierSampling(rand(6, 6) > 0.4, (1, 6, 6), dtype=torch.complex128),
    "float32 blur": lambda: CircularBlur(torch.rand(3, 3, generator=gen(3)), (1, 6, 6)),
}


@pytest.fixture(params=sorted(OPERATORS), ids=str)
def op(request):
    return OPERATORS[request.param]()


def test_to_pylops_shapes_and_dottest(op):
    P = to_pylops(op)
    assert tuple(P.dims) == op.in_shape and tuple(P.dimsd) == op.out_shape and P.shape == op.shape
    rtol = 1e-10 if op.dtype in (F64, torch.complex128) else 1e-5
    complexflag = 3 if op.dtype.is_complex else 0
    assert pylops_dottest(P, *P.shape, rtol=rtol, complexflag=complexflag)


def test_to_pylops_matches_dense(op):
    P = to_pylops(op)
    dense = op.to_dense().numpy()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(P.shape[1])
    X = rng.standard_normal((P.shape[1], 3))
    Y = rng.standard_normal((P.shape[0], 3))
    tol = 1e-12 if op.dtype != torch.float32 else 1e-5
    np.testing.assert_allclose(P @ x, dense @ x, atol=tol)
    np.testing.assert_allclose(P.matmat(X), dense @ X, atol=tol)
    np.testing.assert_allclose(P.rmatmat(Y), dense.conj().T @ Y, atol=tol)
    out = P @ x
    assert isinstance(out, np.ndarray) and out.shape == (P.shape[0],)


def test_pylops_solvers_run_on_our_operator():
    M = torch.randn(40, 12, generator=gen(4), dtype=F64)
    A = Matrix(M, (3, 4), (40,))
    P = to_pylops(A)
    y = np.random.default_rng(1).standard_normal(40)
    expected = np.linalg.lstsq(M.numpy(), y, rcond=None)[0]
    x_lsqr = pylops_lsqr(P, y, x0=np.zeros(12), niter=100, atol=1e-14, btol=1e-14)[0]
    x_cgls = pylops_cgls(P, y, x0=np.zeros(12), niter=100, tol=1e-14)[0]
    np.testing.assert_allclose(x_lsqr, expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(x_cgls, expected, rtol=1e-8, atol=1e-10)
    # and with damping they agree with ours (pylops' damp d is our damping lambda = d^2)
    d = 0.8
    ours = solve(A, torch.from_numpy(y), LSQR(tol=1e-13), damping=d**2).x.reshape(-1).numpy()
    theirs = pylops_lsqr(P, y, x0=np.zeros(12), damp=d, niter=200, atol=1e-15, btol=1e-15)[0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-8, atol=1e-10)
    theirs = pylops_cgls(P, y, x0=np.zeros(12), damp=d, niter=200, tol=1e-15)[0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-8, atol=1e-10)


def test_pylops_lsqr_on_float32_structured_operator():
    blur = CircularBlur(torch.rand(3, 3, generator=gen(6)) + 1, (1, 8, 8))
    A = Mask(torch.rand(1, 8, 8, generator=gen(5)) > 0.3) @ blur
    P = to_pylops(A)
    y = (A @ torch.rand(1, 8, 8, generator=gen(7))).numpy().ravel()
    x = pylops_lsqr(P, y.astype(np.float64), x0=np.zeros(64), niter=300, atol=1e-10, btol=1e-10)[0]
    assert np.abs(P @ x.astype(np.float32) - y).max() < 1e-3


PYLOPS_OPERATORS = {
    "first-derivative": lambda: pylops.FirstDerivative((5, 6), axis=0, dtype="float64"),
    "matrix-complex": lambda: pylops.MatrixMult(
        np.random.default_rng(0).standard_normal((4, 3)) + 1j * np.random.default_rng(1).standard_normal((4, 3)),
        dtype="complex128",
    ),
    "diagonal": lambda: pylops.Diagonal(np.arange(1.0, 13.0), dtype="float64"),
    "laplacian": lambda: pylops.Laplacian((6, 5), dtype="float64"),
}


@pytest.fixture(params=sorted(PYLOPS_OPERATORS), ids=str)
def pylops_op(request):
    return PYLOPS_OPERATORS[request.param]()


def test_from_pylops_dottest_and_dense(pylops_op):
    A = from_pylops(pylops_op)
    assert A.in_shape == tuple(pylops_op.dims) and A.out_shape == tuple(pylops_op.dimsd)
    assert dottest(A) < 1e-10
    np.testing.assert_allclose(A.to_dense().numpy(), pylops_op.todense(), atol=1e-12)


def test_from_pylops_batches_and_autograd(pylops_op):
    A = from_pylops(pylops_op)
    x = torch.randn(2, 3, *A.in_shape, generator=gen(8), dtype=F64).to(A.dtype)
    y = A @ x
    assert y.shape == (2, 3, *A.out_shape)
    torch.testing.assert_close(y[1, 2], A @ x[1, 2])
    if not A.dtype.is_complex:
        xg = torch.randn(2, *A.in_shape, generator=gen(9), dtype=F64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: A @ t, (xg,))


def test_from_pylops_composes_and_has_a_norm():
    D = from_pylops(pylops.FirstDerivative((1, 8, 8), axis=2, dtype="float64"))
    blur = CircularBlur(rand(3, 3), (1, 8, 8))
    composed = D @ blur @ Diagonal(rand(1, 8, 8, seed=1))
    assert dottest(composed) < 1e-10
    sigma = float(torch.linalg.matrix_norm(composed.to_dense(), ord=2))
    assert norm(composed) == pytest.approx(sigma, rel=1e-5)
    b = composed @ rand(1, 8, 8, seed=2)
    res = solve(composed, b, CGLS(tol=1e-12))
    torch.testing.assert_close(composed @ res.x, b, atol=1e-8, rtol=1e-8)


def test_round_trip():
    A = OPERATORS["mask @ blur"]()
    back = from_pylops(to_pylops(A))
    torch.testing.assert_close(back.to_dense(), A.to_dense())
    assert from_pylops(to_pylops(A)).dtype == F64


def test_errors():
    with pytest.raises(TypeError, match="LinearOperator"):
        to_pylops(np.eye(3))
    with pytest.raises(TypeError, match="pylops LinearOperator"):
        from_pylops(Matrix(torch.eye(3)))
