"""Solvers as deepinv Reconstructors: a deepinv-side call model(y, physics, seed=s) gives exactly the direct
call solver(y, A, prior, generator=Generator().manual_seed(s)), for every solver, on our operators wrapped by
to_deepinv (unwrapped again) and on deepinv's own physics (wrapped by from_deepinv)."""

import warnings

import pytest
import torch

dinv = pytest.importorskip("deepinv")

import linops  # noqa: E402
from linops.interop.deepinv import DeepinvOperator, from_deepinv, to_deepinv  # noqa: E402
from priors import Conditioning, NetworkPrior, Prediction, Prior  # noqa: E402
from priors.nets.unet import UNet  # noqa: E402
from solvers.classical import (  # noqa: E402
    PDHG,
    AlgebraicReconstruction,
    CGLSReconstruction,
    CondatVu,
    FilteredBackprojection,
    LSQRReconstruction,
    TVReconstruction,
)
from solvers.ddgm import DDGM  # noqa: E402
from solvers.ddrm import DDRM, ComputedSVDWarning  # noqa: E402
from solvers.dps import DPS  # noqa: E402
from solvers.interop.deepinv import SolverReconstructor, as_reconstructor, operator_of  # noqa: E402
from solvers.padis import PaDIS  # noqa: E402
from solvers.schedules import DDGMUnconditionalSchedule, Geometric  # noqa: E402

SHAPE = (1, 8, 8)


pytestmark = pytest.mark.usefixtures("one_thread")


class StandardNormal(Prior):
    """x0 ~ N(0, I): the exact MMSE denoiser is x / (1 + sigma^2) (differentiable, for DPS)."""

    def denoise(self, x, sigma):
        return x / (1 + sigma**2)


def gen(seed):
    return torch.Generator().manual_seed(seed)


MASK = torch.rand(SHAPE, generator=gen(0)) > 0.4

OPERATORS = {
    "mask": lambda: linops.Mask(MASK),
    "circular-blur": lambda: linops.CircularBlur(linops.gaussian_kernel(1.0, 5), SHAPE),
    "reflect-blur": lambda: linops.gaussian_blur(SHAPE, 1.0, "reflect"),
}

SOLVERS = {
    "ddgm": lambda: DDGM(Geometric(3.0, 0.03, 4), gradient_steps=3),
    "ddrm": lambda: DDRM(Geometric(3.0, 0.03, 4), sigma_y=0.01),
    "dps": lambda: DPS(DDGMUnconditionalSchedule(3.0, steps=4), zeta=0.5),
    "padis": lambda: PaDIS(Geometric(3.0, 0.03, 4)),  # a whole-image prior: PaDIS with P = N
    "algebraic": lambda: AlgebraicReconstruction(iterations=5),
    "cgls": lambda: CGLSReconstruction(iterations=5),
    "lsqr": lambda: LSQRReconstruction(iterations=5),
    "tv-pdhg": lambda: TVReconstruction(0.05, PDHG(iterations=20)),
    "tv-condat-vu": lambda: TVReconstruction(0.05, CondatVu(iterations=20)),
}


def measurement(A, batch=2):
    x = torch.rand(batch, *SHAPE, generator=gen(1))
    return A @ x + 0.01 * torch.randn(batch, *A.out_shape, generator=gen(2)), x


def direct(solver, y, A, prior, seed, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComputedSVDWarning)
        return solver(y, A, prior, generator=gen(seed), progress=False, **kwargs)


@pytest.mark.parametrize("operator", sorted(OPERATORS))
@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_deepinv_call_on_wrapped_operator_equals_direct_call(name, operator):
    A, solver, prior = OPERATORS[operator](), SOLVERS[name](), StandardNormal()
    y, _ = measurement(A)
    physics = to_deepinv(A, dinv.physics.GaussianNoise(0.01))
    model = as_reconstructor(solver, prior)
    assert isinstance(model, dinv.models.Reconstructor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComputedSVDWarning)
        ours = model(y, physics, seed=7)
    assert operator_of(physics, y) is A  # our operator itself: its SVD and norm caches are reused
    torch.testing.assert_close(ours, direct(solver, y, A, prior, 7).x, rtol=0, atol=0)
    # another seed, another sample for the stochastic solvers; the same for the deterministic ones
    again = model(y, physics, seed=8)
    assert torch.equal(again, direct(solver, y, A, prior, 8).x)


