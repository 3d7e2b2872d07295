"""Severity families A_t, t in [0, 1], for degradation-aware priors (Dirac; seed 002).

A family maps a severity t to an operator: A_0 is (close to) the identity and severity grows with t,
in the sense that a more severe member factors through a milder one,

    A_t' = G_{t -> t'} A_t    for t' >= t,

with a transition operator G that `family.transition(t, t')` returns. Two families:

- `GaussianBlurFamily`: A_t = Gaussian blur of standard deviation std(t) (pixels), separable, with
  reflect padding by default. std(t) is a value (`LinearRamp(0.3, 3.0)` by default [inferred from the
  paper's range]; a scheduler may hand a `PiecewiseLinearRamp`). With the default discrete Gaussian
  kernel the blurs form an exact semigroup, G = blur(sqrt(std'^2 - std^2)).
- `GaussianMaskFamily`: A_t = pointwise mask M_t = (1 - f_t / max f_t)^4 with f_t a centred isotropic
  Gaussian of standard deviation w(t) = 0.1 + t (s_max - 0.1); G = M_t' / M_t (0 where M_t = 0).

Batched severities. `family.at(t)` takes a float (an operator on one image, in_shape = image_shape)
or a tensor of shape (B,) (one severity per sample). In the batched case the operator acts on the
whole batch at once: in_shape = (B, *image_shape), sample b degraded by A_{t_b}. It is a
block-diagonal linear operator with its exact adjoint, so it passes the dot test like any other,
composes in the algebra, and still accepts extra leading batch axes.
"""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass

import torch

from ..base import LinearOperator, as_shape
from .blur import blur_matrices
from .diagonal import Diagonal
from .padding import Boundary

# ----------------------------------------------------------------------------------------------
# severity -> parameter maps


def as_severity(t) -> torch.Tensor:
    """t as a float64 tensor of shape () or (B,), checked to lie in [0, 1]."""
    s = t.detach().to(torch.float64) if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=torch.float64)
    if s.ndim > 1:
        raise ValueError(f"severity t must be a float or a tensor of shape (B,), got shape {tuple(s.shape)}")
    if s.ndim == 1 and s.shape[0] == 0:
        raise ValueError("severity t is an empty tensor")
    if bool(((s < 0) | (s > 1) | s.isnan()).any()):
        raise ValueError(f"severity t must lie in [0, 1], got {s.tolist()}")
    return s


@dataclass(frozen=True)
class LinearRamp:
    """v(t) = start + t (end - start)."""

    start: float
    end: float

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return self.start + torch.as_tensor(t, dtype=torch.float64) * (self.end - self.start)

    @property
    def values(self) -> tuple[float, ...]:
        return (self.start, self.end)


@dataclass(frozen=True)
class PiecewiseLinearRamp:
    """v(t) interpolating (times[i], values[i]) linearly, times increasing from 0 to 1.

    The form a degradation scheduler hands over: severities t_i it selected, mapped to parameters.
    """

    times: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "times", tuple(float(v) for v in self.times))
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        t = self.times
        if len(t) < 2 or len(t) != len(self.values):
            raise ValueError(f"need at least two knots and as many values as times, got {len(t)}, {len(self.values)}")
        if t[0] != 0 or t[-1] != 1 or any(b <= a for a, b in zip(t, t[1:])):
            raise ValueError(f"knot times must increase strictly from 0 to 1, got {t}")

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        knots = torch.tensor(self.times, dtype=torch.float64, device=t.device)
        vals = torch.tensor(self.values, dtype=torch.float64, device=t.device)
        i = torch.searchsorted(knots, t.clamp(0, 1), right=True).clamp(1, len(knots) - 1)
        t0, t1, v0, v1 = knots[i - 1], knots[i], vals[i - 1], vals[i]
        return v0 + (t - t0) / (t1 - t0) * (v1 - v0)


Ramp = LinearRamp | PiecewiseLinearRamp


def _check_ramp(ramp, name: str, *, minimum: float) -> None:
    v = ramp.values
    if min(v) < minimum or any(b < a for a, b in zip(v, v[1:])):
        raise ValueError(f"{name} must be non-decreasing in t and at least {minimum}, got values {v}")


