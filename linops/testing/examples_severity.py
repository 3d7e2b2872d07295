"""Market examples for the severity families (Dirac): per-sample blurs and masks, scalar and batched
severities, transitions. The numpy references build the kernels from the Bessel series and the masks
from their formula, sharing no code with the operators."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..operators.padding import Boundary
from ..operators.severity import GaussianBlurFamily, GaussianKernel, GaussianMaskFamily, LinearRamp
from .market import register

_NUMPY_MODE = {Boundary.ZERO: "constant", Boundary.REFLECT: "reflect", Boundary.REPLICATE: "edge"}


def np_gaussian_kernel(std: float, radius: int, kind: GaussianKernel) -> np.ndarray:
    """DISCRETE: e^{-v} I_n(v) = sum_k e^{-v} (v/2)^(2k + |n|) / (k! (k + |n|)!), v = std^2; SAMPLED:
    exp(-n^2 / (2 std^2)); both normalised to sum 1."""
    n = np.arange(-radius, radius + 1)
    if std == 0:
        return (n == 0).astype(np.float64)
    if kind is GaussianKernel.SAMPLED:
        g = np.exp(-(n**2) / (2 * std**2))
    else:
        v = std**2
        g = np.array(
            [
                sum(
                    math.exp(-v + (2 * k + abs(m)) * math.log(v / 2) - math.lgamma(k + 1) - math.lgamma(k + abs(m) + 1))
                    for k in range(200)
                )
                for m in n
            ]
        )
    return g / g.sum()


def _np_blur_planes(x: np.ndarray, g: np.ndarray, boundary: Boundary) -> np.ndarray:
    """Separable convolution of the last two axes of x with g after padding by len(g) // 2."""
    r = len(g) // 2
    widths = [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)]
    xp = np.pad(x, widths, mode=_NUMPY_MODE[boundary])
    H, W = x.shape[-2:]
    rows = sum(g[a] * xp[..., 2 * r - a : 2 * r - a + H, :] for a in range(2 * r + 1))
    return sum(g[a] * rows[..., :, 2 * r - a : 2 * r - a + W] for a in range(2 * r + 1))


def _blur_reference(op, x: np.ndarray) -> np.ndarray:
    """x of shape (N, *in_shape); sample b of a batched operator blurred with std[b]."""
    stds = op.std.reshape(-1).tolist()
    if op.std.ndim == 0:
        return _np_blur_planes(x, np_gaussian_kernel(stds[0], op.radius, op.kernel_kind), op.boundary)
    out = np.empty_like(x)
    for b, s in enumerate(stds):
        out[:, b] = _np_blur_planes(x[:, b], np_gaussian_kernel(s, op.radius, op.kernel_kind), op.boundary)
    return out


def _severities(g, n) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


def _np_mask(shape, width: float, power: float) -> np.ndarray:
    H, W = shape
    i, j = np.meshgrid(np.arange(H) - (H - 1) / 2, np.arange(W) - (W - 1) / 2, indexing="ij")
    return (1 - np.exp(-(i**2 + j**2) / (2 * width**2))) ** power


def _mask_reference(family: GaussianMaskFamily, t):
    """Reference for A_t: x * M_t(width(t)), per sample for batched t."""

    def reference(op, x):
        H, W = family.image_shape[-2:]
        w = family.width.start + np.asarray(t) * (family.width.end - family.width.start)
        if np.ndim(w) == 0:
            return x * _np_mask((H, W), float(w), family.power)
        out = np.empty_like(x)
        for b, wb in enumerate(w):
            out[:, b] = x[:, b] * _np_mask((H, W), float(wb), family.power)
        return out

    return reference


@register("severity-blur-batch", reference=_blur_reference)
def _(dtype, g):
    return GaussianBlurFamily((2, 7, 6), dtype=dtype).at(_severities(g, 3))


@register("severity-blur-scalar", reference=_blur_reference)
def _(dtype, g):
    return GaussianBlurFamily((1, 8, 9), dtype=dtype).at(0.6)


@register("severity-blur-no-channel-axis", reference=_blur_reference)
def _(dtype, g):
    return GaussianBlurFamily((6, 5), LinearRamp(0.0, 1.5), dtype=dtype).at(torch.tensor([0.0, 1.0]))


@register("severity-blur-sampled-zero", reference=_blur_reference)
def _(dtype, g):
    family = GaussianBlurFamily((2, 6, 7), kernel=GaussianKernel.SAMPLED, boundary=Boundary.ZERO, radius=3, dtype=dtype)
    return family.at(_severities(g, 2))


@register("severity-blur-replicate", reference=_blur_reference)
def _(dtype, g):
    return GaussianBlurFamily((1, 6, 6), LinearRamp(0.5, 2.0), boundary=Boundary.REPLICATE, dtype=dtype).at(0.3)


@register("severity-blur-transition", reference=_blur_reference)
def _(dtype, g):
    t = _severities(g, 2)
    return GaussianBlurFamily((1, 7, 7), dtype=dtype).transition(t, (t + 0.3).clamp(max=1))


_MASK_FAMILY = GaussianMaskFamily((2, 7, 8), LinearRamp(0.1, 2.5))
_MASK_T = (0.2, 0.9, 0.5)


@register("severity-mask-batch", reference=_mask_reference(_MASK_FAMILY, _MASK_T))
def _(dtype, g):
    family = GaussianMaskFamily(_MASK_FAMILY.image_shape, _MASK_FAMILY.width, dtype=dtype)
    return family.at(torch.tensor(_MASK_T, dtype=torch.float64))


@register("severity-mask-scalar", reference=_mask_reference(_MASK_FAMILY, 0.7))
def _(dtype, g):
    family = GaussianMaskFamily(_MASK_FAMILY.image_shape, _MASK_FAMILY.width, dtype=dtype)
    return family.at(0.7)


@register("severity-mask-transition")
def _(dtype, g):
    t = _severities(g, 3)
    family = GaussianMaskFamily((1, 6, 5), dtype=dtype)
    return family.transition(t, (t + 0.2).clamp(max=1))