@pytest.mark.parametrize("name", sorted(set(SOLVERS) - {"ddrm"}))
def test_deepinv_native_inpainting_equals_our_mask(name):
    """deepinv's own Inpainting physics (wrapped by from_deepinv) against our Mask: the same map, so the same
    result to rounding, for every solver that needs only A, A^H and autograd."""
    solver, prior = SOLVERS[name](), StandardNormal()
    A = linops.Mask(MASK)
    y, _ = measurement(A)
    physics = dinv.physics.Inpainting(img_size=SHAPE, mask=MASK.float())
    model = as_reconstructor(solver, prior)
    wrapped = operator_of(physics, y)
    assert isinstance(wrapped, DeepinvOperator) and wrapped.in_shape == SHAPE
    torch.testing.assert_close(model(y, physics, seed=3), direct(solver, y, A, prior, 3).x, rtol=1e-5, atol=1e-5)


def test_deepinv_native_physics_runs_ddrm_through_its_own_or_a_computed_svd():
    """deepinv's Inpainting is a true SVD (taken as structured: no warning); BlurFFT's complex mask is
    not (DDRM computes an SVD and says so)."""
    model = as_reconstructor(DDRM(Geometric(3.0, 0.03, 4), sigma_y=0.01), StandardNormal())
    inpainting = dinv.physics.Inpainting(img_size=SHAPE, mask=MASK.float())
    y, x = measurement(linops.Mask(MASK))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ComputedSVDWarning)
        out = model(y, inpainting, seed=0)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    blur = dinv.physics.BlurFFT(img_size=SHAPE, filter=linops.gaussian_kernel(1.0, 5).reshape(1, 1, 5, 5))
    y, x = measurement(from_deepinv(blur, SHAPE))
    with pytest.warns(ComputedSVDWarning):
        out = model(y, blur, seed=0)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


def test_deepinv_blur_physics_with_given_image_shape():
    physics = dinv.physics.BlurFFT(img_size=SHAPE, filter=linops.gaussian_kernel(1.0, 5).reshape(1, 1, 5, 5))
    A = from_deepinv(physics, SHAPE)
    y, _ = measurement(A)
    model = as_reconstructor(CGLSReconstruction(iterations=6), in_shape=SHAPE)
    torch.testing.assert_close(model(y, physics), direct(CGLSReconstruction(iterations=6), y, A, None, 0).x)


def test_fbp_through_deepinv():
    R = linops.Radon.full_range((1, 12, 12), 16)
    x = torch.rand(2, 1, 12, 12, generator=gen(4))
    y = R @ x
    model = as_reconstructor(FilteredBackprojection())
    torch.testing.assert_close(model(y, to_deepinv(R)), linops.fbp(R, y), rtol=0, atol=0)
    # a foreign physics is not a Radon operator: FBP refuses it clearly
    foreign = dinv.physics.LinearPhysics(A=R.apply, A_adjoint=R.H.apply)
    with pytest.raises(TypeError, match="FilteredBackprojection inverts the parallel-beam"):
        model(y, foreign)


def test_reconstruct_returns_the_full_result_and_call_kwargs_pass_through():
    A = linops.Mask(torch.rand(1, 16, 16, generator=gen(6)) > 0.4)  # SSIM needs 11 x 11 windows
    x = torch.rand(2, 1, 16, 16, generator=gen(7))
    y = A @ x
    records = []
    model = as_reconstructor(DDGM(Geometric(3.0, 0.03, 4), gradient_steps=2), StandardNormal(), x_true=x)
    result = model.reconstruct(y, to_deepinv(A), seed=1, callback=records.append)
    assert len(result.trace.mse) == 4 and len(records) == 4
    torch.testing.assert_close(result.x, model(y, to_deepinv(A), seed=1))
    g = gen(5)
    via_generator = model(y, to_deepinv(A), generator=g)
    torch.testing.assert_close(via_generator, model(y, to_deepinv(A), seed=5))
    with pytest.raises(ValueError, match="either seed or generator"):
        model(y, to_deepinv(A), seed=1, generator=gen(1))


def test_network_prior_is_a_submodule():
    net = UNet(1, channels=(8, 8), conditional=True, seed=0)
    prior = NetworkPrior(net, prediction=Prediction.EPS, conditioning=Conditioning.NOISE_LEVEL)
    model = as_reconstructor(DPS(DDGMUnconditionalSchedule(1.0, steps=2)), prior)
    assert isinstance(model, SolverReconstructor)
    assert {id(p) for p in model.parameters()} == {id(p) for p in net.parameters()}
    A = linops.Mask(MASK)
    y, _ = measurement(A, batch=1)
    torch.testing.assert_close(
        model(y, to_deepinv(A), seed=2),
        direct(DPS(DDGMUnconditionalSchedule(1.0, steps=2)), y, A, prior, 2).x,
    )


def test_solver_must_be_callable():
    with pytest.raises(TypeError, match="solver callable"):
        as_reconstructor("ddrm", StandardNormal())
