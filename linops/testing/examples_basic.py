"""Market examples for the basic operators and the algebra, with independent numpy references."""

from __future__ import annotations

import numpy as np
import torch

from .. import algebra, blocks
from ..operators import (
    FFT2,
    Blur,
    Boundary,
    CircularBlur,
    ConvolutionMethod,
    Crop,
    Decimate,
    Diagonal,
    Downsample,
    FourierSampling,
    Identity,
    Mask,
    Matrix,
    Pad,
    Reshape,
    SeparableBlur,
    Zero,
)
from .market import register

_NUMPY_MODE = {
    Boundary.ZERO: "constant",
    Boundary.REFLECT: "reflect",
    Boundary.SYMMETRIC: "symmetric",
    Boundary.REPLICATE: "edge",
    Boundary.CIRCULAR: "wrap",
}


def _complex(dtype):
    return torch.complex64 if dtype == torch.float32 else torch.complex128


def _rand(shape, dtype, g):
    return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)


def _randn(shape, dtype, g):
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def _randn_complex(shape, dtype, g):
    real = torch.randn(shape, generator=g, dtype=torch.float64)
    imag = torch.randn(shape, generator=g, dtype=torch.float64)
    return torch.complex(real, imag).to(_complex(dtype))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ----------------------------------------------------------------------------------------------
# numpy references (no code shared with the operators)


def np_convolve(kernel: np.ndarray, x: np.ndarray, boundary: Boundary) -> np.ndarray:
    """y[i, j] = sum_{a, b} k[a, b] x_ext[i + kh//2 - a, j + kw//2 - b], x_ext from np.pad."""
    kh, kw = kernel.shape[-2:]
    H, W = x.shape[-2:]
    widths = [(0, 0)] * (x.ndim - 2) + [(kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2)]
    xp = np.pad(x, widths, mode=_NUMPY_MODE[boundary])
    y = np.zeros(x.shape, dtype=np.result_type(x, kernel))
    for a in range(kh):
        for b in range(kw):
            tap = kernel[..., a, b]
            tap = tap.reshape(tap.shape + (1, 1)) if np.ndim(tap) else tap
            y = y + tap * xp[..., kh - 1 - a : kh - 1 - a + H, kw - 1 - b : kw - 1 - b + W]
    return y


def _blur_reference(op, x):
    return np_convolve(_np(op.kernel), x, op.boundary)


def _pad_reference(op, x):
    widths = [(0, 0)] * (x.ndim - len(op.widths)) + list(op.widths)
    return np.pad(x, widths, mode=_NUMPY_MODE[op.boundary])


# ----------------------------------------------------------------------------------------------
# leaves


@register("identity", reference=lambda op, x: x)
def _(dtype, g):
    return Identity((2, 3), dtype=dtype)


@register("zero", reference=lambda op, x: np.zeros((x.shape[0], *op.out_shape)))
def _(dtype, g):
    return Zero((2, 3), (4,), dtype=dtype)


@register("diagonal", reference=lambda op, x: _np(op.weights) * x)
def _(dtype, g):
    return Diagonal(torch.randn(2, 5, 6, generator=g, dtype=torch.float64).to(dtype))


@register("diagonal-broadcast", reference=lambda op, x: _np(op.weights) * x)
def _(dtype, g):
    return Diagonal(torch.randn(1, 5, 6, generator=g, dtype=torch.float64).to(dtype), (3, 5, 6))


@register("diagonal-complex", reference=lambda op, x: _np(op.weights) * x)
def _(dtype, g):
    return Diagonal(_randn_complex((4, 5), dtype, g))


@register("mask", reference=lambda op, x: _np(op.weights) * x)
def _(dtype, g):
    return Mask(torch.rand(2, 6, 5, generator=g) > 0.4, dtype=dtype)


@register("matrix", reference=lambda op, x: x.reshape(x.shape[0], -1) @ _np(op.matrix).T)
def _(dtype, g):
    return Matrix(_randn((5, 7), dtype, g))


@register(
    "matrix-shaped", reference=lambda op, x: (x.reshape(x.shape[0], -1) @ _np(op.matrix).T).reshape(x.shape[0], 2, 2)
)
def _(dtype, g):
    return Matrix(_randn((4, 6), dtype, g), (2, 3), (2, 2))


@register("matrix-complex", reference=lambda op, x: x.reshape(x.shape[0], -1) @ _np(op.matrix).T)
def _(dtype, g):
    return Matrix(_randn_complex((6, 4), dtype, g))


@register("reshape", reference=lambda op, x: x.reshape(x.shape[0], *op.out_shape))
def _(dtype, g):
    return Reshape((2, 3, 4), (6, 4), dtype=dtype)


for _boundary in Boundary:

    @register(f"pad-{_boundary.value}", reference=_pad_reference)
    def _(dtype, g, boundary=_boundary):
        return Pad((2, 5, 4), ((2, 1), (3, 0)), boundary, dtype=dtype)


@register("pad-reflect-wide", reference=_pad_reference)
def _(dtype, g):
    # widths larger than the signal: reflections of reflections
    return Pad((1, 3, 4), ((5, 4), (2, 7)), Boundary.REFLECT, dtype=dtype)


@register("crop", reference=lambda op, x: x[..., 1:-2, 2:])
def _(dtype, g):
    return Crop((2, 7, 6), ((1, 2), (2, 0)), dtype=dtype)


