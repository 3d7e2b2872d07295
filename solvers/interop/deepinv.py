"""deepinv interop for solvers: any solver as a deepinv `Reconstructor`. deepinv is imported here only.

    model = as_reconstructor(DDRM(...), prior, sigma_y=...)   # any solver(y, A, prior, *, generator, ...)
    x_hat = model(y, physics)                                  # deepinv's call: forward(y, physics)
    x_hat = model(y, physics, seed=0)                          # reproducible: a fresh torch.Generator per call

The physics becomes a linops operator: a physics made by `linops.interop.deepinv.to_deepinv(A)` gives back
A itself (with its structured SVD and cached norm), any other deepinv `LinearPhysics` is wrapped by
`from_deepinv` (a fresh wrapper per call, since deepinv physics are mutable; A x = physics.A(x) and
A^H y = physics.A_adjoint(y), the noise model left out). The solver's hyperparameters, including the
measurement noise level a solver may take (DDRM's sigma_y), are the solver's own: they are not read
from the physics' noise model.
"""

from __future__ import annotations

import torch
from deepinv.models import Reconstructor

from linops.base import LinearOperator
from linops.interop.deepinv import DecomposableOperatorPhysics, OperatorPhysics, from_deepinv

from ..tracking import Result


def operator_of(physics, y: torch.Tensor, in_shape=None) -> LinearOperator:
    """The linops operator behind a deepinv physics, for measurements y of shape (B, *out_shape).

    Our own operator when the physics came from `to_deepinv`; otherwise `from_deepinv(physics, in_shape)`
    in y's precision and device, with in_shape (default) read off the shape of physics.A_adjoint(y).
    """
    if isinstance(physics, (OperatorPhysics, DecomposableOperatorPhysics)):
        return physics.op
    dtype = y.real.dtype if y.is_complex() else y.dtype
    if in_shape is None:
        with torch.no_grad():
            in_shape = tuple(physics.A_adjoint(y[:1]).shape[1:])
    return from_deepinv(physics, in_shape, dtype=dtype, device=y.device)


class SolverReconstructor(Reconstructor):
    """A solver and its prior as a deepinv `Reconstructor`: forward(y, physics) = solver(y, A, prior).x.

    `call_kwargs` go to every solver call (e.g. callback, x_true, or a solver's own keywords); keywords given
    to forward/reconstruct override them. Progress bars are off unless `progress=True` is passed. A prior that
    is an `nn.Module` is registered as a submodule, so `.to(device)` and `.eval()` reach it.
    """

    def __init__(self, solver, prior=None, *, in_shape=None, **call_kwargs):
        super().__init__()
        if not callable(solver):
            raise TypeError(f"as_reconstructor needs a solver callable as solver(y, A, prior, ...), got {solver!r}")
        self.solver = solver
        self.prior = prior
        self.in_shape = None if in_shape is None else tuple(int(n) for n in in_shape)
        self.call_kwargs = {"progress": False, **call_kwargs}

    def reconstruct(self, y: torch.Tensor, physics, *, seed: int | None = None, **kwargs) -> Result:
        """The solver's full `Result` (estimate and trace) for measurements y under `physics`.

        `seed` draws the solver's randomness from a fresh `torch.Generator(y.device).manual_seed(seed)`:
        the same seed gives the same result as the direct call solver(y, A, prior, generator=that generator).
        """
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"deepinv measurements must be a torch tensor, got {type(y).__name__}")
        call = {**self.call_kwargs, **kwargs}
        if seed is not None:
            if call.get("generator") is not None:
                raise ValueError("pass either seed or generator, not both")
            call["generator"] = torch.Generator(device=y.device).manual_seed(int(seed))
        A = operator_of(physics, y, self.in_shape)
        return self.solver(y, A, self.prior, **call)

    def forward(self, y: torch.Tensor, physics, *, seed: int | None = None, **kwargs) -> torch.Tensor:
        """x_hat = solver(y, A, prior).x with A the operator of `physics` (see `reconstruct`)."""
        return self.reconstruct(y, physics, seed=seed, **kwargs).x

    def extra_repr(self) -> str:
        return f"solver={self.solver!r}"


def as_reconstructor(solver, prior=None, **call_kwargs) -> SolverReconstructor:
    """Any solver (DDGM, DDRM, DPS, the classical baselines, ...) with its prior as a deepinv `Reconstructor`.

    `call_kwargs` are passed to every call of the solver; `in_shape=` fixes the image shape of physics
    that are not ours (default: read off physics.A_adjoint(y)).
    """
    return SolverReconstructor(solver, prior, **call_kwargs)
