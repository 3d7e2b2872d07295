"""deepinv's generic physics checks, run on `to_deepinv(op)` for the market's operators.

deepinv checks every physics it ships for: adjointness (the dot test, and agreement with the adjoint that
autograd derives through torch.func), the squared norm from its power method, its least-squares
pseudo-inverse A_dagger, the consistency of a decomposable physics (V V^T and U U^T are projectors),
composition with another physics (`*`) and stacking, the state_dict round trip, and `clone`. The same
properties are written here for our operators seen as deepinv physics, with deepinv's tolerances (its
tests/test_physics.py, version 0.5), in float64.

The default run takes one market entry per operator class; the other entries are marked slow.
"""

import warnings

import pytest
import torch

dinv = pytest.importorskip("deepinv")

from deepinv.physics.forward import adjoint_function  # noqa: E402

from linops import Mask, vstack  # noqa: E402
from linops.interop.deepinv import to_deepinv  # noqa: E402
from linops.testing import entries, random_like_input, random_like_output  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

ENTRIES = {e.name: e for e in entries()}
F64 = torch.float64


def build(name, seed=0):
    return ENTRIES[name].build(F64, torch.Generator().manual_seed(seed))


def _representatives():
    """The first entry (by name) of each operator class: the default run covers every family."""
    first = {}
    for name in sorted(ENTRIES):
        first.setdefault(type(build(name)).__name__, name)
    return set(first.values())


REPRESENTATIVES = _representatives()
NAMES = [n if n in REPRESENTATIVES else pytest.param(n, marks=pytest.mark.slow) for n in sorted(ENTRIES)]


@pytest.fixture(params=NAMES, ids=str)
def name(request):
    return request.param


#: deepinv's clone walks the whole object graph reachable from the physics (about 1 s each on the shared
#: 2-core machine, for deepinv's own physics too): the default run clones a Radon, whose sparse matrices a
#: deep copy used to choke on; copy.deepcopy, which clone calls, runs on every market operator in
#: test_market.py
CLONED = {"radon"}
CLONE_NAMES = [n if n in CLONED else pytest.param(n, marks=pytest.mark.slow) for n in sorted(ENTRIES)]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def rel(a, b):
    """||a - b|| / ||b|| (0 when both vanish)."""
    den = float(torch.linalg.vector_norm(b))
    num = float(torch.linalg.vector_norm(a - b))
    return num / den if den > 0 else num


def test_adjointness(name):
    """deepinv's dot test (relative error < 1e-3), and its autograd adjoint (torch.func.vjp of A)
    equals A_adjoint."""
    op = build(name)
    physics = to_deepinv(op)
    u = random_like_input(op, (1,), gen(1))
    y = physics.A(u)
    if bool(y.any()):  # deepinv's error is relative to <A u, v>: undefined for the zero operator
        assert float(physics.adjointness_test(u)) < 1e-3
    autograd_adjoint = adjoint_function(physics.A, u.shape, u.device, u.dtype)
    assert rel(autograd_adjoint(y), physics.A_adjoint(y)) < 1e-3


def test_adjoint_of_the_autograd_adjoint(name):
    """deepinv defines the backward of its autograd adjoint as A: the gradient of <z, A^T y> in y is A z."""
    op = build(name)
    if op.dtype.is_complex:
        pytest.skip("deepinv's adjoint_function test covers real operators only")
    physics = to_deepinv(op)
    g = gen(2)
    x, z = random_like_input(op, (1,), g), random_like_input(op, (1,), g)
    y = physics.A(x).requires_grad_()
    autograd_adjoint = adjoint_function(physics.A, x.shape, x.device, x.dtype)
    (z * autograd_adjoint(y)).sum().backward()
    torch.testing.assert_close(y.grad, physics.A(z), rtol=1e-5, atol=1e-8)


