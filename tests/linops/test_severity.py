"""Severity families A_t (Dirac): A_0 close to the identity, severity monotone (A_t' = G A_t with the
stated accuracy), batched severities equal per-sample members, kernels and masks follow their formulas,
errors. Dot tests, dense agreement, batching and gradients run in test_market (examples_severity)."""

import math

import pytest
import scipy.special
import torch

import linops
from linops.operators.severity import GaussianBlurs, GaussianKernel, default_radius, gaussian_kernels_1d

f64 = torch.float64


def rand(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


def rel(a, b):
    return float((a - b).norm() / b.norm())


# ----------------------------------------------------------------------------------------------
# kernels


@pytest.mark.parametrize("std", [0.3, 1.0, 2.5])
def test_discrete_kernel_is_the_bessel_kernel(std):
    """T(n; v) = e^{-v} I_n(v), v = std^2 (scipy's ive), with variance exactly std^2."""
    r = default_radius(std)
    k = gaussian_kernels_1d(torch.tensor(std, dtype=f64), r)
    n = torch.arange(-r, r + 1, dtype=f64)
    expected = torch.from_numpy(scipy.special.ive(n.abs().numpy(), std**2))
    torch.testing.assert_close(k, expected / expected.sum(), rtol=0, atol=1e-14)
    assert float((k * n**2).sum()) == pytest.approx(std**2, rel=1e-12)


def test_zero_std_is_the_impulse_and_sampled_kernel_underestimates_small_std():
    for kind in GaussianKernel:
        k = gaussian_kernels_1d(torch.tensor([0.0]), 3, kind)
        torch.testing.assert_close(k[0], torch.tensor([0, 0, 0, 1.0, 0, 0, 0], dtype=f64))
    n = torch.arange(-5, 6, dtype=f64)
    sampled = gaussian_kernels_1d(torch.tensor(0.3), 5, GaussianKernel.SAMPLED)
    assert float((sampled * n**2).sum()) < 0.1 * 0.3**2  # why DISCRETE is the default


# ----------------------------------------------------------------------------------------------
# A_0 close to the identity


def test_blur_family_endpoints():
    family = linops.GaussianBlurFamily((1, 8, 8))
    assert float(family.std(torch.tensor(0.0))) == pytest.approx(0.3)
    assert float(family.std(torch.tensor(1.0))) == pytest.approx(3.0)
    assert family.radius == 32  # ceil(8 * 3.0) + 8


def test_blur_at_zero_is_close_to_identity():
    """Default std(0) = 0.3 with the discrete kernel (centre tap c = e^{-0.09} I_0(0.09) = 0.9158):
    circular: ||A_0 - I||_2 = 1 - exp(-4 0.3^2) = 0.30 (the attenuation at the (pi, pi) frequency); reflect:
    ||A_0 - I||_inf = 2 (1 - c^2) = 0.32 (a non-negative, row-stochastic A_0 with diagonal c^2);
    a smooth image changes by about 1%; std(0) = 0 gives the identity exactly."""
    circular = linops.GaussianBlurFamily((1, 10, 10), boundary="circular", dtype=f64)
    gap = float(torch.linalg.matrix_norm(circular.at(0.0).to_dense() - torch.eye(100, dtype=f64), ord=2))
    assert gap == pytest.approx(1 - math.exp(-4 * 0.09), rel=1e-10)
    family = linops.GaussianBlurFamily((1, 10, 10), dtype=f64)
    c = float(scipy.special.ive(0, 0.09))
    A0 = family.at(0.0).to_dense()
    assert float(torch.linalg.matrix_norm(A0 - torch.eye(100, dtype=f64), ord=float("inf"))) == pytest.approx(
        2 * (1 - c**2), rel=1e-10
    )
    i = torch.arange(10, dtype=f64)
    smooth = torch.cos(math.pi * i / 9)[:, None] * torch.cos(math.pi * i / 9)[None, :]
    assert rel(family.at(0.0) @ smooth[None], smooth[None]) < 0.02  # 2 v (1 - cos(pi / 9)) = 0.011
    exact = linops.GaussianBlurFamily((1, 10, 10), linops.LinearRamp(0.0, 3.0), dtype=f64)
    x = rand(2, 1, 10, 10)
    torch.testing.assert_close(exact.at(0.0) @ x, x, rtol=0, atol=1e-15)


def test_mask_at_zero_is_close_to_identity():
    even = linops.GaussianMaskFamily((1, 16, 16), dtype=f64)
    assert float((even.mask(0.0) - 1).abs().max()) < 1e-9  # nearest centre distance 0.71 >> w = 0.1
    odd = linops.GaussianMaskFamily((1, 15, 15), dtype=f64)
    m = odd.mask(0.0)
    assert float(m[7, 7]) == 0  # the centre pixel itself (r = 0)
    m[7, 7] = 1
    assert float((m - 1).abs().max()) < 1e-9


def test_mask_formula_and_default_width():
    family = linops.GaussianMaskFamily((3, 256, 256))
    assert family.width.values == pytest.approx((0.1, 50.0))  # s_max = 50 for 256 x 256 ([inferred])
    small = linops.GaussianMaskFamily((1, 6, 8), linops.LinearRamp(0.1, 2.0), power=4, dtype=f64)
    m = small.mask(0.5)
    w = 0.1 + 0.5 * 1.9
    r2 = (2 - 2.5) ** 2 + (5 - 3.5) ** 2
    assert float(m[2, 5]) == pytest.approx((1 - math.exp(-r2 / (2 * w**2))) ** 4, rel=1e-14)
    x = rand(2, 1, 6, 8)
    torch.testing.assert_close(small.at(0.5) @ x, m * x)


# ----------------------------------------------------------------------------------------------
# monotone severity


def test_blur_severity_factors_exactly_through_milder_blur():
    """Discrete Gaussian kernels with reflect padding: blur(std') = blur(sqrt(std'^2 - std^2)) blur(std)
    holds to rounding (the truncated tails beyond 8 std_max are < 1e-14)."""
    family = linops.GaussianBlurFamily((2, 12, 11), dtype=f64)
    t = torch.tensor([0.0, 0.2, 0.5, 0.9])
    t_next = torch.tensor([0.1, 0.8, 0.5, 1.0])
    x = rand(4, 2, 12, 11)
    composed = family.transition(t, t_next) @ (family.at(t) @ x)
    assert rel(composed, family.at(t_next) @ x) < 1e-13


@pytest.mark.parametrize("boundary", ["zero", "circular"])
def test_blur_semigroup_with_other_boundaries(boundary):
    """Zero padding breaks the factorisation near the border (mass leaks out and does not come back);
    circular keeps it exact. Interior pixels (farther than the kernel radii) agree for both."""
    family = linops.GaussianBlurFamily((1, 40, 40), linops.LinearRamp(0.5, 1.5), boundary=boundary, dtype=f64)
    x = rand(1, 1, 40, 40)
    composed = family.transition(0.2, 0.9) @ (family.at(0.2) @ x)
    direct = family.at(0.9) @ x
    inner = slice(2 * family.radius, 40 - 2 * family.radius)
    torch.testing.assert_close(composed[..., inner, inner], direct[..., inner, inner], rtol=0, atol=1e-13)
    if boundary == "circular":
        assert rel(composed, direct) < 1e-13


def test_sampled_kernel_factorisation_is_approximate():
    """SAMPLED kernels: relative error of the factorisation, measured: < 2e-3 for std >= 1 and
    about 5e-2 from std 0.3 (its variance is far from std^2 below 1)."""
    ramp = linops.LinearRamp(1.0, 3.0)
    family = linops.GaussianBlurFamily((1, 24, 24), ramp, kernel=GaussianKernel.SAMPLED, dtype=f64)
    x = rand(1, 1, 24, 24)
    assert rel(family.transition(0.0, 1.0) @ (family.at(0.0) @ x), family.at(1.0) @ x) < 2e-3
    low = linops.GaussianBlurFamily((1, 24, 24), kernel=GaussianKernel.SAMPLED, dtype=f64)
    err = rel(low.transition(0.0, 0.3) @ (low.at(0.0) @ x), low.at(0.3) @ x)
    assert err < 0.1


def test_blur_members_average_and_lose_detail_with_severity():
    """Each member and each transition is non-negative and row-stochastic (a local average: constants
    are kept, ||.||_inf = 1), and the energy passed (Frobenius norm) falls as t grows."""
    family = linops.GaussianBlurFamily((1, 9, 9), dtype=f64)
    norms = []
    for t in [0.0, 0.25, 0.5, 0.75, 1.0]:
        A = family.at(t).to_dense()
        norms.append(float(torch.linalg.matrix_norm(A, ord="fro")))
    assert all(b < a for a, b in zip(norms, norms[1:]))
    G = family.transition(0.3, 0.7).to_dense()
    assert float(G.min()) > -1e-15
    torch.testing.assert_close(G.sum(1), torch.ones(81, dtype=f64))


def test_mask_severity_factors_through_milder_mask():
    family = linops.GaussianMaskFamily((1, 9, 10), linops.LinearRamp(0.1, 3.0), dtype=f64)
    t = torch.tensor([0.0, 0.3, 0.6])
    t_next = torch.tensor([0.5, 0.3, 1.0])
    G = family.transition(t, t_next)
    assert float(G.weights.min()) >= 0 and float(G.weights.max()) <= 1
    m, m_next = family.mask(t), family.mask(t_next)
    assert bool((m_next <= m).all())
    x = rand(3, 1, 9, 10)
    torch.testing.assert_close(G @ (family.at(t) @ x), family.at(t_next) @ x, rtol=1e-14, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# batched severities


@pytest.mark.parametrize(
    "family",
    [
        linops.GaussianBlurFamily((2, 7, 8), dtype=f64),
        linops.GaussianMaskFamily((2, 7, 8), linops.LinearRamp(0.1, 2.0), dtype=f64),
    ],
    ids=["blur", "mask"],
)
def test_batched_member_equals_per_sample_members(family):
    t = torch.tensor([0.0, 0.35, 1.0])
    A = family.at(t)
    assert A.in_shape == A.out_shape == (3, 2, 7, 8)
    x = rand(3, 2, 7, 8)
    y = A @ x
    for b in range(3):
        member = family.at(float(t[b]))
        assert member.in_shape == (2, 7, 8)
        torch.testing.assert_close(y[b], member @ x[b], rtol=0, atol=1e-14)
        torch.testing.assert_close(family.apply(x, t)[b], member @ x[b], rtol=0, atol=1e-14)
    extra = rand(4, 3, 2, 7, 8)  # extra leading batch axes still work
    torch.testing.assert_close((A @ extra)[2], A @ extra[2])


def test_piecewise_linear_ramp_from_a_scheduler():
    ramp = linops.PiecewiseLinearRamp((0.0, 0.5, 1.0), (0.3, 0.6, 3.0))
    v = ramp(torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(v, torch.tensor([0.3, 0.45, 0.6, 1.8, 3.0], dtype=f64))
    family = linops.GaussianBlurFamily((1, 6, 6), ramp, dtype=f64)
    assert family.radius == 32
    x = rand(1, 1, 6, 6)
    torch.testing.assert_close(family.at(0.75) @ x, GaussianBlurs(1.8, (1, 6, 6), radius=32, dtype=f64) @ x)


def test_float32_family():
    family = linops.GaussianBlurFamily((1, 8, 8))
    A = family.at(torch.tensor([0.2, 0.7]))
    assert A.dtype == torch.float32
    x = rand(2, 1, 8, 8).float()
    y64 = family.at(torch.tensor([0.2, 0.7])).to(f64) @ x.double()
    torch.testing.assert_close(A @ x, y64.float(), rtol=1e-5, atol=1e-6)


def test_severity_errors():
    family = linops.GaussianBlurFamily((1, 8, 8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        family.at(1.5)
    with pytest.raises(ValueError, match=r"float or a tensor of shape \(B,\)"):
        family.at(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="t_next >= t"):
        family.transition(0.5, 0.2)
    with pytest.raises(ValueError, match="same shape"):
        family.transition(torch.tensor([0.1, 0.2]), 0.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        linops.GaussianBlurFamily((1, 8, 8), linops.LinearRamp(3.0, 0.3))
    with pytest.raises(ValueError, match="strictly from 0 to 1"):
        linops.PiecewiseLinearRamp((0.0, 0.7, 0.5, 1.0), (1, 2, 3, 4))
    A = family.at(torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"expects input of shape \(\*batch, 3, 1, 8, 8\), got \(2, 1, 8, 8\)"):
        A @ torch.zeros(2, 1, 8, 8)
