"""The spectral toolkit: structured SVD rules against the same operators with their structure erased
(CoLA's Opaque trick), computed SVDs (dense and randomized), the complement projector, caching,
the spectral norm, the Krylov solvers and the pseudo-inverse."""

import math

import pytest
import torch

import linops
from linops import (
    FFT2,
    CircularBlur,
    Crop,
    Decimate,
    Diagonal,
    Downsample,
    FourierSampling,
    Identity,
    Mask,
    Matrix,
    Pad,
    Reshape,
    SeparableBlur,
    TransportOfIntensity,
    kron,
    memo,
)
from linops.spectral import (
    CG,
    CGLS,
    LSQR,
    SVD,
    DenseSVD,
    Lanczos,
    PowerIteration,
    RandomizedSVD,
    SVDPinv,
    norm,
    pinv,
    solve,
    structured_svd,
    svd,
)
from linops.spectral import cache as svd_cache
from linops.spectral.spectral_norm import NormOf
from linops.testing import Opaque, dottest, entries

F64, C128 = torch.float64, torch.complex128


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rand(*shape, seed=0):
    return torch.rand(shape, generator=gen(seed), dtype=F64)


def randn(*shape, seed=0):
    return torch.randn(shape, generator=gen(seed), dtype=F64)


def crandn(*shape, seed=0):
    g = gen(seed)
    return torch.complex(torch.randn(shape, generator=g, dtype=F64), torch.randn(shape, generator=g, dtype=F64))


def bits(*shape, p=0.5, seed=0):
    return torch.rand(shape, generator=gen(seed)) > p


# ----------------------------------------------------------------------------------------------
# every structured rule, on a small float64 example

STRUCTURED = {
    "identity": lambda: Identity((2, 3), dtype=F64),
    "diagonal": lambda: Diagonal(randn(2, 5, 6)),
    "diagonal-broadcast": lambda: Diagonal(randn(1, 5, 6), (3, 5, 6)),
    "diagonal-complex": lambda: Diagonal(crandn(4, 5)),
    "mask": lambda: Mask(bits(2, 6, 5), dtype=F64),
    "circular-blur": lambda: CircularBlur(rand(5, 3), (2, 9, 8)),
    "circular-blur-even": lambda: CircularBlur(rand(4, 4), (1, 8, 6)),
    "circular-blur-per-channel": lambda: CircularBlur(rand(3, 4, 3), (3, 8, 8)),
    "separable-blur-zero": lambda: SeparableBlur(rand(5), rand(4, seed=1), (2, 9, 8)),
    "separable-blur-reflect": lambda: SeparableBlur(rand(5), rand(4, seed=1), (9, 8), "reflect"),
    "separable-blur-replicate": lambda: SeparableBlur(rand(3), rand(5, seed=1), (1, 7, 8), "replicate"),
    "downsample": lambda: Downsample((2, 6, 9), 3, dtype=F64),
    "decimate": lambda: Decimate((2, 6, 8), 2, offset=1, dtype=F64),
    "fft2": lambda: FFT2((2, 6, 5), dtype=C128),
    "fourier-sampling": lambda: FourierSampling(bits(8, 6), (2, 8, 6), dtype=C128),
    "crop (co-isometry)": lambda: Crop((2, 7, 6), ((1, 2), (2, 0)), dtype=F64),
    "zero-pad (isometry)": lambda: Pad((2, 5, 4), ((2, 1), (3, 0)), "zero", dtype=F64),
    "reshape": lambda: Reshape((2, 3, 4), (6, 4), dtype=F64),
    "kron": lambda: kron(Diagonal(randn(3)), CircularBlur(rand(3, 3), (5, 4))),
    "kron-rectangular": lambda: kron(Downsample((1, 4, 4), 2, dtype=F64), Mask(bits(3), dtype=F64)),
    "scaled": lambda: -2.5 * CircularBlur(rand(3, 3), (5, 4)),
    "scaled-complex": lambda: (1 - 2j) * Mask(bits(4, 5), dtype=F64),
    "adjoint": lambda: Downsample((1, 6, 6), 2, dtype=F64).H,
    "adjoint-circular": lambda: CircularBlur(rand(3, 2), (2, 5, 6)).H,
    "transpose-complex": lambda: Diagonal(crandn(3, 4)) @ FFT2((3, 4), dtype=C128).T,
    "diagonal @ mask": lambda: Diagonal(randn(1, 5, 6)) @ Mask(bits(1, 5, 6), dtype=F64),
    "mask @ downsample": lambda: Mask(bits(1, 3, 3), dtype=F64) @ Downsample((1, 6, 6), 2, dtype=F64),
    "diagonal @ decimate": lambda: Diagonal(randn(1, 3, 4)) @ Decimate((1, 6, 8), 2, dtype=F64),
    "blur ** 3": lambda: CircularBlur(rand(3, 3), (1, 6, 6)) ** 3,
    "mask @ fft2": lambda: Mask(bits(1, 6, 6), dtype=F64) @ FFT2((1, 6, 6), dtype=C128),
    "F^H M F": lambda: (lambda F: F.H @ F)(FourierSampling(bits(6, 6), (1, 6, 6), dtype=C128)),
    "zero-pad @ blur": lambda: Pad((1, 5, 4), ((2, 1), (3, 0)), dtype=F64) @ CircularBlur(rand(3, 3), (1, 5, 4)),
    "blur @ crop": lambda: CircularBlur(rand(3, 3), (1, 4, 4)) @ Crop((1, 7, 6), ((1, 2), (2, 0)), dtype=F64),
    "identity + diagonal": lambda: Identity((4, 5), dtype=F64) + Diagonal(randn(4, 5)),
    "tie": lambda: TransportOfIntensity((1, 8, 6), wavelength=0.521, pixel_size=0.21, dtype=F64),
    "tie-odd": lambda: TransportOfIntensity((2, 5, 7), wavelength=0.6, pixel_size=0.4, intensity=2.0, dtype=F64),
    "scaled tie": lambda: 1.75 * TransportOfIntensity((1, 6, 6), wavelength=0.521, pixel_size=0.21, dtype=F64),
    "D D^H": lambda: Downsample((1, 6, 6), 2, dtype=F64) @ Downsample((1, 6, 6), 2, dtype=F64).H,
}


