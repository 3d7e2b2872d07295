"""The transport-of-intensity operator against the physics it linearises and its exact eigenfunctions."""

from __future__ import annotations

import math

import pytest
import torch

import linops
from linops import TransportOfIntensity

F64 = torch.float64


def fresnel_intensity(phi: torch.Tensor, z: float, wavelength: float, pixel_size: float) -> torch.Tensor:
    """|U(z)|^2 for the unit-intensity field U(0) = exp(i phi), propagated by the paraxial (Fresnel)
    transfer function exp(-i pi wavelength z |f|^2) on the periodic grid."""
    H, W = phi.shape[-2:]
    fy = torch.fft.fftfreq(H, d=pixel_size, dtype=F64)[:, None]
    fx = torch.fft.fftfreq(W, d=pixel_size, dtype=F64)[None, :]
    transfer = torch.exp(-1j * math.pi * wavelength * z * (fx**2 + fy**2))
    return torch.fft.ifft2(transfer * torch.fft.fft2(torch.exp(1j * phi))).abs() ** 2


def test_two_defocused_images_measure_the_tie():
    """(I(+dz) - I(-dz)) / (2 dz) from exact Fresnel propagation converges to the operator, O(dz^2)."""
    wavelength, pixel = 0.521, 0.21
    r = torch.arange(64, dtype=F64)
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    bump = lambda r0, c0, width: torch.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / width)  # noqa: E731
    phi = (0.5 * bump(30, 34, 72) - 0.3 * bump(12, 50, 20))[None]
    A = TransportOfIntensity((1, 64, 64), wavelength=wavelength, pixel_size=pixel, dtype=F64)
    tie = A @ phi
    errors = []
    for dz in (0.4, 0.1):
        plus, minus = (fresnel_intensity(phi, z, wavelength, pixel) for z in (dz, -dz))
        finite = (plus - minus) / (2 * dz)
        errors.append(float((finite - tie).abs().max() / tie.abs().max()))
    assert errors[1] < 1e-3
    assert errors[0] / errors[1] == pytest.approx(16, rel=0.1)  # second order in dz


def test_fourier_modes_are_eigenfunctions():
    """cos(2 pi (u p / H + v q / W)) maps to (I0 / k) |2 pi f|^2 times itself, f = (u / (H d), v / (W d))."""
    H, W, d, lam, I0 = 12, 10, 0.3, 0.55, 1.7
    A = TransportOfIntensity((H, W), wavelength=lam, pixel_size=d, intensity=I0, dtype=F64)
    p, q = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    for u, v in ((1, 0), (2, 3), (6, 5)):  # (6, 5): the Nyquist frequency on both axes
        mode = torch.cos(2 * math.pi * (u * p / H + v * q / W))
        f2 = (u / (H * d)) ** 2 + (v / (W * d)) ** 2
        eigenvalue = I0 / (2 * math.pi / lam) * (2 * math.pi) ** 2 * f2
        torch.testing.assert_close(A @ mode, eigenvalue * mode)


def test_null_space_is_the_constant_phase():
    A = TransportOfIntensity((2, 6, 6), wavelength=0.5, pixel_size=0.2, dtype=F64)
    assert float((A @ torch.full((2, 6, 6), 3.0, dtype=F64)).abs().max()) < 1e-12
    dec = linops.svd(A)
    assert dec.structured and int((dec.s == 0).sum()) == 2  # one zero frequency per channel
    assert A.norm() == pytest.approx(float(torch.linalg.matrix_norm(A.to_dense(), ord=2)), rel=1e-12)


@pytest.mark.parametrize("kwargs", [dict(wavelength=0.0, pixel_size=0.2), dict(wavelength=0.5, pixel_size=-1.0),
                                    dict(wavelength=0.5, pixel_size=0.2, intensity=float("nan"))])
def test_bad_parameters_are_named(kwargs):
    name = next(k for k, v in kwargs.items() if not (v > 0))
    with pytest.raises(ValueError, match=name):
        TransportOfIntensity((1, 4, 4), **kwargs)


def test_needs_an_image_shape():
    with pytest.raises(ValueError, match="in_shape"):
        TransportOfIntensity((8,), wavelength=0.5, pixel_size=0.2)
