"""Classical baselines against exact answers: early-stopped CGLS/LSQR against linops.solve and least squares,
FBP against linops.fbp, TV by PDHG / Condat-Vu against certified optima (duality gaps, an independent
scipy solve), and the discrete gradient they use."""

import math

import numpy as np
import pytest
import torch

import linops
from solvers.classical import (
    PDHG,
    CGLSReconstruction,
    CondatVu,
    FilteredBackprojection,
    LSQRReconstruction,
    TikhonovSVD,
    TVReconstruction,
    total_variation,
)
from solvers.classical.tv import condat_vu, pdhg
from solvers.tracking import StepRecord, Tracker

f64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def dense_problem(m=30, n=16, batch=2, seed=0, shape=None):
    """A random tall (or wide) matrix acting on images of `shape` (default (n,)), and data y."""
    g = gen(seed)
    M = torch.randn(m, n, generator=g, dtype=f64) / math.sqrt(m)
    A = linops.Matrix(M, in_shape=shape)
    y = torch.randn(batch, m, generator=g, dtype=f64)
    return A, M, y


# ----------------------------------------------------------------------------------------------
# the discrete gradient


def test_gradient_adjoint_is_negative_divergence():
    D = linops.Gradient((1, 4, 5), dtype=f64)
    g = torch.randn(3, *D.out_shape, generator=gen(1), dtype=f64)
    gv, gh = g[:, 0, 0], g[:, 1, 0]
    # backward differences with g[-1] = g[n - 1] = 0 along each axis
    gv = torch.cat([torch.zeros_like(gv[:, :1]), gv[:, :-1]], 1) - torch.cat(
        [gv[:, :-1], torch.zeros_like(gv[:, :1])], 1
    )
    gh = torch.cat([torch.zeros_like(gh[:, :, :1]), gh[:, :, :-1]], 2) - torch.cat(
        [gh[:, :, :-1], torch.zeros_like(gh[:, :, :1])], 2
    )
    torch.testing.assert_close(D.H @ g, (gv + gh)[:, None], rtol=0, atol=1e-14)


def test_gradient_of_constant_is_zero_and_norm_is_exact():
    D = linops.Gradient((2, 6, 7), dtype=f64)
    assert float((D @ torch.full((2, 6, 7), 3.0, dtype=f64)).abs().max()) == 0
    sigma_max = torch.linalg.matrix_norm(D.to_dense(), ord=2).item()
    assert D.norm_squared == pytest.approx(sigma_max**2, rel=1e-12)
    assert D.norm() == pytest.approx(sigma_max, rel=1e-6)


def test_total_variation_of_a_square_is_its_perimeter():
    x = torch.zeros(1, 1, 10, 10, dtype=f64)
    x[..., 2:6, 3:8] = 2.0  # 4 x 5 square of height 2
    D = linops.Gradient((1, 10, 10), dtype=f64)
    # forward differences: the jumps sit on the pixels just outside the top and left edges and on the
    # bottom and right rows of the square; only the bottom-right pixel sees two jumps, norm 2 sqrt(2)
    tv = float(total_variation(x, D))
    assert tv == pytest.approx(2.0 * (5 + 4 + 4 + 3) + 2.0 * math.sqrt(2), rel=1e-14)
    anisotropic = float((D @ x).abs().sum())
    assert anisotropic == pytest.approx(2.0 * 2 * (4 + 5))
    assert tv <= anisotropic


@pytest.mark.parametrize(
    "axes, error",
    [((0, 0), ValueError), ((3,), ValueError), ((), TypeError), (("x",), TypeError)],
)
def test_gradient_rejects_bad_axes(axes, error):
    with pytest.raises(error, match="Gradient"):
        linops.Gradient((1, 4, 4), axes)


# ----------------------------------------------------------------------------------------------
# CGLS and LSQR stopped early


SOLVERS = {
    "cgls": (CGLSReconstruction, linops.CGLS),
    "lsqr": (LSQRReconstruction, linops.LSQR),
}


@pytest.fixture(params=sorted(SOLVERS), ids=str)
def krylov(request):
    return SOLVERS[request.param]


