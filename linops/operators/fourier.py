"""The unitary 2-D DFT and subsampled Fourier measurements (MRI)."""

from __future__ import annotations

import torch

from ..base import LinearOperator, as_shape, precision_of
from ..rules import basis_rules, coisometry_rules, isometry_rules, norm_rules, svd_rules
from .decomposition import SVD, identity_like


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype.is_complex else torch.promote_types(dtype, torch.complex64)


class FFT2(LinearOperator):
    """The orthonormal 2-D DFT over the last two axes:

        (F x)[u, v] = (1 / sqrt(H W)) sum_{p, q} x[p, q] exp(-2 pi i (u p / H + v q / W)),

    unitary (F^H F = I), so F^H = F^{-1} is the orthonormal inverse DFT. Complex-valued.
    """

    def __init__(self, in_shape, *, dtype: torch.dtype = torch.complex64, device="cpu"):
        in_shape = as_shape(in_shape, "in_shape")
        if len(in_shape) < 2:
            raise ValueError(f"FFT2 needs in_shape (..., H, W), got {in_shape}")
        super().__init__(in_shape, in_shape, dtype=_complex_dtype(dtype), device=device)

    def _apply(self, x):
        return torch.fft.fft2(x, norm="ortho")

    def _adjoint(self, y):
        return torch.fft.ifft2(y, norm="ortho")

    def __repr__(self):
        return f"FFT2(in_shape={self.in_shape})"


class FourierSampling(LinearOperator):
    """Subsampled Fourier measurements y = M ⊙ F x, with F the orthonormal 2-D DFT and M a 0/1
    k-space mask (unshifted: frequency (0, 0) at index (0, 0)). The adjoint is F^H (M ⊙ y).

    `mask` has shape (H, W) or broadcasts to `in_shape`; unsampled entries of y are 0.
    The operator is complex (complex64 by default); real images are promoted.
    """

    def __init__(self, mask, in_shape=None, *, dtype: torch.dtype = torch.complex64):
        m = torch.as_tensor(mask)
        if m.dtype != torch.bool and not bool(((m == 0) | (m == 1)).all()):
            raise ValueError("FourierSampling mask entries must be 0 or 1")
        dtype = _complex_dtype(dtype)
        in_shape = as_shape(in_shape if in_shape is not None else m.shape, "in_shape")
        if len(in_shape) < 2 or torch.broadcast_shapes(m.shape, in_shape) != in_shape:
            raise ValueError(f"FourierSampling mask of shape {tuple(m.shape)} does not broadcast to {in_shape}")
        super().__init__(in_shape, in_shape, dtype=dtype, device=m.device)
        self.mask = m.to(dtype.to_real())

    def _apply(self, x):
        return self.mask * torch.fft.fft2(x, norm="ortho")

    def _adjoint(self, y):
        return torch.fft.ifft2(self.mask * y, norm="ortho")

    def __repr__(self):
        return f"FourierSampling(in_shape={self.in_shape}, sampled={int(self.mask.sum())})"


# ----------------------------------------------------------------------------------------------
# spectral facts (linops.rules tables)


@isometry_rules.register(FFT2)
@coisometry_rules.register(FFT2)
def _fft2_is_unitary(op) -> bool:
    """The orthonormal DFT: F^H F = F F^H = I (its SVD: U = F, s = 1, V = I)."""
    return True


@basis_rules.register(FFT2)
def _fft2_basis(op):
    return ("fft2", op.in_shape)


@norm_rules.register(FFT2)
def _fft2_norm(op):
    """The orthonormal DFT is unitary: ||F|| = 1."""
    return 1.0


@svd_rules.register(FourierSampling)
def _fourier_sampling_svd(op, child):
    """M F = I diag(m) (F^H)^H."""
    F = FFT2(op.in_shape, dtype=op.dtype, device=op.device)
    s = op.mask.expand(op.in_shape).to(precision_of(op.dtype)).clone()
    return SVD(identity_like(op.in_shape, op), s, F.H, complete=True, range_complete=True, structured=True)


@norm_rules.register(FourierSampling)
def _fourier_sampling_norm(op):
    """||M F|| = ||M|| = max m."""
    return float(op.mask.max())
