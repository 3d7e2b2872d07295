"""`FunctionOperator`: a linear operator from two callables, the map and its adjoint.

    A = FunctionOperator(forward, adjoint, in_shape=(1, 8, 8), out_shape=(1, 4, 8), dtype=torch.float64)
    A @ x, A.H @ y, linops.solve(A, b, CG()), A.svd(), ...        # everything an operator offers

The counterpart of LinearMaps.jl's FunctionMap and pylops' FunctionOperator: the caller supplies the kernel
(and its adjoint), the base class the rest: shape checks, any number of leading batch dimensions, the algebra,
the dense view, the spectral toolkit and autograd, whose backward is the given adjoint (so a forward that torch
cannot differentiate, e.g. one that leaves torch, still composes with networks). lineax's
FunctionLinearOperator derives the transpose by autodiff instead; here it is given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..base import LinearOperator

Map = Callable[[torch.Tensor], torch.Tensor]


class FunctionOperator(LinearOperator):
    """The linear map A given by `forward`: x -> A x and `adjoint`: y -> A^H y, with

        <A x, y> = <x, A^H y>     for all x of shape in_shape, y of shape out_shape

    (the caller's promise; `linops.testing.dottest(A)` checks it). Both callables act on batches: forward takes
    x of shape (N, *in_shape) and returns (N, *out_shape), adjoint the reverse; a returned shape other than
    that raises ValueError naming the expected one. They follow their input's dtype and device (`.to()`
    changes only the declared dtype and device, never the callables).

    out_shape defaults to in_shape. self_adjoint=True declares A^H = A (then `adjoint` may be omitted and
    `A.H is A`). Copies share the callables; pickling needs module-level functions.
    """

    def __init__(
        self,
        forward: Map,
        adjoint: Map | None,
        in_shape,
        out_shape=None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        self_adjoint: bool = False,
        name: str | None = None,
    ):
        if not callable(forward):
            raise TypeError(f"FunctionOperator: forward must be callable, got {type(forward).__name__}")
        if adjoint is None and not self_adjoint:
            raise TypeError(
                "FunctionOperator: adjoint is None; pass the adjoint y -> A^H y, or self_adjoint=True if A^H = A"
            )
        if adjoint is not None and not callable(adjoint):
            raise TypeError(f"FunctionOperator: adjoint must be callable or None, got {type(adjoint).__name__}")
        super().__init__(in_shape, in_shape if out_shape is None else out_shape, dtype=dtype, device=device)
        if self_adjoint and self.in_shape != self.out_shape:
            raise ValueError(
                f"FunctionOperator: self_adjoint=True needs in_shape == out_shape, "
                f"got {self.in_shape} -> {self.out_shape}"
            )
        self.forward = forward
        self.adjoint = forward if adjoint is None else adjoint
        self.self_adjoint = bool(self_adjoint)
        self.name = name if name is not None else getattr(forward, "__name__", "function")

    @property
    def is_self_adjoint(self) -> bool:
        return self.self_adjoint

    def _apply(self, x):
        return self._checked(self.forward(x), (x.shape[0], *self.out_shape), "forward")

    def _adjoint(self, y):
        return self._checked(self.adjoint(y), (y.shape[0], *self.in_shape), "adjoint")

    def _checked(self, out, expected: tuple[int, ...], which: str) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{self!r}: {which} must return a torch tensor, got {type(out).__name__}")
        if tuple(out.shape) != expected:
            raise ValueError(
                f"{self!r}: {which} returned shape {tuple(out.shape)}, expected {expected} "
                f"(batch, *{'out' if which == 'forward' else 'in'}_shape)"
            )
        return out

    def __repr__(self):
        return f"FunctionOperator({self.name}, in_shape={self.in_shape}, out_shape={self.out_shape})"
