"""Market examples of `FunctionOperator`: maps given by two module-level functions (so that they pickle),
one real and non-square, one complex and unitary, with independent numpy references. Tagged "callables": their
parameters are functions, which the SVD cache's key cannot hash (it falls back to probe responses)."""

from __future__ import annotations

import numpy as np
import torch

from ..operators.function import FunctionOperator
from .market import register


def running_sums(x: torch.Tensor) -> torch.Tensor:
    """(N, C, n) -> (N, C, n + 1): the partial sums x_0 + ... + x_k, k < n, then the total."""
    return torch.cat([x.cumsum(-1), x.sum(-1, keepdim=True)], dim=-1)


def running_sums_adjoint(y: torch.Tensor) -> torch.Tensor:
    """(N, C, n + 1) -> (N, C, n): x_j = sum_{k >= j, k < n} y_k + y_n (the transpose of `running_sums`)."""
    return y[..., :-1].flip(-1).cumsum(-1).flip(-1) + y[..., -1:]


def _running_sums_reference(op, x):
    n = op.in_shape[-1]
    matrix = np.vstack([np.tril(np.ones((n, n))), np.ones((1, n))])  # rows: the partial sums, then the total
    return x @ matrix.T


@register("function-running-sums", reference=_running_sums_reference, tags=("callables",))
def _(dtype, g):
    return FunctionOperator(running_sums, running_sums_adjoint, (2, 5), (2, 6), dtype=dtype)


def unitary_dft(x: torch.Tensor) -> torch.Tensor:
    """The orthonormal DFT along the last axis."""
    return torch.fft.fft(x, norm="ortho")


def unitary_idft(y: torch.Tensor) -> torch.Tensor:
    """Its adjoint (and inverse)."""
    return torch.fft.ifft(y, norm="ortho")


def _unitary_dft_reference(op, x):
    return np.fft.fft(x, norm="ortho")


@register("function-unitary-dft", reference=_unitary_dft_reference, tags=("callables",))
def _(dtype, g):
    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    return FunctionOperator(unitary_dft, unitary_idft, (3, 7), dtype=complex_dtype)
