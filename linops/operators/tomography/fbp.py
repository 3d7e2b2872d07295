"""Filtered backprojection for the parallel-beam `Radon` operator (and for a full-turn `FanBeamRadon`,
rebinned to parallel beam by `FanToParallel` first).

Inversion formula (Kak & Slaney, ch. 3): for parallel projections p_theta(s) over theta in [0, pi),

    f(x, y) = ∫_0^pi q_theta(x cos theta + y sin theta) dtheta,    q_theta = h * p_theta,

with h the ramp filter |nu| (nu in cycles per unit length). Discretely, with bins `d` apart,

    q[k] = (1 / d) sum_j h[k - j] p[j],    h[0] = 1/4,  h[n odd] = -1 / (pi n)^2,  h[n even != 0] = 0,

computed by FFT on the detector axis zero-padded to L >= 2 n_detector (no wrap-around), with the transfer
function of the spatial kernel (no DC offset) times a window W(nu) (`FilterWindow`). The backprojection is
the operator's own transpose: for Joseph's matrix each view spreads a bin value over the pixels it crosses
with weights summing, on average over the view, to p^2 / d per pixel (p: pixel size), so

    fbp(y) = (d / p^2) A^T [ dtheta_i q_i ],

where dtheta_i is the angular width a view stands for (`angle_weights`; pi / n for a full range).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch

from ...interop import arrays
from ...memo import MemoKey, remember
from .fan import FanBeamRadon
from .parallel import Radon
from .rebin import FanToParallel


class FilterWindow(enum.Enum):
    """Apodization W(nu) of the ramp, nu in cycles per bin (Nyquist 1/2):

    RAM_LAK      1                       (the bare ramp: sharpest, noisiest)
    SHEPP_LOGAN  sin(pi nu) / (pi nu)    (2 / pi at Nyquist)
    COSINE       cos(pi nu)
    HANN         (1 + cos(2 pi nu)) / 2
    HAMMING      0.54 + 0.46 cos(2 pi nu)
    """

    RAM_LAK = "ram-lak"
    SHEPP_LOGAN = "shepp-logan"
    COSINE = "cosine"
    HANN = "hann"
    HAMMING = "hamming"

    def response(self, nu: torch.Tensor) -> torch.Tensor:
        """W(nu) for frequencies nu in cycles per bin."""
        if self is FilterWindow.RAM_LAK:
            return torch.ones_like(nu)
        if self is FilterWindow.SHEPP_LOGAN:
            return torch.sinc(nu)
        if self is FilterWindow.COSINE:
            return torch.cos(math.pi * nu)
        if self is FilterWindow.HANN:
            return 0.5 * (1 + torch.cos(2 * math.pi * nu))
        return 0.54 + 0.46 * torch.cos(2 * math.pi * nu)


def padded_length(n_detector: int) -> int:
    """The FFT length: the smallest power of two >= 2 n_detector (and >= 64)."""
    return max(64, 1 << math.ceil(math.log2(2 * n_detector)))


def ramp_transfer(n_detector: int, window: FilterWindow = FilterWindow.RAM_LAK) -> torch.Tensor:
    """rfft transfer function (length L / 2 + 1, float64) of the spatial ramp kernel h times W(nu), bin units."""
    length = padded_length(n_detector)
    n = torch.arange(length, dtype=torch.float64)
    n = torch.where(n < length // 2, n, n - length)  # circular offsets -L/2 .. L/2 - 1
    h = torch.where(n % 2 == 1, -1 / (math.pi * n) ** 2, torch.zeros_like(n))
    h[0] = 0.25
    transfer = torch.fft.rfft(h).real
    return transfer * window.response(torch.fft.rfftfreq(length, dtype=torch.float64))


def filter_sinogram(
    sinogram: torch.Tensor, window: FilterWindow = FilterWindow.RAM_LAK, *, detector_spacing: float = 1.0
) -> torch.Tensor:
    """q = (1 / d) h * p along the last (detector) axis, zero-padded to avoid wrap-around."""
    n_detector = sinogram.shape[-1]
    transfer = ramp_transfer(n_detector, FilterWindow(window))
    length = padded_length(n_detector)
    spectrum = torch.fft.rfft(sinogram, n=length) * transfer.to(sinogram.device, sinogram.real.dtype)
    return torch.fft.irfft(spectrum, n=length)[..., :n_detector] / detector_spacing


def angle_weights(angles_rad) -> torch.Tensor:
    """The angular width dtheta_i each view stands for, float64.

    Views are sorted; each gets half the gap to each neighbour, and an end view the whole gap to its one
    neighbour (so n views at spacing delta get delta each, and a full range [0, pi) gets pi / n). A set spanning
    more than pi measures every line more than once, so its weights are scaled to sum to pi. One view gets pi.
    """
    angles = torch.as_tensor(angles_rad, dtype=torch.float64)
    if angles.numel() == 1:
        return torch.full((1,), math.pi, dtype=torch.float64)
    ordered, order = torch.sort(angles)
    gaps = ordered.diff()
    widths = torch.empty_like(ordered)
    widths[1:-1] = (gaps[:-1] + gaps[1:]) / 2
    widths[0], widths[-1] = gaps[0], gaps[-1]
    total = float(widths.sum())
    if total > math.pi:
        widths = widths * (math.pi / total)
    weights = torch.empty_like(widths)
    weights[order] = widths
    return weights


@dataclass(frozen=True)
class Rebinning(MemoKey):
    """Memo key of the `FanToParallel` rebinning that `fbp` builds once per FanBeamRadon."""


REBINNING = Rebinning()


def fbp(radon: Radon | FanBeamRadon, sinogram, window: FilterWindow = FilterWindow.RAM_LAK):
    """Filtered backprojection fbp(y) = (d / p^2) A^T [dtheta_i q_i] (module docstring) of `sinogram`.

    `sinogram` has shape (*batch, *radon.out_shape) (a tensor, or a numpy/CuPy array, returned in kind); the
    result has shape (*batch, *radon.in_shape). For a full angular range FBP(A x) ≈ x inside the disc the
    detector covers (1% RMS on a disc with detector_spacing = pixel_size; the ray-driven transpose leaves
    moiré of a few percent when detector_spacing > pixel_size); for a limited range it is the usual streaky
    estimate with the wedge missing.
    """
    if isinstance(radon, FanBeamRadon):
        return arrays.call_on_tensor(lambda y: _fan_fbp(radon, y, FilterWindow(window)), sinogram)
    if not isinstance(radon, Radon):
        raise TypeError(f"fbp inverts the parallel-beam Radon and the full-turn FanBeamRadon, got {radon!r}")
    return arrays.call_on_tensor(lambda y: _fbp(radon, y, FilterWindow(window)), sinogram)


def _fan_fbp(fan: FanBeamRadon, sinogram: torch.Tensor, window: FilterWindow) -> torch.Tensor:
    """Rebin to parallel beam (`FanToParallel`, built once per operator), then parallel FBP."""
    _check_sinogram(fan, sinogram)
    rebin = remember(fan, REBINNING, lambda: FanToParallel(fan))
    return _fbp(rebin.parallel, rebin.apply(sinogram), window)


def _check_sinogram(op, sinogram: torch.Tensor) -> None:
    k = len(op.out_shape)
    if sinogram.ndim < k or tuple(sinogram.shape[sinogram.ndim - k :]) != op.out_shape:
        raise ValueError(
            f"fbp with {op!r} expects a sinogram of shape (*batch, {', '.join(map(str, op.out_shape))}), "
            f"got {tuple(sinogram.shape)}."
        )


def _fbp(radon: Radon, sinogram: torch.Tensor, window: FilterWindow) -> torch.Tensor:
    _check_sinogram(radon, sinogram)
    geometry = radon.geometry
    filtered = filter_sinogram(sinogram, window, detector_spacing=geometry.detector_spacing)
    weights = angle_weights(geometry.angles_rad).to(filtered.device, filtered.dtype)
    view_axis_shape = (-1, 1, 1) if radon.is_volume else (-1, 1)  # views precede (D,) n_detector
    filtered = filtered * weights.reshape(view_axis_shape)
    scale = geometry.detector_spacing / geometry.pixel_size**2
    return scale * radon.H.apply(filtered)
