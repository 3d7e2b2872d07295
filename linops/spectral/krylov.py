"""`solve(A, b, algorithm)`: Krylov solvers for linear systems and least squares, batched.

    CG     (A + lambda I) x = b for Hermitian positive (semi)definite A        (Hestenes-Stiefel 1952)
    CGLS   min ||A x - b||^2 + lambda ||x||^2, CG on (A^H A + lambda I) x = A^H b without forming it
    LSQR   the same problem by Golub-Kahan bidiagonalisation (Paige-Saunders 1982), better conditioned
           in floating point; with damping it runs on the stacked operator [A; sqrt(lambda) I]

`damping` = lambda >= 0 (Tikhonov) means the same problem for all three: CG(A^H A, A^H b) with
damping lambda equals CGLS(A, b) and LSQR(A, b) with damping lambda.

b has shape (*batch, *A.out_shape): every leading index is an independent system, with its own step
sizes and its own stopping test; a system that has converged stops changing. Started from x0 = 0,
CGLS and LSQR converge to the minimum-norm least-squares solution (their iterates stay in
range(A^H)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..base import LinearOperator


@dataclass(frozen=True)
class _Krylov:
    tol: float = 1e-6
    atol: float = 0.0
    max_iter: int | None = None

    def __post_init__(self):
        if self.tol < 0 or self.atol < 0:
            raise ValueError(f"{type(self).__name__}: tol and atol must be >= 0, got {self.tol}, {self.atol}")
        if self.max_iter is not None and self.max_iter < 0:
            raise ValueError(f"{type(self).__name__}: max_iter must be >= 0, got {self.max_iter}")

    def iterations(self, n: int) -> int:
        return 2 * n if self.max_iter is None else self.max_iter


@dataclass(frozen=True)
class CG(_Krylov):
    """Conjugate gradients for (A + damping I) x = b, A Hermitian positive (semi)definite.

    Stops when ||b - (A + damping I) x|| <= max(tol ||b||, atol), or after max_iter steps
    (default: twice the number of unknowns). `residuals` records ||b - (A + damping I) x_k||
    (by the recurrence r_{k+1} = r_k - alpha_k A p_k).
    """


@dataclass(frozen=True)
class CGLS(_Krylov):
    """CG on the normal equations (A^H A + damping I) x = A^H b, applying A and A^H once per step.

    Stops when the normal-equations residual ||A^H (b - A x) - damping x|| <= max(tol ||A^H b||, atol)
    (the relative reference does not depend on x0); `residuals` records that quantity.
    """


@dataclass(frozen=True)
class LSQR(_Krylov):
    """LSQR for min ||A x - b||^2 + damping ||x||^2.

    Same stopping test and recorded quantity as CGLS (the normal-equations residual), here from
    LSQR's recurrence ||K^H r_k|| = phi_bar_k alpha_k |c_k| for K = [A; sqrt(damping) I].
    """


Algorithm = CG | CGLS | LSQR


@dataclass(frozen=True, eq=False)
class SolveResult:
    """x: the solution, shape (*batch, *in_shape); residuals: (iterations + 1, *batch), the residual
    norm each algorithm drives to zero (see CG, CGLS, LSQR); iterations: steps taken; converged:
    (*batch) bool, whether each system met the tolerance."""

    x: torch.Tensor
    residuals: torch.Tensor
    iterations: int
    converged: torch.Tensor


def solve(
    A: LinearOperator,
    b: torch.Tensor,
    algorithm: Algorithm | None = None,
    *,
    damping: float = 0.0,
    x0: torch.Tensor | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> SolveResult:
    """Solve A x = b (CG) or min ||A x - b||^2 + damping ||x||^2 (CGLS, LSQR; default LSQR()).

    b: (*batch, *A.out_shape); x0: (*batch, *A.in_shape) or None (zero). `callback(k, x_k)`, if given,
    is called after every iteration k = 1, 2, ... with the iterate x_k of shape (*batch, *A.in_shape)
    (do not modify it). Raises ValueError on
    shape mismatch, on CG with a non-square operator or an indefinite one, and FloatingPointError
    with the iteration number when NaN or Inf appears.
    """
    algorithm = LSQR() if algorithm is None else algorithm
    if not isinstance(algorithm, (CG, CGLS, LSQR)):
        raise TypeError(f"solve: algorithm must be CG(...), CGLS(...) or LSQR(...), got {algorithm!r}")
    if damping < 0:
        raise ValueError(f"solve: damping must be >= 0, got {damping}")
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"solve: b must be a torch tensor, got {type(b).__name__}")
    k = len(A.out_shape)
    if b.ndim < k or tuple(b.shape[b.ndim - k :]) != A.out_shape:
        expected = ", ".join(map(str, A.out_shape))
        raise ValueError(f"solve: b must have shape (*batch, {expected}) for {A!r}, got {tuple(b.shape)}")
    batch = tuple(b.shape[: b.ndim - k])
    if isinstance(algorithm, CG) and A.in_shape != A.out_shape:
        raise ValueError(
            f"CG needs a square Hermitian positive definite operator, but {A!r} maps {A.in_shape} -> "
            f"{A.out_shape}; use CGLS() or LSQR() for least squares."
        )
    if A.dtype.is_complex and not b.is_complex():
        b = b.to(A.dtype)
    N = math.prod(batch)
    bf = b.reshape(N, *A.out_shape)
    if x0 is None:
        xf = torch.zeros((N, *A.in_shape), dtype=bf.dtype, device=bf.device)
    else:
        if tuple(x0.shape) != (*batch, *A.in_shape):
            raise ValueError(f"solve: x0 must have shape {(*batch, *A.in_shape)}, got {tuple(x0.shape)}")
        xf = x0.reshape(N, *A.in_shape).to(bf.dtype)
    runner = {CG: _cg, CGLS: _cgls, LSQR: _lsqr}[type(algorithm)]
    on_step = None if callback is None else lambda k, x: callback(k, x.reshape(*batch, *A.in_shape))
    x, history, converged = runner(A, bf, xf, algorithm, float(damping), x0 is not None, on_step)
    residuals = torch.stack(history).reshape(len(history), *batch)
    return SolveResult(x.reshape(*batch, *A.in_shape), residuals, len(history) - 1, converged.reshape(batch))


# ----------------------------------------------------------------------------------------------
# per-sample helpers on (N, ...) tensors


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a_i, b_i> = sum conj(a_i) b_i per sample."""
    return (a.conj() * b).reshape(a.shape[0], -1).sum(1)