@pytest.fixture(params=sorted(STRUCTURED), ids=str)
def structured(request):
    return STRUCTURED[request.param]()


def dense_of(op):
    return op.to_dense()


def test_structured_rule_applies(structured):
    dec = structured_svd(structured)
    assert dec is not None and dec.structured
    assert svd(structured) is dec or svd(structured).structured


def test_structured_singular_values_match_opaque(structured):
    dec = svd(structured)
    computed = svd(Opaque(structured), DenseSVD())
    assert not computed.structured
    k = computed.s.numel()
    values = dec.sorted_values()
    assert values.numel() <= k
    values = torch.cat([values, values.new_zeros(k - values.numel())])
    torch.testing.assert_close(values, computed.s, atol=1e-12, rtol=1e-10)


def common(*tensors):
    """The tensors in one dtype (complex if any is), for comparing real and complex results."""
    dtype = C128 if any(t.is_complex() for t in tensors) else F64
    return [t.to(dtype) for t in tensors]


def test_structured_svd_reproduces_operator(structured):
    dec = svd(structured)
    torch.testing.assert_close(*common(dense_of(dec.to_operator()), dense_of(structured)))
    # and through the DDRM convention: A x = U (s * (V^H x)) on a batch
    x = torch.randn(3, *structured.in_shape, generator=gen(3), dtype=F64)
    x_bar = dec.V.H @ x
    assert x_bar.shape == (3, *dec.spectral_shape)
    torch.testing.assert_close(*common(dec.U @ (dec.s * x_bar), structured @ x))


def test_structured_bases_are_orthonormal(structured):
    dec = svd(structured)
    for W in (dec.U, dec.V):
        M = dense_of(W)
        torch.testing.assert_close(M.mH @ M, torch.eye(M.shape[1], dtype=M.dtype), atol=1e-12, rtol=0)
    assert (dec.s >= 0).all() and not dec.s.is_complex()
    V = dense_of(dec.V)
    n = V.shape[0]
    if dec.complete:
        torch.testing.assert_close(V @ V.mH, torch.eye(n, dtype=V.dtype), atol=1e-12, rtol=0)
    U = dense_of(dec.U)
    if dec.range_complete:
        torch.testing.assert_close(U @ U.mH, torch.eye(U.shape[0], dtype=U.dtype), atol=1e-12, rtol=0)


