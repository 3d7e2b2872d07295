"""Market examples for the transport-of-intensity operator, with an independent numpy reference."""

from __future__ import annotations

import numpy as np

from ..operators.tie import TransportOfIntensity
from .market import register


def np_tie(op, x: np.ndarray) -> np.ndarray:
    """-(I0 / k) times the spectral Laplacian: the complex DFT of each H x W plane multiplied by
    (I0 / k) (2 pi)^2 (fx^2 + fy^2), frequencies from np.fft.fftfreq, the real part of the inverse."""
    H, W = x.shape[-2:]
    fy = np.fft.fftfreq(H, d=op.pixel_size)[:, None]
    fx = np.fft.fftfreq(W, d=op.pixel_size)[None, :]
    k = 2 * np.pi / op.wavelength
    m = op.intensity / k * (2 * np.pi) ** 2 * (fx**2 + fy**2)
    return np.real(np.fft.ifft2(m * np.fft.fft2(x, axes=(-2, -1)), axes=(-2, -1)))


@register("tie", reference=np_tie)
def _(dtype, g):
    return TransportOfIntensity((1, 6, 8), wavelength=0.521, pixel_size=0.21, dtype=dtype)


@register("tie-odd-channels", reference=np_tie)
def _(dtype, g):
    # odd sizes (no Nyquist frequency) and two channels transformed independently
    return TransportOfIntensity((2, 5, 7), wavelength=0.633, pixel_size=0.5, intensity=0.8, dtype=dtype)
