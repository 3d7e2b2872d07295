"""`norm(A)`: the spectral norm ||A||_2 = sigma_max(A), exact where the structure gives it cheaply,
otherwise iteratively on A^H A: power iteration, or its Krylov acceleration (Golub-Kahan-Lanczos),
the default. Cached per operator instance."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from ..algebra import Adjoint, Scaled, Transpose
from ..base import LinearOperator, precision_of
from ..kron import Kron
from ..memo import MemoKey, recall, store
from ..rules import norm_rules
from .bases import is_coisometry, is_isometry
from .svd_dispatch import structured_svd

#: norm rules (`linops.rules.norm_rules`): fn(op) -> float | None, exact values of ||op||_2 from the
#: structure; each operator module registers its own types' rules, the generic nodes' rules are here


@dataclass(frozen=True)
class PowerIteration:
    """Power iteration on A^H A from a seeded Gaussian start x_0:

        x_{k+1} = A^H A x_k / ||A^H A x_k||,   sigma_k = ||A x_k||  (x_k unit),

    sigma_k increases to sigma_max (at the rate (sigma_2 / sigma_1)^(2k)); stops when
    |sigma_k - sigma_{k-1}| <= tol sigma_k, or after max_iter steps with a RuntimeWarning.
    """

    tol: float = 1e-6
    max_iter: int = 1000
    seed: int = 0

    def __post_init__(self):
        if not self.tol > 0 or self.max_iter < 1:
            raise ValueError(f"PowerIteration needs tol > 0 and max_iter >= 1, got {self}")


@dataclass(frozen=True)
class Lanczos:
    """Golub-Kahan-Lanczos bidiagonalisation from a seeded Gaussian start v_1 (full reorthogonalisation):

        A V_k = U_k B_k,   B_k upper bidiagonal (alpha_1..alpha_k on the diagonal, beta_1..beta_{k-1} above),

    sigma_max(B_k) increases to sigma_max(A). It spans the same Krylov space of A^H A as k power steps
    but takes the best vector in it, so a cluster of nearly equal top singular values (a blur) costs
    tens of steps instead of thousands. Stops when |sigma_k - sigma_{k-1}| <= tol sigma_k, on
    breakdown (an invariant subspace: exact), or after max_iter steps with a RuntimeWarning.
    Memory: max_iter vectors of each of the input and output sizes.
    """

    tol: float = 1e-10
    max_iter: int = 300
    seed: int = 0

    def __post_init__(self):
        if not self.tol > 0 or self.max_iter < 1:
            raise ValueError(f"Lanczos needs tol > 0 and max_iter >= 1, got {self}")


@dataclass(frozen=True)
class NormOf(MemoKey):
    """Memo key of `norm(A, algorithm)` (algorithm None: the default choice)."""

    algorithm: PowerIteration | Lanczos | None


def norm(A: LinearOperator, algorithm: PowerIteration | Lanczos | None = None) -> float:
    """||A||_2, the largest singular value of A.

    algorithm None: an exact structural rule if one applies (`linops.rules.norm_rules`: a diagonal's
    max |w|, a circular blur's max |k^|, isometries: 1, c A: |c| ||A||, A ⊗ B: ||A|| ||B||, ...), else the
    largest value of a structured SVD, else `Lanczos()`. An explicit `PowerIteration(...)` or
    `Lanczos(...)` always iterates. Cached on the instance per algorithm value.
    """
    if algorithm is not None and not isinstance(algorithm, (PowerIteration, Lanczos)):
        raise TypeError(f"norm: algorithm must be PowerIteration(...), Lanczos(...) or None, got {algorithm!r}")
    key = NormOf(algorithm)
    out = recall(A, key)
    if out is not None:
        return out
    if algorithm is None:
        out = norm_rules.rewrite(A)
        if out is None:
            structured = structured_svd(A)
            if structured is not None:
                out = float(structured.s.max())
        if out is None:
            out = lanczos(A, Lanczos())
    elif isinstance(algorithm, Lanczos):
        out = lanczos(A, algorithm)
    else:
        out = power_iteration(A, algorithm)
    return store(A, key, float(out))


def _start(A: LinearOperator, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    real = A.dtype.to_real() if A.dtype.is_complex else A.dtype
    x = torch.randn(A.in_shape, dtype=real, generator=g)
    if A.dtype.is_complex:
        x = torch.complex(x, torch.randn(A.in_shape, dtype=real, generator=g))
    x = x.to(A.device)
    return x / torch.linalg.vector_norm(x)


def lanczos(A: LinearOperator, algorithm: Lanczos) -> float:
    """sigma_max(A) by Golub-Kahan-Lanczos bidiagonalisation (see `Lanczos`)."""
    H = A.H
    steps = min(algorithm.max_iter, min(A.shape))
    v = _start(A, algorithm.seed).reshape(-1)
    V, U, alphas, betas = [v], [], [], []
    sigma = 0.0

    def project_out(w, basis):
        for _ in range(2):  # classical Gram-Schmidt, twice
            Bm = torch.stack(basis, 1)
            w = w - Bm @ (Bm.mH @ w)
        return w

    with torch.no_grad():
        p = A.apply(v.reshape(A.in_shape)).reshape(-1)
        for k in range(1, steps + 1):
            if U:
                p = project_out(p, U)
            alpha = torch.linalg.vector_norm(p)
            if not math.isfinite(float(alpha)):
                raise FloatingPointError(f"Lanczos on {A!r}: ||A v|| is {float(alpha)} at iteration {k}")
            alphas.append(float(alpha))
            B = torch.diag(torch.tensor(alphas, dtype=torch.float64))
            if betas:
                B += torch.diag(torch.tensor(betas, dtype=torch.float64), 1)
            sigma_new = float(torch.linalg.matrix_norm(B, ord=2))
            converged = abs(sigma_new - sigma) <= algorithm.tol * sigma_new
            sigma = sigma_new
            tiny = torch.finfo(precision_of(A.dtype)).eps * max(sigma, torch.finfo(torch.float64).tiny)
            if converged or float(alpha) <= tiny:
                return sigma
            if k == steps:
                if steps < min(A.shape):
                    warnings.warn(
                        f"Lanczos on {A!r} did not reach tol={algorithm.tol} in {steps} steps; returning {sigma:.6g}",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                return sigma  # with steps = min(m, n) the Krylov space is complete: exact
            u = p / alpha
            U.append(u)
            w = project_out(H.apply(u.reshape(A.out_shape)).reshape(-1) - alpha * V[-1], V)
            beta = torch.linalg.vector_norm(w)
            if float(beta) <= tiny:
                return sigma  # invariant subspace: B_k holds the top singular value exactly
            betas.append(float(beta))
            V.append(w / beta)
            p = A.apply(V[-1].reshape(A.in_shape)).reshape(-1) - beta * u
    return sigma


def power_iteration(A: LinearOperator, algorithm: PowerIteration) -> float:
    """sigma_max(A) by power iteration on A^H A (see `PowerIteration`)."""
    x = _start(A, algorithm.seed)
    H = A.H
    sigma = 0.0
    with torch.no_grad():
        for k in range(1, algorithm.max_iter + 1):
            y = A.apply(x)
            sigma_new = float(torch.linalg.vector_norm(y))
            if not math.isfinite(sigma_new):
                raise FloatingPointError(f"power iteration on {A!r}: ||A x|| is {sigma_new} at iteration {k}")
            if abs(sigma_new - sigma) <= algorithm.tol * sigma_new:
                return sigma_new  # converged (or A x = 0 with x random: A = 0)
            sigma = sigma_new
            z = H.apply(y)
            nz = torch.linalg.vector_norm(z)
            if float(nz) == 0.0:
                return sigma
            x = z / nz
    warnings.warn(
        f"power iteration on {A!r} did not reach tol={algorithm.tol} in {algorithm.max_iter} iterations; "
        f"returning {sigma:.6g}",
        RuntimeWarning,
        stacklevel=3,
    )
    return sigma


# ----------------------------------------------------------------------------------------------
# exact rules


@norm_rules.register(LinearOperator)
def _isometry_norm(op):
    """||W|| = 1 for W^H W = I or W W^H = I."""
    return 1.0 if is_isometry(op) or is_coisometry(op) else None


@norm_rules.register(Scaled)
def _scaled_norm(op):
    """||c A|| = |c| ||A||."""
    return abs(op.c) * norm(op.op)


@norm_rules.register(Adjoint)
def _adjoint_norm(op):
    """||A^H|| = ||A||."""
    return norm(op.op)


@norm_rules.register(Transpose)
def _transpose_norm(op):
    """||A^T|| = ||A||."""
    return norm(op.op)


@norm_rules.register(Kron)
def _kron_norm(op):
    """||A ⊗ B|| = ||A|| ||B||."""
    return norm(op.a) * norm(op.b)
