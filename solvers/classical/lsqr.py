"""LSQR stopped early: the iteration count is the regularizer."""

from __future__ import annotations

from dataclasses import dataclass

from linops.spectral import LSQR

from ._krylov import EarlyStoppedKrylov


@dataclass(frozen=True)
class LSQRReconstruction(EarlyStoppedKrylov):
    """K iterations of LSQR (Paige & Saunders 1982) on min ||A x - y||^2 + damping ||x||^2 from x_0 = 0.

    Golub-Kahan bidiagonalisation from beta_1 u_1 = y, alpha_1 v_1 = A^H u_1:

        beta_{k+1} u_{k+1} = A v_k - alpha_k u_k,     alpha_{k+1} v_{k+1} = A^H u_{k+1} - beta_{k+1} v_k,

    and x_k = V_k z_k with z_k the least-squares solution of the small bidiagonal problem
    min ||B_k z - beta_1 e_1|| (updated by one plane rotation per step). In exact arithmetic x_k is CGLS's
    iterate (the same Krylov space, the same minimised residual); in floating point LSQR loses less to
    rounding on ill-conditioned A. Stopping at K is the regularizer; as K grows, x_K tends to A^+ y.

    The run also stops once ||A^H (y - A x_k) - damping x_k|| <= max(tol, 16 eps) ||A^H y|| (at the latest
    when the Krylov space is exhausted to rounding: see `krylov_tolerance`); the trace then holds fewer than
    `iterations` steps. Every iterate is a step of the trace (sigma = 0).
    """

    algorithm = LSQR
