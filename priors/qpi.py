"""Quantitative phase imaging from two defocused images by the transport-of-intensity equation (TIE): the
measurement the conditional (CVDM) priors are trained for.

A thin phase object exp(i phi) under a uniform intensity I0 = 1 is imaged at +-dz; to first order in dz

    y = (I(+dz) - I(-dz)) / (2 dz) = -(1 / k) Laplacian(phi) + n,     k = 2 pi / wavelength,

`linops.TransportOfIntensity` on a periodic grid. Each image carries Gaussian noise of standard deviation
sigma_I (in units of I0), so n ~ N(0, sigma_y^2 I) with sigma_y = sigma_I / (sqrt(2) dz).

Units. A procedural image u in [0, 1] is the phase phi = phase_max u (radians). Phase is measured only up to
a constant (the operator's null space), so the model works with the zero-mean image

    x = 2 (u - mean(u)) = (2 / phase_max) (phi - mean(phi)),

which has the scale of the seed's [-1, 1] target (MAE in these units is comparable to the seed's). In these
units the measurement operator is A = (phase_max / 2) TIE (A kills the mean, so y = A x exactly).

Defaults (seed 004, Section 4.2 and the public code's simulation): wavelength 0.521 um, defocus 1 um,
phase_max 3.5 rad, sigma_I ~ U(0, 0.2) per image pair. [ours] The seed simulates 256 x 256 images with
0.21 um pixels; the priors here are 64 x 64, sampled at 0.42 um (the seed's optics, binned 2 x 2): a
13 x 13 um^2 field in which, at sigma_I = 0.1, the few lowest frequencies (about a quarter of the phase
energy of the procedural blobs) are measured with SNR below 1 - the low-frequency ambiguity the TIE is
known for - while everything finer is well determined.

The network's view of y (`condition`): y / y_scale and the Tikhonov inverse
x_c = V diag(s / (s^2 + mu)) U^T y (from the operator's structured SVD), two channels. [ours] The seed's
network takes the two intensities themselves; a small U-Net cannot invert a Laplacian (a global operation)
with its receptive field, so it is given a fixed linear inverse alongside y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

import linops


@dataclass(frozen=True)
class PhaseFromDefocus:
    """Two-shot TIE phase imaging on square images of side `size` (see the module docstring).

    Attributes:
        size: image side in pixels.
        wavelength, pixel_size, defocus: in micrometres.
        phase_max: the phase (radians) of a procedural image's brightest pixel.
        noise: (low, high): sigma_I ~ U(low, high) per image when simulating for training.
        y_scale: y is divided by this for the network.
        condition_regularization: mu of the Tikhonov inverse handed to the network.
    """

    size: int = 64
    wavelength: float = 0.521
    pixel_size: float = 0.42
    defocus: float = 1.0
    phase_max: float = 3.5
    noise: tuple[float, float] = (0.0, 0.2)
    y_scale: float = 0.3
    condition_regularization: float = 0.003

    def __post_init__(self):
        object.__setattr__(self, "noise", tuple(float(v) for v in self.noise))
        lo, hi = self.noise
        if not 0 <= lo <= hi:
            raise ValueError(f"noise must be a range 0 <= low <= high, got {self.noise}")
        for name in ("wavelength", "pixel_size", "defocus", "phase_max", "y_scale", "condition_regularization"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.size < 8:
            raise ValueError(f"size must be at least 8, got {self.size}")

    condition_channels = 2

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    @cached_property
    def tie(self) -> linops.TransportOfIntensity:
        """The TIE in radians: phi -> dI/dz (float64; `operator` converts)."""
        return linops.TransportOfIntensity(
            self.image_shape, wavelength=self.wavelength, pixel_size=self.pixel_size, dtype=torch.float64
        )

    def operator(self, dtype: torch.dtype = torch.float32, device="cpu") -> linops.LinearOperator:
        """A = (phase_max / 2) TIE: model units x -> y."""
        return (self.phase_max / 2) * self.tie.to(device=device, dtype=dtype)

    def noise_std(self, sigma_I) -> torch.Tensor | float:
        """sigma_y = sigma_I / (sqrt(2) dz): the noise of the finite difference of two images."""
        return sigma_I / (math.sqrt(2) * self.defocus)

    def phase(self, x: torch.Tensor) -> torch.Tensor:
        """phi - mean(phi) in radians for x in model units."""
        return self.phase_max / 2 * x

    def simulate(self, x: torch.Tensor, generator: torch.Generator | None = None, sigma_I=None) -> torch.Tensor:
        """y = A x + sigma_y n for x (B, 1, size, size) in model units; sigma_I a float, a (B,) tensor, or
        None to draw it from U(noise) per image (from `generator`)."""
        self._check(x, "x")
        B = x.shape[0]
        device = generator.device if generator is not None else x.device
        if sigma_I is None:
            lo, hi = self.noise
            sigma_I = lo + (hi - lo) * torch.rand(B, generator=generator, dtype=torch.float64, device=device)
        sigma_y = torch.as_tensor(self.noise_std(sigma_I), dtype=x.dtype).to(x.device).reshape(-1, 1, 1, 1)
        n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
        return self.operator(x.dtype, x.device) @ x + sigma_y * n

    def regularized_inverse(self, y: torch.Tensor, mu: float) -> torch.Tensor:
        """V diag(s / (s^2 + mu)) U^T y in model units: the Tikhonov inverse of A (zero mean)."""
        A = self.operator(torch.float64)
        dec = linops.svd(A)
        s = dec.s
        x_bar = s / (s**2 + mu) * (dec.U.H @ y.to(torch.float64))
        return (dec.V @ x_bar).to(y.dtype)

    def condition(self, y: torch.Tensor) -> torch.Tensor:
        """The network's view of y: (B, 2, size, size) = [y / y_scale, Tikhonov inverse (mu =
        condition_regularization)]."""
        self._check(y, "y")
        return torch.cat([y / self.y_scale, self.regularized_inverse(y, self.condition_regularization)], dim=1)

    def _check(self, t: torch.Tensor, name: str) -> None:
        if t.ndim != 4 or tuple(t.shape[1:]) != self.image_shape:
            raise ValueError(f"{name} must have shape (B, 1, {self.size}, {self.size}), got {tuple(t.shape)}")