def test_structured_complement_projector(structured):
    dec = svd(structured)
    V = dense_of(dec.V)
    P = dense_of(dec.null_projector()).to(V.dtype)
    torch.testing.assert_close(P @ P, P, atol=1e-12, rtol=0)
    torch.testing.assert_close(P, P.mH, atol=1e-12, rtol=0)
    torch.testing.assert_close(P @ V, torch.zeros_like(V), atol=1e-12, rtol=0)
    # P + V V^H = I: the complement is exactly what V misses
    torch.testing.assert_close(P + V @ V.mH, torch.eye(P.shape[0], dtype=P.dtype), atol=1e-12, rtol=0)
    assert (dec.complete and not P.abs().any()) or not dec.complete


def test_structured_norm_matches_dense(structured):
    sigma = torch.linalg.matrix_norm(dense_of(structured), ord=2).item()
    assert norm(structured) == pytest.approx(sigma, rel=1e-10, abs=1e-12)
    assert norm(Opaque(structured)) == pytest.approx(sigma, rel=1e-8)  # Lanczos, no structure


def test_real_operators_get_real_bases():
    A = CircularBlur(rand(5, 3), (2, 9, 8))
    dec = svd(A)
    assert not dec.U.dtype.is_complex and not dec.V.dtype.is_complex
    x = randn(2, 2, 9, 8)
    assert not (dec.V.H @ x).is_complex()
    # singular values of a circular blur are the moduli of its transfer function on the full grid
    full = torch.fft.fft2(A.kernel).abs()
    torch.testing.assert_close(dec.s[0], full)


def test_separable_blur_rule_is_kron_of_1d_svds():
    A = SeparableBlur(rand(5), rand(4, seed=1), (9, 8), "symmetric")
    dec = svd(A)
    assert isinstance(dec.U, linops.Kron) and dec.spectral_shape == (9, 8)


def test_composition_without_shared_basis_is_computed():
    A = Mask(bits(1, 6, 6), dtype=F64) @ CircularBlur(rand(3, 3), (1, 6, 6))
    assert structured_svd(A) is None
    dec = svd(A)
    assert not dec.structured and dec.spectral_shape == (36,)
    torch.testing.assert_close(dense_of(dec.to_operator()), dense_of(A))


# ----------------------------------------------------------------------------------------------
# computed SVDs


def mask_blur(n=16, dtype=F64):
    blur = CircularBlur(linops.gaussian_kernel(1.2, size=7, dtype=dtype), (1, n, n))
    return Opaque(Mask(bits(1, n, n, p=0.3), dtype=dtype) @ blur)


def test_dense_svd_shapes_and_flags():
    A = Matrix(randn(5, 8), (8,), (5,))
    dec = svd(A)
    assert dec.spectral_shape == (5,) and not dec.complete and dec.range_complete
    tall = svd(Matrix(randn(8, 3)))
    assert tall.complete and not tall.range_complete
    assert torch.all(dec.s[:-1] >= dec.s[1:])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_randomized_top_k_agrees_with_dense(dtype):
    A = mask_blur(dtype=dtype)
    dense = svd(A, DenseSVD())
    rnd = svd(A, RandomizedSVD(rank=20, oversample=20, power_iters=3))
    assert rnd.spectral_shape == (20,) and not rnd.complete
    rel = ((rnd.s[:10] - dense.s[:10]).abs() / dense.s[:10]).max()
    assert rel < (1e-3 if dtype == F64 else 2e-3)
    # top singular vectors agree up to sign: |<u_i, u_i'>| ~ 1 for well separated values
    gap = (dense.s[:-1] - dense.s[1:]) / dense.s[0]
    i = int(torch.argmax(gap[:5]))
    u = dense_of(rnd.U)[:, i]
    v = dense_of(dense.U)[:, i]
    assert abs(float(u @ v)) > 0.99


def test_randomized_threshold_keeps_values_above():
    A = mask_blur()
    dense = svd(A, DenseSVD())
    t = 0.2
    rnd = svd(A, RandomizedSVD(threshold=t, block_size=32))
    expected = int((dense.s > t).sum())
    assert rnd.s.numel() == expected
    assert (rnd.s > t).all()
    torch.testing.assert_close(rnd.s, dense.s[:expected], rtol=1e-4, atol=0)


