"""Algebraic reconstruction: gradient descent on ||A x - y||^2 from x = 0, stopped early."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_int, check_optional_real, check_real
from ..start import start
from ..steps import gradient_descent, stable_step_size
from ..tracking import Result


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
        run = start("Algebraic", y, A, steps=self.iterations, callback=callback, progress=progress, x_true=x_true)
        y, track = run.y, run.track
        lam = stable_step_size(A, self.step_size, self.step_fraction)
        x = run.zeros()
        for k in range(self.iterations):
            x = gradient_descent(x, y, A, lam, 1)
            track.gradients()
            track.step(k, 0.0, x)
        return track.result(x)
