"""Generic tests every market operator must pass: adjoint, linearity, batching, dense matrix,
independent reference, autograd (gradcheck, gradgradcheck, grad == adjoint), conversions."""

import numpy as np
import pytest
import torch

from linops import memo
from linops.base import ADJOINT
from linops.testing import dottest, entries, random_like_input, random_like_output
from linops.testing.checks import inner

pytestmark = pytest.mark.usefixtures("one_thread")

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
    x_np = x.numpy()
    out = op @ x_np
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, (op @ x).numpy(), rtol=1e-12, atol=1e-12)
    assert not np.shares_memory(out, x_np)  # a new array, as from any numpy function


def test_empty_batch(name):
    """An empty batch gives an empty result of the right shape and dtype, forward and adjoint."""
    op = build(name, torch.float64)
    for batch in ((0,), (2, 0)):
        x = random_like_input(op, batch)
        y = op @ x
        assert y.shape == (*batch, *op.out_shape) and y.dtype == op.dtype
        assert (op.H @ random_like_output(op, batch)).shape == x.shape


def test_inner_product_helper():
    a = torch.tensor([1 + 2j, 3j])
    b = torch.tensor([2.0 + 0j, 1 - 1j])
    assert inner(a, b) == pytest.approx((1 - 2j) * 2 + (-3j) * (1 - 1j))


# ----------------------------------------------------------------------------------------------
# torch.func: the autograd Function works under every transform (deepinv's adjoint_function uses
# torch.func.vjp); each transform of x -> A x must give the dense matrix's answer


def dense_apply(D, x, op):
    """D x for x of shape (N, *in_shape), with D = op.to_dense()."""
    return (x.reshape(x.shape[0], -1).to(D.dtype) @ D.T).reshape(x.shape[0], *op.out_shape)


def dense_adjoint(D, y, op):
    return (y.reshape(y.shape[0], -1).to(D.dtype) @ D.conj()).reshape(y.shape[0], *op.in_shape)


def realified(op):
    """x -> A x as a map of real tensors (complex entries as trailing pairs), for jacrev/jacfwd, which
    take real inputs only, and the matching real Jacobian [[Re D, -Im D], [Im D, Re D]] per entry."""
    if not op.dtype.is_complex:
        return op.apply, lambda D: D.reshape(*op.out_shape, *op.in_shape)

    def f(v):
        return torch.view_as_real(op.apply(torch.view_as_complex(v)))

    def jacobian(D):
        J = torch.stack([torch.stack([D.real, -D.imag], -1), torch.stack([D.imag, D.real], -1)], 1)
        return J.reshape(*op.out_shape, 2, *op.in_shape, 2)

    return f, jacobian


def test_torch_func_transforms_agree_with_the_dense_matrix(name):
    op = build(name, torch.float64)
    D = op.to_dense()
    g = torch.Generator().manual_seed(12)
    x, y = random_like_input(op, (2,), g), random_like_output(op, (2,), g)
    dx = random_like_input(op, (2,), g)

    out, vjp = torch.func.vjp(op.apply, x)
    assert_close(out, dense_apply(D, x, op), torch.float64)
    assert_close(vjp(y)[0], dense_adjoint(D, y, op), torch.float64)

    primal, tangent = torch.func.jvp(op.apply, (x,), (dx,))
    assert_close(tangent, dense_apply(D, dx, op), torch.float64)

    # vmap over a new leading axis, and over an inner axis (moved to the front by the vmap rule)
    stacked = torch.stack([x, dx, 2 * x])
    expected = torch.stack([dense_apply(D, v, op) for v in stacked])
    assert_close(torch.func.vmap(op.apply)(stacked), expected, torch.float64)
    assert_close(torch.func.vmap(op.apply, in_dims=1)(stacked.movedim(0, 1)), expected, torch.float64)

    def loss(v):
        return torch.sum(y.conj() * op.apply(v)).real

    assert_close(torch.func.grad(loss)(x), dense_adjoint(D, y, op), torch.float64)

    f, jacobian = realified(op)
    x0 = torch.view_as_real(x[0]) if op.dtype.is_complex else x[0]
    assert_close(torch.func.jacrev(f)(x0), jacobian(D), torch.float64)
    assert_close(torch.func.jacfwd(f)(x0), jacobian(D), torch.float64)


