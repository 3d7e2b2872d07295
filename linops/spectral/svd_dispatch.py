"""`svd(A)`: structured where the operator's type knows its SVD, computed otherwise.

Dispatch follows CoLA: a rule table keyed by operator type (looked up along the MRO, like the
algebra's rule tables), one pure function per law returning an `SVD` or None when its precondition
fails. When no rule applies to an expression, it is simplified once (`linops.simplify`) and the
rules are tried on the result; when still none applies, the SVD is computed (dense for small
operators, `RandomizedSVD` on request for large ones).

Structured rules (A = U diag(s) V^H, spectral shape in brackets):

    Identity           U = V = I, s = 1                                             [in_shape]
    Diagonal(w)        U = diag(w / |w|), s = |w|, V = I  (phases in U; Mask: U = I) [in_shape]
    CircularBlur       real Fourier (Hartley) basis: V = H, U = H R, s = |k^|          [in_shape]
    TransportOfIntensity  U = V = H (Hartley), s = (I0 / k) |2 pi f|^2 >= 0             [in_shape]
    SeparableBlur      kron of the SVDs of the two 1-D padded convolution matrices     [in_shape]
    Downsample(f)      U = I, s = 1/f, V = f A^H (incomplete)                          [out_shape]
    Decimate           U = I, s = 1, V = A^H (incomplete; complement = mask)           [out_shape]
    FFT2               U = F, s = 1, V = I                                             [in_shape]
    FourierSampling    U = I, s = mask, V = F^H                                        [in_shape]
    isometry W         U = W, s = 1, V = I  (zero Pad, Reshape, ...)                   [in_shape]
    co-isometry W      U = I, s = 1, V = W^H (Crop, ...)                               [out_shape]
    Kron(A, B)         U_A (x) U_B, s_A (x) s_B, V_A (x) V_B                     [(*s_A, *s_B)]
    c A                U -> (c / |c|) U, s -> |c| s
    A^H, A^T           swap U and V (conjugated for the transpose)
    Composition        isometries peeled off the left, co-isometries off the right;
                       adjacent factors merged when V of the left one is the same basis as U of
                       the right one: (U1 s1 V1^H)(V1 s2 V2^H) = U1 (s1 s2) V2^H
                       (Diagonal @ Mask, Mask @ Downsample, F^H M F, ...; powers of a circular blur
                       and products of diagonals are simplified first)

The real Hartley basis for circular blurs: a real circulant C with transfer function
k^ = |k^| e^{i phi} satisfies H C H = R diag(|k^|) where H is the orthonormal 2-D Hartley
transform and R rotates each frequency pair (w, -w) by phi(w) (see `bases.PairRotation`). So
U = H R and V = H are real orthogonal and a real image has real spectral coordinates, which is what
DDRM's per-coordinate noise needs; the singular values are |k^| as in the complex Fourier SVD
(F^H diag(phase) , |k^|, F^H), which this equals up to the choice of basis within each pair.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..algebra import Adjoint, Composition, Scaled, Transpose, compose, scale
from ..base import LinearOperator, precision_of
from ..blocks import Kron
from ..memo import MemoKey, holds, recall, remember, store
from ..operators import (
    FFT2,
    CircularBlur,
    Decimate,
    Diagonal,
    Downsample,
    FourierSampling,
    Identity,
    Mask,
    Matrix,
    SeparableBlur,
    TransportOfIntensity,
)
from ..rules import RuleTable
from ..simplify import simplify
from . import cache
from .bases import Hartley2, PairRotation, is_coisometry, is_isometry, is_unitary, reflect_frequencies, same_basis
from .computed import (
    DENSE_LIMIT,
    DenseSVD,
    GramEigh,
    RandomizedSVD,
    dense_size_message,
    dense_svd,
    gram_eigh_svd,
    randomized_svd,
)
from .decomposition import SVD
from .symmetric import SymmetricGramEigh, symmetric_gram_eigh_svd

#: svd rules: fn(op, child) -> SVD | None, where child(op) gives the SVD of a sub-operator or None
svd_rules = RuleTable("svd", 1)

ChildSVD = Callable[[LinearOperator], "SVD | None"]


@dataclass(frozen=True)
class SVDOf(MemoKey):
    """Memo key of `svd(A, algorithm)` (algorithm None: the default choice)."""

    algorithm: object


@dataclass(frozen=True)
class StructuredSVD(MemoKey):
    """Memo key of `structured_svd(A)`: the SVD from the rules alone, or `NO_STRUCTURE`."""


#: remembered under StructuredSVD() when no rule knows the operator's structure (so it is asked once)
NO_STRUCTURE = object()
STRUCTURED = StructuredSVD()


def svd(
    A: LinearOperator,
    algorithm: DenseSVD | GramEigh | SymmetricGramEigh | RandomizedSVD | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    cache_max_bytes: int | None = None,
) -> SVD:
    """The SVD A = U diag(s) V^H, with U and V as operators (conventions in `SVD`).

    algorithm:
      None             structured if a rule knows A's structure; else dense if A has at most
                       `DENSE_LIMIT` = 2^24 matrix entries; else a ValueError saying what to pass.
      DenseSVD()       the dense SVD, whatever the structure.
      GramEigh()       the exact SVD from eigh of the smaller Gram matrix (float64).
      SymmetricGramEigh()  the same, one block per isotypic component of the symmetries A declares
                       (`linops.symmetries`): about 16x cheaper with four blocks; GramEigh without any.
      RandomizedSVD()  top-k or above-threshold randomized SVD through A and A^H only.

    The result is cached on the operator instance (one entry per algorithm value: the second call
    returns the same object). `cache_dir` opts in to an on-disk cache of computed SVDs (see
    `linops.spectral.cache`): keyed by A's exact parameters and the algorithm value, verified on a
    probe before use, (m + n + 1) k itemsize bytes per entry; an unreadable or mismatched file is
    recomputed with a warning, an unwritable folder costs a warning, not the result.
    `cache_max_bytes` caps the folder's size (default: $LINOPS_CACHE_MAX_BYTES, else no cap), evicting
    the least recently used entries.
    """
    if not isinstance(A, LinearOperator):
        raise TypeError(f"svd takes a LinearOperator, got {type(A).__name__}")
    if algorithm is not None and not isinstance(algorithm, (DenseSVD, RandomizedSVD, GramEigh, SymmetricGramEigh)):
        raise TypeError(
            "svd: algorithm must be DenseSVD(...), GramEigh(...), SymmetricGramEigh(...), RandomizedSVD(...) or "
            f"None, got {algorithm!r}"
        )
    key = SVDOf(algorithm)
    out = recall(A, key)
    if out is not None:
        return out
    if algorithm is None:
        out = _rule_svd(A, _child_auto)
        if out is None:
            if math.prod(A.shape) > DENSE_LIMIT:
                raise ValueError(dense_size_message(A, DENSE_LIMIT))
            out = remember(A, SVDOf(DenseSVD()), lambda: _computed(A, DenseSVD(), cache_dir, cache_max_bytes))
        elif out.structured and not holds(A, STRUCTURED):
            store(A, STRUCTURED, out)
    else:
        out = _computed(A, algorithm, cache_dir, cache_max_bytes)
    return store(A, key, out)


def cached_svd(
    A: LinearOperator, algorithm: DenseSVD | GramEigh | SymmetricGramEigh | RandomizedSVD | None = None
) -> SVD | None:
    """The SVD `svd(A, algorithm)` already computed for this operator instance, or None (never computes)."""
    return recall(A, SVDOf(algorithm))


def structured_svd(A: LinearOperator) -> SVD | None:
    """The SVD of A from structural rules alone (never computed), or None when A has no known structure."""

    def rules():
        found = _rule_svd(A, structured_svd)
        return NO_STRUCTURE if found is None else found

    out = remember(A, STRUCTURED, rules)
    return None if out is NO_STRUCTURE else out


def _child_auto(A: LinearOperator) -> SVD | None:
    """Sub-operator SVDs for rules under svd(A): structured, else dense when small, else None."""
    out = structured_svd(A)
    if out is None and math.prod(A.shape) <= DENSE_LIMIT // 16:
        out = svd(A, DenseSVD())
    return out


def _rule_svd(A: LinearOperator, child: ChildSVD) -> SVD | None:
    out = _apply_rules(A, child)
    if out is None and A.operands:
        simplified = simplify(A)
        if not _same_expression(simplified, A):
            out = _apply_rules(simplified, child)
    return out


def _apply_rules(A: LinearOperator, child: ChildSVD) -> SVD | None:
    for rule in svd_rules.candidates(A):
        out = rule(A, child)
        if out is not None:
            return out
    return None


def _same_expression(a: LinearOperator, b: LinearOperator) -> bool:
    if a is b:
        return True
    if type(a) is not type(b) or len(a.operands) != len(b.operands) or not a.operands:
        return False
    return all(_same_expression(x, y) for x, y in zip(a.operands, b.operands))


def _computed(A: LinearOperator, algorithm, cache_dir, cache_max_bytes=None) -> SVD:
    key = None
    if cache_dir is not None:
        max_bytes = cache.max_bytes_setting(cache_max_bytes)  # a bad setting fails now, not after the work
        key = cache.fingerprint(A, algorithm)
        hit = cache.load(cache_dir, key, A, algorithm)
        if hit is not None:
            return hit
    if isinstance(algorithm, DenseSVD):
        out = dense_svd(A, algorithm)
    elif isinstance(algorithm, GramEigh):
        out = gram_eigh_svd(A, algorithm)
    elif isinstance(algorithm, SymmetricGramEigh):
        out = symmetric_gram_eigh_svd(A, algorithm)
    else:
        out = randomized_svd(A, algorithm)
    if key is not None:
        cache.save(cache_dir, key, out, A, algorithm, max_bytes=max_bytes)
    return out


# ----------------------------------------------------------------------------------------------
# helpers


def _real(A: LinearOperator) -> torch.dtype:
    return precision_of(A.dtype)


def _ones(shape, A: LinearOperator) -> torch.Tensor:
    return torch.ones(shape, dtype=_real(A), device=A.device)


def _identity(shape, A: LinearOperator) -> Identity:
    return Identity(shape, dtype=A.dtype, device=A.device)


# ----------------------------------------------------------------------------------------------
# leaves


@svd_rules.register(LinearOperator)
def _isometry_svd(op, child):
    """W with W^H W = I: W = W I I (s = 1 on in_shape); W with W W^H = I: W = I I (W^H)^H."""
    if is_isometry(op):
        return SVD(op, _ones(op.in_shape, op), _identity(op.in_shape, op), True, is_coisometry(op), True)
    if is_coisometry(op):
        return SVD(_identity(op.out_shape, op), _ones(op.out_shape, op), op.H, False, True, True)
    return None


@svd_rules.register(Identity)
def _identity_svd(op, child):
    """I = I diag(1) I^H."""
    return SVD(op, _ones(op.in_shape, op), op, True, True, True)


@svd_rules.register(Diagonal)
def _diagonal_svd(op, child):
    """diag(w) = diag(w / |w|) diag(|w|) I^H (phase 1 where w = 0); a real w puts its signs in U."""
    w = op.weights.expand(op.in_shape)
    s = w.abs()
    if w.is_complex():
        phase = torch.where(s > 0, w / torch.where(s > 0, s, 1), 1)
    else:
        phase = torch.where(w < 0, -1.0, 1.0).to(w.dtype)
    U = _identity(op.in_shape, op) if bool((phase == 1).all()) else Diagonal(phase)
    return SVD(U, s.clone(), _identity(op.in_shape, op), True, True, True)


@svd_rules.register(Mask)
def _mask_svd(op, child):
    """mask(m) = I diag(m) I^H."""
    eye = _identity(op.in_shape, op)
    return SVD(eye, op.weights.expand(op.in_shape).clone(), eye, True, True, True)


@svd_rules.register(CircularBlur)
def _circular_blur_svd(op, child):
    """k ⊛ x = H R diag(|k^|) H x with H the orthonormal Hartley transform, R the pair rotation by
    the phase of k^ (module docstring); s = |k^| on the full H x W frequency grid."""
    H, W = op.in_shape[-2:]
    real = _real(op)
    k_hat = torch.fft.fft2(torch.fft.irfft2(op.transfer, s=(H, W)))
    # exact Hermitian symmetry k^(-w) = conj(k^(w)), so that R is exactly orthogonal
    k_hat = (k_hat + reflect_frequencies(k_hat).conj()) / 2
    mag = k_hat.abs()
    nonzero = mag > 0
    safe = torch.where(nonzero, mag, 1)
    cos = torch.where(nonzero, k_hat.real / safe, 1).to(real)
    sin = torch.where(nonzero, k_hat.imag / safe, 0).to(real)
    hartley = Hartley2(op.in_shape, dtype=real, device=op.device)
    U = compose(hartley, PairRotation(cos, sin, op.in_shape))
    return SVD(U, mag.to(real).expand(op.in_shape).clone(), hartley, True, True, True)


@svd_rules.register(TransportOfIntensity)
def _tie_svd(op, child):
    """The TIE multiplier m(f) = (I0 / k) |2 pi f|^2 is real, even and non-negative, so the operator is
    H diag(m) H with H the orthonormal Hartley transform (no pair rotation): U = V = H, s = m."""
    hartley = Hartley2(op.in_shape, dtype=_real(op), device=op.device)
    return SVD(hartley, op.multiplier().to(_real(op)).expand(op.in_shape).clone(), hartley, True, True, True)


def _one_dimensional_blur(op: SeparableBlur, axis: int) -> torch.Tensor:
    """The n x n matrix of the padded 1-D convolution of `op` along axis -2 (rows) or -1 (cols)."""
    H, W = op.in_shape[-2:]
    one = torch.ones(1, dtype=op.dtype, device=op.device)
    if axis == -2:
        line = SeparableBlur(op.kernel_rows, one, (H, 1), op.boundary)
    else:
        line = SeparableBlur(one, op.kernel_cols, (1, W), op.boundary)
    return line.to_dense()


@svd_rules.register(SeparableBlur)
def _separable_blur_svd(op, child):
    """(B_r ⊗ B_c) = (U_r ⊗ U_c) diag(s_r ⊗ s_c) (V_r ⊗ V_c)^H from the SVDs of the two 1-D padded
    convolution matrices (computed in float64), acting on every leading plane."""
    H, W = op.in_shape[-2:]
    factors = []
    for axis, n in ((-2, H), (-1, W)):
        Ud, sd, Vhd = torch.linalg.svd(_one_dimensional_blur(op, axis).double())
        factors.append((Matrix(Ud.to(op.dtype), (n,), (n,)), sd.to(op.dtype), Matrix(Vhd.mH.to(op.dtype), (n,), (n,))))
    (Ur, sr, Vr), (Uc, sc, Vc) = factors
    U, V = Kron(Ur, Uc), Kron(Vr, Vc)
    lead = op.in_shape[:-2]
    if lead:
        eye = _identity(lead, op)
        U, V = Kron(eye, U), Kron(eye, V)
    s = torch.outer(sr, sc).expand(op.in_shape).clone()
    return SVD(U, s, V, True, True, True)


@svd_rules.register(Downsample)
def _downsample_svd(op, child):
    """Block averaging A with A A^H = I / f^2: A = I diag(1/f) (f A^H)^H, V = f A^H has orthonormal columns."""
    f = op.factor
    return SVD(_identity(op.out_shape, op), _ones(op.out_shape, op) / f, scale(f, op.H), False, True, True)


@svd_rules.register(Decimate)
def _decimate_svd(op, child):
    """Decimation D with D D^H = I: D = I diag(1) (D^H)^H; the complement I - D^H D is the mask of
    the samples it drops."""
    keep = torch.zeros(op.in_shape, dtype=torch.bool, device=op.device)
    keep[..., op.offset :: op.factor, op.offset :: op.factor] = True
    complement = Mask(~keep, dtype=_real(op))
    return SVD(_identity(op.out_shape, op), _ones(op.out_shape, op), op.H, False, True, True, complement)


@svd_rules.register(FFT2)
def _fft2_svd(op, child):
    """F = F diag(1) I^H."""
    return SVD(op, _ones(op.in_shape, op), _identity(op.in_shape, op), True, True, True)


@svd_rules.register(FourierSampling)
def _fourier_sampling_svd(op, child):
    """M F = I diag(m) (F^H)^H."""
    F = FFT2(op.in_shape, dtype=op.dtype, device=op.device)
    s = op.mask.expand(op.in_shape).to(_real(op)).clone()
    return SVD(_identity(op.in_shape, op), s, F.H, True, True, True)


# ----------------------------------------------------------------------------------------------
# expression nodes


@svd_rules.register(Scaled)
def _scaled_svd(op, child):
    """c A = (c/|c| U) diag(|c| s) V^H."""
    inner = child(op.op)
    return None if inner is None else inner.scaled(op.c)


@svd_rules.register(Adjoint)
def _adjoint_svd(op, child):
    """(U s V^H)^H = V s U^H."""
    inner = child(op.op)
    return None if inner is None else inner.adjoint()


@svd_rules.register(Transpose)
def _transpose_svd(op, child):
    """(U s V^H)^T = conj(V) s conj(U)^H, with conj(W) = (W^T)^H."""
    inner = child(op.op)
    if inner is None:
        return None
    return SVD(_conj(inner.V), inner.s, _conj(inner.U), inner.range_complete, inner.complete, inner.structured)


def _conj(W: LinearOperator) -> LinearOperator:
    """The entrywise conjugate conj(W) = (W^T)^H (W itself for the identity or a real operator)."""
    return W if isinstance(W, Identity) or not W.dtype.is_complex else W.T.H


@svd_rules.register(Kron)
def _kron_svd(op, child):
    """A ⊗ B = (U_A ⊗ U_B) diag(s_A ⊗ s_B) (V_A ⊗ V_B)^H."""
    a, b = child(op.a), child(op.b)
    if a is None or b is None:
        return None
    ka = a.s.ndim
    s = a.s.reshape(*a.s.shape, *([1] * b.s.ndim)) * b.s.reshape(*([1] * ka), *b.s.shape)
    return SVD(
        Kron(a.U, b.U),
        s,
        Kron(a.V, b.V),
        a.complete and b.complete,
        a.range_complete and b.range_complete,
        a.structured and b.structured,
    )


def _merge(left: SVD, right: SVD) -> SVD | None:
    """(U1 s1 V1^H)(U2 s2 V2^H) = U1 (s1 s2) V2^H when V1 and U2 are the same basis (V1^H U2 = I)."""
    if left.spectral_shape != right.spectral_shape or not same_basis(left.V, right.U):
        return None
    return SVD(
        left.U,
        left.s * right.s,
        right.V,
        right.complete,
        left.range_complete,
        left.structured and right.structured,
    )


@svd_rules.register(Composition)
def _composition_svd(op, child):
    """L_1..L_a M_1..M_c R_1..R_b with isometries L (L^H L = I) and co-isometries R (R R^H = I):
    A = (L U) diag(s) (R^H V)^H where U s V^H is the SVD of M, merged factor by factor."""
    factors = list(op.factors)
    left, right = [], []
    while len(factors) > 1 and is_isometry(factors[0]):
        left.append(factors.pop(0))
    while len(factors) > 1 and is_coisometry(factors[-1]):
        right.insert(0, factors.pop())
    parts = [structured_svd(f) for f in factors]  # merging needs known bases, never dense ones
    if any(p is None for p in parts):
        return None
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = _merge(part, acc)
        if acc is None:
            return None
    if not left and not right:
        return acc
    U = compose(*left, acc.U)
    V = compose(*(r.H for r in reversed(right)), acc.V)
    return SVD(
        U,
        acc.s,
        V,
        acc.complete and all(is_unitary(r) for r in right),
        acc.range_complete and all(is_unitary(f) for f in left),
        acc.structured,
    )
