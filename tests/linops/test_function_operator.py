"""linops.FunctionOperator: a linear map from two callables (the market adds the generic tests)."""

import math

import numpy as np
import pytest
import torch

import linops
from linops.testing import dottest

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def _matrix_map(M, in_shape, out_shape, calls=None):
    """forward and adjoint of the dense matrix M acting on flattened samples."""

    def forward(x):
        return (x.reshape(x.shape[0], -1) @ M.T).reshape(x.shape[0], *out_shape)

    def adjoint(y):
        if calls is not None:
            calls.append("adjoint")
        return (y.reshape(y.shape[0], -1) @ M.conj()).reshape(y.shape[0], *in_shape)

    return forward, adjoint


def test_agrees_with_its_dense_matrix_and_passes_the_dot_test():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(6, 12, generator=g, dtype=F64)
    A = linops.FunctionOperator(*_matrix_map(M, (3, 4), (2, 3)), (3, 4), (2, 3), dtype=F64)
    assert A.shape == (6, 12)
    torch.testing.assert_close(A.to_dense(), M, rtol=0, atol=1e-15)
    torch.testing.assert_close(A.H.to_dense(), M.T, rtol=0, atol=1e-15)
    assert dottest(A) < 1e-12
    x = torch.randn(5, 2, 3, 4, generator=g, dtype=F64)  # any leading batch dimensions
    torch.testing.assert_close((A @ x).reshape(10, 6), x.reshape(10, 12) @ M.T)


def test_complex_map_and_float32():
    g = torch.Generator().manual_seed(1)
    M = torch.randn(5, 5, generator=g, dtype=torch.complex64)
    A = linops.FunctionOperator(*_matrix_map(M, (5,), (5,)), (5,), dtype=torch.complex64)
    assert dottest(A) < 1e-5
    torch.testing.assert_close(A.to_dense(), M)


def test_autograd_uses_the_given_adjoint():
    """The forward leaves torch (numpy), so only the operator's backward, the adjoint, can give the gradient."""
    g = torch.Generator().manual_seed(2)
    M = torch.randn(4, 6, generator=g, dtype=F64)
    calls = []
    _, adjoint = _matrix_map(M, (6,), (4,), calls)

    def forward(x):
        return torch.from_numpy(x.detach().numpy() @ M.numpy().T)

    A = linops.FunctionOperator(forward, adjoint, (6,), (4,), dtype=F64)
    x = torch.randn(3, 6, generator=g, dtype=F64, requires_grad=True)
    y = torch.randn(3, 4, generator=g, dtype=F64)
    ((A @ x) * y).sum().backward()
    assert calls == ["adjoint"]
    torch.testing.assert_close(x.grad, y @ M)
    assert torch.autograd.gradcheck(A.apply, (x.detach().requires_grad_(),))


def test_wrong_shapes_name_the_expected_shape():
    A = linops.FunctionOperator(lambda x: x[..., :3], lambda y: torch.cat([y, y[..., :1] * 0], -1), (4,), (3,))
    with pytest.raises(ValueError, match=r"expects input of shape \(\*batch, 4\), got \(2, 5\)"):
        A @ torch.zeros(2, 5)
    broken = linops.FunctionOperator(lambda x: x, lambda y: y[..., :2], (4,), (4,), name="broken")
    with pytest.raises(ValueError, match=r"forward returned shape \(2, 4\), expected \(2, 3\)"):
        linops.FunctionOperator(lambda x: x, lambda y: y, (4,), (3,)) @ torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"\(broken.*adjoint returned shape \(2, 2\), expected \(2, 4\)"):
        broken.H @ torch.zeros(2, 4)
    with pytest.raises(TypeError, match="forward must return a torch tensor"):
        linops.FunctionOperator(lambda x: x.numpy(), None, (4,), self_adjoint=True) @ torch.zeros(4)


def test_construction_errors_and_self_adjoint_maps():
    with pytest.raises(TypeError, match="forward must be callable"):
        linops.FunctionOperator("x", None, (3,), self_adjoint=True)
    with pytest.raises(TypeError, match="adjoint is None"):
        linops.FunctionOperator(lambda x: x, None, (3,))
    with pytest.raises(ValueError, match="self_adjoint=True needs in_shape == out_shape"):
        linops.FunctionOperator(lambda x: x, None, (3,), (4,), self_adjoint=True)
    S = linops.FunctionOperator(lambda x: 2 * x, None, (3,), self_adjoint=True, dtype=F64)
    assert S.H is S and S.is_self_adjoint


def test_solve_by_cg_through_a_function_operator():
    g = torch.Generator().manual_seed(3)
    B = torch.randn(8, 8, generator=g, dtype=F64)
    spd = B @ B.T + 8 * torch.eye(8, dtype=F64)
    forward, _ = _matrix_map(spd, (8,), (8,))
    S = linops.FunctionOperator(forward, None, (8,), dtype=F64, self_adjoint=True)
    b = torch.randn(2, 8, generator=g, dtype=F64)
    result = linops.solve(S, b, linops.CG(tol=1e-13))
    assert bool(result.converged.all())
    torch.testing.assert_close(result.x, torch.linalg.solve(spd, b.T).T, rtol=1e-11, atol=1e-11)


def test_market_examples_match_their_references():
    for name in ("function-running-sums", "function-unitary-dft"):
        op = linops.testing.make(name)
        x = torch.randn(2, *op.in_shape, generator=torch.Generator().manual_seed(4), dtype=F64)
        entry = {e.name: e for e in linops.testing.entries()}[name]
        np.testing.assert_allclose((op @ x).numpy(), entry.reference(op, x.numpy()), atol=1e-12)
    sums = linops.testing.make("function-running-sums")
    assert sums.shape == (12, 10) and math.isclose(float(sums.to_dense()[5, :5].sum()), 5.0)
