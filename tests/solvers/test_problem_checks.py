"""Inputs every solver checks (solvers/problem.py, solvers/checks.py): the shape, kind, dtype and values of y
against A and the prior, every hyperparameter at construction, and the data's units against the prior's."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import linops
from priors import SYMMETRIC, UNIT, Convention
from priors.analytic import GaussianPrior
from priors.dirac import DegradationProcess, GeometricNoise
from priors.dirac_gaussian import GaussianDegradationAwarePrior
from priors.network import Conditioning, NetworkPrior, Prediction
from solvers import (
    DDGM,
    DDRM,
    DPS,
    AlgebraicReconstruction,
    CGLSReconstruction,
    Dirac,
    FilteredBackprojection,
    LSQRReconstruction,
    PaDIS,
    StdScaledGuidance,
    TVReconstruction,
)
from solvers.classical import PDHG
from solvers.dirac_schedule import SeverityTimes, UniformSeverities
from solvers.problem import ConventionWarning
from solvers.schedules import VP, Constant, DDGMUnconditionalSchedule, Geometric, Karras

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 8, 8)
f64 = torch.float64

SOLVERS = {
    "DDGM": lambda: DDGM(Geometric(1.0, 0.1, 3), gradient_steps=2),
    "DDRM": lambda: DDRM(Geometric(1.0, 0.1, 3), sigma_y=0.01),
    "DPS": lambda: DPS(DDGMUnconditionalSchedule.from_endpoints(1.0, 0.1, 8)),
    "PaDIS": lambda: PaDIS(Geometric(1.0, 0.1, 3)),
    "Algebraic": lambda: AlgebraicReconstruction(3),
    "CGLS": lambda: CGLSReconstruction(3),
    "LSQR": lambda: LSQRReconstruction(3),
    "TV": lambda: TVReconstruction(0.1, PDHG(3)),
    "FBP": lambda: FilteredBackprojection(),
}


def gaussian_prior(dtype=f64, convention=UNIT, mean=0.5, variance=0.04):
    covariance = linops.Diagonal(torch.full(SHAPE, variance, dtype=dtype))
    return GaussianPrior(torch.full(SHAPE, mean, dtype=dtype), covariance, convention=convention)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------------------------------
# y against A


@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize("squeezed", ["views", "detector", "no batch"])
def test_y_of_the_wrong_shape_is_refused_naming_a_and_both_shapes(name, squeezed):
    """Before: DDGM and DPS broadcast a (B, 1, n_views, 1) or (B, 1, 1, n_det) sinogram and returned a result."""
    R = linops.Radon(SHAPE, angles_deg=torch.linspace(0, 150, 6), dtype=f64)
    y = R @ torch.rand(2, *SHAPE, dtype=f64, generator=torch.Generator().manual_seed(0))
    y = {"views": y[..., :1], "detector": y[..., :1, :], "no batch": y[0]}[squeezed]
    with pytest.raises(ValueError, match=r"y must have shape \(B, \*A.out_shape\)") as err:
        quiet(SOLVERS[name](), y, R, gaussian_prior(), progress=False)
    message = str(err.value)
    assert "Radon" in message and f"(B, {', '.join(map(str, R.out_shape))})" in message
    assert str(tuple(y.shape)) in message


def blur_problem(dtype=torch.float32):
    A = linops.CircularBlur(linops.gaussian_kernel(1.0, 3, dtype=dtype), SHAPE)
    x = 0.5 + 0.2 * torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=dtype)
    return A, x, A @ x


@pytest.mark.parametrize("name", sorted(set(SOLVERS) - {"FBP"}))
def test_numpy_y_runs_like_the_tensor_of_a_dtype(name):
    """numpy data (float64 by default) are converted to A's dtype; before: 'numpy.ndarray' object has no
    attribute 'new_zeros' (DDGM, DPS, Algebraic), or a linops TypeError."""
    A, _, y = blur_problem(torch.float32)
    prior = gaussian_prior(torch.float32)
    run = lambda y: quiet(SOLVERS[name](), y, A, prior, generator=torch.Generator().manual_seed(2),  # noqa: E731
                          progress=False).x
    from_numpy = run(y.double().numpy())
    assert isinstance(from_numpy, torch.Tensor) and from_numpy.dtype == torch.float32
    torch.testing.assert_close(from_numpy, run(y), rtol=1e-5, atol=1e-6)


def tiny_network_prior(dtype=torch.float32):
    net = nn.Conv2d(1, 1, 3, padding=1).to(dtype)
    return NetworkPrior(net, prediction=Prediction.EPS, conditioning=Conditioning.BLIND)


@pytest.mark.parametrize("name", ["DDGM", "DDRM", "DPS", "PaDIS"])
def test_float64_y_with_a_float32_network_prior_says_so(name):
    """Before: a RuntimeError from inside conv2d (Input type (double) and bias type (float))."""
    A, _, y = blur_problem(f64)
    with pytest.raises(TypeError, match=r"y and A are torch.float64 but the prior's network is torch.float32.*to\("):
        quiet(SOLVERS[name](), y, A, tiny_network_prior(torch.float32), progress=False)


def test_y_of_another_precision_than_a_is_refused_with_the_fix():
    A, _, y = blur_problem(torch.float32)
    with pytest.raises(TypeError, match=r"y is torch.float64 but A = .* is torch.float32; convert y with"):
        DDGM(Geometric(1.0, 0.1, 2))(y.double(), A, gaussian_prior(), progress=False)


@pytest.mark.parametrize("name", ["DDRM", "CGLS"])
def test_non_finite_y_is_refused(name):
    A, _, y = blur_problem(torch.float32)
    y[0, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="y has 1 NaN or infinite entries"):
        quiet(SOLVERS[name](), y, A, gaussian_prior(torch.float32), progress=False)


def test_other_kinds_of_y_and_missing_priors_are_refused():
    A, x, y = blur_problem(torch.float32)
    with pytest.raises(TypeError, match="y must be a torch tensor or a numpy array, got list"):
        DDRM()(y.tolist(), A, gaussian_prior(), progress=False)
    with pytest.raises(TypeError, match=r"DDRM needs a prior with denoise\(x, sigma\).*got None"):
        DDRM()(y, A, None, progress=False)
    with pytest.raises(ValueError, match=r"the prior's images have shape \(1, 4, 4\)"):
        DDRM()(y, A, GaussianPrior(torch.zeros(1, 4, 4), linops.Diagonal(torch.ones(1, 4, 4))), progress=False)
    with pytest.raises(ValueError, match=r"x_true must have shape \(2 or 1, 1, 8, 8\)"):
        CGLSReconstruction(2)(y, A, progress=False, x_true=x[:, :, :4])


def test_dirac_checks_y_too():
    family = linops.GaussianBlurFamily(SHAPE, linops.LinearRamp(0.0, 1.0))
    process = DegradationProcess(family, GeometricNoise(0.01, 0.05))
    prior = GaussianDegradationAwarePrior(torch.zeros(SHAPE, dtype=f64), linops.Diagonal(torch.ones(SHAPE, dtype=f64)),
                                          process)
    A = process.operator(1.0)
    y = A @ torch.rand(1, *SHAPE, dtype=A.dtype)
    solver = Dirac(UniformSeverities(2))
    out = solver(y.numpy(), A, prior, progress=False, generator=torch.Generator().manual_seed(0)).x
    torch.testing.assert_close(out, solver(y, A, prior, progress=False, generator=torch.Generator().manual_seed(0)).x)
    with pytest.raises(ValueError, match="y has 1 NaN"):
        y[0, 0, 0, 0] = float("inf")
        solver(y, A, prior, progress=False)


# ------------------------------------------------------------------------------------------------
# hyperparameters, at construction

INVALID = [
    (lambda: DDRM(sigma_y=math.inf), "sigma_y"),
    (lambda: DDRM(sigma_y=math.nan), "sigma_y"),
    (lambda: DDRM(singular_value_cutoff=math.nan), "singular_value_cutoff"),
    (lambda: DDRM(singular_value_cutoff=-1.0), "singular_value_cutoff"),
    (lambda: DDRM(eta=math.nan), "eta"),
    (lambda: DDRM(eta_b=1.5), "eta_b"),
    (lambda: DDRM(schedule=Constant(0.0, 3)), "noise level"),
    (lambda: DDRM(schedule=[1.0, 0.5]), "schedule"),
    (lambda: DDRM(svd_algorithm="dense"), "svd_algorithm"),
    (lambda: DDGM(step_size=math.nan), "step_size"),
    (lambda: DDGM(step_fraction=1.0), "step_fraction"),
    (lambda: DDGM(gradient_steps=2.5), "gradient_steps"),
    (lambda: DPS(zeta=math.inf), "zeta"),
    (lambda: DPS(rescaled="yes"), "rescaled"),
    (lambda: DPS(schedule=Geometric(1.0, 0.1, 3)), "DDGMUnconditionalSchedule"),
    (lambda: PaDIS(epsilon=math.inf), "epsilon"),
    (lambda: PaDIS(epsilon=4.0), "epsilon"),
    (lambda: PaDIS(zeta=math.nan), "zeta"),
    (lambda: Dirac(t_stop=math.nan), "t_stop"),
    (lambda: StdScaledGuidance(math.inf), "eta"),
    (lambda: AlgebraicReconstruction(step_size=math.inf), "step_size"),
    (lambda: AlgebraicReconstruction(step_fraction=math.nan), "step_fraction"),
    (lambda: CGLSReconstruction(damping=math.inf), "damping"),
    (lambda: LSQRReconstruction(tol=math.nan), "tol"),
    (lambda: TVReconstruction(0.1, axes=(0.5,)), "axes"),
    (lambda: Geometric(math.inf, 0.1, 3), "sigma_first"),
    (lambda: Geometric(1.0, math.nan, 3), "sigma_last"),
    (lambda: Constant(math.nan, 3), "sigma"),
    (lambda: Constant(math.inf, 3), "sigma"),
    (lambda: Karras(rho=0.0), "rho"),
    (lambda: Karras(rho=math.nan), "rho"),
    (lambda: Karras(sigma_max=math.inf), "sigma_max"),
    (lambda: DDGMUnconditionalSchedule(sigma_first=math.inf), "sigma_first"),
    (lambda: DDGMUnconditionalSchedule(beta=math.nan), "beta"),
    (lambda: DDGMUnconditionalSchedule.from_endpoints(1.0, math.nan, 10), "sigma_last"),
    (lambda: VP((0.1, math.nan)), r"betas\[1\]"),
    (lambda: VP.linear(beta_end=math.inf), "beta_end"),
    (lambda: SeverityTimes((1.0, math.nan, 0.0)), "decrease strictly"),
]


@pytest.mark.parametrize(("make", "field"), INVALID, ids=[f"{i}-{f}" for i, (_, f) in enumerate(INVALID)])
def test_invalid_hyperparameters_raise_at_construction_naming_the_field(make, field):
    """Before: DDRM with sigma_y = inf or a NaN cutoff ran and ignored the data, Karras(rho=0) divided by
    zero at sigmas(), Constant(nan) and PaDIS(epsilon=inf) ran into NaN iterates."""
    with pytest.raises((ValueError, TypeError), match=field):
        make()


def test_valid_edge_values_are_accepted():
    DDRM(sigma_y=0.0, eta=0.0, eta_b=1.0, singular_value_cutoff=0.0)
    DDGM(Constant(0.0, 2), gradient_steps=0)  # a deterministic DDGM
    DDGMUnconditionalSchedule.from_endpoints(3.0, 0.03, 100, beta=0.0)
    PaDIS(epsilon=3.9)
    Karras(rho=1.0)


# ------------------------------------------------------------------------------------------------
# the data's units against the prior's


def mask_problem(scale=1.0, offset=0.0, seed=0):
    """A diagonal Gaussian prior in [0, 1] units, observed through a mask; the image and data in units
    x_data = scale * x_unit + offset."""
    g = torch.Generator().manual_seed(seed)
    A = linops.Mask(torch.rand(SHAPE, generator=g) > 0.4, dtype=f64)
    prior = gaussian_prior(f64, UNIT, mean=0.4, variance=0.04)
    x_unit = prior.sample(1, generator=g, dtype=f64)
    y_unit = A @ x_unit + 0.01 * torch.randn(1, *SHAPE, generator=g, dtype=f64)
    return A, prior, scale * x_unit + offset, A @ (scale * y_unit + offset * torch.ones_like(y_unit)), y_unit


def test_a_declared_convention_is_converted_exactly():
    """The data in [-1, 1] units, the prior in [0, 1]: the solver solves for x_unit = (x + 1) / 2 from
    y_unit = (y + A 1) / 2 with sigma_y / 2, and maps back: the same run, exactly."""
    A, prior, x, y, y_unit = mask_problem(2.0, -1.0)
    solver = DDRM(Geometric(5.0, 0.01, 20), sigma_y=0.02, eta=0.85)
    converted = solver(y, A, prior, convention=SYMMETRIC, generator=torch.Generator().manual_seed(3), progress=False)
    by_hand = DDRM(Geometric(5.0, 0.01, 20), sigma_y=0.01, eta=0.85)(
        y_unit, A, prior, generator=torch.Generator().manual_seed(3), progress=False
    )
    torch.testing.assert_close(converted.x, 2 * by_hand.x - 1, rtol=1e-12, atol=1e-12)
    # the trace is in the data's units too: residual ||A x - y|| of the data
    torch.testing.assert_close(converted.trace.residual[-1], (A @ converted.x - y).flatten(1).norm(dim=1))


@pytest.mark.parametrize("name", ["DDRM", "DDGM", "DPS", "PaDIS"])
def test_a_prior_in_other_units_than_the_data(name):
    """The issue's case: a prior declared in [-1, 1] units, data in [0, 1]. Without `convention` the
    solver mixes units (its estimate is far from the truth); with it, the error is that of the matched
    prior."""
    A, unit_prior, x, y, _ = mask_problem(seed=5)
    m = unit_prior.to_convention(SYMMETRIC)  # the same prior, declared in [-1, 1] units
    assert m.convention == SYMMETRIC
    solver = {
        "DDRM": DDRM(Geometric(2.0, 0.01, 20), sigma_y=0.01),
        "DDGM": DDGM(Geometric(1.0, 0.01, 20), gradient_steps=5),
        "DPS": DPS(DDGMUnconditionalSchedule.from_endpoints(1.0, 0.01, 60), zeta=0.2),
        "PaDIS": PaDIS(Geometric(1.0, 0.01, 40), zeta=0.2),
    }[name]
    M = 64
    ys = y.expand(M, *SHAPE).clone()

    def error(prior, **kwargs):
        out = quiet(solver, ys, A, prior, generator=torch.Generator().manual_seed(4), progress=False, **kwargs).x
        return float((out - x).pow(2).mean() / x.pow(2).mean())

    matched = error(unit_prior)
    assert error(m, convention=UNIT) < 1.5 * matched + 1e-3
    assert error(m, convention=(0.0, 1.0)) < 1.5 * matched + 1e-3
    assert error(m) > 2 * matched + 0.01


def test_data_far_outside_the_prior_range_warn_and_a_range_fixes_it():
    """[0, 255] data with a [0, 1] prior: warned (before: silently wrong); convention=(0, 255) converts
    (the same run as on the [0, 1] data, times 255), and matched data do not warn."""
    A, prior, x, y, y_unit = mask_problem(255.0, 0.0)
    solver = DDRM(Geometric(2.0, 0.01, 10), sigma_y=0.01)
    with pytest.warns(ConventionWarning, match=r"y looks like images of mean about .* convention=\(lo, hi\)"):
        solver(y, A, prior, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConventionWarning)
        out = solver(y, A, prior, convention=(0, 255), generator=torch.Generator().manual_seed(1), progress=False).x
        # sigma_y is in y's units: 0.01 in [0, 255] units is 0.01 / 255 in the prior's
        unit = DDRM(Geometric(2.0, 0.01, 10), sigma_y=0.01 / 255)(
            y_unit, A, prior, generator=torch.Generator().manual_seed(1), progress=False
        ).x
    torch.testing.assert_close(out, 255 * unit, rtol=1e-10, atol=1e-10)


def test_trace_metrics_are_in_the_data_units():
    A, prior, x, y, _ = mask_problem(255.0, 0.0)
    result = DDRM(Geometric(2.0, 0.01, 10), sigma_y=1.0)(y, A, prior, convention=Convention(255.0, 0.0, "[0, 255]"),
                                                         x_true=x, progress=False)
    torch.testing.assert_close(result.trace.mse[-1], (result.x - x).pow(2).flatten(1).mean(1))
    assert np.isfinite(result.trace.as_dict()["psnr"][-1])


def test_bad_conventions_are_refused():
    A, prior, x, y, _ = mask_problem()
    with pytest.raises(ValueError, match=r"finite lo < hi"):
        DDRM()(y, A, prior, convention=(1.0, 0.0), progress=False)
    with pytest.raises(TypeError, match="convention must be"):
        DDRM()(y, A, prior, convention="unit", progress=False)
