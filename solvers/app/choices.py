"""The solvers and priors that `python -m solvers reconstruct` offers: what each needs, its defaults,
how long it takes, and how one noise level (sigma, in normalised units) enters every solver that
weighs the data against a prior.

    fbp        filtered backprojection (Ram-Lak)                      no noise level, no prior
    algebraic  K steps of gradient descent (DDGM's baseline)          the step count regularises
    cgls/lsqr  Krylov least squares, stopped by the discrepancy       ||A x - y|| <= sqrt(m) sigma
               principle (at most --steps iterations)                 (m measurements per slice)
    tv         min 1/2 ||A x - y||^2 + lambda TV(x) by PDHG            lambda = strength sigma^2 (MAP with the
                                                                      prior exp(-strength TV(x)))
    ddgm       DDGM (Luther & Seung), blind or conditional denoiser   normalised data steps: no sigma
    ddrm       DDRM in A's SVD (cached on disk)                       sigma_y = sigma
    dps        DPS* (DDGM's rescaled DPS)                             normalised data step: no sigma
    padis      PaDIS with a patch prior (or a whole-image one)        normalised data step: no sigma

Dirac is not offered: it needs a degradation-aware prior whose operator family is the measurement
(blur and inpainting are bundled, no tilt-series family).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from priors.zoo.fits import fit_of, fit_of_recipe


@dataclass(frozen=True)
class SolverChoice:
    """One `--solver`: a summary, whether it needs a prior (and the default one), its default step
    count, and the measured seconds per 128 x 128 slice (61 views, one thread; see
    benchmarks/test_reconstruct.py)."""

    name: str
    summary: str
    default_steps: int | None
    steps_meaning: str
    seconds_per_slice: float
    default_prior: str | None = None
    noise: str = "not used"

    @property
    def needs_prior(self) -> bool:
        return self.default_prior is not None


SOLVERS = {
    c.name: c
    for c in (
        SolverChoice("ddgm", "DDGM: K gradient steps on the data, then one denoising step, per noise level",
                     50, "noise levels N (K: --gradient-steps)", 7.5, "ddgm-cells",
                     "no (normalised data steps)"),
        SolverChoice("ddrm", "DDRM in the SVD of the slice operator (the SVD is cached on disk)", 10,
                     "noise levels", 2.0, "cells-conditional", "sigma_y"),
        SolverChoice("dps", "DPS* (DDGM's rescaled DPS): one backpropagation through the prior per step", 100,
                     "noise levels", 11.3, "cells-conditional", "no (normalised data step)"),
        SolverChoice("padis", "PaDIS: Langevin steps with a patch prior (fresh grid shift per step)", 100,
                     "noise levels", 10.7, "padis-patch-large", "no (normalised data step)"),
        SolverChoice("tv", "total variation: min 1/2 ||Ax - y||^2 + lambda TV(x) by PDHG", 200, "PDHG iterations",
                     1.6, noise="lambda = strength x sigma^2"),
        SolverChoice("cgls", "CGLS stopped by the discrepancy principle", 50, "most iterations", 0.05,
                     noise="stops at ||Ax - y|| <= sqrt(m) sigma"),
        SolverChoice("lsqr", "LSQR stopped by the discrepancy principle", 50, "most iterations", 0.05,
                     noise="stops at ||Ax - y|| <= sqrt(m) sigma"),
        SolverChoice("algebraic", "gradient descent from 0 (DDGM's baseline; the step count regularises)", 100,
                     "iterations", 0.55),
        SolverChoice("fbp", "filtered backprojection (Ram-Lak)", None, "-", 0.009),
    )
}

#: the measurement conditions of SolverChoice.seconds_per_slice (benchmarks/results/reconstruct.json: the
#: CPU time per slice of the solve, one thread, measured while the machine was shared; DDRM without its SVD)
TIMING_NOTE = ("CPU seconds per 128 x 128 slice, 61 views over +-60 degrees, default settings, 1 thread of a "
               "2-core x86 CPU (AMD EPYC); time grows with pixels x steps; ddrm: plus its SVD once")


def solver_table() -> str:
    lines = [f"  {'solver':10s}{'s/slice':>9s}  {'steps':>6s}  {'prior':18s} noise level used", ]
    for c in SOLVERS.values():
        steps = "-" if c.default_steps is None else str(c.default_steps)
        lines.append(f"  {c.name:10s}{c.seconds_per_slice:>9.3g}  {steps:>6s}  {c.default_prior or '-':18s} {c.noise}")
        lines.append(f"  {'':10s}{c.summary}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# priors


@dataclass(frozen=True)
class LoadedPrior:
    """A prior with where it came from and, when known, its recipe (for its training statistics)."""

    prior: object
    label: str
    recipe: object = None


def load_prior(spec: str, device: str = "cpu") -> LoadedPrior:
    """A bundled prior by name; or weights from a file: NAME.safetensors written by `python -m priors train
    NAME [--images PATH] --out DIR` (a bundle: NAME.json holds its recipe), or any network saved with
    `priors.training.save_weights` (its .json holds the architecture)."""
    import json

    import priors
    from priors.zoo import Recipe, recipe

    if not spec.endswith(".safetensors"):
        return LoadedPrior(priors.load(spec, device=device), spec, recipe(spec))
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"--prior: no such weights file: {path}")
    metadata = path.with_suffix(".json")
    meta = json.loads(metadata.read_text()) if metadata.exists() else {}
    if "recipe" in meta:
        from priors.zoo.bundle import load_file

        return LoadedPrior(load_file(path, device=device), str(path), Recipe.from_json(meta["recipe"]))
    from priors.training import load_network_prior

    return LoadedPrior(load_network_prior(path).to(device), str(path))


def compatible_priors(solver: str) -> list[str]:
    from priors.zoo import RECIPES

    return sorted(name for name, r in RECIPES.items() if solver in fit_of_recipe(r).solvers)


def check_fit(solver: str, loaded: LoadedPrior) -> None:
    """ValueError naming the prior's kind and the priors that fit, when `solver` cannot use the prior."""
    fit = fit_of(loaded.prior)
    if solver not in fit.solvers:
        raise ValueError(
            f"--prior {loaded.label} is a {fit.kind.value} (for {', '.join(fit.solvers)}; task: {fit.task}); "
            f"--solver {solver} cannot use it. Priors that fit {solver}: {', '.join(compatible_priors(solver))}, "
            f"or your own (python -m priors train NAME --images PATH)"
        )


