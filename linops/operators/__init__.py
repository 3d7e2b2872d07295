"""Concrete operators, one idea per module."""

from .blur import (
    Blur,
    CircularBlur,
    ConvolutionMethod,
    SeparableBlur,
    gaussian_blur,
    gaussian_kernel,
    gaussian_kernel_1d,
)
from .diagonal import Diagonal, Mask
from .downsample import Decimate, Downsample
from .finite_difference import Gradient
from .fourier import FFT2, FourierSampling
from .identity import Identity, Zero
from .matrix import Matrix
from .padding import Boundary, Crop, Pad
from .patches import PatchGrid, Tiles
from .reshape import Reshape
from .severity import (
    GaussianBlurFamily,
    GaussianBlurs,
    GaussianKernel,
    GaussianMaskFamily,
    LinearRamp,
    PiecewiseLinearRamp,
    SeverityFamily,
)
from .tie import TransportOfIntensity
from .tomography import FanBeamRadon, FanToParallel, FilterWindow, Radon, fbp

__all__ = [
    "FFT2",
    "Blur",
    "Boundary",
    "CircularBlur",
    "ConvolutionMethod",
    "Crop",
    "Decimate",
    "Diagonal",
    "Downsample",
    "FourierSampling",
    "Identity",
    "Mask",
    "Matrix",
    "Pad",
    "Reshape",
    "SeparableBlur",
    "Zero",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_kernel_1d",
    "GaussianBlurFamily",
    "GaussianBlurs",
    "GaussianKernel",
    "GaussianMaskFamily",
    "LinearRamp",
    "PatchGrid",
    "PiecewiseLinearRamp",
    "SeverityFamily",
    "Tiles",
    "FanBeamRadon",
    "FanToParallel",
    "FilterWindow",
    "Radon",
    "fbp",
    "Gradient",
    "TransportOfIntensity",
]
