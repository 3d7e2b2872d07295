"""The Solver protocol, the shared preamble `start(...)` and the layout of the solver files: every solver
has the protocol's call signature, `start` checks what it is given (errors name the argument) and the
schedule against the prior's trained range, and each solver file imports only the shared modules."""

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch

import linops
import solvers
from priors.analytic import GaussianPrior
from priors.protocol import UNIT, Prior, SigmaRanged
from solvers.problem import ConventionWarning
from solvers.protocol import Solver
from solvers.schedules import Constant, Geometric
from solvers.start import check_sigma_range, start

f64 = torch.float64
SHAPE = (1, 4, 4)

#: every inverse-problem solver `solvers` exports, built with its defaults (or the one argument it needs)
INSTANCES = {
    "AlgebraicReconstruction": solvers.AlgebraicReconstruction(),
    "CGLSReconstruction": solvers.CGLSReconstruction(),
    "LSQRReconstruction": solvers.LSQRReconstruction(),
    "FilteredBackprojection": solvers.FilteredBackprojection(),
    "TikhonovSVD": solvers.TikhonovSVD(0.1),
    "TVReconstruction": solvers.TVReconstruction(0.1),
    "CVDM": solvers.CVDM(),
    "DDGM": solvers.DDGM(),
    "DDRM": solvers.DDRM(),
    "DPS": solvers.DPS(),
    "PaDIS": solvers.PaDIS(),
    "Dirac": solvers.Dirac(),
}
#: callables that are not solvers: an unconditional sampler (shape, prior) and Dirac's schedule builder
NOT_SOLVERS = {"DDGMUnconditional", "GreedyDegradationScheduler"}


def exported_solver_classes():
    """The classes in solvers.__all__ that are called on something: dataclasses with their own __call__."""
    found = set()
    for name in solvers.__all__:
        obj = getattr(solvers, name)
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and "__call__" in dir(obj) and any(
            "__call__" in vars(c) for c in obj.__mro__[:-1]
        ):
            found.add(name)
    return found


def test_every_exported_solver_is_listed():
    assert exported_solver_classes() == set(INSTANCES) | NOT_SOLVERS


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_solver_satisfies_the_protocol(name):
    solver = INSTANCES[name]
    assert isinstance(solver, Solver)
    params = list(inspect.signature(type(solver).__call__).parameters.values())[1:]
    expected = list(inspect.signature(Solver.__call__).parameters.values())[1:]
    assert [p.name for p in params[:3]] == ["y", "A", "prior"]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params[:3])
    keywords = {p.name: p for p in params[3:]}
    for p in expected[3:]:
        assert p.name in keywords, f"{name}.__call__ lacks {p.name}="
        got = keywords.pop(p.name)
        assert got.kind is inspect.Parameter.KEYWORD_ONLY and got.default == p.default, (name, p.name)
    # the only extra keyword a solver may take: the data's units, when it has a prior
    assert set(keywords) <= {"convention"}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None for p in keywords.values())


def test_not_solvers_are_not_called_on_a_problem():
    params = list(inspect.signature(solvers.DDGMUnconditional.__call__).parameters)
    assert params[1:3] == ["shape", "prior"]


# ------------------------------------------------------------------------------------------------ start


def problem():
    A = linops.Diagonal(torch.linspace(0.5, 1.0, 16, dtype=f64).reshape(SHAPE))
    prior = GaussianPrior(torch.zeros(SHAPE, dtype=f64), 0.1 * linops.Identity(SHAPE, dtype=f64))
    y = torch.ones((2, *SHAPE), dtype=f64)
    return y, A, prior


class Ranged(Prior):
    """A prior trained for sigma in [0.1, 1]."""

    sigma_range = (0.1, 1.0)
    convention = UNIT

    def denoise(self, x, sigma):
        return x / (1 + sigma**2)


class DuckRanged:
    """Not a Prior subclass, but declares its range: still checked."""

    def __init__(self):
        self.asked = []

    def denoise(self, x, sigma):
        return x

    def check_sigma(self, sigma_max, sigma_min=None):
        self.asked.append((sigma_max, sigma_min))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, r"exactly one of schedule= .* or steps="),
        ({"schedule": Geometric(1.0, 0.1, 3), "steps": 3}, r"exactly one of schedule= .* or steps="),
        ({"steps": -1}, r"Test: steps must be a non-negative int, got -1"),
        ({"steps": 2.5}, r"Test: steps must be a non-negative int, got 2.5"),
        ({"schedule": [1.0, 0.5]}, r"Test: schedule must have a sigmas\(\) method"),
    ],
)
def test_start_errors_name_the_argument(kwargs, match):
    y, A, prior = problem()
    with pytest.raises((TypeError, ValueError), match=match):
        start("Test", y, A, prior, needs=("denoise",), progress=False, **kwargs)


