"""linops: a Julia-style algebra of linear operators on batches of torch tensors.

A = Mask(m) @ Blur(k, (1, 64, 64))      # lazy composition, shapes checked now
y = A @ x                                # x of shape (*batch, 1, 64, 64)
x_adj = A.H @ y                          # exact adjoint; also the backward of A
"""

from . import rules
from .algebra import Adjoint, Composition, Scaled, Sum, Transpose, add, compose, power, scale
from .base import LinearOperator
from .blocks import BlockDiag, HStack, Kron, VStack, block, block_diag, hstack, kron, vstack
from .operators import (
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
    gaussian_blur,
    gaussian_kernel,
    gaussian_kernel_1d,
)
from .simplify import simplify

__all__ = [
    "FFT2",
    "Adjoint",
    "BlockDiag",
    "Blur",
    "Boundary",
    "CircularBlur",
    "Composition",
    "ConvolutionMethod",
    "Crop",
    "Decimate",
    "Diagonal",
    "Downsample",
    "FourierSampling",
    "HStack",
    "Identity",
    "Kron",
    "LinearOperator",
    "Mask",
    "Matrix",
    "Pad",
    "Reshape",
    "Scaled",
    "SeparableBlur",
    "Sum",
    "Transpose",
    "VStack",
    "Zero",
    "add",
    "block",
    "block_diag",
    "compose",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_kernel_1d",
    "hstack",
    "kron",
    "power",
    "rules",
    "scale",
    "simplify",
    "vstack",
]
