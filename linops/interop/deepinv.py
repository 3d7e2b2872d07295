"""deepinv adapter: our operators as deepinv physics, deepinv physics as our operators.

    to_deepinv(A, noise_model=None, *, svd=None) -> deepinv.physics.LinearPhysics
    from_deepinv(physics, in_shape, *, dtype=torch.float32, device=None) -> LinearOperator

`to_deepinv` returns a `DecomposablePhysics` when A has a structured SVD (or an SVD is passed), so
deepinv's SVD-based code (DDRM, `A_dagger`, `prox_l2`) runs on our operators; otherwise a plain
`LinearPhysics`. In both, `A` and `A_adjoint` call our operator directly. deepinv tensors are
(B, *in_shape) -> (B, *out_shape), exactly our batched convention. The other way, a wrapped deepinv
`DecomposablePhysics` keeps its SVD as a structured one when it is a true SVD (a real non-negative
mask, U and V with orthonormal columns), so our DDRM runs on deepinv's Inpainting without computing one.

deepinv's `DecomposablePhysics` needs V to span the input space (it reconstructs x = V(V^H x)).
When our SVD is incomplete (a downsampling, a truncated SVD), the adapter uses the Parseval frame
V_aug = [V, P] with P = I - V V^H the complement projector: V_aug V_aug^H = V V^H + P = I, and the
spectral coordinates are the flat concatenation [vec(V^H x), vec(P x)] with singular values
[vec(s), 0]. Then U_aug [z1; z2] = U z1 and A = U_aug diag(mask) V_aug^H still holds; the P-part
coordinates have s = 0, which DDRM treats exactly as its null-space branch (the same for every
null-space direction, so a frame instead of a basis changes nothing there).

deepinv is imported here only; the linops core never imports it.
"""

from __future__ import annotations

import math

import deepinv as dinv
import torch

from ..base import LinearOperator, precision_of
from ..rules import svd_rules
from ..spectral import SVD, structured_svd


def _apply(op: LinearOperator, x: torch.Tensor) -> torch.Tensor:
    return op.apply(x)


class _Spectral:
    """U, U^H, V, V^H and the mask in deepinv's layout (batch first, mask with batch dim 1)."""

    def __init__(self, dec: SVD):
        self.dec = dec
        self.k = math.prod(dec.spectral_shape)
        self.n = math.prod(dec.in_shape)
        self.augmented = not dec.complete
        s = dec.s
        if self.augmented:
            s = torch.cat([s.flatten(), s.new_zeros(self.n)])
        self.mask = s.unsqueeze(0)

    def U(self, z):
        if self.augmented:
            z = z[:, : self.k].reshape(z.shape[0], *self.dec.spectral_shape)
        return self.dec.U.apply(z)

    def U_adjoint(self, y):
        z = self.dec.U.H.apply(y)
        if self.augmented:
            z = z.reshape(z.shape[0], -1)
            z = torch.cat([z, z.new_zeros(z.shape[0], self.n)], dim=1)
        return z

    def V(self, z):
        if not self.augmented:
            return self.dec.V.apply(z)
        b = z.shape[0]
        head = z[:, : self.k].reshape(b, *self.dec.spectral_shape)
        tail = z[:, self.k :].reshape(b, *self.dec.in_shape)
        return self.dec.V.apply(head) + self.dec.complement.apply(tail)

    def V_adjoint(self, x):
        z = self.dec.V.H.apply(x)
        if not self.augmented:
            return z
        b = x.shape[0]
        return torch.cat([z.reshape(b, -1), self.dec.complement.apply(x).reshape(b, -1)], dim=1)


class OperatorPhysics(dinv.physics.LinearPhysics):
    """deepinv LinearPhysics whose A and A_adjoint are a linops operator's A and A^H."""

    def __init__(self, op: LinearOperator, noise_model=None):
        kwargs = {} if noise_model is None else {"noise_model": noise_model}
        super().__init__(img_size=op.in_shape, device=op.device, **kwargs)
        self.op = op

    def A(self, x, **kwargs):
        return _apply(self.op, x)

    def A_adjoint(self, y, **kwargs):
        return _apply(self.op.H, y)


