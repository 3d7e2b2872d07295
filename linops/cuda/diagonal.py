"""CuPy kernels fusing a `Diagonal` or a `Mask` with the data residual (kernels/diagonal.cu), one pass:

    D^T (D x - y) = w (w x - y)       M^T (M x - y) = m (x - y)

instead of three (apply, subtract, apply the adjoint). The weights are broadcast to the operator's in_shape once
and remembered on it (linops.memo, key `BroadcastWeights`). Registered in the kernel table for Mask and Diagonal
on "cuda" as the kernels' `normal_residual` (no forward or adjoint: torch's elementwise product is one pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..backends import kernels
from ..memo import MemoKey, remember
from ..operators.diagonal import Diagonal, Mask
from . import runtime
from .dispatch import cupy_kernel
from .residual import real_inputs


@dataclass(frozen=True)
class BroadcastWeights(MemoKey):
    """The operator's weights expanded to its in_shape, contiguous (the kernels index them per entry)."""


def _weights(op) -> torch.Tensor:
    return remember(op, BroadcastWeights(), lambda: op.weights.expand(op.in_shape).contiguous())


def residual(op, x: torch.Tensor, y: torch.Tensor, *, mask: bool) -> torch.Tensor:
    """w (w x - y) (or m (x - y) when `mask`) for x, y of shape (N, *op.in_shape) on a CUDA device, real weights."""
    weights = _weights(op)
    per_sample = math.prod(op.in_shape)
    xs, ys = x.contiguous().reshape(-1, per_sample), y.contiguous().reshape(-1, per_sample)
    r = torch.empty_like(xs)
    with runtime.on_torch_stream(x.device):
        kernel = runtime.function("diagonal", "mask_residual" if mask else "diagonal_residual", x.dtype, x.device)
        for part in runtime.batch_chunks(xs.shape[0], per_sample):
            n = (part.stop - part.start) * per_sample
            runtime.launch(kernel, n, weights, per_sample, xs[part], ys[part], r[part])
    return r.reshape(x.shape)


def _mask_residual(A, x, y):
    """M^T (M x - y) = m (x - y) in one kernel."""
    return residual(A, x, y, mask=True) if real_inputs(A, x, y) else None


def _diagonal_residual(A, x, y):
    """D^T (D x - y) = w (w x - y) in one kernel, for real weights."""
    return residual(A, x, y, mask=False) if real_inputs(A, x, y) else None


MASK = kernels.register(Mask, "cuda", cupy_kernel(normal_residual=_mask_residual))
DIAGONAL = kernels.register(Diagonal, "cuda", cupy_kernel(normal_residual=_diagonal_residual))
