"""The transport-of-intensity equation (TIE), linearised about a uniform intensity: phase from defocus."""

from __future__ import annotations

import math

import torch

from ..base import LinearOperator, as_shape, precision_of
from ..rules import norm_rules, svd_rules
from .bases import Hartley2
from .decomposition import SVD


def _frequencies_squared(H: int, W: int, pixel_size: float, *, half: bool) -> torch.Tensor:
    """|f|^2 (cycles per unit length, squared) on the DFT grid of an H x W image, (H, W // 2 + 1) when `half`."""
    fy = torch.fft.fftfreq(H, d=pixel_size, dtype=torch.float64)
    fx = (torch.fft.rfftfreq if half else torch.fft.fftfreq)(W, d=pixel_size, dtype=torch.float64)
    return fy[:, None] ** 2 + fx[None, :] ** 2


class TransportOfIntensity(LinearOperator):
    """y = dI/dz = -(I0 / k) Laplacian(phi), the TIE dI/dz = -(1/k) div(I grad phi) for a uniform in-focus
    intensity I0, on a periodic grid, as the Fourier multiplier

        y = F^{-1}[ m(f) F phi ],     m(f) = (I0 / k) |2 pi f|^2,     k = 2 pi / wavelength,

    f the DFT frequencies of the H x W grid in cycles per unit length (`pixel_size` the sample spacing).
    Two images at +-dz measure it to second order: (I(+dz) - I(-dz)) / (2 dz) = y + O(dz^2), with the
    Fresnel propagator F^{-1} exp(-i pi wavelength z |f|^2) F (tests/linops/test_tie.py checks this).

    phi is in radians; `wavelength` and `pixel_size` in one length unit (e.g. micrometres), so y is in
    units of I0 per that unit. m is real, even and non-negative: the operator is self-adjoint, positive
    semi-definite, and diagonal in the real Hartley basis (its SVD: U = V = Hartley2, s = m on the full
    grid). Its null space is the constant phase (f = 0): phi is measured up to an offset. `in_shape` is
    (..., H, W); leading axes (channels) are transformed independently.
    """

    is_self_adjoint = True

    def __init__(
        self,
        in_shape,
        *,
        wavelength: float,
        pixel_size: float,
        intensity: float = 1.0,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        in_shape = as_shape(in_shape, "in_shape")
        if len(in_shape) < 2:
            raise ValueError(f"TransportOfIntensity needs in_shape (..., H, W), got {in_shape}")
        for name, value in (("wavelength", wavelength), ("pixel_size", pixel_size), ("intensity", intensity)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"TransportOfIntensity: {name} must be a positive number, got {value!r}")
        if dtype.is_complex:
            raise TypeError(f"TransportOfIntensity is a real operator; got dtype {dtype}")
        super().__init__(in_shape, in_shape, dtype=dtype, device=device)
        self.wavelength, self.pixel_size, self.intensity = float(wavelength), float(pixel_size), float(intensity)
        self.transfer = self._multiplier(half=True).to(dtype=dtype, device=device)

    def _multiplier(self, *, half: bool) -> torch.Tensor:
        # (I0 / k) |2 pi f|^2 = 2 pi I0 wavelength |f|^2
        H, W = self.in_shape[-2:]
        return 2 * math.pi * self.intensity * self.wavelength * _frequencies_squared(H, W, self.pixel_size, half=half)

    def multiplier(self) -> torch.Tensor:
        """m(f) on the full H x W frequency grid (the singular values; frequency (0, 0) at index (0, 0))."""
        return self._multiplier(half=False).to(self.transfer)

    def _apply(self, x):
        H, W = self.in_shape[-2:]
        return torch.fft.irfft2(torch.fft.rfft2(x) * self.transfer, s=(H, W))

    def _adjoint(self, y):
        return self._apply(y)

    def __repr__(self):
        return (
            f"TransportOfIntensity(in_shape={self.in_shape}, wavelength={self.wavelength:g}, "
            f"pixel_size={self.pixel_size:g}, intensity={self.intensity:g})"
        )


# ----------------------------------------------------------------------------------------------
# spectral facts (linops.rules tables)


@svd_rules.register(TransportOfIntensity)
def _tie_svd(op, child):
    """The TIE multiplier m(f) = (I0 / k) |2 pi f|^2 is real, even and non-negative, so the operator is
    H diag(m) H with H the orthonormal Hartley transform (no pair rotation): U = V = H, s = m."""
    real = precision_of(op.dtype)
    hartley = Hartley2(op.in_shape, dtype=real, device=op.device)
    s = op.multiplier().to(real).expand(op.in_shape).clone()
    return SVD(hartley, s, hartley, complete=True, range_complete=True, structured=True)


@norm_rules.register(TransportOfIntensity)
def _tie_norm(op):
    """||TIE|| = max m(f) = (I0 / k) |2 pi f|^2 at the corner frequency of the grid."""
    return float(op.transfer.max())
