"""The shared loop of the early-stopped Krylov baselines: `linops.solve` with a per-iteration record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from linops.base import precision_of
from linops.spectral import CGLS, LSQR, solve

from ..checks import check_int, check_real
from ..start import start
from ..tracking import Result


def check_iterations(owner: str, iterations) -> None:
    check_int(owner, "iterations", iterations, 0)


def check_damping_and_tol(owner: str, damping: float, tol: float) -> None:
    check_real(owner, "damping", damping, 0)
    check_real(owner, "tol", tol, 0)


#: the stopping tolerance never goes below this many machine epsilons of A's precision
ROUNDING_FLOOR = 16


def krylov_tolerance(tol: float, A) -> float:
    """max(tol, 16 eps): once ||A^H (y - A x_k) - damping x_k|| <= 16 eps ||A^H y|| the Krylov space is
    exhausted to rounding (rank-deficient A: after rank(A) steps); further steps would only fit rounding
    errors, and LSQR's bidiagonalisation, normalising vectors of rounding size, breaks down (its iterates
    diverge). Measured: the relative normal residual at convergence is about 1 eps in float32 and float64."""
    return max(float(tol), ROUNDING_FLOOR * torch.finfo(precision_of(A.dtype)).eps)


def krylov_reconstruction(
    name: str,
    algorithm: type[CGLS] | type[LSQR],
    y,
    A,
    iterations: int,
    damping: float,
    tol: float,
    *,
    callback,
    progress,
    x_true,
) -> Result:
    """Run `linops.solve(A, y, algorithm(...))` from x = 0 for at most `iterations` steps, recording every
    iterate x_k as a solver step; the run is shorter when the stopping test (`krylov_tolerance`) is met."""
    run = start(name, y, A, steps=iterations, callback=callback, progress=progress, x_true=x_true)
    y, track = run.y, run.track
    algorithm = algorithm(tol=krylov_tolerance(tol, A), max_iter=iterations)

    def record(k, x):
        track.gradients()  # one A and one A^H per iteration
        track.step(k - 1, 0.0, x)

    out = solve(A, y, algorithm, damping=damping, callback=record)
    return track.result(out.x)


@dataclass(frozen=True)
class EarlyStoppedKrylov:
    """Fields, checks and call shared by `CGLSReconstruction` and `LSQRReconstruction`, which differ only
    in `algorithm` (and in their docstrings, which give each method's iteration)."""

    algorithm: ClassVar[type[CGLS] | type[LSQR]]

    iterations: int = 20
    damping: float = 0.0
    tol: float = 0.0

    def __post_init__(self):
        check_iterations(type(self).__name__, self.iterations)
        check_damping_and_tol(type(self).__name__, self.damping, self.tol)

    def __call__(self, y, A, prior=None, *, generator=None, callback=None, progress=True, x_true=None) -> Result:
        return krylov_reconstruction(
            self.algorithm.__name__, self.algorithm, y, A, self.iterations, self.damping, self.tol,
            callback=callback, progress=progress, x_true=x_true,
        )