def test_randomized_complex_operator():
    A = Opaque(FourierSampling(bits(8, 8, p=0.6), (1, 8, 8), dtype=C128) @ CircularBlur(rand(3, 3), (1, 8, 8)))
    dense = svd(A, DenseSVD())
    rnd = svd(A, RandomizedSVD(rank=8, oversample=16))
    torch.testing.assert_close(rnd.s, dense.s[:8], rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(dense_of(rnd.U).mH @ dense_of(rnd.U), torch.eye(8, dtype=C128), atol=1e-10, rtol=0)


def test_truncated_projector_properties():
    A = mask_blur(12)
    dec = svd(A, RandomizedSVD(rank=30))
    P = dec.null_projector()
    assert P.is_self_adjoint
    Pd = dense_of(P)
    V = dense_of(dec.V)
    torch.testing.assert_close(Pd @ Pd, Pd, atol=1e-10, rtol=0)
    torch.testing.assert_close(Pd, Pd.mH, atol=1e-12, rtol=0)
    torch.testing.assert_close(V.mH @ Pd, torch.zeros_like(V.mH), atol=1e-10, rtol=0)
    assert abs(torch.trace(Pd).item() - (144 - 30)) < 1e-8
    assert dottest(P) < 1e-10


def test_randomized_uses_blocks_of_vectors():
    calls = []

    class Counting(Opaque):
        def _apply(self, x):
            calls.append(x.shape[0])
            return super()._apply(x)

    A = Counting(CircularBlur(rand(3, 3), (1, 16, 16)))
    svd(A, RandomizedSVD(rank=10, oversample=6, power_iters=2))
    assert len(calls) == 3 and all(n == 16 for n in calls)
    calls.clear()
    svd(A, RandomizedSVD(rank=10, oversample=6, power_iters=2, batch_size=5))
    assert max(calls) <= 5


def test_randomized_is_seeded():
    A = mask_blur(10)
    a = svd(A, RandomizedSVD(rank=5, seed=3))
    b = svd(mask_blur(10), RandomizedSVD(rank=5, seed=3))
    torch.testing.assert_close(a.s, b.s, rtol=0, atol=0)


def test_large_operator_without_structure_says_what_to_pass():
    A = Opaque(CircularBlur(rand(3, 3), (1, 80, 80)))
    with pytest.raises(ValueError, match=r"6400 x 6400.*RandomizedSVD\(rank=k\).*threshold"):
        svd(A)


def test_algorithm_values_are_checked():
    with pytest.raises(ValueError, match="exactly one"):
        RandomizedSVD()
    with pytest.raises(ValueError, match="exactly one"):
        RandomizedSVD(rank=3, threshold=0.1)
    with pytest.raises(TypeError, match="DenseSVD"):
        svd(Identity(3), "dense")
    with pytest.raises(ValueError, match="exceeds"):
        svd(Opaque(Identity(4, dtype=F64)), RandomizedSVD(rank=5))


# ----------------------------------------------------------------------------------------------
# caching


def test_svd_is_cached_per_instance():
    A = CircularBlur(rand(3, 3), (1, 6, 6))
    assert svd(A) is svd(A) is A.svd()
    assert svd(A, DenseSVD()) is svd(A, DenseSVD())
    assert svd(A, DenseSVD()) is not svd(A)
    B = mask_blur(8)
    assert B.svd(algorithm=RandomizedSVD(rank=4)) is svd(B, RandomizedSVD(rank=4))
    assert norm(A) == A.norm() and memo.holds(A, NormOf(None))


def test_converted_operator_has_fresh_cache():
    A = CircularBlur(rand(3, 3), (1, 6, 6))
    svd(A)
    B = A.to(torch.float32)
    assert svd(B).s.dtype == torch.float32


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    alg = RandomizedSVD(rank=6)
    first = svd(mask_blur(10), alg, cache_dir=tmp_path)
    files = list(tmp_path.glob("svd-*.pt"))
    assert len(files) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of loading from the disk cache")

    import linops.spectral.svd_dispatch as svd_module

    monkeypatch.setattr(svd_module, "randomized_svd", fail)
    again = svd(mask_blur(10), alg, cache_dir=tmp_path)  # a new, equal operator: no memory cache
    torch.testing.assert_close(again.s, first.s, rtol=0, atol=0)
    torch.testing.assert_close(dense_of(again.U), dense_of(first.U), rtol=0, atol=0)
    torch.testing.assert_close(dense_of(again.V), dense_of(first.V), rtol=0, atol=0)
    # a different operator (another mask) has another fingerprint: a miss, so it would recompute
    other = Opaque(Mask(bits(1, 10, 10, p=0.3, seed=9), dtype=F64) @ CircularBlur(rand(3, 3), (1, 10, 10)))
    assert svd_cache.fingerprint(other, alg) != svd_cache.fingerprint(mask_blur(10), alg)
    with pytest.raises(AssertionError, match="recomputed"):
        svd(other, alg, cache_dir=tmp_path)


def test_fingerprint_is_stable_and_algorithm_specific():
    A, B = mask_blur(8), mask_blur(8)
    assert svd_cache.fingerprint(A, DenseSVD()) == svd_cache.fingerprint(B, DenseSVD())
    assert svd_cache.fingerprint(A, DenseSVD()) != svd_cache.fingerprint(A, RandomizedSVD(rank=3))


# ----------------------------------------------------------------------------------------------
# norm


def test_power_iteration_matches_dense_norm():
    A = Opaque(Matrix(randn(30, 20)))
    sigma = torch.linalg.matrix_norm(A.to_dense(), ord=2).item()
    assert norm(A) == pytest.approx(sigma, rel=1e-5)
    assert norm(A, PowerIteration(tol=1e-12, max_iter=10000)) == pytest.approx(sigma, rel=1e-9)


def test_power_iteration_is_seeded_and_warns_when_capped():
    A = Opaque(Matrix(randn(30, 20)))
    assert norm(A, PowerIteration(seed=4)) == norm(Opaque(A), PowerIteration(seed=4))
    with pytest.warns(RuntimeWarning, match="did not reach"):
        norm(Opaque(Matrix(randn(30, 20))), PowerIteration(tol=1e-15, max_iter=2))


def test_lanczos_handles_clustered_top_singular_values():
    """A blur has many nearly equal top singular values: power iteration crawls, Lanczos does not."""
    blur = CircularBlur(linops.gaussian_kernel(1.5, size=7, dtype=F64), (2, 16, 16))
    A = Opaque(blur @ Diagonal(1 + rand(2, 16, 16)))
    sigma = torch.linalg.matrix_norm(A.to_dense(), ord=2).item()
    calls = []

    class Counting(Opaque):
        def _apply(self, x):
            calls.append(1)
            return super()._apply(x)

    assert norm(Counting(A), Lanczos(tol=1e-10)) == pytest.approx(sigma, rel=1e-9)
    assert len(calls) < 100
    with pytest.warns(RuntimeWarning, match="did not reach"):
        norm(Opaque(A), Lanczos(max_iter=2))


def test_norm_of_composition_and_complex():
    A = Opaque(FourierSampling(bits(6, 6), (1, 6, 6), dtype=C128) @ CircularBlur(rand(3, 3), (1, 6, 6)))
    sigma = torch.linalg.matrix_norm(A.to_dense(), ord=2).item()
    assert A.norm(algorithm=PowerIteration(tol=1e-12, max_iter=5000)) == pytest.approx(sigma, rel=1e-7)
    assert A.norm() == pytest.approx(sigma, rel=1e-10)
    assert norm(linops.Zero((2, 3), dtype=F64)) == 0.0


# ----------------------------------------------------------------------------------------------
# solve


def spd(n, seed=0):
    M = randn(n, n, seed=seed)
    return Matrix(M.T @ M + 0.5 * torch.eye(n, dtype=F64))


def test_cg_matches_linalg_solve_batched():
    A = spd(12)
    b = randn(3, 2, 12, seed=1)
    res = solve(A, b, CG(tol=1e-12))
    expected = torch.linalg.solve(A.matrix, b.reshape(-1, 12).T).T.reshape(3, 2, 12)
    torch.testing.assert_close(res.x, expected, rtol=1e-8, atol=1e-9)
    assert res.converged.shape == (3, 2) and res.converged.all()
    assert res.residuals.shape == (res.iterations + 1, 3, 2)
    assert res.iterations <= 2 * 12


def test_cg_damping_and_shaped_operators():
    M = randn(20, 20, seed=2)
    A = Matrix(M @ M.T, (4, 5), (4, 5))
    b = randn(2, 4, 5, seed=3)
    lam = 0.3
    res = solve(A, b, CG(tol=1e-12), damping=lam)
    expected = torch.linalg.solve(M @ M.T + lam * torch.eye(20, dtype=F64), b.reshape(2, 20).T).T.reshape(2, 4, 5)
    torch.testing.assert_close(res.x, expected, rtol=1e-7, atol=1e-8)


def test_cg_refuses_non_square_and_indefinite():
    with pytest.raises(ValueError, match="CGLS"):
        solve(Matrix(randn(4, 3)), randn(4), CG())
    indefinite = Diagonal(torch.tensor([1.0, -2.0, 3.0], dtype=F64))
    with pytest.raises(ValueError, match="not positive definite"):
        solve(indefinite, torch.ones(3, dtype=F64), CG())


@pytest.mark.parametrize("algorithm", [CGLS(tol=1e-12), LSQR(tol=1e-12)], ids=["CGLS", "LSQR"])
def test_least_squares_matches_lstsq(algorithm):
    M = randn(30, 10, seed=4)
    A = Matrix(M)
    b = randn(4, 30, seed=5)
    res = solve(A, b, algorithm)
    expected = torch.linalg.lstsq(M, b.T).solution.T
    torch.testing.assert_close(res.x, expected, rtol=1e-8, atol=1e-9)
    assert res.converged.all()


@pytest.mark.parametrize("algorithm", [CGLS(tol=1e-12), LSQR(tol=1e-12)], ids=["CGLS", "LSQR"])
def test_least_squares_damping(algorithm):
    M = randn(15, 25, seed=6)
    A = Matrix(M, (5, 5), (15,))
    b = randn(3, 15, seed=7)
    lam = 0.7
    res = solve(A, b, algorithm, damping=lam)
    normal = M.T @ M + lam * torch.eye(25, dtype=F64)
    expected = torch.linalg.solve(normal, M.T @ b.T).T.reshape(3, 5, 5)
    torch.testing.assert_close(res.x, expected, rtol=1e-8, atol=1e-9)
    # CG on the normal equations solves the same problem
    cg = solve(A.H @ A, (A.H @ b), CG(tol=1e-13), damping=lam)
    torch.testing.assert_close(cg.x, expected, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("algorithm", [CGLS(tol=1e-12), LSQR(tol=1e-12)], ids=["CGLS", "LSQR"])
def test_least_squares_minimum_norm_and_x0(algorithm):
    M = randn(6, 9, seed=8) @ torch.diag(torch.tensor([1, 1, 1, 1, 1, 1, 0, 0, 0], dtype=F64))
    A = Matrix(M)
    b = randn(6, seed=9)
    res = solve(A, b, algorithm)
    torch.testing.assert_close(res.x, torch.linalg.pinv(M) @ b, rtol=1e-7, atol=1e-8)
    # a warm start from the answer converges at once
    warm = solve(A, b, algorithm, x0=res.x)
    assert warm.iterations <= 1


def test_lsqr_damping_with_x0_is_exact():
    M = randn(12, 8, seed=10)
    A = Matrix(M)
    b = randn(12, seed=11)
    lam = 2.0
    x0 = randn(8, seed=12)
    res = solve(A, b, LSQR(tol=1e-13), damping=lam, x0=x0)
    expected = torch.linalg.solve(M.T @ M + lam * torch.eye(8, dtype=F64), M.T @ b)
    torch.testing.assert_close(res.x, expected, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("algorithm", [CGLS(tol=1e-12), LSQR(tol=1e-12)], ids=["CGLS", "LSQR"])
def test_least_squares_complex_structured(algorithm):
    A = FourierSampling(bits(6, 6, p=0.3), (1, 6, 6), dtype=C128) @ CircularBlur(rand(3, 3) + 0.5, (1, 6, 6))
    x_true = randn(2, 1, 6, 6, seed=13)
    b = A @ x_true
    res = solve(A, b, algorithm)
    expected = (torch.linalg.pinv(A.to_dense()) @ b.reshape(2, -1).T).T.reshape(2, 1, 6, 6)
    torch.testing.assert_close(res.x, expected, rtol=1e-7, atol=1e-8)


def test_solver_batches_converge_independently():
    A = Diagonal(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64))
    b = torch.stack([torch.tensor([1.0, 0, 0, 0], dtype=F64), torch.tensor([1.0, 1, 1, 1], dtype=F64)])
    res = solve(A, b, CG(tol=1e-12))
    assert res.converged.all()
    # the first system converged after one step and then stopped changing
    assert res.residuals[1, 0] <= 1e-12 and (res.residuals[1:, 0] == res.residuals[1, 0]).all()
    torch.testing.assert_close(res.x, b / A.weights)


def test_solver_iteration_cap_and_errors():
    A = spd(30)
    res = solve(A, randn(30, seed=14), CG(tol=1e-14, max_iter=3))
    assert res.iterations == 3 and not res.converged
    with pytest.raises(ValueError, match="shape"):
        solve(A, randn(29), CG())
    with pytest.raises(TypeError, match="CG"):
        solve(A, randn(30), "cg")

    class Broken(Opaque):
        def _apply(self, x):
            return x * float("nan")

    with pytest.raises(FloatingPointError, match="iteration 1"):
        solve(Broken(Identity(3, dtype=F64)), torch.ones(3, dtype=F64), CGLS())


# ----------------------------------------------------------------------------------------------
# pinv


def test_pinv_matches_torch_on_rank_deficient_matrix():
    M = randn(7, 4, seed=15) @ randn(4, 9, seed=16)  # rank 4
    A = Matrix(M)
    P = pinv(A)
    torch.testing.assert_close(dense_of(P), torch.linalg.pinv(M), rtol=1e-8, atol=1e-10)
    assert A.pinv() is P


def test_pinv_structured():
    A = Mask(bits(1, 3, 3), dtype=F64) @ Downsample((1, 6, 6), 2, dtype=F64)
    torch.testing.assert_close(dense_of(pinv(A)), torch.linalg.pinv(dense_of(A)), rtol=1e-10, atol=1e-12)
    B = CircularBlur(rand(3, 3), (1, 6, 6))
    torch.testing.assert_close(dense_of(pinv(B, SVDPinv(rtol=1e-3))), torch.linalg.pinv(dense_of(B), rtol=1e-3))


def test_pinv_iterative_lsqr():
    M = randn(10, 6, seed=17)
    P = pinv(Matrix(M), LSQR(tol=1e-13))
    torch.testing.assert_close(dense_of(P), torch.linalg.pinv(M), rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(dense_of(P.H), torch.linalg.pinv(M).T, rtol=1e-8, atol=1e-9)


def test_svd_value_checks_shapes():
    with pytest.raises(ValueError, match="spectral"):
        SVD(Identity(3), torch.ones(4), Identity(3), complete=True, range_complete=True, structured=True)


def test_radon_like_operator_gets_a_computed_svd():
    """An operator that exposes only apply/adjoint (like a Radon transform) gets a randomized SVD."""
    angles = torch.linspace(0, math.pi, 7, dtype=F64)[:-1]

    class Projections(linops.LinearOperator):
        """Sum along rows/columns of rotated-by-roll images: a toy with only _apply/_adjoint."""

        def __init__(self):
            super().__init__((1, 12, 12), (len(angles), 12), dtype=F64)

        def _apply(self, x):
            return torch.stack([torch.roll(x[:, 0], int(i), dims=-1).sum(-2) for i in range(len(angles))], 1)

        def _adjoint(self, y):
            return torch.stack(
                [torch.roll(y[:, i, None, :].expand(-1, 12, 12), -int(i), dims=-1) for i in range(len(angles))], 1
            ).sum(1, keepdim=True)

    A = Projections()
    assert dottest(A) < 1e-10
    dense = svd(A, DenseSVD())
    rnd = svd(A, RandomizedSVD(threshold=1e-8, block_size=8))
    torch.testing.assert_close(rnd.s, dense.s[: rnd.s.numel()], rtol=1e-8, atol=1e-8)
    assert rnd.s.numel() == int((dense.s > 1e-8).sum())
    # the range is exhausted before the sketch is full: the bases must stay orthonormal anyway
    for W in (rnd.U, rnd.V, svd(A, RandomizedSVD(rank=20)).U):
        M = dense_of(W)
        torch.testing.assert_close(M.mH @ M, torch.eye(M.shape[1], dtype=F64), atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------------------------
# every market operator (structured or not) gets a correct SVD and norm


MARKET = {e.name: e for e in entries()}


@pytest.mark.parametrize("name", sorted(MARKET), ids=str)
def test_every_market_operator_has_an_svd_and_norm(name):
    A = MARKET[name].build(F64, gen(0))
    if math.prod(A.shape) > 2**20:
        pytest.skip("large example: covered by the randomized tests")
    dense = dense_of(A)
    dec = svd(A)
    torch.testing.assert_close(*common(dense_of(dec.to_operator()), dense), atol=1e-10, rtol=1e-9)
    for W in (dec.U, dec.V):
        M = dense_of(W)
        torch.testing.assert_close(M.mH @ M, torch.eye(M.shape[1], dtype=M.dtype), atol=1e-10, rtol=0)
    sigma = torch.linalg.matrix_norm(dense, ord=2).item()
    assert norm(A) == pytest.approx(sigma, rel=1e-4, abs=1e-12)


def test_radon_gets_a_computed_svd():
    """linops.Radon exposes only apply/adjoint: the computed paths must handle it (blocks of views)."""
    if not hasattr(linops, "Radon"):
        pytest.skip("linops.Radon not available")
    R = linops.Radon.tilt_series((1, 16, 16), 16, dtype=F64)
    dense = svd(R)
    assert not dense.structured and dense.spectral_shape == (256,)
    torch.testing.assert_close(dense_of(dense.to_operator()), dense_of(R), atol=1e-10, rtol=1e-10)
    t = float(dense.s[0]) / 30  # DDRM's cut in the DDGM paper: singular values below s_max / 30 dropped
    rnd = svd(R, RandomizedSVD(threshold=t, block_size=32))
    assert rnd.s.numel() == int((dense.s > t).sum())
    torch.testing.assert_close(rnd.s, dense.s[: rnd.s.numel()], rtol=1e-6, atol=0)
    assert norm(R) == pytest.approx(float(dense.s[0]), rel=1e-8)


# ----------------------------------------------------------------------------------------------
# GramEigh: the SVD through eigh of the smaller Gram matrix


@pytest.mark.parametrize("transpose", [False, True], ids=["tall", "wide"])
def test_gram_eigh_agrees_with_dense_svd(transpose):
    A = linops.Radon.tilt_series((1, 10, 10), 12, 60.0, dtype=torch.float64)
    A = A.H if transpose else A
    dense = torch.linalg.svdvals(A.to_dense())
    out = linops.svd(A, linops.GramEigh())
    k = out.s.shape[0]
    torch.testing.assert_close(out.s, dense[:k], rtol=1e-9, atol=1e-9 * float(dense[0]))
    assert all(float(v) <= 1e-7 * float(dense[0]) for v in dense[k:])
    U, V = out.U.to_dense(), out.V.to_dense()
    eye = torch.eye(k, dtype=torch.float64)
    torch.testing.assert_close(U.T @ U, eye, atol=1e-8, rtol=0)
    torch.testing.assert_close(V.T @ V, eye, atol=1e-8, rtol=0)
    torch.testing.assert_close(U @ torch.diag(out.s) @ V.T, A.to_dense(), atol=1e-9, rtol=0)


def test_gram_eigh_keeps_precision_of_a_float32_operator():
    A = linops.Radon.tilt_series((1, 8, 8), 6, 45.0)
    out = linops.svd(A, linops.GramEigh())
    assert out.U.dtype == torch.float32 and out.s.dtype == torch.float32
    assert not out.complete  # the rank-deficient directions are left to the complement projector
    x = torch.randn(2, 1, 8, 8, generator=gen(100))
    torch.testing.assert_close(out.U @ (out.s * (out.V.H @ x)), A @ x, rtol=1e-4, atol=1e-4)


def test_lsqr_stops_at_breakdown_on_a_rank_deficient_operator():
    """Run with tol = 0 far past the rank: the Krylov space is exhausted, LSQR must stop at the
    minimum-norm least-squares solution instead of normalising rounding noise into new directions."""
    g = torch.Generator().manual_seed(0)
    M = torch.randn(12, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 9, generator=g, dtype=torch.float64)
    A = linops.Matrix(M)
    b = torch.randn(12, generator=g, dtype=torch.float64)
    out = linops.solve(A, b, linops.LSQR(tol=0.0, atol=0.0, max_iter=200))
    torch.testing.assert_close(out.x, torch.linalg.pinv(M) @ b, rtol=1e-8, atol=1e-8)
    assert out.iterations <= 6