def in_normalised_units(loaded: LoadedPrior):
    """The prior expressed in the reconstruction's normalised units (zero mean, unit variance images).

    Priors trained on per-image standardised images (convention `standardized(...)`) already work in
    these units. Priors trained in [0, 1] (or [-1, 1]) are converted exactly (`to_convention`) with
    the mean and standard deviation of their training images, so that a unit-variance slice looks to
    them like one of their images."""
    from priors import standardized
    from priors.data import Split
    from priors.zoo import training_images
    from priors.zoo.recipes import Normalization

    prior = loaded.prior
    if prior.convention.name.startswith("standardized"):
        return prior
    if loaded.recipe is None:
        warnings.warn(f"--prior {loaded.label}: its training statistics are unknown (no recipe); assuming images "
                      "with mean 0.5 and std 0.25 in its units", stacklevel=2)
        mean, std = 0.5, 0.25
    else:
        r = loaded.recipe
        if r.data.normalization is not Normalization.UNIT:
            return prior
        images, _ = training_images(r, Split.TRAIN, min(32, r.data.count))
        flat = images.reshape(images.shape[0], -1).double()
        mean, std = float(flat.mean(1).mean()), float(flat.std(1).mean())
    return prior.to_convention(standardized(mean, std))


# ----------------------------------------------------------------------------------------------
# solvers


@dataclass(frozen=True)
class DiscrepancyStopped:
    """An iterative solver stopped at the first iterate with ||A x_k - y|| <= target (Morozov's
    discrepancy principle, target = tau sqrt(m) sigma), or at its last iterate."""

    inner: object
    target: float

    def __call__(self, y, A, prior=None, *, generator=None, callback=None, progress=True, x_true=None):
        from ..tracking import Result, Trace

        class Reached(Exception):
            pass

        kept = {}

        def stop(record):
            if record.residual is not None and float(record.residual.max()) <= self.target:
                kept["x"] = record.estimate.clone()
                raise Reached

        try:
            return self.inner(y, A, prior, generator=generator, callback=stop, progress=progress, x_true=x_true)
        except Reached:
            return Result(kept["x"], Trace())


