"""CuPy kernels fusing a `Diagonal` or a `Mask` with the data residual (kernels/diagonal.cu), one pass:

    D^T (D x - y) = w (w x - y)       M^T (M x - y) = m (x - y)

instead of three (apply, subtract, apply the adjoint). The weights are broadcast to the operator's in_shape once
and cached on it.
"""

from __future__ import annotations

import math

import torch

from . import runtime


def _weights(op) -> torch.Tensor:
    weights = op._cache.get("cuda.weights")
    if weights is None:
        weights = op._cache["cuda.weights"] = op.weights.expand(op.in_shape).contiguous()
    return weights


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
