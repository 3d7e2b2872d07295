"""What a solver is, in code: a frozen dataclass of hyperparameters (checked when it is built) that is
called on a problem and returns a `Result` (the estimate and its trace).

    result = solver(y, A, prior, *, generator=None, callback=None, progress=True, x_true=None)

y has shape (B, *A.out_shape); the result's x has shape (B, *A.in_shape). `prior` is what the method
needs (a denoiser for DDGM / DDRM / DPS / PaDIS, a degradation-aware Phi for Dirac, a conditional
diffusion prior for CVDM) and is ignored by the classical baselines. Randomness comes only from
`generator`; `callback` receives a `StepRecord` after every step; `x_true` adds MSE / PSNR / SSIM to the
trace. A solver that works in its prior's units also takes `convention=` (the data's units, see
`solvers.problem`). `DDGMUnconditional` draws images from a prior alone and is not a solver in this sense.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from .tracking import Result, StepRecord

__all__ = ["Solver"]


@runtime_checkable
class Solver(Protocol):
    """The call every solver shares (see the module docstring). `isinstance(obj, Solver)` checks that
    obj is callable; `tests/solvers/test_solver_protocol.py` checks every solver's signature against
    this one."""

    def __call__(
        self,
        y,
        A,
        prior,
        *,
        generator: torch.Generator | None = None,
        callback: Callable[[StepRecord], None] | None = None,
        progress: bool = True,
        x_true: torch.Tensor | None = None,
    ) -> Result: ...
