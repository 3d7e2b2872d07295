"""The data-fidelity gradient A^H (A x - y) in one call, fused where the operator's structure allows.

    r = linops.normal_residual(A, x, y)      # = A.H @ (A @ x - y), the gradient of 1/2 ||A x - y||^2

Fused implementations are rules in `normal_residual_rules`, keyed by the operator type (looked up along its MRO,
most specific first); a rule receives (A, x, y) with one flat batch axis, x of shape (N, *A.in_shape) and y of
shape (N, *A.out_shape), and returns r or None when it does not apply (then the next rule, and finally the generic
A^H (A x - y), is tried). Rules run only outside autograd (when neither x nor y needs a gradient); with a graph,
the generic expression differentiates through the operators' own backward (the adjoint).

    Mask            m (x - y)                          torch: 2 passes; CuPy: 1 kernel
    Diagonal        w (w x - y) for real w             torch: 3 passes; CuPy: 1 kernel
    Radon, fan      A^T (A x - y): the subtraction fused into the forward kernel (CuPy)
    Blur family     the same for direct plans (CuPy)
"""

from __future__ import annotations

import torch

from ..base import LinearOperator
from ..operators.blur import Blur, CircularBlur, SeparableBlur
from ..operators.diagonal import Diagonal, Mask
from ..operators.tomography.projector import JosephProjector
from ..rules import RuleTable
from . import blur as blur_kernels
from . import diagonal as diagonal_kernels
from . import dispatch
from . import radon as radon_kernels

normal_residual_rules = RuleTable("normal residual", 1)


def normal_residual(A: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A^H (A x - y) for x of shape (*batch, *A.in_shape) and y of shape (*batch, *A.out_shape) (torch tensors).

    Uses the first registered rule for type(A) that applies, else the generic A.H @ (A @ x - y).
    """
    batch = A._check_input(x)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (*batch, *A.out_shape):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"normal_residual with {A!r} and x of shape {tuple(x.shape)} expects y of shape "
                         f"{(*batch, *A.out_shape)}, got {got}.")  # fmt: skip
    if not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)):
        flat_x, flat_y = x.reshape(-1, *A.in_shape), y.reshape(-1, *A.out_shape)
        for rule in normal_residual_rules.candidates(A):
            r = rule(A, flat_x, flat_y)
            if r is not None:
                return r.reshape(x.shape)
    return A.H.apply(A.apply(x) - y)


def _real_kernel_inputs(A: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> bool:
    """x and y real with A's dtype: what the fused rules handle (anything else takes the generic path)."""
    return not A.dtype.is_complex and x.dtype == A.dtype and y.dtype == A.dtype


@normal_residual_rules.register(Mask)
def _mask_residual(A, x, y):
    """M^H (M x - y) = m ⊙ (x - y), since m ⊙ m = m for m in {0, 1}."""
    if not _real_kernel_inputs(A, x, y):
        return None
    if dispatch.use_cupy(x):
        return diagonal_kernels.residual(A, x, y, mask=True)
    return A.weights * (x - y)


@normal_residual_rules.register(Diagonal)
def _diagonal_residual(A, x, y):
    """diag(w)^H (diag(w) x - y) = w ⊙ (w ⊙ x - y) for real weights w."""
    if not _real_kernel_inputs(A, x, y):
        return None
    if dispatch.use_cupy(x):
        return diagonal_kernels.residual(A, x, y, mask=False)
    return A.weights * (A.weights * x - y)


def _fused_forward(kernels):
    def rule(A, x, y):
        """A^T (A x - y) with the subtraction done by A's forward kernel (CuPy path only)."""
        if not _real_kernel_inputs(A, x, y) or not dispatch.use_cupy(x):
            return None
        return kernels.adjoint(A, kernels.forward(A, x, subtract=y))

    return rule


normal_residual_rules.register(JosephProjector)(_fused_forward(radon_kernels))
for _blur in (Blur, SeparableBlur, CircularBlur):
    normal_residual_rules.register(_blur)(_fused_forward(blur_kernels))
