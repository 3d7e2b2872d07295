"""A minimal batched conjugate gradient for the symmetric positive (semi-)definite systems of
the Gaussian posterior (S u = b with S = A Sigma A^H + sigma_y^2 I), one system per sample.

Private: `linops.solve` is the project's general solver; this one exists so the analytic priors
need nothing beyond an operator's apply and adjoint.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Re <u, v> per sample (the real inner product, also right for complex data)."""
    return (u.conj() * v).real.reshape(u.shape[0], -1).sum(dim=1)


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, rtol: float, max_iter: int
) -> torch.Tensor:
    """Solve apply(u) = b for each sample u[i] (b of shape (N, ...)), to ||r_i|| <= rtol ||b_i||.

    Hestenes-Stiefel CG; converged samples are frozen. Raises RuntimeError, with the reached
    residual, when `max_iter` iterations are not enough.
    """
    u = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = _dot(r, r)
    target = rtol**2 * rs
    shape = (-1, *([1] * (b.ndim - 1)))
    for _ in range(max_iter):
        active = rs > target
        if not bool(active.any()):
            return u
        ap = apply(p)
        pap = _dot(p, ap)
        alpha = torch.where(active & (pap > 0), rs / torch.where(pap > 0, pap, 1), 0)
        u = u + alpha.reshape(shape) * p
        r = r - alpha.reshape(shape) * ap
        rs_new = _dot(r, r)
        beta = torch.where(active & (rs > 0), rs_new / torch.where(rs > 0, rs, 1), 0)
        p = r + beta.reshape(shape) * p
        rs = torch.where(active, rs_new, rs)
    if bool((rs > target).any()):
        worst = float((rs / torch.where(target > 0, target, 1)).max().sqrt()) * rtol
        raise RuntimeError(
            f"conjugate gradient did not reach rtol={rtol:g} in {max_iter} iterations (relative residual {worst:.3g}); "
            "raise max_iter, loosen rtol, or use the dense method for a small problem."
        )
    return u