def test_start_passes_on_the_problem_checks():
    y, A, prior = problem()
    with pytest.raises(ValueError, match=r"Test: y must have shape \(B, \*A.out_shape\) = \(B, 1, 4, 4\)"):
        start("Test", y[0], A, prior, steps=1, progress=False)
    with pytest.raises(TypeError, match=r"Test needs a prior with eps\(x, sigma\)"):
        start("Test", y, A, object(), needs=("eps",), steps=1, progress=False)


def test_start_returns_the_run():
    y, A, prior = problem()
    run = start("Test", y, A, prior, needs=("denoise",), schedule=Geometric(1.0, 0.1, 3), progress=False)
    assert run.sigmas == Geometric(1.0, 0.1, 3).sigmas().tolist()
    assert run.x_shape == (2, *SHAPE) and run.batch == 2 and torch.equal(run.zeros(), torch.zeros(2, *SHAPE, dtype=f64))
    assert run.y is run.problem.y and run.problem.prior is prior
    run.prior.denoise(run.zeros(), 0.5)
    run.prior.eps(run.zeros(), 0.5)
    assert run.track.trace.prior_calls == 2
    assert start("Test", y, A, steps=4, progress=False).prior is None


def test_watched_prior_counts_calls_of_the_prior_itself():
    y, A, _ = problem()
    phi = lambda v, t: 2 * v  # noqa: E731
    run = start("Test", y, A, phi, needs=("__call__",), steps=1, progress=False)
    assert torch.equal(run.prior(y, 0.5), 2 * y) and run.track.trace.prior_calls == 1


def test_range_check_asks_every_sigma_ranged_prior():
    y, A, _ = problem()
    with pytest.raises(ValueError, match=r"trained for sigma in \[0.1, 1\]"):
        start("Test", y, A, Ranged(), needs=("denoise",), schedule=Geometric(3.0, 0.1, 4), progress=False)
    start("Test", y, A, Ranged(), needs=("denoise",), schedule=Geometric(1.0, 0.1, 4), progress=False)
    duck = DuckRanged()
    assert isinstance(duck, SigmaRanged) and not isinstance(object(), SigmaRanged)
    start("Test", y, A, duck, needs=("denoise",), schedule=Geometric(2.0, 0.5, 3), progress=False)
    assert duck.asked == [(2.0, 0.5)]


def test_range_check_leaves_out_zero_levels():
    duck = DuckRanged()
    check_sigma_range(duck, [0.5, 0.2, 0.0])
    check_sigma_range(duck, Constant(0.0, 3).sigmas().tolist())  # a deterministic run asks nothing
    check_sigma_range(duck, [])
    assert duck.asked == [(0.5, 0.2)]


def test_ddgm_checks_the_schedule_against_the_prior():
    y, A, _ = problem()
    with pytest.raises(ValueError, match=r"trained for sigma in \[0.1, 1\]"):
        solvers.DDGM(Geometric(3.0, 0.1, 2), gradient_steps=1)(y, A, Ranged(), progress=False)


@pytest.mark.parametrize("name", ["DDGM", "DDRM", "DPS", "PaDIS"])
def test_convention_warning_points_at_the_callers_line(name):
    """The warning about data in other units than the prior's names the line that called the solver."""
    y, A, prior = problem()
    solver = {
        "DDGM": lambda: solvers.DDGM(Geometric(1.0, 0.1, 1), gradient_steps=1),
        "DDRM": lambda: solvers.DDRM(Geometric(1.0, 0.1, 1)),
        "DPS": lambda: solvers.DPS(solvers.schedules.DDGMUnconditionalSchedule.from_endpoints(1.0, 0.5, 3)),
        "PaDIS": lambda: solvers.PaDIS(Geometric(1.0, 0.5, 2)),
    }[name]()
    with pytest.warns(ConventionWarning) as record:
        solver(255 * y, A, prior, progress=False)
    assert {Path(r.filename).name for r in record if r.category is ConventionWarning} == {Path(__file__).name}


# ------------------------------------------------------------------------------------------------ layout

SHARED = {"checks", "problem", "schedules", "start", "steps", "tracking", "dirac_schedule"}
ALGORITHM_FILES = ["ddgm", "ddrm", "dps", "padis", "dirac", "cvdm"]


@pytest.mark.parametrize("name", ALGORITHM_FILES)
def test_solver_files_import_only_the_shared_modules(name):
    """A solver file keeps its algorithm box and imports shared steps, not a sibling solver."""
    path = Path(solvers.__file__).parent / f"{name}.py"
    relative = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            relative.add((node.module or "").split(".")[0])
    assert relative <= SHARED, f"solvers/{name}.py imports {sorted(relative - SHARED)}"
