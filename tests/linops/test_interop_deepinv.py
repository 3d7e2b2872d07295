"""deepinv interop: our operators as deepinv physics (decomposable when their SVD is structured, so
deepinv's own DDRM runs on them) and deepinv physics as our operators."""

import warnings

import numpy as np
import pytest
import torch

dinv = pytest.importorskip("deepinv")

from linops import CircularBlur, Decimate, Diagonal, Downsample, FourierSampling, Mask, gaussian_kernel  # noqa: E402
from linops.interop.deepinv import from_deepinv, to_deepinv  # noqa: E402
from linops.spectral import RandomizedSVD, structured_svd, svd  # noqa: E402
from linops.testing import Opaque, dottest  # noqa: E402


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def bits(*shape, p=0.5, seed=0):
    return torch.rand(shape, generator=gen(seed)) > p


OPERATORS = {
    "mask": lambda: Mask(bits(1, 12, 12)),
    "diagonal": lambda: Diagonal(torch.randn(2, 12, 12, generator=gen(1))),
    "circular-blur": lambda: CircularBlur(gaussian_kernel(1.0), (1, 12, 12)),
    "downsample": lambda: Downsample((2, 12, 12), 2),
    "decimate": lambda: Decimate((1, 12, 12), 3, offset=1),
    "mask @ downsample": lambda: Mask(bits(1, 6, 6)) @ Downsample((1, 12, 12), 2),
    "mask @ blur (no structure)": lambda: Mask(bits(1, 12, 12)) @ CircularBlur(gaussian_kernel(1.0), (1, 12, 12)),
    "opaque": lambda: Opaque(CircularBlur(gaussian_kernel(1.0), (1, 12, 12))),
}
STRUCTURED = {"mask", "diagonal", "circular-blur", "downsample", "decimate", "mask @ downsample"}


@pytest.fixture(params=sorted(OPERATORS), ids=str)
def case(request):
    return request.param, OPERATORS[request.param]()


def float32_adjointness_bound(A):
    """What deepinv's adjointness_test may return for a correct float32 adjoint, from A's norm and size.

    It reports sqrt(mean |<A u, v> - <u, A^H v>|^2) / sqrt(mean |<A u, v>|^2) over Gaussian probes u, v.
    The rounding error of the inner products is about eps ||A||_2 ||u|| ||v|| = eps ||A||_2 sqrt(n m), and
    E |<A u, v>|^2 = ||A||_F^2, so the bound is eps ||A||_2 sqrt(n m) / ||A||_F. Averaged over 16 probes
    the denominator is near its mean (one probe makes it Gaussian, and a fixed bound fails by chance:
    4.3e-5 against 1e-5 for the circular blur once, and 1.6% of 2000 seeds exceed 1e-5); over 300 seeds
    the largest value was 0.14 times the bound for every operator here, while an adjoint off by one part
    in 10^4 gives 1e-4, 20 times the bound (test below).
    """
    dense = A.to(torch.float64).to_dense()
    m, n = dense.shape
    spectral, frobenius = torch.linalg.matrix_norm(dense, 2), torch.linalg.matrix_norm(dense)
    return torch.finfo(torch.float32).eps * float(spectral) * (n * m) ** 0.5 / float(frobenius)


def test_adjointness_test_passes(case):
    name, A = case
    physics = to_deepinv(A)
    u = torch.randn(2, *A.in_shape, generator=gen(2))
    torch.manual_seed(2)  # deepinv draws its probes from the global RNG
    assert float(physics.adjointness_test(u, num_samples=16)) < float32_adjointness_bound(A)
    assert isinstance(physics, dinv.physics.DecomposablePhysics) == (name in STRUCTURED)


def test_adjointness_bound_rejects_an_adjoint_off_by_one_part_in_ten_thousand():
    A = OPERATORS["circular-blur"]()
    physics = to_deepinv(A)
    physics.A_adjoint = lambda y, **kwargs: (1 + 1e-4) * (A.H @ y)
    torch.manual_seed(2)
    assert float(physics.adjointness_test(torch.zeros(1, *A.in_shape), num_samples=16)) > float32_adjointness_bound(A)


def test_physics_calls_our_operator(case):
    _, A = case
    physics = to_deepinv(A, dinv.physics.GaussianNoise(0.1))
    x = torch.randn(3, *A.in_shape, generator=gen(3))
    torch.testing.assert_close(physics.A(x), A @ x)
    y = torch.randn(3, *A.out_shape, generator=gen(4))
    torch.testing.assert_close(physics.A_adjoint(y), A.H @ y)
    noisy = physics(x)
    assert noisy.shape == (3, *A.out_shape) and not torch.allclose(noisy, A @ x)


