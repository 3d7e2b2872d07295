"""The steps the solvers' algorithm boxes share, one home each, named as the papers write them.

    gradient_descent     x <- x - 2 lambda A^H (A x - y), K times           (DDGM's Eq. 4, its inner loop)
    stable_step_size     lambda = step_fraction / ||A||^2 < 1 / ||A||^2     (the step that descent may take)
    eq2_step             x - alpha sigma eps + sqrt(alpha beta) sigma z      (DDGM's Eq. 2, DPS's prior step)
    guidance_gradient    grad_x ||A x0_hat(x) - y||^2 through the prior       (DPS, PaDIS, Dirac's guidance)
    langevin_step        x + (alpha / 2) s + sqrt(alpha) z                    (PaDIS's unadjusted Langevin step)
    per_sample           a (B,) step size shaped to scale a batch x            (the per-sample zeta_t, eta_t)
    batch_shape          the leading axes of x before its per-sample shape     (x of shape (*batch, *in_shape))

A solver file imports these, `start` and `gaussian_like`, and keeps only its own loop.
"""

from __future__ import annotations

import math

import torch

from .tracking import gaussian_like

__all__ = [
    "batch_shape",
    "eq2_step",
    "gaussian_like",
    "gradient_descent",
    "guidance_gradient",
    "langevin_step",
    "per_sample",
    "stable_step_size",
]


def stable_step_size(A, step_size: float | None, step_fraction: float) -> float:
    """lambda for x <- x - lambda grad ||A x - y||^2 = x - 2 lambda A^H (A x - y).

    The iteration converges for 0 < lambda < 1 / ||A||^2; the default is step_fraction / ||A||^2.
    An explicit step size at or above the bound raises.
    """
    if not 0 < step_fraction < 1:
        raise ValueError(f"step_fraction must lie in (0, 1), got {step_fraction}")
    bound = 1.0 / A.norm() ** 2
    if step_size is None:
        return step_fraction * bound
    if not 0 < step_size < bound:
        raise ValueError(
            f"step size {step_size:.4g} is outside the stability bound (0, 1/||A||^2) = (0, {bound:.4g}) "
            f"for {A!r}; gradient descent on ||A x - y||^2 would diverge."
        )
    return step_size


def gradient_descent(x: torch.Tensor, y: torch.Tensor, A, step_size: float, steps: int) -> torch.Tensor:
    """`steps` iterations of x <- x - 2 lambda A^H (A x - y)."""
    for _ in range(steps):
        x = x - 2 * step_size * (A.H @ (A @ x - y))
    return x


def eq2_step(x, eps, z, sigma: float, alpha: float, beta: float) -> torch.Tensor:
    """DDGM's Eq. 2: x_{n+1} = x_n - alpha sigma_n eps(x_n) + sqrt(alpha beta) sigma_n z."""
    return x - alpha * sigma * eps + math.sqrt(alpha * beta) * sigma * z


def guidance_gradient(x, y, A, denoise, sigma):
    """(x0_hat, grad_x ||A x0_hat(x) - y||^2, ||A x0_hat - y||) for each sample, backpropagating
    through the prior once; x0_hat is the prior's posterior mean at (x, sigma)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        x0 = denoise(x, sigma)
        residual = A @ x0 - y
        squared = residual.abs().pow(2).reshape(residual.shape[0], -1).sum(dim=1)
        (grad,) = torch.autograd.grad(squared.sum(), x)
    return x0.detach(), grad, squared.detach().sqrt()


def langevin_step(x: torch.Tensor, s: torch.Tensor, z: torch.Tensor, alpha: float) -> torch.Tensor:
    """x + (alpha / 2) s + sqrt(alpha) z, z ~ N(0, I): one unadjusted Langevin step on log p_sigma."""
    return x + (alpha / 2) * s + math.sqrt(alpha) * z


def batch_shape(x: torch.Tensor, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The batch axes of x = (*batch, *shape): x.shape without its trailing len(shape) axes."""
    return tuple(x.shape[: x.ndim - len(shape)])


def per_sample(step: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A step size per sample (shape (B,)) shaped (B, 1, ..., 1) to scale each sample of x."""
    return step.reshape(-1, *([1] * (x.ndim - 1)))
