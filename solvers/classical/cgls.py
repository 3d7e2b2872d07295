"""CGLS stopped early: the iteration count is the regularizer."""

from __future__ import annotations

from dataclasses import dataclass

from linops.spectral import CGLS

from ._krylov import EarlyStoppedKrylov


@dataclass(frozen=True)
class CGLSReconstruction(EarlyStoppedKrylov):
    """K iterations of conjugate gradients on the normal equations (Hestenes & Stiefel 1952),

        (A^H A + damping I) x = A^H y,     x_0 = 0,

    applying A and A^H once per iteration (`linops.solve` with `CGLS`). Iterate x_k minimises
    ||A x - y||^2 + damping ||x||^2 over the Krylov space span{A^H y, (A^H A) A^H y, ..., (A^H A)^(k-1) A^H y},
    so the early iterates fit the large singular directions first: stopping at K is the regularizer
    (semi-convergence: the error to the truth first falls, then grows as noise in the small singular
    directions is fitted). As K grows, x_K tends to the minimum-norm least-squares solution A^+ y (damping 0).

    The run also stops once ||A^H (y - A x_k) - damping x_k|| <= max(tol, 16 eps) ||A^H y|| (at the latest
    when the Krylov space is exhausted to rounding: see `krylov_tolerance`); the trace then holds fewer than
    `iterations` steps. Every iterate is a step of the trace (sigma = 0).
    """

    algorithm = CGLS