class DecomposableOperatorPhysics(dinv.physics.DecomposablePhysics):
    """deepinv DecomposablePhysics from a linops operator and its SVD; A and A_adjoint are ours."""

    def __init__(self, op: LinearOperator, dec: SVD, noise_model=None):
        spectral = _Spectral(dec)
        kwargs = {} if noise_model is None else {"noise_model": noise_model}
        super().__init__(
            U=spectral.U,
            U_adjoint=spectral.U_adjoint,
            V=spectral.V,
            V_adjoint=spectral.V_adjoint,
            mask=spectral.mask,
            img_size=op.in_shape,
            device=op.device,
            **kwargs,
        )
        self.op = op
        self.svd = dec

    def A(self, x, mask=None, **kwargs):
        return _apply(self.op, x)

    def A_adjoint(self, y, mask=None, **kwargs):
        return _apply(self.op.H, y)


def to_deepinv(A: LinearOperator, noise_model=None, *, svd: SVD | None = None) -> dinv.physics.LinearPhysics:
    """A as a deepinv physics: a `DecomposablePhysics` (U, U_adjoint, V, V_adjoint, mask = singular
    values) when A has a structured SVD or `svd` is given (e.g. a `RandomizedSVD` result), else a
    `LinearPhysics`. `noise_model` is any deepinv noise model (default: deepinv's, no noise)."""
    if not isinstance(A, LinearOperator):
        raise TypeError(f"to_deepinv takes a linops LinearOperator, got {type(A).__name__}")
    dec = svd if svd is not None else structured_svd(A)
    if dec is None:
        return OperatorPhysics(A, noise_model)
    if dec.in_shape != A.in_shape or dec.out_shape != A.out_shape:
        raise ValueError(
            f"to_deepinv: the SVD maps {dec.in_shape} -> {dec.out_shape} but {A!r} maps {A.in_shape} -> {A.out_shape}"
        )
    return DecomposableOperatorPhysics(A, dec, noise_model)


# ----------------------------------------------------------------------------------------------


def _module_device(module) -> torch.device:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


class DeepinvOperator(LinearOperator):
    """A deepinv LinearPhysics as a linops operator: A x = physics.A(x), A^H y = physics.A_adjoint(y).

    Autograd comes from the linops base class (the backward is A_adjoint), so deepinv operators
    compose with ours and with networks like any other operator.
    """

    def __init__(self, physics, in_shape, out_shape, *, dtype: torch.dtype, device):
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)
        self.physics = physics

    def _apply(self, x):
        return self.physics.A(x)

    def _adjoint(self, y):
        return self.physics.A_adjoint(y)

    def __repr__(self):
        return f"Deepinv({type(self.physics).__name__}, {self.in_shape} -> {self.out_shape})"


def from_deepinv(physics, in_shape, *, dtype: torch.dtype = torch.float32, device=None) -> LinearOperator:
    """Wrap a deepinv `LinearPhysics` acting on (B, *in_shape) as a linops operator.

    out_shape (and whether the operator is complex) is found by applying physics.A to a zero probe
    of shape (1, *in_shape). `device` defaults to that of the physics' parameters/buffers (else cpu).
    The noise model is not part of the operator (A is the noiseless linear map).
    """
    if not isinstance(physics, dinv.physics.LinearPhysics):
        raise TypeError(f"from_deepinv needs a deepinv LinearPhysics, got {type(physics).__name__}")
    device = torch.device(device) if device is not None else _module_device(physics)
    in_shape = tuple(int(n) for n in in_shape)
    with torch.no_grad():
        probe = physics.A(torch.zeros((1, *in_shape), dtype=dtype, device=device))
    if not isinstance(probe, torch.Tensor):
        raise TypeError(f"from_deepinv: physics.A returned {type(probe).__name__}; only single tensors are supported")
    out_dtype = probe.dtype if probe.is_complex() else dtype
    if out_dtype.is_complex and dtype.is_floating_point:
        out_dtype = torch.promote_types(dtype, torch.complex64)
    return DeepinvOperator(physics, in_shape, tuple(probe.shape[1:]), dtype=out_dtype, device=device)


