"""Algebraic reconstruction: gradient descent on ||A x - y||^2 from x = 0, stopped early."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..tracking import Result, Tracker


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


@dataclass(frozen=True)
class AlgebraicReconstruction:
    """K steps of gradient descent on ||A x - y||^2 from x = 0 (DDGM's baseline, Eq. 4); early
    stopping is the regularizer (the paper's best K is 100).

        x = 0;  repeat K times:  x <- x - lambda grad_x ||A x - y||^2
    """

    iterations: int = 100
    step_size: float | None = None
    step_fraction: float = 0.9

    def __post_init__(self):
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(f"iterations must be a non-negative int, got {self.iterations!r}")

    def __call__(self, y, A, prior=None, *, generator=None, callback=None, progress=True, x_true=None) -> Result:
        lam = stable_step_size(A, self.step_size, self.step_fraction)
        track = Tracker("Algebraic", self.iterations, y, A, x_true=x_true, callback=callback, progress=progress)
        x = y.new_zeros((*y.shape[: y.ndim - len(A.out_shape)], *A.in_shape))
        for k in range(self.iterations):
            x = gradient_descent(x, y, A, lam, 1)
            track.gradients()
            track.step(k, 0.0, x)
        return track.result(x)
