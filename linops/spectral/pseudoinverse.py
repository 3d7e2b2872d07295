"""`pinv(A)`: the Moore-Penrose pseudo-inverse A^+ as an operator, in one of two stated ways.

SVDPinv(rtol, atol)    A^+ = V diag(1/s_i if s_i > cutoff else 0) U^H, through `svd(A)`
                       (structured when A's type knows its SVD, else dense, or the `svd`
                       algorithm given). cutoff = max(atol, rtol * max(s)); the default
                       rtol = max(m, n) * eps(dtype) when atol = 0, as torch.linalg.pinv.
                       Exact up to the cutoff; a linear operator.
CGLS(...) / LSQR(...)  A^+ y = the minimum-norm least-squares solution of A x = y by the
                       solver from x0 = 0, to the solver's stated tolerance (so linear only
                       up to that tolerance); (A^+)^H = (A^H)^+ solves with A^H. Matrix-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..algebra import compose
from ..base import LinearOperator
from ..memo import MemoKey, recall, store
from ..operators import Diagonal
from .computed import DenseSVD, RandomizedSVD
from .krylov import CGLS, LSQR, solve
from .svd_dispatch import svd


@dataclass(frozen=True)
class SVDPinv:
    """A^+ through the SVD, dropping singular values at or below max(atol, rtol * max(s)).

    rtol None: max(m, n) * eps of A's precision when atol == 0, else 0 (torch.linalg.pinv's rule).
    svd: the SVD algorithm (None: structured or dense, see `svd`).
    """

    rtol: float | None = None
    atol: float = 0.0
    svd: DenseSVD | RandomizedSVD | None = None


class IterativePinv(LinearOperator):
    """A^+ y = argmin ||x|| over argmin ||A x - y||, by CGLS or LSQR from x0 = 0 (to their tolerance).

    The adjoint is (A^H)^+, solved the same way with A^H. Each application is a solve, batched over
    the leading dimensions.
    """

    def __init__(self, op: LinearOperator, algorithm: CGLS | LSQR):
        super().__init__(op.out_shape, op.in_shape, dtype=op.dtype, device=op.device)
        self.op, self.algorithm = op, algorithm

    def _apply(self, y):
        return solve(self.op, y, self.algorithm).x

    def _adjoint(self, x):
        return solve(self.op.H, x, self.algorithm).x

    def __repr__(self):
        return f"pinv({self.op!r}, {self.algorithm!r})"


@dataclass(frozen=True)
class PinvOf(MemoKey):
    """Memo key of `pinv(A, method)`."""

    method: SVDPinv | CGLS | LSQR


def pinv(A: LinearOperator, method: SVDPinv | CGLS | LSQR | None = None) -> LinearOperator:
    """The pseudo-inverse A^+ as an operator (out_shape -> in_shape); default `SVDPinv()`.

    Cached on the instance per method value.
    """
    method = SVDPinv() if method is None else method
    if not isinstance(method, (SVDPinv, CGLS, LSQR)):
        raise TypeError(f"pinv: method must be SVDPinv(...), CGLS(...) or LSQR(...), got {method!r}")
    key = PinvOf(method)
    out = recall(A, key)
    if out is not None:
        return out
    if isinstance(method, SVDPinv):
        dec = svd(A, method.svd)
        s = dec.s
        smax = float(s.max()) if s.numel() else 0.0
        rtol = method.rtol
        if rtol is None:
            rtol = max(A.shape) * torch.finfo(s.dtype).eps if method.atol == 0 else 0.0
        cutoff = max(method.atol, rtol * smax)
        inv = torch.where(s > cutoff, 1 / torch.where(s > cutoff, s, 1), torch.zeros_like(s))
        out = compose(dec.V, Diagonal(inv), dec.U.H)
    else:
        out = IterativePinv(A, method)
    return store(A, key, out)