@pytest.mark.parametrize("name", sorted(STRUCTURED), ids=str)
def test_decomposition_is_consistent(name):
    """U diag(mask) V^H = A, and V V^H = I, also for incomplete SVDs (the Parseval frame [V, P])."""
    A = OPERATORS[name]()
    physics = to_deepinv(A)
    x = torch.randn(2, *A.in_shape, generator=gen(5))
    torch.testing.assert_close(physics.U(physics.mask * physics.V_adjoint(x)), A @ x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(physics.V(physics.V_adjoint(x)), x, atol=1e-5, rtol=1e-5)
    y = A @ x
    torch.testing.assert_close(physics.U(physics.U_adjoint(y)), y, atol=1e-5, rtol=1e-5)


def test_given_svd_makes_any_operator_decomposable():
    A = Opaque(Mask(bits(1, 8, 8)) @ CircularBlur(gaussian_kernel(0.8), (1, 8, 8)))
    dec = svd(A, RandomizedSVD(threshold=1e-3))
    physics = to_deepinv(A, svd=dec)
    assert isinstance(physics, dinv.physics.DecomposablePhysics)
    x = torch.randn(2, *A.in_shape, generator=gen(6))
    torch.testing.assert_close(physics.V(physics.V_adjoint(x)), x, atol=1e-5, rtol=1e-5)
    # the truncated SVD reproduces A up to the dropped singular values (below 1e-3)
    assert float((physics.U(physics.mask * physics.V_adjoint(x)) - A @ x).abs().max()) < 1e-2


def identity_denoiser(x, sigma):
    return x


@pytest.mark.parametrize("name", ["mask", "circular-blur", "downsample", "mask @ downsample"], ids=str)
def test_deepinv_ddrm_runs_on_our_operators(name):
    A = OPERATORS[name]()
    physics = to_deepinv(A, dinv.physics.GaussianNoise(0.05))
    x = torch.rand(2, *A.in_shape, generator=gen(7))
    torch.manual_seed(0)
    y = physics(x)
    ddrm = dinv.sampling.DDRM(denoiser=identity_denoiser, sigmas=np.linspace(1, 0, 10))
    out = ddrm(y, physics)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["mask", "downsample", "mask @ downsample", "decimate"], ids=str)
def test_noiseless_ddrm_is_data_consistent(name):
    """With sigma_y = 0, DDRM's last step sets every observed spectral coordinate to y_bar, so
    A x_out = y: this checks the wiring of U, V and the singular values (Parseval frame included)."""
    A = OPERATORS[name]()
    physics = to_deepinv(A, dinv.physics.GaussianNoise(0.0))
    x = torch.rand(2, *A.in_shape, generator=gen(8))
    y = A @ x
    torch.manual_seed(1)
    out = dinv.sampling.DDRM(denoiser=identity_denoiser, sigmas=np.linspace(1, 0, 6))(y, physics)
    torch.testing.assert_close(A @ out, y, atol=1e-4, rtol=1e-4)


def test_tomography_from_deepinv_composes_with_ours():
    tomo = dinv.physics.Tomography(angles=12, img_width=16, circle=False, normalize=True)
    R = from_deepinv(tomo, (1, 16, 16))
    assert R.in_shape == (1, 16, 16) and R.out_shape[0] == 1 and not R.dtype.is_complex
    assert dottest(R, tol=1e-4) < 1e-4
    blur = CircularBlur(gaussian_kernel(1.0), (1, 16, 16))
    mask = Mask(bits(1, 16, 16, p=0.2))
    composed = R @ blur @ mask
    assert dottest(composed, tol=1e-4) < 1e-4
    x = torch.randn(2, 1, 16, 16, generator=gen(9))
    torch.testing.assert_close(composed @ x, tomo.A(blur @ (mask @ x)))
    # autograd through the wrapped physics: the gradient of <R x, v> is R^H v
    v = torch.randn(2, *R.out_shape, generator=gen(10))
    xg = x.clone().requires_grad_(True)
    (R @ xg).mul(v).sum().backward()
    torch.testing.assert_close(xg.grad, R.H @ v, atol=1e-5, rtol=1e-4)


def test_round_trip_and_inpainting_agree():
    A = Mask(bits(1, 8, 8))
    back = from_deepinv(to_deepinv(A), (1, 8, 8))
    torch.testing.assert_close(back.to_dense(), A.to_dense())
    m = bits(1, 8, 8, seed=3).float()
    ours = from_deepinv(dinv.physics.Inpainting(img_size=(1, 8, 8), mask=m), (1, 8, 8))
    torch.testing.assert_close(ours.to_dense(), Mask(m).to_dense())