# ----------------------------------------------------------------------------------------------
# Gaussian kernels and the per-sample blur


class GaussianKernel(enum.Enum):
    """How a Gaussian of standard deviation s is put on the integer grid (both normalised to sum 1).

    DISCRETE  T(n; v) = e^{-v} I_n(v), v = s^2 (Lindeberg's discrete Gaussian, I_n the modified Bessel
              function): variance exactly s^2, and T(.; v1) * T(.; v2) = T(.; v1 + v2) exactly, so
              blurs compose like their continuous counterparts. Its DTFT is exp(v (cos w - 1)).
    SAMPLED   g[n] ∝ exp(-n^2 / (2 s^2)) (what image libraries use): composes only approximately,
              and for s < 1 its variance falls well below s^2.
    """

    DISCRETE = "discrete"
    SAMPLED = "sampled"


def gaussian_kernels_1d(std: torch.Tensor, radius: int, kind: GaussianKernel = GaussianKernel.DISCRETE):
    """Kernels of 2 radius + 1 taps (centre at index radius) for each std, shape (*std.shape, 2r+1),
    in float64, normalised to sum 1. std = 0 gives the unit impulse."""
    std = torch.as_tensor(std, dtype=torch.float64)
    if bool((std < 0).any()):
        raise ValueError(f"Gaussian std must be non-negative, got {std.tolist()}")
    n = torch.arange(-radius, radius + 1, dtype=torch.float64, device=std.device)
    s = std[..., None]
    if kind is GaussianKernel.SAMPLED:
        g = torch.exp(-(n**2) / (2 * s.clamp_min(1e-12) ** 2))
    else:
        # e^{-v} I_n(v) from its DTFT exp(v (cos w - 1)) on L frequencies; the L-periodised kernel
        # differs from the infinite one by terms T(n + jL), negligible for L >> radius, std
        L = 2 ** math.ceil(math.log2(max(64, 8 * radius + 16 * float(std.max()) + 8)))
        w = 2 * math.pi * torch.arange(L // 2 + 1, dtype=torch.float64, device=std.device) / L
        periodic = torch.fft.irfft(torch.exp(s**2 * (torch.cos(w) - 1)), n=L)
        g = torch.roll(periodic, radius, dims=-1)[..., : 2 * radius + 1]
    return g / g.sum(-1, keepdim=True)


def default_radius(std_max: float) -> int:
    """ceil(8 std_max) + 8 taps on each side: the discrete Gaussian's truncated tail mass stays below
    1e-14 for every std <= std_max (its tails are heavier than the sampled Gaussian's for std < 2:
    std = 1 needs 13 taps, not 8)."""
    return math.ceil(8 * std_max) + 8


class GaussianBlurs(LinearOperator):
    """Per-sample separable Gaussian blur: (B x)[b] = V(g_b ⊗ g_b) P x[b], with P the boundary
    extension by `radius` samples and V the valid part of the convolution with the (symmetric) kernel
    g_b of standard deviation std[b].

    `std` is a float (in_shape = image_shape, one blur) or a tensor of shape (B,) (in_shape =
    (B, *image_shape), a block-diagonal operator). image_shape is (..., H, W). Each sample's blur is
    stored as its two 1-D matrices with the boundary folded in (`blur_matrices`): x[b] -> R_b x[b] C_b^T,
    adjoint y[b] -> R_b^T y[b] C_b, a batched matrix product in any precision (exact adjoints, fast on
    CPU in float64 too). Memory H^2 + W^2 numbers per sample, work H W (H + W) per plane.
    """

    def __init__(
        self,
        std,
        image_shape,
        boundary: Boundary | str = Boundary.REFLECT,
        *,
        radius: int | None = None,
        kernel: GaussianKernel = GaussianKernel.DISCRETE,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        image_shape = as_shape(image_shape, "image_shape")
        if len(image_shape) < 2:
            raise ValueError(f"GaussianBlurs needs image_shape (..., H, W), got {image_shape}")
        std = torch.as_tensor(std, dtype=torch.float64)
        if std.ndim > 1:
            raise ValueError(f"std must be a float or a tensor of shape (B,), got shape {tuple(std.shape)}")
        self.std = std
        self.image_shape = image_shape
        self.radius = r = int(radius) if radius is not None else default_radius(float(std.max()))
        self.kernel_kind = GaussianKernel(kernel)
        self.boundary = Boundary.coerce(boundary)
        in_shape = image_shape if std.ndim == 0 else (std.shape[0], *image_shape)
        super().__init__(in_shape, in_shape, dtype=dtype, device=device)
        k = gaussian_kernels_1d(std.reshape(-1), r, self.kernel_kind)  # (samples, 2r + 1), float64
        self.kernels = (k + k.flip(-1)) / 2  # symmetric to the last bit
        H, W = image_shape[-2:]
        self.rows = blur_matrices(self.kernels, H, self.boundary).to(device=device, dtype=dtype)
        self.cols = blur_matrices(self.kernels, W, self.boundary).to(device=device, dtype=dtype)

    def _samples(self, x):
        """x (N, *in_shape) as (N, S, planes, H, W), S the number of per-sample blurs."""
        return x.reshape(x.shape[0], self.rows.shape[0], -1, *self.image_shape[-2:])

    def _apply(self, x):
        y = self.rows[:, None] @ self._samples(x) @ self.cols[:, None].transpose(-1, -2)
        return y.reshape(x.shape[0], *self.in_shape)

    def _adjoint(self, y):
        x = self.rows[:, None].transpose(-1, -2) @ self._samples(y) @ self.cols[:, None]
        return x.reshape(y.shape[0], *self.in_shape)

    def __repr__(self):
        stds = f"{float(self.std):g}" if self.std.ndim == 0 else f"{tuple(self.std.shape)} per sample"
        return f"GaussianBlurs(std={stds}, in_shape={self.in_shape}, {self.boundary.value}, r={self.radius})"


# ----------------------------------------------------------------------------------------------
# families


class SeverityFamily(abc.ABC):
    """A_t for t in [0, 1] on images of shape `image_shape`: `at(t)` and `transition(t, t')`."""

    image_shape: tuple[int, ...]

    @abc.abstractmethod
    def at(self, t) -> LinearOperator:
        """A_t: for a float t an operator on image_shape; for t of shape (B,) one on (B, *image_shape)."""

    @abc.abstractmethod
    def transition(self, t, t_next) -> LinearOperator:
        """G with A_{t_next} = G A_t (t_next >= t, both floats or both of shape (B,))."""

    def apply(self, x: torch.Tensor, t) -> torch.Tensor:
        """A_t x for x of shape (B, *image_shape) and t a float or of shape (B,)."""
        return self.at(t) @ x

    @staticmethod
    def _pair(t, t_next):
        t, t_next = as_severity(t), as_severity(t_next)
        if t.shape != t_next.shape:
            raise ValueError(f"t and t_next must have the same shape, got {tuple(t.shape)} and {tuple(t_next.shape)}")
        if bool((t_next < t).any()):
            raise ValueError("a transition goes to a more severe member: need t_next >= t")
        return t, t_next


class GaussianBlurFamily(SeverityFamily):
    """A_t = Gaussian blur of std(t) pixels (`GaussianBlurs`), reflect padding by default.

    std is a ramp t -> std (non-decreasing, >= 0); the default `LinearRamp(0.3, 3.0)` is the range
    ALGORITHMS.md infers from the paper (a slight blur at t = 0 "to avoid numerical instability";
    `LinearRamp(0, ...)` makes A_0 the identity exactly; with the DISCRETE kernel std 0.3 attenuates the
    highest frequency (pi, pi) by 1 - exp(-4 0.3^2) = 30%, the sampled kernel's by 3%). radius defaults
    to `default_radius(max std)`.

    transition(t, t') = blur(sqrt(std'^2 - std^2)): exact for the DISCRETE kernel up to the truncated
    tails (< 1e-14; reflect padding commutes with symmetric kernels), approximate for SAMPLED.
    """

    def __init__(
        self,
        image_shape,
        std: Ramp = LinearRamp(0.3, 3.0),
        *,
        boundary: Boundary | str = Boundary.REFLECT,
        radius: int | None = None,
        kernel: GaussianKernel = GaussianKernel.DISCRETE,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        self.image_shape = as_shape(image_shape, "image_shape")
        _check_ramp(std, "std", minimum=0.0)
        self.std = std
        self.boundary = Boundary.coerce(boundary)
        self.radius = int(radius) if radius is not None else default_radius(max(std.values))
        self.kernel = GaussianKernel(kernel)
        self.dtype, self.device = dtype, torch.device(device)

    def _blur(self, std) -> GaussianBlurs:
        return GaussianBlurs(
            std,
            self.image_shape,
            self.boundary,
            radius=self.radius,
            kernel=self.kernel,
            dtype=self.dtype,
            device=self.device,
        )

    def at(self, t) -> GaussianBlurs:
        return self._blur(self.std(as_severity(t)))

    def transition(self, t, t_next) -> GaussianBlurs:
        t, t_next = self._pair(t, t_next)
        return self._blur(torch.sqrt((self.std(t_next) ** 2 - self.std(t) ** 2).clamp_min(0)))

    def __repr__(self):
        return f"GaussianBlurFamily(image_shape={self.image_shape}, std={self.std}, {self.boundary.value})"


class GaussianMaskFamily(SeverityFamily):
    """A_t x = M_t ⊙ x, M_t(i, j) = (1 - f_t / max f_t)^power = (1 - exp(-r^2 / (2 w(t)^2)))^power,

    r the distance of pixel centre (i, j) from the image centre ((H - 1) / 2, (W - 1) / 2), and f_t the
    centred isotropic Gaussian density of std w(t) = 0.1 + t (s_max - 0.1) (pixels), power = 4 for a
    sharper transition (seed 002). max f_t is the density's peak f_t(0), so M_t depends on r alone
    (for odd sizes the centre pixel is always 0, so A_0 is the identity except there).

    s_max defaults to 50 min(H, W) / 256 ([inferred]: s_max = 50 for 256 x 256 faces). M_t decreases
    pointwise as w grows, so A_t' = diag(M_t' / M_t) A_t with M_t' / M_t in [0, 1] (0 where M_t = 0).
    """

    def __init__(
        self,
        image_shape,
        width: Ramp | None = None,
        *,
        power: float = 4.0,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        self.image_shape = as_shape(image_shape, "image_shape")
        if len(self.image_shape) < 2:
            raise ValueError(f"GaussianMaskFamily needs image_shape (..., H, W), got {self.image_shape}")
        H, W = self.image_shape[-2:]
        self.width = width if width is not None else LinearRamp(0.1, 50 * min(H, W) / 256)
        _check_ramp(self.width, "width", minimum=1e-12)
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        self.power = float(power)
        self.dtype, self.device = dtype, torch.device(device)

    def mask(self, t) -> torch.Tensor:
        """M_t in float64, shape (H, W) for a float t, (B, H, W) for t of shape (B,)."""
        t = as_severity(t)
        H, W = self.image_shape[-2:]
        i = torch.arange(H, dtype=torch.float64) - (H - 1) / 2
        j = torch.arange(W, dtype=torch.float64) - (W - 1) / 2
        r2 = i[:, None] ** 2 + j[None, :] ** 2
        w = self.width(t)[..., None, None]
        return (1 - torch.exp(-r2 / (2 * w**2))) ** self.power

    def _diagonal(self, m: torch.Tensor, batched: bool) -> Diagonal:
        ones = (1,) * (len(self.image_shape) - 2)
        shape = (m.shape[0], *ones, *m.shape[-2:]) if batched else (*ones, *m.shape[-2:])
        in_shape = (m.shape[0], *self.image_shape) if batched else self.image_shape
        return Diagonal(m.reshape(shape).to(device=self.device, dtype=self.dtype), in_shape)

    def at(self, t) -> Diagonal:
        t = as_severity(t)
        return self._diagonal(self.mask(t), t.ndim == 1)

    def transition(self, t, t_next) -> Diagonal:
        t, t_next = self._pair(t, t_next)
        m, m_next = self.mask(t), self.mask(t_next)
        ratio = torch.where(m > 0, m_next / torch.where(m > 0, m, 1), 0.0)
        return self._diagonal(ratio, t.ndim == 1)

    def __repr__(self):
        return f"GaussianMaskFamily(image_shape={self.image_shape}, width={self.width}, power={self.power:g})"
