"""The SVD value: A = U diag(s) V^H with U and V as operators.

Conventions (one for every SVD in linops, structured or computed):

* The *spectral coordinates* have shape ``s.shape`` (the spectral shape). ``U`` maps spectral
  coordinates to ``A.out_shape`` and ``V`` maps them to ``A.in_shape``; both have orthonormal
  columns (U^H U = I, V^H V = I). So, for x of shape (*batch, *in_shape) and y of shape
  (*batch, *out_shape),

      x_bar = V.H @ x                  # (*batch, *s.shape)
      y_bar = (U.H @ y) / s            # where s > 0
      A @ x == U @ (s * (V.H @ x))

* ``s`` is real and non-negative, and may contain zeros (a mask's unobserved pixels).
  Computed SVDs are *flat*: spectral shape (k,), s sorted in decreasing order. Structured SVDs keep
  the shape of the structure (e.g. in_shape for a mask or a circular blur, out_shape for a
  downsampling) and are not sorted; ``sorted_values()`` flattens and sorts.

* ``complete`` says whether V spans the whole input space (V V^H = I). When it does not (a
  truncated SVD, a downsampling), the rest of the input space is the range of the projector
  ``complement = I - V V^H`` (`null_projector()`): A vanishes on it, so for DDRM it behaves exactly
  like the s_i = 0 coordinates, and no basis of it is needed. ``range_complete`` says the same of U
  and the output space (U U^H = I).

The value lives beside the operators (it imports only the base class, the bases, Identity/Zero and
Diagonal/Mask) so that each operator module can state its own structured SVD (`linops.rules.svd_rules`);
the spectral toolkit (`linops.spectral`) re-exports it and computes the SVDs that no rule knows. The value
is built on Diagonal (`to_operator` is U @ Diagonal(s) @ V^H, and a diagonal's SVD has a diagonal U), so the
SVDs of Diagonal and Mask are stated here, at the end of this module, and diagonal.py imports nothing from it.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field

import torch

from ..base import LinearOperator, as_shape, precision_of
from ..rules import svd_rules
from .bases import ComplementProjector
from .diagonal import Diagonal, Mask
from .identity import Identity, Zero


@dataclass(frozen=True, eq=False)
class SVD:
    """A = U diag(s) V^H (see the module docstring for the conventions); the flags are keyword-only.

    U: operator, spectral shape -> A.out_shape, orthonormal columns
    s: real tensor of the spectral shape, s >= 0
    V: operator, spectral shape -> A.in_shape, orthonormal columns
    complete: V V^H = I (V spans the input space); otherwise see `complement`
    range_complete: U U^H = I (U spans the output space)
    structured: derived from the operator's structure by rules (not by a dense or randomized SVD)
    complement: the projector I - V V^H onto the part of the input space V does not reach
        (the zero operator when complete); rules may supply a cheaper equal operator
    """

    U: LinearOperator
    s: torch.Tensor
    V: LinearOperator
    _: KW_ONLY
    complete: bool
    range_complete: bool
    structured: bool
    complement: LinearOperator | None = field(default=None, repr=False)

    def __post_init__(self):
        shape = tuple(self.s.shape)
        if self.U.in_shape != shape or self.V.in_shape != shape:
            raise ValueError(
                f"SVD: U ({self.U.in_shape} -> {self.U.out_shape}) and V ({self.V.in_shape} -> "
                f"{self.V.out_shape}) must take spectral coordinates of the shape of s, {shape}"
            )
        if self.s.is_complex():
            raise TypeError("SVD: singular values must be real")
        if self.complement is None:
            if self.complete:
                comp = Zero(self.V.out_shape, dtype=self.V.dtype, device=self.V.device)
            else:
                comp = ComplementProjector(self.V)
            object.__setattr__(self, "complement", comp)

    def __repr__(self):
        kind = "structured" if self.structured else "computed"
        return (
            f"SVD({kind}, spectral_shape={self.spectral_shape}, U={self.U!r}, V={self.V!r}, "
            f"complete={self.complete}, range_complete={self.range_complete})"
        )

    # ------------------------------------------------------------------------------------------
    @property
    def spectral_shape(self) -> tuple[int, ...]:
        """The shape of the spectral coordinates (the shape of s)."""
        return tuple(self.s.shape)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.V.out_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.U.out_shape

    def null_projector(self) -> LinearOperator:
        """I - V V^H: the orthogonal projector onto the input directions V leaves out (P = P^H = P^2)."""
        return self.complement

    def sorted_values(self) -> torch.Tensor:
        """All singular values, flattened and sorted in decreasing order."""
        return torch.sort(self.s.flatten(), descending=True).values

    def rank(self, tol: float | None = None) -> int:
        """The number of singular values above `tol` (default: max(s) * max(m, n) * eps)."""
        if tol is None:
            m, n = math.prod(self.out_shape), math.prod(self.in_shape)
            tol = float(self.s.max()) * max(m, n) * torch.finfo(self.s.dtype).eps
        return int((self.s > tol).sum())

    def to_operator(self) -> LinearOperator:
        """U diag(s) V^H as a (lazy) operator."""
        return self.U @ Diagonal(self.s) @ self.V.H

    def adjoint(self) -> SVD:
        """The SVD of A^H = V diag(s) U^H."""
        return SVD(
            self.V,
            self.s,
            self.U,
            complete=self.range_complete,
            range_complete=self.complete,
            structured=self.structured,
        )

    def scaled(self, c: float | complex) -> SVD:
        """The SVD of c A = (phase(c) U) diag(|c| s) V^H."""
        r = abs(c)
        if r == 0:
            raise ValueError("scaled: c = 0 has no SVD of this shape; use Zero")
        phase = c / r
        U = self.U if phase == 1 else phase * self.U
        return SVD(
            U,
            r * self.s,
            self.V,
            complete=self.complete,
            range_complete=self.range_complete,
            structured=self.structured,
            complement=self.complement,
        )


# ----------------------------------------------------------------------------------------------
# pieces of structured SVDs


def unit_values(shape, A: LinearOperator) -> torch.Tensor:
    """s = 1 on `shape`, in A's real precision and on its device."""
    return torch.ones(as_shape(shape), dtype=precision_of(A.dtype), device=A.device)