# ----------------------------------------------------------------------------------------------
# the SVD of a wrapped deepinv DecomposablePhysics


class _PhysicsMap(LinearOperator):
    """U or V of a deepinv DecomposablePhysics: spectral coordinates -> signal space, with its adjoint."""

    def __init__(self, forward, adjoint, spectral_shape, out_shape, *, dtype, device):
        super().__init__(spectral_shape, out_shape, dtype=dtype, device=device)
        self.forward, self.backward = forward, adjoint

    def _apply(self, z):
        return self.forward(z)

    def _adjoint(self, x):
        return self.backward(x)


def _has_orthonormal_columns(W: LinearOperator, generator: torch.Generator, rtol: float) -> bool:
    """||W z|| = ||z|| and W^H W z = z on a random z: W is an isometry and its given adjoint really is
    W^H (a map that is not, or a left inverse posing as the adjoint, fails with probability one)."""
    z = torch.randn((1, *W.in_shape), generator=generator, dtype=W.dtype, device="cpu").to(W.device)
    w = W.apply(z)
    norm = float(z.norm())
    return abs(float(w.norm()) - norm) <= rtol * norm and float((W.H.apply(w) - z).norm()) <= rtol * norm


@svd_rules.register(DeepinvOperator)
def _decomposable_physics_svd(op: DeepinvOperator, child) -> SVD | None:
    """deepinv's A = U diag(mask) V^H as our structured SVD, when it is one: a real, non-negative
    mask shared by the batch, and U, V with orthonormal columns (checked on a random probe). Otherwise
    (BlurFFT's complex mask, the Parseval frame `to_deepinv` builds for an incomplete SVD) None, and
    the SVD is computed like any other operator's. Like every SVD it is cached on the operator: wrap
    the physics again after changing its mask (`physics.update(mask=...)`)."""
    physics = op.physics
    if isinstance(physics, DecomposableOperatorPhysics):
        return physics.svd
    if not isinstance(physics, dinv.physics.DecomposablePhysics):
        return None
    with torch.no_grad():
        spectral = physics.V_adjoint(torch.zeros((1, *op.in_shape), dtype=op.dtype, device=op.device))
        mask = torch.as_tensor(physics.mask, device=op.device)
        if spectral.is_complex() != op.dtype.is_complex or (mask.is_complex() and bool(mask.imag.any())):
            return None
        mask = mask.real if mask.is_complex() else mask
        shape = tuple(spectral.shape[1:])
        if mask.ndim == len(shape) + 1:
            if mask.shape[0] != 1:
                return None  # one operator per sample: not a single linear map
            mask = mask[0]
        real = precision_of(op.dtype)
        try:
            s = mask.to(real).expand(shape).clone()
        except RuntimeError:
            return None
        if bool((s < 0).any()):
            return None
        U = _PhysicsMap(physics.U, physics.U_adjoint, shape, op.out_shape, dtype=spectral.dtype, device=op.device)
        V = _PhysicsMap(physics.V, physics.V_adjoint, shape, op.in_shape, dtype=spectral.dtype, device=op.device)
        # deepinv keeps its parameters in float32 whatever the input: allow float32 rounding, far
        # below the O(1) defect of a map that is no isometry
        generator, rtol = torch.Generator().manual_seed(0), 1e-4
        if not (_has_orthonormal_columns(U, generator, rtol) and _has_orthonormal_columns(V, generator, rtol)):
            return None
    k = math.prod(shape)
    return SVD(
        U, s, V, complete=k == math.prod(op.in_shape), range_complete=k == math.prod(op.out_shape), structured=True
    )
