"""Symmetries of operators and the block SVD they give (linops/symmetry.py, linops/spectral/symmetric.py).

Every claim is checked against dense matrices in float64: the declared permutations commute with A
(and the flips a geometry leaves out really do not), the symmetry-adapted bases are orthonormal and
project exactly onto the isotypic components, the block SVD equals the dense SVD, survives the disk
cache, and drives DDRM to the same answer as the dense SVD.
"""

import math
import warnings

import numpy as np
import pytest
import torch

import linops
from linops.rules import symmetry_rules
from linops.spectral import DenseSVD, GramEigh, SymmetricGramEigh
from linops.spectral import cache as svd_cache
from linops.spectral.symmetric import block_svd_from_tensors, block_svd_to_tensors
from linops.symmetry import Symmetry, SymmetryGroup, symmetries
from linops.testing.opaque import Opaque

f64 = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")

ALL = {"left-right flip", "up-down flip", "half-turn"}
FAN = {"source_distance": 30.0, "detector_distance": 10.0, "dtype": f64}


def geometries():
    """(label, operator, the symmetries it must declare)."""
    R, F = linops.Radon, linops.FanBeamRadon
    return [
        ("tilt-series", R.tilt_series((1, 12, 12), 10, 60.0, dtype=f64), ALL),
        ("tilt-odd-views-rectangular", R.tilt_series((1, 11, 12), 7, 60.0, n_detector=20, dtype=f64), ALL),
        ("tilt-stack", R.tilt_series((2, 3, 8, 8), 6, 45.0, dtype=f64), ALL),
        ("full-range", R.full_range((1, 10, 10), 12, dtype=f64), ALL),
        ("spacing", R((1, 9, 9), angles_deg=[-30, -10, 10, 30], detector_spacing=0.7, pixel_size=1.3, dtype=f64), ALL),
        ("parallel-asymmetric", R((1, 10, 10), angles_deg=[0, 10, 25, 70], dtype=f64), {"half-turn"}),
        ("fan-full-turn", F.full_range((1, 10, 10), 8, **FAN), ALL),
        ("fan-odd-full-turn", F.full_range((1, 10, 10), 7, **FAN), {"left-right flip"}),
        ("fan-symmetric-arc", F((1, 10, 10), angles_deg=np.linspace(-50, 50, 9), **FAN), {"left-right flip"}),
        ("fan-asymmetric-arc", F((1, 10, 10), angles_deg=np.linspace(10, 200, 9), **FAN), set()),
    ]


GEOMETRIES = {label: (op, expected) for label, op, expected in geometries()}


def dense_of(W: linops.LinearOperator) -> torch.Tensor:
    """The matrix of W (columns W e_j), shape (prod(out_shape), prod(in_shape))."""
    return W.to_dense()


def rows_as_set(M: torch.Tensor) -> np.ndarray:
    """The rows of M rounded to 1e-9 of its peak, sorted: equal for M and P M for any permutation P."""
    R = np.round(M.numpy() / float(M.abs().max()) * 1e9).astype(np.int64)
    return R[np.lexsort(R.T[::-1])]


# ----------------------------------------------------------------------------------------------
# the declared symmetries


@pytest.mark.parametrize("label", list(GEOMETRIES))
def test_declared_symmetries_commute_with_the_dense_matrix(label):
    A, expected = GEOMETRIES[label]
    M = A.to_dense()
    declared = symmetries(A)
    assert {g.name for g in declared} == expected
    for g in declared:
        # A P_in = P_out A, i.e. M[:, in_perm] = M[out_perm, :]
        err = float((M[:, g.in_perm] - M[g.out_perm, :]).abs().max() / M.abs().max())
        assert err < 1e-12, f"{g.name}: |A P_in - P_out A| / max|A| = {err:.2e}"