def identity_like(shape, A: LinearOperator) -> Identity:
    """The identity on `shape` in A's dtype and on its device."""
    return Identity(shape, dtype=A.dtype, device=A.device)


def unitary_svd(W: LinearOperator) -> SVD:
    """W = W diag(1) I^H for a unitary W (W^H W = W W^H = I)."""
    return SVD(
        W,
        unit_values(W.in_shape, W),
        identity_like(W.in_shape, W),
        complete=True,
        range_complete=True,
        structured=True,
    )


def coisometry_svd(W: LinearOperator, complement: LinearOperator | None = None) -> SVD:
    """W = I diag(1) (W^H)^H for W with orthonormal rows (W W^H = I) that is not unitary (incomplete).
    `complement` is I - W^H W when the caller has a cheaper form of it."""
    return SVD(
        identity_like(W.out_shape, W),
        unit_values(W.out_shape, W),
        W.H,
        complete=False,
        range_complete=True,
        structured=True,
        complement=complement,
    )


# ----------------------------------------------------------------------------------------------
# the SVDs of the diagonal operators the value is built on (linops.rules.svd_rules)


@svd_rules.register(Diagonal)
def _diagonal_svd(op, child):
    """diag(w) = diag(w / |w|) diag(|w|) I^H (phase 1 where w = 0); a real w puts its signs in U."""
    w = op.weights.expand(op.in_shape)
    s = w.abs()
    if w.is_complex():
        phase = torch.where(s > 0, w / torch.where(s > 0, s, 1), 1)
    else:
        phase = torch.where(w < 0, -1.0, 1.0).to(w.dtype)
    eye = identity_like(op.in_shape, op)
    U = eye if bool((phase == 1).all()) else Diagonal(phase)
    return SVD(U, s.clone(), eye, complete=True, range_complete=True, structured=True)


@svd_rules.register(Mask)
def _mask_svd(op, child):
    """mask(m) = I diag(m) I^H."""
    eye = identity_like(op.in_shape, op)
    return SVD(eye, op.weights.expand(op.in_shape).clone(), eye, complete=True, range_complete=True, structured=True)