def _norm(a: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(a.reshape(a.shape[0], -1), dim=1)


def _col(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample scalars (N,) shaped to broadcast against like (N, ...)."""
    return c.reshape(-1, *([1] * (like.ndim - 1)))


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, and 0 where den == 0 (a converged or exhausted system)."""
    return torch.where(den != 0, num / torch.where(den != 0, den, 1), torch.zeros_like(num))


def _check_finite(name: str, k: int, *values: torch.Tensor) -> None:
    for v in values:
        if not bool(torch.isfinite(v).all()):
            raise FloatingPointError(f"{name}: NaN or Inf at iteration {k}")


def _threshold(alg: _Krylov, reference: torch.Tensor) -> torch.Tensor:
    return torch.clamp(alg.tol * reference, min=alg.atol)


# ----------------------------------------------------------------------------------------------
# CG


def _cg(A, b, x, alg: CG, damping: float, x0_given: bool, on_step=None):
    op = lambda v: A.apply(v) + damping * v if damping else A.apply(v)
    r = b - op(x) if x0_given else b  # x0 = 0: no apply
    p = r.clone()
    rr = _dot(r, r).real
    stop = _threshold(alg, _norm(b))
    history = [rr.sqrt()]
    converged = history[0] <= stop
    for k in range(1, alg.iterations(math.prod(A.in_shape)) + 1):
        if bool(converged.all()):
            break
        active = ~converged
        q = op(p)
        pq = _dot(p, q).real
        if bool((active & (pq <= 0) & (rr > 0)).any()):
            raise ValueError(
                f"CG: p^H (A + damping I) p <= 0 at iteration {k}: {A!r} is not positive definite; "
                "use CGLS() or LSQR() (least squares) instead."
            )
        alpha = torch.where(active, _safe_div(rr, pq), 0)
        x = x + _col(alpha, x) * p
        r = r - _col(alpha, r) * q
        rr_new = _dot(r, r).real
        beta = torch.where(active, _safe_div(rr_new, rr), 0)
        p = r + _col(beta, p) * p
        rr = torch.where(active, rr_new, rr)
        _check_finite("CG", k, rr, alpha)
        history.append(rr.sqrt())
        converged = converged | (history[-1] <= stop)
        if on_step is not None:
            on_step(k, x)
    return x, history, converged


# ----------------------------------------------------------------------------------------------
# CGLS


def _normal_reference(A, b, x0_given: bool, initial: torch.Tensor) -> torch.Tensor:
    """||A^H b|| per sample: the normal residual at x = 0 (already known when x0 is zero)."""
    return _norm(A.H.apply(b)) if x0_given else initial


def _cgls(A, b, x, alg: CGLS, damping: float, x0_given: bool, on_step=None):
    H = A.H
    r = b - A.apply(x)
    s = H.apply(r) - damping * x
    p = s.clone()
    gamma = _dot(s, s).real
    history = [gamma.sqrt()]
    stop = _threshold(alg, _normal_reference(A, b, x0_given, history[0]))
    converged = history[0] <= stop
    for k in range(1, alg.iterations(math.prod(A.in_shape)) + 1):
        if bool(converged.all()):
            break
        active = ~converged
        q = A.apply(p)
        delta = _dot(q, q).real + damping * _dot(p, p).real
        alpha = torch.where(active, _safe_div(gamma, delta), 0)
        x = x + _col(alpha, x) * p
        r = r - _col(alpha, r) * q
        s = H.apply(r) - damping * x
        gamma_new = _dot(s, s).real
        beta = torch.where(active, _safe_div(gamma_new, gamma), 0)
        p = s + _col(beta, p) * p
        gamma = torch.where(active, gamma_new, gamma)
        _check_finite("CGLS", k, gamma, alpha)
        history.append(gamma.sqrt())
        converged = converged | (history[-1] <= stop)
        if on_step is not None:
            on_step(k, x)
    return x, history, converged


# ----------------------------------------------------------------------------------------------
# LSQR on K = [A; delta I], delta = sqrt(damping), right-hand side [b - A x0; -delta x0]


def _lsqr(A, b, x0, alg: LSQR, damping: float, x0_given: bool, on_step=None):
    H = A.H
    delta = math.sqrt(damping)

    def K(v):
        return (A.apply(v), delta * v) if delta else (A.apply(v), None)

    def KH(u):
        out = H.apply(u[0])
        return out + delta * u[1] if delta else out

    def scale_pair(u, c):
        return (_col(c, u[0]) * u[0], None if u[1] is None else _col(c, u[1]) * u[1])

    def pair_norm(u):
        n2 = _norm(u[0]) ** 2
        return (n2 + _norm(u[1]) ** 2).sqrt() if u[1] is not None else n2.sqrt()

    u = (b - A.apply(x0), -delta * x0 if delta else None)
    beta = pair_norm(u)
    u = scale_pair(u, _safe_div(torch.ones_like(beta), beta))
    v = KH(u)
    alpha = _norm(v)
    v = _col(_safe_div(torch.ones_like(alpha), alpha), v) * v
    w = v.clone()
    x = x0
    phi_bar, rho_bar = beta, alpha
    history = [alpha * beta]  # ||K^H r_0||
    stop = _threshold(alg, _normal_reference(A, b, x0_given, history[0]))
    converged = history[0] <= stop
    # Lucky breakdown: alpha or beta at rounding level relative to the largest seen means the Krylov space
    # is exhausted and x is the least-squares solution; going on would normalise rounding noise into new
    # directions and diverge (seen past the rank of a rank-deficient A with tol = 0). Rounding accumulates
    # in the bidiagonalisation (alpha ~ 1e-13 relative at an exact breakdown in float64), hence eps^(3/4).
    tiny = torch.finfo(alpha.dtype).eps ** 0.75
    scale = torch.maximum(alpha, beta)
    for k in range(1, alg.iterations(math.prod(A.in_shape)) + 1):
        if bool(converged.all()):
            break
        active = ~converged
        # bidiagonalisation: beta u = K v - alpha u, alpha v = K^H u - beta v
        Kv = K(v)
        u = (Kv[0] - _col(alpha, u[0]) * u[0], None if u[1] is None else Kv[1] - _col(alpha, u[1]) * u[1])
        beta = pair_norm(u)
        u = scale_pair(u, _safe_div(torch.ones_like(beta), beta))
        v_new = KH(u) - _col(beta, v) * v
        alpha = _norm(v_new)
        v = _col(_safe_div(torch.ones_like(alpha), alpha), v_new) * v_new
        # plane rotation eliminating beta
        rho = torch.sqrt(rho_bar**2 + beta**2)
        c, s = _safe_div(rho_bar, rho), _safe_div(beta, rho)
        theta = s * alpha
        rho_bar = -c * alpha
        phi = c * phi_bar
        phi_bar = s * phi_bar
        step = torch.where(active, _safe_div(phi, rho), 0)
        x = x + _col(step, x) * w
        w = v - _col(_safe_div(theta, rho), w) * w
        _check_finite("LSQR", k, phi_bar, step, alpha, beta)
        history.append(torch.where(active, phi_bar * alpha * c.abs(), history[-1]))
        scale = torch.maximum(scale, torch.maximum(alpha, beta))
        breakdown = (alpha <= tiny * scale) | (beta <= tiny * scale)
        converged = converged | (history[-1] <= stop) | breakdown
        if on_step is not None:
            on_step(k, x)
    return x, history, converged
