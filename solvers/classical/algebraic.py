"""Algebraic reconstruction: gradient descent on ||A x - y||^2 from x = 0, stopped early."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import check_int, check_optional_real, check_real
from ..problem import check_problem
from ..tracking import Result


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
        check_int("AlgebraicReconstruction", "iterations", self.iterations, 0)
        check_optional_real("AlgebraicReconstruction", "step_size", self.step_size, 0, low_open=True)
        check_real("AlgebraicReconstruction", "step_fraction", self.step_fraction, 0, 1, low_open=True, high_open=True)

    def __call__(self, y, A, prior=None, *, generator=None, callback=None, progress=True, x_true=None) -> Result:
        problem = check_problem("Algebraic", y, A, x_true=x_true)
        y = problem.y
        lam = stable_step_size(A, self.step_size, self.step_fraction)
        track = problem.track(self.iterations, callback=callback, progress=progress)
        x = problem.zeros()
        for k in range(self.iterations):
            x = gradient_descent(x, y, A, lam, 1)
            track.gradients()
            track.step(k, 0.0, x)
        return track.result(x)