def test_torch_func_on_real_input_to_a_complex_operator(name):
    """A real x given to a complex A: the vjp is Re(A^H y) (a real gradient), the jvp is A dx."""
    op = build(name, torch.float64)
    if not op.dtype.is_complex:
        pytest.skip("real operator")
    D = op.to_dense()
    g = torch.Generator().manual_seed(13)
    x = torch.randn(2, *op.in_shape, dtype=torch.float64, generator=g)
    y = random_like_output(op, (2,), g)
    _, vjp = torch.func.vjp(op.apply, x)
    (gx,) = vjp(y)
    assert gx.dtype == torch.float64
    assert_close(gx, dense_adjoint(D, y, op).real, torch.float64)
    _, tangent = torch.func.jvp(op.apply, (x,), (x,))
    assert_close(tangent, dense_apply(D, x, op), torch.float64)


def test_hessian_of_the_data_term_is_the_normal_operator():
    """Forward over reverse (jacfwd of jacrev, through the Function's jvp of its backward):
    the Hessian of 0.5 ||A x||^2 is A^T A."""
    for name in ("radon", "blur-reflect-direct", "composition"):
        op = build(name, torch.float64)
        D = op.to_dense()
        x0 = random_like_input(op, (), torch.Generator().manual_seed(14))
        hessian = torch.func.hessian(lambda v, op=op: 0.5 * torch.sum(op.apply(v) ** 2))(x0)
        assert_close(hessian.reshape(D.shape[1], D.shape[1]), D.T @ D, torch.float64)


def test_plain_forward_mode_autograd():
    """torch.autograd.forward_ad dual tensors (outside torch.func) take the Function's jvp too."""
    import torch.autograd.forward_ad as fwAD

    op = build("radon", torch.float64)
    g = torch.Generator().manual_seed(15)
    x, dx = random_like_input(op, (2,), g), random_like_input(op, (2,), g)
    with fwAD.dual_level():
        out = op.apply(fwAD.make_dual(x, dx))
        primal, tangent = fwAD.unpack_dual(out)
    assert_close(primal, op @ x, torch.float64)
    assert_close(tangent, op @ dx, torch.float64)


# ----------------------------------------------------------------------------------------------
# copies: deepcopy and pickle work before and after first use (derived caches such as a Radon's sparse
# CSR matrices cannot be deep-copied; copies drop them and rebuild on use)


def assert_same_map(copy_, op, x, y):
    assert type(copy_) is type(op) and copy_.in_shape == op.in_shape and copy_.out_shape == op.out_shape
    torch.testing.assert_close(copy_ @ x, op @ x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(copy_.H @ y, op.H @ y, rtol=1e-12, atol=1e-12)
    assert copy_.H.H is copy_


def test_copies_before_and_after_first_use(name):
    import copy
    import pickle

    op = build(name, torch.float64)
    g = torch.Generator().manual_seed(16)
    x, y = random_like_input(op, (2,), g), random_like_output(op, (2,), g)
    fresh = [copy.deepcopy(op), pickle.loads(pickle.dumps(op))]
    op @ x, op.H @ y  # first use fills the derived caches
    used = [copy.deepcopy(op), pickle.loads(pickle.dumps(op)), copy.copy(op)]
    assert memo.holds(op, ADJOINT) and not any(memo.holds(c, ADJOINT) for c in used)  # derived data stays behind
    for c in fresh + used:
        assert_same_map(c, op, x, y)
    assert all(c.H is not op.H for c in used)