def test_squared_norm(name):
    """deepinv's power method: one iteration warns that it has not converged; 1000 iterations give
    ||A||^2 to 1e-2 (relative here, as our operators' norms are not 1), against the dense matrix."""
    op = build(name)
    physics = to_deepinv(op)
    x0 = random_like_input(op, (1,), gen(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        physics.compute_sqnorm(x0, max_iter=1, tol=1e-9, verbose=False)
    if float(torch.linalg.vector_norm(op @ x0)) > 0:  # the zero operator converges at once
        assert sum("convergence not reached" in str(w.message) for w in caught) == 1
    sqnorm = float(physics.compute_sqnorm(x0, max_iter=1000, tol=1e-6, verbose=False))
    expected = float(torch.linalg.matrix_norm(op.to_dense(), ord=2)) ** 2
    assert abs(sqnorm - expected) <= 1e-2 * expected + 1e-12


@pytest.mark.parametrize("implicit_backward_solver", [False, True], ids=["explicit", "implicit"])
def test_pseudo_inverse(name, implicit_backward_solver):
    """A_dagger(A r) = r for r = A^T A x in the row space (LSQR, 50 iterations, tol 1e-4: error < 5%).
    A decomposable physics uses its SVD instead, and must meet the same bound."""
    op = build(name)
    physics = to_deepinv(op)
    physics.implicit_backward_solver = implicit_backward_solver
    x = random_like_input(op, (1,), gen(4))
    r = physics.A_adjoint(physics.A(x))
    y = physics.A(r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LSQR's "did not converge" on the tiny zero operator
        estimate = physics.A_dagger(y, solver="lsqr", tol=1e-4, max_iter=50)
    assert estimate.shape == r.shape
    assert rel(estimate, r) < 0.05


def test_decomposition(name):
    """For a DecomposablePhysics: V V^T and U U^T are projectors (deepinv: idempotent to 1e-3), and
    U diag(mask) V^T is A."""
    op = build(name)
    physics = to_deepinv(op)
    if not isinstance(physics, dinv.physics.DecomposablePhysics):
        pytest.skip("no structured SVD: a plain LinearPhysics")
    x = random_like_input(op, (1,), gen(5))
    r = physics.V(physics.V_adjoint(x))
    assert rel(physics.V(physics.V_adjoint(r)), r) < 1e-3
    y = physics.A(x)
    s = physics.U(physics.U_adjoint(y))
    assert rel(physics.U(physics.U_adjoint(s)), s) < 1e-3
    torch.testing.assert_close(physics.U(physics.mask * physics.V_adjoint(x)), op @ x, rtol=1e-10, atol=1e-10)


def test_composition_with_inpainting(name):
    """deepinv's `Inpainting * physics` (inpainting applied after A) is M A: it agrees with our Mask @ A,
    and its A_dagger recovers r = (M A)^T (M A) x to 1e-2 (LSQR, tol 1e-4)."""
    op = build(name)
    physics = to_deepinv(op)
    m = (torch.rand(op.out_shape, generator=gen(6)) > 0.5).to(F64)
    inpainting = dinv.physics.Inpainting(img_size=op.out_shape, mask=m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "resulting physics will not be decomposable"
        composed = inpainting * physics
    ours = Mask(m) @ op
    g = gen(7)
    x, y = random_like_input(op, (1,), g), random_like_output(op, (1,), g)
    torch.testing.assert_close(composed.A(x), ours @ x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(composed.A_adjoint(y), ours.H @ y, rtol=1e-12, atol=1e-12)
    r = composed.A_adjoint(composed.A(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimate = composed.A_dagger(composed.A(r), solver="lsqr", tol=1e-4)
    assert rel(estimate, r) < 0.01


def test_stacking(name):
    """physics.stack(physics) is linear, its measurements are a TensorList, and it equals our vstack:
    A x twice, and A^T y1 + A^T y2."""
    op = build(name)
    physics = to_deepinv(op)
    stacked = physics.stack(physics)
    assert isinstance(stacked, dinv.physics.StackedLinearPhysics) and len(stacked) == 2
    ours = vstack([op, op])
    g = gen(8)
    x = random_like_input(op, (1,), g)
    y1, y2 = random_like_output(op, (1,), g), random_like_output(op, (1,), g)
    measured = stacked.A(x)
    assert len(measured) == 2
    torch.testing.assert_close(torch.cat([m.reshape(1, -1) for m in measured], 1), ours @ x, rtol=1e-12, atol=1e-12)
    both = torch.cat([y1.reshape(1, -1), y2.reshape(1, -1)], 1)
    adjoint = stacked.A_adjoint(dinv.utils.TensorList([y1, y2]))
    torch.testing.assert_close(adjoint, ours.H @ both, rtol=1e-12, atol=1e-12)
    if bool(measured[0].any()):  # relative to <A x, v>: undefined for the zero operator
        assert float(stacked.adjointness_test(x)) < 1e-3


def tensor_attributes(module, prefix=""):
    """Parameters, persistent buffers and plain tensor attributes of a module and its submodules:
    what a complete state_dict holds."""
    out = {prefix + n: p for n, p in module._parameters.items() if p is not None}
    out |= {
        prefix + n: b
        for n, b in module._buffers.items()
        if b is not None and n not in module._non_persistent_buffers_set
    }
    out |= {prefix + n: v for n, v in vars(module).items() if isinstance(v, torch.Tensor)}
    for n, child in module._modules.items():
        if child is not None:
            out |= tensor_attributes(child, f"{prefix}{n}.")
    return out


def test_state_dict(name, tmp_path):
    """Every tensor attribute of the physics is in its state_dict; saved and loaded into a physics built
    the same way, the state is equal and the measurements are the same."""
    op = build(name)
    physics = to_deepinv(op)
    state = physics.state_dict()
    tensors = tensor_attributes(physics)
    assert set(state) == set(tensors)
    for key, value in tensors.items():
        assert torch.equal(state[key], value)
    torch.save(state, tmp_path / "physics.pt")
    other = to_deepinv(build(name))
    other.load_state_dict(torch.load(tmp_path / "physics.pt", weights_only=True))
    assert set(other.state_dict()) == set(state)
    for key, value in state.items():
        assert torch.equal(other.state_dict()[key], value)
    x = random_like_input(op, (1,), gen(9))
    torch.testing.assert_close(other(x), physics(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", CLONE_NAMES, ids=str)
def test_clone(name):
    """physics.clone() has the physics' type, its own copies of parameters and buffers (changing one
    leaves the other alone), is not affected by replacing the original's A, and gives the same A x and
    A^T y, before and after the operator's first use (which fills derived caches, such as a Radon's
    sparse matrices, that a deep copy cannot copy)."""
    op = build(name)
    g = gen(10)
    x, y = random_like_input(op, (1,), g), random_like_output(op, (1,), g)
    physics = to_deepinv(op)
    physics.register_parameter("dummy", torch.nn.Parameter(random_like_input(op, (), g)))
    clones = [physics.clone()]
    physics.A(x), physics.A_adjoint(y)
    clones.append(physics.clone())
    for clone in clones:
        assert type(clone) is type(physics) and clone.op is not physics.op
        torch.testing.assert_close(clone.A(x), physics.A(x), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(clone.A_adjoint(y), physics.A_adjoint(y), rtol=1e-12, atol=1e-12)
        for kind in ("parameters", "buffers"):
            mine, theirs = dict(getattr(physics, f"named_{kind}")()), dict(getattr(clone, f"named_{kind}")())
            assert set(mine) == set(theirs)
            for key in mine:
                assert mine[key].data_ptr() != theirs[key].data_ptr()
    with torch.no_grad():
        clones[1].dummy.fill_(1)
        physics.dummy.fill_(0)
    assert bool((clones[1].dummy == 1).all())
    physics.A = lambda *args, **kwargs: None
    assert clones[1].A(x) is not None