@dataclass(frozen=True)
class Settings:
    """The solver options of the command line (None: the solver's default)."""

    solver: str
    steps: int | None = None
    gradient_steps: int = 15
    sigma_max: float | None = None
    sigma_min: float | None = None
    eta: float = 1.0
    zeta: float | None = None
    tv_strength: float = 20.0
    svd: object = None  # spectral.SVDRequest


#: PaDIS's data step zeta = PADIS_ZETA / ||A||: on a 33 x 33 camera phantom (61 views, 10 % noise, 2 slices)
#: the correlation with the truth was 0.87 / 0.95 / 0.94 / 0.89 at 1, 4, 8, 16 over ||A|| with 100 steps,
#: 0.82 / 0.91 at 4 / 8 with 30 steps and 0.87 / 0.96 at 1 / 4 with 200 steps
PADIS_ZETA = 5.0

#: the noise levels each diffusion solver starts and ends at, in normalised units (clipped to the prior's range)
SCHEDULE_DEFAULTS = {"ddgm": (3.0, 0.03), "ddrm": (30.0, 0.03), "dps": (3.0, 0.03), "padis": (None, None)}


def schedule_range(settings: Settings, prior) -> tuple[float, float]:
    """(sigma_max, sigma_min): given, else the solver's defaults clipped to the prior's trained range."""
    hi, lo = SCHEDULE_DEFAULTS[settings.solver]
    trained = getattr(prior, "sigma_range", None)
    if trained is not None:
        hi = trained[1] if hi is None else min(hi, trained[1])
        lo = trained[0] if lo is None else max(lo, trained[0])
    hi = settings.sigma_max if settings.sigma_max is not None else hi
    lo = settings.sigma_min if settings.sigma_min is not None else lo
    if hi is None or lo is None:
        raise ValueError(f"--solver {settings.solver}: give --sigma-max and --sigma-min (the prior has no range)")
    if not hi > lo > 0:
        raise ValueError(f"--sigma-max must exceed --sigma-min > 0, got {hi:g} and {lo:g}")
    return hi, lo


def build_solver(settings: Settings, *, A, prior, sigma: float, log=print):
    """The typed solver value for the command-line choice; sigma: the noise std in normalised units."""
    from ..classical import (
        AlgebraicReconstruction,
        CGLSReconstruction,
        FilteredBackprojection,
        LSQRReconstruction,
        TVReconstruction,
    )
    from ..classical.tv import PDHG
    from ..ddgm import DDGM
    from ..ddrm import DDRM
    from ..dps import DPS
    from ..padis import PaDIS
    from ..schedules import DDGMUnconditionalSchedule, Geometric

    name = settings.solver
    steps = settings.steps or SOLVERS[name].default_steps
    m = math.prod(A.out_shape)
    if name == "fbp":
        return FilteredBackprojection()
    if name == "algebraic":
        return AlgebraicReconstruction(steps)
    if name in ("cgls", "lsqr"):
        inner = (CGLSReconstruction if name == "cgls" else LSQRReconstruction)(iterations=steps)
        return DiscrepancyStopped(inner, math.sqrt(m) * sigma)
    if name == "tv":
        weight = settings.tv_strength * sigma**2
        log(f"TV: lambda = {settings.tv_strength:g} x sigma^2 = {weight:.4g} (normalised units)")
        return TVReconstruction(weight, PDHG(iterations=steps))
    hi, lo = schedule_range(settings, prior)
    if name == "ddgm":
        return DDGM(Geometric(hi, lo, steps), gradient_steps=settings.gradient_steps)
    if name == "ddrm":
        return DDRM(Geometric(hi, lo, steps), sigma_y=sigma, eta=settings.eta, eta_b=1.0,
                    singular_value_cutoff=1 / 30, svd_algorithm=settings.svd.algorithm)
    if name == "dps":
        zeta = settings.zeta if settings.zeta is not None else 5.0 / steps
        return DPS(DDGMUnconditionalSchedule.from_endpoints(hi, lo, steps), zeta=zeta)
    if name == "padis":
        with torch.no_grad():
            norm = float(A.norm())
        zeta = settings.zeta if settings.zeta is not None else PADIS_ZETA / norm
        return PaDIS(Geometric(hi, lo, steps), zeta=zeta)
    raise ValueError(f"--solver: unknown solver {name!r}; choose from {', '.join(SOLVERS)}")