def test_complex_fourier_sampling_is_decomposable():
    A = FourierSampling(bits(8, 8), (1, 8, 8))
    physics = to_deepinv(A)
    assert isinstance(physics, dinv.physics.DecomposablePhysics)
    x = torch.randn(2, 1, 8, 8, generator=gen(11)).to(torch.complex64)
    torch.manual_seed(11)
    assert float(physics.adjointness_test(x, num_samples=16)) < float32_adjointness_bound(A)
    torch.testing.assert_close(physics.U(physics.mask * physics.V_adjoint(x)), A @ x, atol=1e-5, rtol=1e-5)


DEEPINV_DECOMPOSABLE = {
    "inpainting": (lambda: dinv.physics.Inpainting(img_size=(1, 8, 8), mask=bits(1, 8, 8, seed=4).float()), (1, 8, 8)),
    "decolorize": (lambda: dinv.physics.Decolorize(), (3, 8, 8)),
    "single-pixel camera": (lambda: dinv.physics.SinglePixelCamera(m=20, img_size=(1, 8, 8), rng=gen(5)), (1, 8, 8)),
    "our downsample, round trip": (lambda: to_deepinv(Downsample((1, 8, 8), 2, dtype=torch.float64)), (1, 8, 8)),
}


@pytest.mark.parametrize("name", sorted(DEEPINV_DECOMPOSABLE))
def test_deepinv_decomposable_physics_keeps_its_svd(name):
    """A true deepinv SVD becomes our structured one: U diag(s) V^H reproduces the dense matrix, U and V
    have orthonormal columns, and the singular values are the matrix's (to the float32 rounding of
    deepinv's parameters)."""
    make, shape = DEEPINV_DECOMPOSABLE[name]
    A = from_deepinv(make(), shape, dtype=torch.float64)
    dec = structured_svd(A)
    assert dec is not None and dec.structured
    dense = A.to_dense()
    torch.testing.assert_close(dec.to_operator().to_dense(), dense, atol=1e-6, rtol=1e-6)
    for W in (dec.U, dec.V):
        gram = W.H.to_dense() @ W.to_dense()
        torch.testing.assert_close(gram, torch.eye(gram.shape[0], dtype=gram.dtype), atol=1e-6, rtol=0)
    expected = torch.linalg.svdvals(dense)
    k = expected.numel()
    torch.testing.assert_close(dec.sorted_values()[:k], expected, atol=1e-6, rtol=1e-6)


def test_our_ddrm_uses_the_svd_of_deepinv_inpainting_without_computing_one():
    from solvers.ddrm import DDRM
    from solvers.schedules import Geometric

    make, shape = DEEPINV_DECOMPOSABLE["inpainting"]
    A = from_deepinv(make(), shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a computed SVD would warn (ComputedSVDWarning)
        dec = DDRM(Geometric(1.0, 0.01, 5), sigma_y=0.01).decomposition(A)
    assert dec.structured


def test_deepinv_physics_that_is_no_svd_falls_back_to_a_computed_one():
    """BlurFFT's mask is complex (a phase per frequency), the Parseval frame that to_deepinv builds for
    an incomplete SVD has V^H V != I, and a U whose "adjoint" is only a left inverse is no isometry:
    none is taken as structured; the computed SVD is right."""
    blur = dinv.physics.BlurFFT(img_size=(1, 8, 8), filter=torch.ones(1, 1, 3, 3) / 9)
    ours = to_deepinv(Downsample((1, 8, 8), 2, dtype=torch.float64))
    frame = dinv.physics.DecomposablePhysics(  # deepinv's own class, so only its U, V and mask are seen
        U=ours.U, U_adjoint=ours.U_adjoint, V=ours.V, V_adjoint=ours.V_adjoint, mask=ours.mask
    )
    scaled = dinv.physics.DecomposablePhysics(  # U = 2 I with a left inverse posing as its adjoint
        U=lambda z: 2 * z, U_adjoint=lambda y: y / 2, V=lambda z: z, V_adjoint=lambda x: x, mask=1.0
    )
    for physics in (blur, frame, scaled):
        A = from_deepinv(physics, (1, 8, 8), dtype=torch.float64)
        assert structured_svd(A) is None
        expected = torch.linalg.svdvals(A.to_dense())
        torch.testing.assert_close(svd(A).sorted_values()[:16], expected[:16], atol=1e-8, rtol=1e-8)


def test_errors():
    with pytest.raises(TypeError, match="LinearOperator"):
        to_deepinv(lambda x: x)
    with pytest.raises(TypeError, match="LinearPhysics"):
        from_deepinv(object(), (1, 4, 4))