@pytest.mark.parametrize("label", ["parallel-asymmetric", "fan-symmetric-arc", "fan-asymmetric-arc"])
def test_the_flips_left_out_commute_with_no_permutation_of_the_rays(label):
    A, expected = GEOMETRIES[label]
    M = A.to_dense()
    pixels = torch.arange(math.prod(A.in_shape)).reshape(A.in_shape)
    for name, axes in (("left-right flip", (-1,)), ("up-down flip", (-2,)), ("half-turn", (-2, -1))):
        if name in expected:
            continue
        flipped = M[:, pixels.flip(axes).reshape(-1)]
        # A P_in = P_out A for some permutation P_out iff A P_in has the same rows as A
        same = np.array_equal(rows_as_set(flipped), rows_as_set(M))
        assert not same, f"{label}: the {name} maps the rays onto themselves but was not declared"


def test_a_group_needs_commuting_involutions():
    n = 6
    swap01 = torch.tensor([1, 0, 2, 3, 4, 5])
    swap12 = torch.tensor([0, 2, 1, 3, 4, 5])
    ident = torch.arange(n)
    with pytest.raises(ValueError, match="not an involution"):
        Symmetry("cycle", torch.tensor([1, 2, 0, 3, 4, 5]), ident)
    with pytest.raises(ValueError, match="not a permutation"):
        Symmetry("bad", torch.tensor([0, 0, 2, 3, 4, 5]), ident)
    with pytest.raises(ValueError, match="do not commute"):
        SymmetryGroup.generated_by([Symmetry("a", swap01, ident), Symmetry("b", swap12, ident)], n, n)
    swap45 = torch.tensor([0, 1, 2, 3, 5, 4])
    a, b = Symmetry("a", swap01, ident), Symmetry("b", swap45, ident)
    ab = Symmetry("ab", swap01[swap45], ident)
    group = SymmetryGroup.generated_by([a, b, ab], n, n)  # ab is dependent: dropped
    assert [g.name for g in group.generators] == ["a", "b"] and group.order == 4
    chi = group.characters
    torch.testing.assert_close(chi @ chi.T, 4 * torch.eye(4, dtype=f64))  # orthogonal characters


