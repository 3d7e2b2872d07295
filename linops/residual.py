"""The data-fidelity gradient A^H (A x - y) in one call, fused where the operator's structure allows.

    r = linops.normal_residual(A, x, y)      # = A.H @ (A @ x - y), the gradient of 1/2 ||A x - y||^2

Outside autograd (neither x nor y needs a gradient) the first of these that applies computes it, with one
flat batch axis, x of shape (N, *A.in_shape) and y of shape (N, *A.out_shape):

    1. a backend kernel's `normal_residual` for type(A) and the tensors' device (the kernel table,
       linops/backends.py; CuPy: masks and diagonals in one kernel, projectors and blurs with the
       subtraction fused into the forward kernel, linops/cuda/residual.py)
    2. a torch rule in `normal_residual_rules`, keyed by the operator type (most specific first):
           Mask        m (x - y)              M^H M = M for m in {0, 1}: 2 passes instead of 3
           Diagonal    w (w x - y), real w
    3. the generic A^H (A x - y).

A kernel or rule returns None when it does not apply, and the next one is tried. With a graph, the generic
expression differentiates through the operators' own backward (the adjoint).
"""

from __future__ import annotations

import torch

from .backends import Layout, kernels
from .base import LinearOperator
from .operators.diagonal import Diagonal, Mask
from .rules import RuleTable

normal_residual_rules = RuleTable("normal residual", 1)


def normal_residual(A: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A^H (A x - y) for x of shape (*batch, *A.in_shape) and y of shape (*batch, *A.out_shape) (torch tensors).

    Uses the backend kernel or the first registered rule for type(A) that applies, else the generic
    A.H @ (A @ x - y).
    """
    batch = A._check_input(x)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (*batch, *A.out_shape):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"normal_residual with {A!r} and x of shape {tuple(x.shape)} expects y of shape "
                         f"{(*batch, *A.out_shape)}, got {got}.")  # fmt: skip
    if not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)):
        r = _fused(A, x.reshape(-1, *A.in_shape), y.reshape(-1, *A.out_shape))
        if r is not None:
            return r.reshape(x.shape)
    return A.H.apply(A.apply(x) - y)


def _fused(A: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """The backend kernel's fused residual, else the first torch rule that applies, else None."""
    kernel = kernels.lookup(A, x, Layout.BATCH, "normal_residual")
    if kernel is not None and (r := kernel.normal_residual(A, x, y)) is not None:
        return r
    for rule in normal_residual_rules.candidates(A):
        if (r := rule(A, x, y)) is not None:
            return r
    return None


def _real_inputs(A: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> bool:
    """x and y real with A's dtype: what the fused rules handle (anything else takes the generic path)."""
    return not A.dtype.is_complex and x.dtype == A.dtype and y.dtype == A.dtype


@normal_residual_rules.register(Mask)
def _mask_residual(A, x, y):
    """M^H (M x - y) = m ⊙ (x - y), since m ⊙ m = m for m in {0, 1}."""
    return A.weights * (x - y) if _real_inputs(A, x, y) else None


@normal_residual_rules.register(Diagonal)
def _diagonal_residual(A, x, y):
    """diag(w)^H (diag(w) x - y) = w ⊙ (w ⊙ x - y) for real weights w."""
    return A.weights * (A.weights * x - y) if _real_inputs(A, x, y) else None