def test_every_iterate_is_linops_solve_stopped_there(krylov):
    solver_type, algorithm = krylov
    A, _, y = dense_problem()
    records = []
    K = 7
    result = solver_type(iterations=K)(y, A, callback=records.append, progress=False)
    assert [r.step for r in records] == list(range(1, K + 1))
    assert all(isinstance(r, StepRecord) and r.total == K and r.sigma == 0.0 for r in records)
    assert len(result.trace.residual) == K and result.trace.gradient_evaluations == K
    for r in records:
        expected = linops.solve(A, y, algorithm(tol=0.0, max_iter=r.step)).x
        torch.testing.assert_close(r.x, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r.residual, (A @ expected - y).norm(dim=1))
    torch.testing.assert_close(result.x, records[-1].x)


def test_early_stopping_stops_where_told(krylov):
    solver_type, algorithm = krylov
    A, M, y = dense_problem(m=40, n=30)
    for K in (0, 1, 5):
        result = solver_type(iterations=K)(y, A, progress=False)
        assert len(result.trace.residual) == K
        expected = linops.solve(A, y, algorithm(tol=0.0, max_iter=K)).x
        torch.testing.assert_close(result.x, expected, rtol=1e-12, atol=1e-12)
    # stopped after 5 of 30 possible steps: still far from the least-squares solution
    lstsq = torch.linalg.lstsq(M, y.T).solution.T
    assert float((result.x - lstsq).norm()) > 0.1 * float(lstsq.norm())


def test_converges_to_least_squares(krylov):
    solver_type, _ = krylov
    A, M, y = dense_problem(m=30, n=16)
    x = solver_type(iterations=40)(y, A, progress=False).x
    torch.testing.assert_close(x, torch.linalg.lstsq(M, y.T).solution.T, rtol=1e-9, atol=1e-9)


def test_converges_to_minimum_norm_solution_of_rank_deficient_problem(krylov):
    solver_type, _ = krylov
    g = gen(3)
    M = torch.randn(12, 4, generator=g, dtype=f64) @ torch.randn(4, 10, generator=g, dtype=f64)  # rank 4
    y = torch.randn(2, 12, generator=g, dtype=f64)
    result = solver_type(iterations=50)(y, linops.Matrix(M), progress=False)
    torch.testing.assert_close(result.x, y @ torch.linalg.pinv(M).T, rtol=1e-8, atol=1e-8)
    # the Krylov space is exhausted after rank(M) = 4 steps: the run stops there instead of fitting rounding
    assert len(result.trace.residual) <= 6


def test_damping_gives_tikhonov(krylov):
    solver_type, _ = krylov
    A, M, y = dense_problem()
    lam = 0.3
    x = solver_type(iterations=40, damping=lam)(y, A, progress=False).x
    expected = torch.linalg.solve(M.T @ M + lam * torch.eye(16, dtype=f64), M.T @ y.T).T
    torch.testing.assert_close(x, expected, rtol=1e-9, atol=1e-9)


def test_tolerance_ends_the_run_early(krylov):
    solver_type, _ = krylov
    A, _, y = dense_problem(m=30, n=16)
    result = solver_type(iterations=100, tol=1e-8)(y, A, progress=False)
    assert len(result.trace.residual) < 40


def test_iteration_count_regularizes_an_ill_posed_problem(krylov):
    """Semi-convergence: on a noisy blur the error to the truth falls, then rises as noise is fitted."""
    solver_type, _ = krylov
    shape = (1, 16, 16)
    A = linops.gaussian_blur(shape, 1.5, "reflect", dtype=f64)
    g = gen(4)
    x_true = torch.zeros(1, *shape, dtype=f64)
    x_true[..., 4:12, 5:11] = 1.0
    y = A @ x_true + 0.02 * torch.randn(1, *shape, generator=g, dtype=f64)
    trace = solver_type(iterations=200)(y, A, progress=False, x_true=x_true).trace
    mse = torch.stack(trace.mse).squeeze(1)
    best = int(mse.argmin())
    assert 2 <= best < 150
    assert float(mse[-1]) > 1.5 * float(mse[best])


@pytest.mark.parametrize("bad", [dict(iterations=-1), dict(iterations=2.0), dict(iterations=True), dict(damping=-1.0)])
def test_krylov_settings_are_checked(krylov, bad):
    solver_type, _ = krylov
    with pytest.raises(ValueError, match=solver_type.__name__):
        solver_type(**bad)


# ----------------------------------------------------------------------------------------------
# FBP