@pytest.mark.parametrize(
    "label", ["tilt-odd-views-rectangular", "tilt-stack", "parallel-asymmetric", "fan-odd-full-turn"]
)
def test_adapted_bases_project_exactly_onto_each_isotypic_component(label):
    A, _ = GEOMETRIES[label]
    group = SymmetryGroup.of(A)
    m, n = A.shape
    for side, size, perms in (("in", n, group.in_perms), ("out", m, group.out_perms)):
        eye = torch.eye(size, dtype=f64)
        total = torch.zeros(size, size, dtype=f64)
        for c in range(group.order):
            Q = dense_of(linops.spectral.AdaptedBasis(*group.adapted_basis(c, side), (size,), dtype=f64))
            torch.testing.assert_close(Q.T @ Q, torch.eye(Q.shape[1], dtype=f64), rtol=0, atol=1e-14)
            # the isotypic projector (1/|G|) sum_g chi(g) P_g, each P_g a permutation matrix
            projector = sum(group.characters[c, e] * eye[perms[e]] for e in range(group.order)) / group.order
            torch.testing.assert_close(Q @ Q.T, projector, rtol=0, atol=1e-14)
            total += Q @ Q.T
        torch.testing.assert_close(total, eye, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# the block SVD against the dense one


def check_against_dense(A, out, tol=1e-10):
    M = A.to_dense()
    s_dense = torch.linalg.svdvals(M)
    k = out.s.numel()
    assert k == int((s_dense > 1e-7 * s_dense[0]).sum())  # the same triplets kept as GramEigh's rtol
    assert float((out.s - s_dense[:k]).abs().max()) < tol * float(s_dense[0])
    U, V = dense_of(out.U), dense_of(out.V)
    eye = torch.eye(k, dtype=f64)
    assert float((U.T @ U - eye).abs().max()) < 1e-8 and float((V.T @ V - eye).abs().max()) < 1e-8
    assert float((U @ torch.diag(out.s) @ V.T - M).abs().max()) < tol * float(s_dense[0])
    m, n = A.shape
    assert out.complete == (k == n) and out.range_complete == (k == m)
    if not out.complete:  # the complement projector is exactly I - V V^H
        torch.testing.assert_close(dense_of(out.complement), torch.eye(n, dtype=f64) - V @ V.T, rtol=0, atol=1e-10)


@pytest.mark.parametrize("label", ["tilt-series", "tilt-odd-views-rectangular", "tilt-stack", "full-range",
                                   "parallel-asymmetric", "fan-full-turn", "fan-asymmetric-arc"])
def test_symmetric_svd_equals_the_dense_svd(label):
    A, _ = GEOMETRIES[label]
    out = linops.svd(A, SymmetricGramEigh())
    check_against_dense(A, out)
    if symmetries(A):
        assert isinstance(out.V, linops.spectral.BlockBasis)
        assert len(out.V.factors) == SymmetryGroup.of(A).order
    else:  # nothing declared: the plain GramEigh
        assert isinstance(out.V, linops.Matrix)


def test_complete_when_the_operator_has_full_column_rank():
    A = linops.Radon.full_range((1, 8, 8), 16, dtype=f64)  # 128 rays, 64 pixels, rank 64
    out = linops.svd(A, SymmetricGramEigh())
    assert out.complete and not out.range_complete and out.s.numel() == 64
    check_against_dense(A, out)


def test_adjoint_and_scaled_operators_keep_the_symmetries():
    A, _ = GEOMETRIES["tilt-series"]
    for op in (A.H, 2.5 * A):
        assert {g.name for g in symmetries(op)} == ALL
        check_against_dense(op, linops.svd(op, SymmetricGramEigh()))


def test_structure_erased_falls_back_to_gram_eigh():
    A, _ = GEOMETRIES["tilt-series"]
    out = linops.svd(Opaque(A), SymmetricGramEigh())
    ref = linops.svd(Opaque(A), GramEigh())
    assert isinstance(out.V, linops.Matrix)
    torch.testing.assert_close(out.s, ref.s, rtol=0, atol=1e-12)


class _ClaimsAFlip(linops.Matrix):
    """A matrix that declares a left-right flip it does not have."""


@symmetry_rules.register(_ClaimsAFlip)
def _(op: _ClaimsAFlip):
    flip = torch.arange(op.shape[1]).flip(0)
    return (Symmetry("false flip", flip, torch.arange(op.shape[0])),)


def test_a_false_declaration_is_refused():
    M = torch.randn(5, 6, dtype=f64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="does not commute"):
        linops.svd(_ClaimsAFlip(M), SymmetricGramEigh())


def test_float32_operator_gets_a_float32_svd_computed_in_float64():
    A32 = linops.Radon.tilt_series((1, 12, 12), 10, 60.0)
    out = linops.svd(A32, SymmetricGramEigh())
    assert out.s.dtype == torch.float32 and out.V.dtype == torch.float32
    ref = linops.svd(A32.to(f64), DenseSVD())
    assert float((out.s.double() - ref.s[: out.s.numel()]).abs().max()) < 1e-6 * float(ref.s[0])


# ----------------------------------------------------------------------------------------------
# storage


def test_round_trip_through_plain_tensors_and_the_disk_cache(tmp_path, monkeypatch):
    def operator():
        return linops.Radon.tilt_series((1, 11, 12), 7, 60.0, n_detector=20, dtype=f64)

    A = operator()
    first = linops.svd(A, SymmetricGramEigh(), cache_dir=tmp_path)
    data = block_svd_to_tensors(first)
    assert all(isinstance(v, torch.Tensor) for v in data.values())
    group = SymmetryGroup.of(A)
    # the factors are stored in reduced coordinates: sum over blocks (n_chi + m_chi) k_chi numbers
    reduced = sum(sum(group.dimensions(c)) * data[f"V.{c}"].shape[1] for c in data["characters"].tolist())
    stored = sum(v.numel() for k, v in data.items() if k[0] in "UV")
    assert stored == reduced < (sum(A.shape)) * first.s.numel() / 2
    rebuilt = block_svd_from_tensors(A, data)
    torch.testing.assert_close(rebuilt.s, first.s, rtol=0, atol=0)
    torch.testing.assert_close(dense_of(rebuilt.V), dense_of(first.V), rtol=0, atol=0)
    torch.testing.assert_close(dense_of(rebuilt.U), dense_of(first.U), rtol=0, atol=0)

    (file,) = tmp_path.glob("svd-*.pt")
    stored_file = torch.load(file, weights_only=True)
    for name, t in data.items():  # the block layout, beside the cache's own entries (format, key, residuals)
        torch.testing.assert_close(stored_file[name], t, rtol=0, atol=0)

    import linops.spectral.svd_dispatch as svd_module

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of loading from the disk cache")

    monkeypatch.setattr(svd_module, "symmetric_gram_eigh_svd", fail)
    again = linops.svd(operator(), SymmetricGramEigh(), cache_dir=tmp_path)  # a new instance: no memory cache
    torch.testing.assert_close(dense_of(again.V), dense_of(first.V), rtol=0, atol=0)
    assert svd_cache.fingerprint(A, SymmetricGramEigh()) != svd_cache.fingerprint(A, GramEigh())


def test_a_tampered_block_file_is_discarded_and_recomputed(tmp_path):
    def operator():
        return linops.Radon.tilt_series((1, 10, 10), 8, 60.0, dtype=f64)

    first = linops.svd(operator(), SymmetricGramEigh(), cache_dir=tmp_path)
    (file,) = tmp_path.glob("svd-*.pt")
    stored = torch.load(file, weights_only=True)
    c = int(stored["characters"][0])
    stored[f"V.{c}"] = stored[f"V.{c}"].flip(1)  # right shapes, wrong factor: only the verification can tell
    torch.save(stored, file)
    with pytest.warns(svd_cache.SVDCacheWarning, match="does not factor"):
        again = linops.svd(operator(), SymmetricGramEigh(), cache_dir=tmp_path)
    torch.testing.assert_close(again.s, first.s, rtol=0, atol=0)
    check_against_dense(operator(), again)


def test_stored_factors_that_do_not_fit_are_refused():
    A, _ = GEOMETRIES["tilt-series"]
    data = block_svd_to_tensors(linops.svd(A, SymmetricGramEigh()))
    other = linops.Radon.tilt_series((1, 10, 10), 10, 60.0, dtype=f64)
    with pytest.raises(ValueError):
        block_svd_from_tensors(other, data)


# ----------------------------------------------------------------------------------------------
# DDRM on the block SVD


def _ddrm_problem():
    from priors.analytic import GaussianPrior
    from priors.analytic.eigenbasis import isotropic_power_spectrum, stationary_covariance

    shape = (1, 8, 8)
    A = linops.Radon.tilt_series(shape, 7, 60.0, dtype=f64)  # 56 rays, 64 pixels
    P = isotropic_power_spectrum(shape[-2:], lambda f: 1.0 / (f**2 + 0.05))
    prior = GaussianPrior(torch.zeros(shape, dtype=f64), stationary_covariance(P / P.mean(), shape))
    x = prior.sample(1, generator=torch.Generator().manual_seed(1), dtype=f64)
    sigma_y = 0.05
    y = A @ x + sigma_y * torch.randn(A.out_shape, generator=torch.Generator().manual_seed(2), dtype=f64)
    return A, prior, y, sigma_y


def _ddrm(algorithm, A, prior, y, sigma_y, runs):
    from solvers.ddrm import DDRM
    from solvers.schedules import Geometric

    A.svd(algorithm)  # computed beforehand: DDRM finds it cached
    solver = DDRM(Geometric(10.0, 0.02, 12), sigma_y=sigma_y, eta=0.85, eta_b=1.0, svd_algorithm=algorithm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComputedSVDWarning: the SVD was found
        return solver(y.expand(runs, *A.out_shape).clone(), A, prior, generator=torch.Generator().manual_seed(3),
                      progress=False).x


def test_ddrm_mean_path_is_the_same_with_the_block_and_the_dense_svd(monkeypatch):
    """With its Gaussian draws replaced by zeros, DDRM with a linear (Gaussian) denoiser returns the mean of its
    output, a function of A alone (spectral calculus of U, s, V): equal for any SVD of A, here to 1e-9."""
    import solvers.ddrm

    A, prior, y, sigma_y = _ddrm_problem()
    monkeypatch.setattr(solvers.ddrm, "gaussian_like", lambda x, generator: torch.zeros_like(x))
    block = _ddrm(SymmetricGramEigh(), A, prior, y, sigma_y, 1)
    dense = _ddrm(DenseSVD(), A, prior, y, sigma_y, 1)
    assert A.svd(SymmetricGramEigh()).s.numel() < A.shape[1]  # incomplete: the complement path runs too
    assert float((block - dense).abs().max()) < 1e-9 * float(dense.abs().max())
    assert float((block - y.new_zeros(block.shape)).abs().max()) > 0.1  # not trivially zero


def test_ddrm_samples_agree_in_distribution_with_the_dense_svd():
    A, prior, y, sigma_y = _ddrm_problem()
    runs = 1024
    block = _ddrm(SymmetricGramEigh(), A, prior, y, sigma_y, runs)
    dense = _ddrm(DenseSVD(), A, prior, y, sigma_y, runs)
    var = (block.var(0) + dense.var(0)) / 2
    z = (block.mean(0) - dense.mean(0)) / (2 * var / runs).sqrt()
    assert float(z.abs().max()) < 5  # means equal within sampling error
    ratio = block.var(0).sum() / dense.var(0).sum()
    assert abs(float(ratio) - 1) < 5 * math.sqrt(2 / runs)  # the same total variance


@pytest.mark.parametrize("label", ["tilt-odd-views-rectangular", "tilt-stack", "fan-odd-full-turn", "tilt-series"])
def test_one_pass_projection_equals_each_block_pushed_through_the_operator(label):
    """block_matrices (one operator call per orbit of the smaller side) against B = Q_out^T A Q_in computed
    block by block from the dense matrix, and against block_matrix (each block's basis through A)."""
    from linops.spectral.symmetric import block_bases, block_matrices, block_matrix

    A, _ = GEOMETRIES[label]
    group = SymmetryGroup.of(A)
    M = A.to_dense()
    for c, B in enumerate(block_matrices(A, group, batch_size=5)):
        Q_in, Q_out = (dense_of(q) for q in block_bases(A, group, c))
        torch.testing.assert_close(B, Q_out.T @ M @ Q_in, rtol=0, atol=1e-12)
        torch.testing.assert_close(B, block_matrix(A, group, c, batch_size=7), rtol=0, atol=1e-12)


def test_the_command_line_exact_svd_is_the_symmetric_one_with_its_memory_estimate():
    from solvers.app import spectral

    assert spectral.svd_algorithm(spectral.SVDMethod.EXACT, None) == SymmetricGramEigh()
    A = linops.Radon.tilt_series((1, 24, 24), 32, 60.0)
    m, n = A.shape
    cost = spectral.estimate_cost(A, SymmetricGramEigh())
    k = 576 // 4  # four blocks of 144 pixels (768 rays / 4 = 192 rays)
    assert cost.bytes == 8 * (4 * 144 * 192 + 3 * k * k + 192 * k) and cost.seconds > 0
    assert cost.bytes < spectral.estimate_cost(A, GramEigh()).bytes / 3
    # nothing declared (a fan over an asymmetric arc): the estimate of the plain GramEigh it falls back to
    fan = linops.FanBeamRadon((1, 10, 10), angles_deg=np.linspace(10, 200, 9), source_distance=30.0,
                              detector_distance=10.0)
    assert spectral.estimate_cost(fan, SymmetricGramEigh()).bytes == spectral.estimate_cost(fan, GramEigh()).bytes
