"""Generic tests every market operator must pass: adjoint, linearity, batching, dense matrix,
independent reference, autograd (gradcheck, gradgradcheck, grad == adjoint), conversions."""

import numpy as np
import pytest
import torch

from linops.testing import dottest, entries, random_like_input, random_like_output
from linops.testing.checks import inner

ENTRIES = {e.name: e for e in entries()}
DTYPES = [torch.float32, torch.float64]


def build(name, dtype, seed=0):
    return ENTRIES[name].build(dtype, torch.Generator().manual_seed(seed))


def tol(dtype):
    return 1e-10 if dtype == torch.float64 else 1e-5


def assert_close(a, b, dtype, scale=None):
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    scale = scale if scale is not None else max(float(b.abs().max()), 1.0)
    err = float((a.to(b.dtype) - b).abs().max()) / scale
    assert err < 100 * tol(dtype), f"max relative deviation {err:.2e}"


@pytest.fixture(params=sorted(ENTRIES), ids=str)
def name(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


def test_dot_test(name, dtype):
    op = build(name, dtype)
    assert dottest(op) < tol(dtype)


def test_linearity(name, dtype):
    op = build(name, dtype)
    g = torch.Generator().manual_seed(1)
    x, z = random_like_input(op, (2,), g), random_like_input(op, (2,), g)
    a, b = (0.7 - 0.2j, -1.3 + 0.5j) if op.dtype.is_complex else (0.7, -1.3)
    assert_close(op @ (a * x + b * z), a * (op @ x) + b * (op @ z), dtype)


def test_batches_are_independent(name, dtype):
    op = build(name, dtype)
    x = random_like_input(op, (2, 3), torch.Generator().manual_seed(2))
    batched = op @ x
    assert batched.shape == (2, 3, *op.out_shape)
    for i in range(2):
        for j in range(3):
            assert_close(batched[i, j], op @ x[i, j], dtype)
    unbatched = op @ x[0, 0]
    assert unbatched.shape == op.out_shape


def test_dense_matrix(name, dtype):
    op = build(name, dtype)
    dense = op.to_dense()
    assert dense.shape == op.shape
    assert_close(op.H.to_dense(), dense.conj().T, dtype)
    x = random_like_input(op, (3,), torch.Generator().manual_seed(3))
    expected = (x.reshape(3, -1).to(dense.dtype) @ dense.T).reshape(3, *op.out_shape)
    assert_close(op @ x, expected, dtype)


def test_independent_reference(name, dtype):
    entry = ENTRIES[name]
    if entry.reference is None:
        pytest.skip("expression node: checked against dense algebra in test_algebra_properties")
    op = build(name, dtype)
    x = random_like_input(op, (2,), torch.Generator().manual_seed(4))
    expected = entry.reference(op, x.numpy())
    assert_close(op @ x, torch.from_numpy(np.asarray(expected)), dtype)


def test_gradcheck(name):
    op = build(name, torch.float64)
    x = random_like_input(op, (2,), torch.Generator().manual_seed(5)).requires_grad_()
    assert torch.autograd.gradcheck(op.apply, (x,))
    assert torch.autograd.gradgradcheck(op.apply, (x,))


def test_gradient_of_inner_product_is_adjoint(name, dtype):
    """For L = Re <y, A x>, dL/dx = A^H y (real part for a real input of a complex operator)."""
    op = build(name, dtype)
    g = torch.Generator().manual_seed(6)
    x = random_like_input(op, (2,), g).requires_grad_()
    y = random_like_output(op, (2,), g)
    loss = torch.sum(y.conj() * (op @ x)).real
    loss.backward()
    assert_close(x.grad, op.H @ y, dtype)


def test_real_input_to_complex_operator(name):
    op = build(name, torch.float64)
    if not op.dtype.is_complex:
        pytest.skip("real operator")
    x = torch.randn(2, *op.in_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    assert_close(op @ x, op @ x.to(op.dtype), torch.float64)
    x.requires_grad_()
    y = random_like_output(op, (2,), torch.Generator().manual_seed(8))
    torch.sum(y.conj() * (op @ x)).real.backward()
    assert x.grad.dtype == torch.float64
    assert_close(x.grad, (op.H @ y).real, torch.float64)


def test_no_activations_saved(name):
    """The autograd graph holds no tensor saved for backward: the backward is A^H alone."""
    op = build(name, torch.float64)
    x = random_like_input(op, (1,), torch.Generator().manual_seed(9)).requires_grad_()
    out = op @ x
    node = out.grad_fn
    while node is not None and type(node).__name__ != "_LinearFunctionBackward":
        node = node.next_functions[0][0] if node.next_functions else None
    assert node is not None
    assert len(node.saved_tensors) == 0


def test_conversion_to_other_precision(name):
    op32 = build(name, torch.float32)
    op64 = op32.to(torch.float64)
    assert op64.dtype == (torch.complex128 if op32.dtype.is_complex else torch.float64)
    x = random_like_input(op64, (2,), torch.Generator().manual_seed(10))
    assert_close(op64 @ x, op32 @ x.to(op32.dtype if op32.dtype.is_complex else torch.float32), torch.float32)
    dottest(op64)


def test_numpy_in_numpy_out(name):
    op = build(name, torch.float64)
    x = random_like_input(op, (2,), torch.Generator().manual_seed(11))
    out = op @ x.numpy()
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, (op @ x).numpy(), rtol=1e-12, atol=1e-12)


def test_inner_product_helper():
    a = torch.tensor([1 + 2j, 3j])
    b = torch.tensor([2.0 + 0j, 1 - 1j])
    assert inner(a, b) == pytest.approx((1 - 2j) * 2 + (-3j) * (1 - 1j))