def _fixed_kernel(shape, seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@register("blur-circular", reference=lambda op, x: np_convolve(_np(_fixed_kernel((5, 3), 1)), x, Boundary.CIRCULAR))
def _(dtype, g):
    return CircularBlur(_fixed_kernel((5, 3), 1).to(dtype), (2, 9, 8))


@register(
    "blur-circular-per-channel",
    reference=lambda op, x: np_convolve(_np(_fixed_kernel((3, 4, 3), 2)), x, Boundary.CIRCULAR),
)
def _(dtype, g):
    return CircularBlur(_fixed_kernel((3, 4, 3), 2).to(dtype), (3, 8, 8))


for _boundary in Boundary:
    for _method in ConvolutionMethod:

        @register(f"blur-{_boundary.value}-{_method.value}", reference=_blur_reference)
        def _(dtype, g, boundary=_boundary, method=_method):
            return Blur(_rand((5, 4), dtype, g), (2, 9, 10), boundary, method=method)


@register("blur-per-channel-reflect-direct", reference=_blur_reference)
def _(dtype, g):
    return Blur(_rand((3, 3, 5), dtype, g), (2, 3, 8, 9), Boundary.REFLECT, method=ConvolutionMethod.DIRECT)


@register("blur-per-channel-zero-fft", reference=_blur_reference)
def _(dtype, g):
    return Blur(_rand((3, 4, 4), dtype, g), (3, 8, 9), Boundary.ZERO, method=ConvolutionMethod.FFT)


for _boundary in (Boundary.ZERO, Boundary.REFLECT, Boundary.REPLICATE):

    @register(f"separable-blur-{_boundary.value}", reference=_blur_reference)
    def _(dtype, g, boundary=_boundary):
        return SeparableBlur(_rand(5, dtype, g), _rand(4, dtype, g), (2, 9, 8), boundary)


def _block_mean(x, f):
    return x.reshape(*x.shape[:-2], x.shape[-2] // f, f, x.shape[-1] // f, f).mean(axis=(-3, -1))


@register("downsample", reference=lambda op, x: _block_mean(x, 3))
def _(dtype, g):
    return Downsample((2, 6, 9), 3, dtype=dtype)


@register("decimate", reference=lambda op, x: x[..., 1::2, 1::2])
def _(dtype, g):
    return Decimate((2, 6, 8), 2, offset=1, dtype=dtype)


@register("fft2", reference=lambda op, x: np.fft.fft2(x, norm="ortho"))
def _(dtype, g):
    return FFT2((2, 6, 5), dtype=_complex(dtype))


@register("fourier-sampling", reference=lambda op, x: _np(op.mask) * np.fft.fft2(x, norm="ortho"))
def _(dtype, g):
    return FourierSampling(torch.rand(8, 6, generator=g) > 0.5, (2, 8, 6), dtype=_complex(dtype))


# ----------------------------------------------------------------------------------------------
# expressions of the algebra


@register("composition")
def _(dtype, g):
    a = Blur(_rand((3, 3), dtype, g), (1, 6, 6), Boundary.REFLECT)
    return Mask(torch.rand(1, 6, 6, generator=g) > 0.3, dtype=dtype) @ a @ Diagonal(_rand((1, 6, 6), dtype, g))


@register("composition-complex")
def _(dtype, g):
    blur = Blur(_rand((3, 3), dtype, g), (1, 6, 6), Boundary.ZERO)
    return FourierSampling(torch.rand(6, 6, generator=g) > 0.5, (1, 6, 6), dtype=_complex(dtype)) @ blur


@register("sum")
def _(dtype, g):
    return Matrix(_randn((4, 4), dtype, g)) - 2.5 * Identity(4, dtype=dtype)


@register("scaled-complex")
def _(dtype, g):
    return (1 - 2j) * Matrix(_randn((3, 5), dtype, g))


@register("adjoint")
def _(dtype, g):
    return Matrix(_randn((3, 5), dtype, g)).H


@register("transpose-complex")
def _(dtype, g):
    return algebra.Transpose(Matrix(_randn_complex((3, 5), dtype, g)))


@register("power")
def _(dtype, g):
    return CircularBlur(_rand((3, 3), dtype, g), (1, 5, 5)) ** 3


@register("vstack")
def _(dtype, g):
    return blocks.vstack([Diagonal(_rand((2, 3), dtype, g)), Matrix(_randn((4, 6), dtype, g), (2, 3))])


@register("hstack")
def _(dtype, g):
    return blocks.hstack([Matrix(_randn((3, 2), dtype, g)), Matrix(_randn((3, 4), dtype, g))])


@register("block")
def _(dtype, g):
    a = Matrix(_randn((3, 2), dtype, g))
    d = Diagonal(_rand((4,), dtype, g))
    return blocks.block([[a, None], [None, d]])


@register("block-diag")
def _(dtype, g):
    return blocks.block_diag([Downsample((1, 4, 4), 2, dtype=dtype), Matrix(_randn((2, 3), dtype, g))])


@register("kron")
def _(dtype, g):
    return blocks.kron(Matrix(_randn((3, 2), dtype, g)), Downsample((1, 4, 6), 2, dtype=dtype))


@register("kron-complex")
def _(dtype, g):
    return blocks.kron(Matrix(_randn_complex((2, 3), dtype, g)), Diagonal(_rand((4,), dtype, g)))