@pytest.mark.parametrize("window", [linops.FilterWindow.RAM_LAK, linops.FilterWindow.HANN])
def test_fbp_solver_is_linops_fbp(window):
    R = linops.Radon.full_range((1, 16, 16), 24, dtype=f64)
    x = torch.rand(2, 1, 16, 16, generator=gen(5), dtype=f64)
    y = R @ x
    records = []
    result = FilteredBackprojection(window)(y, R, callback=records.append, progress=False, x_true=x)
    torch.testing.assert_close(result.x, linops.fbp(R, y, window), rtol=0, atol=0)
    assert len(records) == 1 and len(result.trace.mse) == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: 2.0 * linops.Radon.full_range((1, 8, 8), 6),
        lambda: linops.Mask(torch.ones(1, 8, 8, dtype=torch.bool)),
    ],
    ids=["scaled-radon", "mask"],
)
def test_fbp_solver_refuses_other_operators(make):
    A = make()
    y = torch.zeros(1, *A.out_shape)
    with pytest.raises(TypeError, match="FilteredBackprojection inverts the parallel-beam"):
        FilteredBackprojection()(y, A, progress=False)


def test_fbp_solver_inverts_a_full_turn_fan_beam():
    A = linops.FanBeamRadon.full_range((1, 16, 16), 48, source_distance=40.0, detector_distance=10.0)
    y = A @ torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(FilteredBackprojection()(y, A, progress=False).x, linops.fbp(A, y), rtol=0, atol=0)


def test_fbp_window_is_typed():
    with pytest.raises(TypeError, match="FilterWindow"):
        FilteredBackprojection("hann")


# ----------------------------------------------------------------------------------------------
# TV by PDHG and Condat-Vu


ALGORITHMS = {
    "pdhg": (pdhg, lambda it: PDHG(iterations=it)),
    "condat-vu": (condat_vu, lambda it: CondatVu(iterations=it)),
}


@pytest.fixture(params=sorted(ALGORITHMS), ids=str)
def tv_algorithm(request):
    return ALGORITHMS[request.param]


def run_with_dual(loop, alg, y, A, lam, axes=(-2, -1)):
    """Run a TV loop directly, returning its primal iterate and TV dual variable q."""
    D = linops.Gradient(A.in_shape, axes, dtype=f64)
    x0 = torch.zeros(y.shape[0], *A.in_shape, dtype=f64)
    return loop(alg, x0, y, A, D, lam, Tracker("test", alg.iterations, progress=False)), D


def dual_lower_bound(M, Dm, y, q):
    """g(q) = min_x 1/2 ||M x - y||^2 + <q, D x> <= min_x 1/2 ||M x - y||^2 + lam TV(x) for every
    q with ||q_i|| <= lam (weak duality); M must be injective."""
    yf, qf = y.reshape(y.shape[0], -1), q.reshape(q.shape[0], -1)
    x = torch.linalg.solve(M.T @ M, (yf @ M - qf @ Dm).T).T
    return 0.5 * ((x @ M.T - yf) ** 2).sum(1) + (qf * (x @ Dm.T)).sum(1)


def test_tv_duality_gap_closes_for_a_general_operator(tv_algorithm):
    loop, make = tv_algorithm
    shape = (1, 6, 6)
    A, M, _ = dense_problem(m=50, n=36, shape=shape, seed=6)
    x_true = torch.zeros(2, *shape, dtype=f64)
    x_true[0, :, 1:4, 2:5] = 1.0
    x_true[1, :, 3:, :] = -0.5
    y = A @ x_true + 0.05 * torch.randn(2, 50, generator=gen(7), dtype=f64)
    lam = 0.1
    (x, q), D = run_with_dual(loop, make(3000), y, A, lam)
    primal = TVReconstruction(lam).objective(x, y, A)
    assert bool((torch.linalg.vector_norm(q, dim=1) <= lam * (1 + 1e-12)).all())  # dual feasible
    gap = primal - dual_lower_bound(M, D.to_dense(), y, q)
    assert float(gap.min()) > -1e-10  # weak duality
    assert float(gap.max()) < 1e-7 * float(primal.max())
    # the solver runs the same loop
    torch.testing.assert_close(TVReconstruction(lam, make(3000))(y, A, progress=False).x, x)


