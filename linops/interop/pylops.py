"""pylops adapter: our operators as pylops LinearOperators, pylops operators as ours.

    to_pylops(A) -> pylops.LinearOperator      dims = A.in_shape, dimsd = A.out_shape
    from_pylops(Op, *, dtype=None, device=None) -> LinearOperator

`to_pylops(A)` takes numpy (or CuPy) arrays in pylops' flat convention and returns the same kind:
it passes `pylops.utils.dottest`, and pylops' solvers (`lsqr`, `cgls`, ...) run on it. Batches of
columns (`matmat`) go through our operator in one batched call.

`from_pylops(Op)` maps torch tensors (N, *Op.dims) to numpy arrays for Op, or to CuPy arrays
(zero-copy through DLPack) when the operator lives on a CUDA device, and back; autograd comes from
the linops base class (the backward is Op's rmatvec), so pylops operators compose with networks.

pylops is imported here only; the linops core never imports it.
"""

from __future__ import annotations

import numpy as np
import pylops
import torch

from ..base import LinearOperator, precision_of
from .arrays import is_cupy_array


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty((), dtype=dtype).numpy().dtype


def _torch_dtype(dtype) -> torch.dtype:
    return torch.from_numpy(np.empty((), dtype=np.dtype(dtype))).dtype


class PylopsAdapter(pylops.LinearOperator):
    """A linops operator seen by pylops: flat (prod(dims),) vectors or (prod(dims), K) blocks."""

    def __init__(self, op: LinearOperator):
        self.op = op
        super().__init__(
            dtype=_numpy_dtype(op.dtype),
            dims=op.in_shape,
            dimsd=op.out_shape,
            clinear=True,
            explicit=False,
            name="linops",
        )

    def _cast(self, x):
        """x in the operator's precision (complex stays complex), so pylops' float64 solvers can call it."""
        real = _numpy_dtype(precision_of(self.op.dtype))
        target = np.result_type(real, np.complex64) if np.iscomplexobj(x) or self.op.dtype.is_complex else real
        return x if x.dtype == target else x.astype(target)

    def _matvec(self, x):
        return self.op.apply(self._cast(x).reshape(self.op.in_shape)).ravel()

    def _rmatvec(self, y):
        return self.op.H.apply(self._cast(y).reshape(self.op.out_shape)).ravel()

    def _matmat(self, X):
        k = X.shape[1]
        out = self.op.apply(self._cast(X).T.reshape(k, *self.op.in_shape))
        return out.reshape(k, -1).T

    def _rmatmat(self, Y):
        k = Y.shape[1]
        out = self.op.H.apply(self._cast(Y).T.reshape(k, *self.op.out_shape))
        return out.reshape(k, -1).T


def to_pylops(A: LinearOperator) -> pylops.LinearOperator:
    """A as a pylops LinearOperator (dims = A.in_shape, dimsd = A.out_shape, numpy or CuPy in and out)."""
    if not isinstance(A, LinearOperator):
        raise TypeError(f"to_pylops takes a linops LinearOperator, got {type(A).__name__}")
    return PylopsAdapter(A)


class PylopsOperator(LinearOperator):
    """A pylops LinearOperator as a linops operator: A x = Op @ x, A^H y = Op.H @ y, batched via matmat."""

    def __init__(self, Op, *, dtype: torch.dtype, device):
        super().__init__(tuple(Op.dims), tuple(Op.dimsd), dtype=dtype, device=device)
        self.pylops_op = Op

    def _to_array(self, t: torch.Tensor):
        t = t.detach().resolve_conj().resolve_neg().contiguous()
        if t.device.type == "cuda":
            import cupy

            return cupy.from_dlpack(t)
        return t.cpu().numpy()

    def _call(self, fn, x, out_shape):
        n = x.shape[0]
        a = fn(self._to_array(x.reshape(n, -1)).T).T
        out = torch.from_dlpack(a) if is_cupy_array(a) else torch.from_numpy(np.ascontiguousarray(a))
        if self.dtype.is_complex or not out.is_complex():
            target = self.dtype
        else:
            target = torch.promote_types(precision_of(self.dtype), torch.complex64)
        return out.to(device=x.device, dtype=target).reshape(n, *out_shape)

    def _apply(self, x):
        return self._call(self.pylops_op.matmat, x, self.out_shape)

    def _adjoint(self, y):
        return self._call(self.pylops_op.rmatmat, y, self.in_shape)

    def __repr__(self):
        return f"Pylops({type(self.pylops_op).__name__}, {self.in_shape} -> {self.out_shape})"


def from_pylops(Op, *, dtype: torch.dtype | None = None, device=None) -> LinearOperator:
    """Wrap a pylops LinearOperator as a linops operator acting on (*batch, *Op.dims).

    dtype defaults to Op.dtype; device "cuda" feeds Op CuPy arrays (for pylops operators built on
    CuPy), otherwise numpy arrays.
    """
    if not isinstance(Op, pylops.LinearOperator):
        raise TypeError(f"from_pylops needs a pylops LinearOperator, got {type(Op).__name__}")
    dtype = _torch_dtype(Op.dtype) if dtype is None else dtype
    return PylopsOperator(Op, dtype=dtype, device=torch.device(device) if device is not None else "cpu")
