"""The shared loop of the early-stopped Krylov baselines: `linops.solve` with a per-iteration record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from linops.base import precision_of
from linops.spectral import CGLS, LSQR, solve

from ..tracking import Result, Tracker


def check_iterations(owner: str, iterations) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"{owner}: iterations must be a non-negative int, got {iterations!r}")


def check_damping_and_tol(owner: str, damping: float, tol: float) -> None:
    if not damping >= 0 or not tol >= 0:
        raise ValueError(f"{owner}: damping and tol must be >= 0, got damping={damping}, tol={tol}")


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
    algorithm = algorithm(tol=krylov_tolerance(tol, A), max_iter=iterations)
    track = Tracker(name, algorithm.max_iter, y, A, x_true=x_true, callback=callback, progress=progress)

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