def test_tv_denoising_duality_gap(tv_algorithm):
    """A = I: the dual is max_{||q_i|| <= lam} 1/2 ||y||^2 - 1/2 ||y - D^H q||^2 (Chambolle 2004); the gap
    closes at the O(1 / N) rate of both algorithms."""
    loop, make = tv_algorithm
    shape = (1, 12, 12)
    A = linops.Identity(shape, dtype=f64)
    y = torch.rand(1, *shape, generator=gen(8), dtype=f64)
    lam = 0.15
    gaps = []
    for iterations in (200, 2000):
        (x, q), D = run_with_dual(loop, make(iterations), y, A, lam)
        primal = TVReconstruction(lam).objective(x, y, A)
        dual = 0.5 * y.pow(2).sum() - 0.5 * (y - D.H @ q).pow(2).sum()
        gaps.append(float(primal - dual) / float(primal))
    assert 0 <= gaps[1] < min(1e-5, 0.1 * gaps[0])


def test_tv_1d_matches_an_independent_scipy_solution(tv_algorithm):
    """In 1-D, TV(x) = sum |x_{i+1} - x_i| and the problem is the QP min 1/2 ||M x - y||^2 + lam 1^T (u + v)
    subject to D x = u - v, u, v >= 0, solved here by scipy's SLSQP from a dense formulation."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    _, make = tv_algorithm
    n, m, lam = 10, 14, 0.2
    A, M, _ = dense_problem(m=m, n=n, seed=9)
    steps = torch.tensor([0.0] * 4 + [1.0] * 3 + [0.3] * 3, dtype=f64)
    y = A @ steps[None] + 0.05 * torch.randn(1, m, generator=gen(10), dtype=f64)
    Mn, yn = M.numpy(), y[0].numpy()
    Dn = np.diff(np.eye(n), axis=0)

    def cost(z):
        x, u, v = z[:n], z[n : 2 * n - 1], z[2 * n - 1 :]
        return 0.5 * np.sum((Mn @ x - yn) ** 2) + lam * np.sum(u + v)

    def grad(z):
        x = z[:n]
        return np.concatenate([Mn.T @ (Mn @ x - yn), lam * np.ones(2 * (n - 1))])

    constraint = {
        "type": "eq",
        "fun": lambda z: Dn @ z[:n] - z[n : 2 * n - 1] + z[2 * n - 1 :],
        "jac": lambda z: np.hstack([Dn, -np.eye(n - 1), np.eye(n - 1)]),
    }
    bounds = [(None, None)] * n + [(0, None)] * (2 * (n - 1))
    ref = scipy_optimize.minimize(
        cost,
        np.zeros(3 * n - 2),
        jac=grad,
        constraints=[constraint],
        bounds=bounds,
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert ref.success
    solver = TVReconstruction(lam, make(4000), axes=(-1,))
    x = solver(y, A, progress=False).x
    np.testing.assert_allclose(x[0].numpy(), ref.x[:n], atol=1e-5)
    assert float(solver.objective(x, y, A)) == pytest.approx(ref.fun, rel=1e-8)


def test_tv_with_zero_weight_is_least_squares(tv_algorithm):
    _, make = tv_algorithm
    shape = (1, 4, 5)
    A, M, y = dense_problem(m=30, n=20, shape=shape, seed=11)
    x = TVReconstruction(0.0, make(3000))(y, A, progress=False).x
    torch.testing.assert_close(x.reshape(2, -1), torch.linalg.lstsq(M, y.T).solution.T, rtol=1e-6, atol=1e-6)


def test_tv_on_fourier_data_treats_the_image_as_real(tv_algorithm):
    """A complex unitary operator on a real image: with lam = 0 the minimiser is Re(F^H y) = x."""
    _, make = tv_algorithm
    shape = (1, 6, 6)
    F = linops.FFT2(shape, dtype=torch.complex128)
    x_true = torch.rand(1, *shape, generator=gen(12), dtype=f64)
    x = TVReconstruction(0.0, make(200))(F @ x_true, F, progress=False).x
    assert not x.is_complex()
    torch.testing.assert_close(x, x_true, rtol=1e-8, atol=1e-8)


def test_tv_denoising_keeps_edges(tv_algorithm):
    """A piecewise-constant image in noise: TV flattens the noise and keeps the jumps one pixel sharp,
    where a linear smoother of the same noise reduction smears them."""
    _, make = tv_algorithm
    shape = (1, 32, 32)
    x_true = torch.zeros(1, *shape, dtype=f64)
    x_true[..., 8:24, 10:22] = 1.0
    y = x_true + 0.1 * torch.randn(1, *shape, generator=gen(13), dtype=f64)
    A = linops.Identity(shape, dtype=f64)
    x = TVReconstruction(0.08, make(400))(y, A, progress=False, x_true=x_true).x
    inside, outside = x[..., 11:21, 13:19], x[..., :5, :]
    assert float(inside.std()) < 0.03 and float(outside.std()) < 0.03  # noise std was 0.1
    jump = x[..., 15, 10] - x[..., 15, 9]  # across the left edge, one pixel apart
    assert float(jump) > 0.75
    blur = linops.gaussian_blur(shape, 1.5, "reflect", dtype=f64) @ y
    assert float(blur[..., 15, 10] - blur[..., 15, 9]) < 0.5
    assert float((x - x_true).pow(2).mean()) < 0.25 * float((blur - x_true).pow(2).mean())


def test_tv_trace_and_callback(tv_algorithm):
    _, make = tv_algorithm
    A = linops.Identity((1, 5, 5), dtype=f64)
    y = torch.rand(2, 1, 5, 5, generator=gen(14), dtype=f64)
    records = []
    result = TVReconstruction(0.1, make(7))(y, A, callback=records.append, progress=False)
    assert [r.step for r in records] == list(range(1, 8)) and records[0].solver.startswith("TV-")
    assert len(result.trace.residual) == 7 and result.trace.gradient_evaluations == 7


def test_tv_step_sizes_respect_the_bounds():
    tau, sigma = PDHG().steps(9.0)
    assert tau * sigma * 9.0 == pytest.approx(0.99)
    tau, sigma = PDHG(sigma=0.5).steps(9.0)
    assert sigma == 0.5 and tau * sigma * 9.0 == pytest.approx(0.99)
    with pytest.raises(ValueError, match="must be < 1"):
        PDHG(tau=1.0, sigma=1.0).steps(9.0)
    tau, sigma = CondatVu().steps(4.0, 8.0)
    assert tau * (4.0 / 2 + sigma * 8.0) == pytest.approx(0.99)
    tau, sigma = CondatVu(tau=0.1).steps(4.0, 8.0)
    assert tau == 0.1 and 0.1 * (2.0 + sigma * 8.0) == pytest.approx(0.99)
    with pytest.raises(ValueError, match="2 / \\|\\|A\\|\\|"):
        CondatVu(tau=0.6).steps(4.0, 8.0)
    with pytest.raises(ValueError, match="must be < 1"):
        CondatVu(tau=0.4, sigma=1.0).steps(4.0, 8.0)


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: TVReconstruction(0.1, "pdhg"), TypeError),
        (lambda: TVReconstruction(-1.0), ValueError),
        (lambda: TVReconstruction(float("nan")), ValueError),
        (lambda: PDHG(iterations=-1), ValueError),
        (lambda: PDHG(step_fraction=1.0), ValueError),
        (lambda: CondatVu(tau=0.0), ValueError),
    ],
)
def test_tv_settings_are_checked(make, error):
    with pytest.raises(error):
        make()


def test_tv_on_a_one_dimensional_operator_needs_one_axis():
    A, _, y = dense_problem()
    with pytest.raises(ValueError, match="axes"):
        TVReconstruction(0.1)(y, A, progress=False)


# ----------------------------------------------------------------------------------------------
# Tikhonov in the SVD


@pytest.mark.parametrize(
    "A",
    [
        linops.TransportOfIntensity((1, 6, 8), wavelength=0.5, pixel_size=0.3, dtype=f64),  # structured SVD
        linops.Matrix(torch.randn(12, 16, generator=gen(1), dtype=f64), in_shape=(1, 4, 4)),  # computed SVD
    ],
    ids=["tie", "matrix"],
)
def test_tikhonov_svd_solves_the_regularised_normal_equations(A):
    """x = (A^T A + mu I)^{-1} A^T y, against the dense solve."""
    mu = 0.05
    y = torch.randn(2, *A.out_shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    result = TikhonovSVD(mu)(y, A, progress=False)
    M = A.to_dense()
    expected = torch.linalg.solve(M.T @ M + mu * torch.eye(M.shape[1], dtype=M.dtype), M.T @ y.reshape(2, -1).T).T
    torch.testing.assert_close(result.x.reshape(2, -1), expected)
    assert len(result.trace.residual) == 1
    with pytest.raises(ValueError, match="regularization must be positive"):
        TikhonovSVD(0.0)
