"""Applying a precomputed ray-by-pixel matrix to images and to stacks of slices.

A projector with geometry G and image grid H x W stores the Joseph matrix A (n_views n_detector rows,
H W columns; see joseph.py) and its transpose, both as torch sparse CSR tensors, and maps

    images  (C, H, W)     ->  sinograms                 (C, n_views, n_detector)
    stacks  (C, D, H, W)  ->  tilt series of projections (C, n_views, D, n_detector)

A stack is D independent slices along the tilt (rotation) axis: slice d gives row d of every projection
image. Application is one sparse-times-dense product with every slice of the batch as a column:

    Y = A X,    X = [x_1 ... x_B] of shape (H W, B),   B = batch * C * D,

and the adjoint is A^T Y with the stored transpose, so <A x, y> = <x, A^T y> holds to rounding.
"""

from __future__ import annotations

import math

import torch

from ...base import LinearOperator, as_shape
from ...cuda import dispatch
from ...cuda import radon as radon_kernels
from .joseph import joseph_matrices, memory_bytes


def check_in_shape(in_shape, owner: str) -> tuple[int, ...]:
    """(C, H, W) or (C, D, H, W), else a ValueError naming what was expected and what was given."""
    shape = as_shape(in_shape, "in_shape")
    if len(shape) not in (3, 4):
        raise ValueError(
            f"{owner}: in_shape must be (C, H, W) for images or (C, D, H, W) for stacks of slices "
            f"along the tilt axis, got {shape}."
        )
    return shape


def check_dtype(dtype: torch.dtype, owner: str) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{owner}: dtype must be torch.float32 or torch.float64, got {dtype}.")
    return dtype


def default_detector_count(image_shape: tuple[int, int], pixel_size: float, detector_spacing: float) -> int:
    """Enough bins to cover the disc inscribed in the image: ceil(max(H, W) * pixel_size / detector_spacing),
    rounded so that a ratio a hair above an integer by floating point (3 * 0.1 / 0.1) counts as that integer."""
    return max(1, math.ceil(max(image_shape) * pixel_size / detector_spacing - 1e-9))


class JosephProjector(LinearOperator):
    """y = A x with A the Joseph matrix of `geometry` on the trailing H x W grid of `in_shape`.

    `geometry` is a `ParallelBeamGeometry` or a `FanBeamGeometry`; `Radon` and `FanBeamRadon` are the
    constructors to use. Memory: A and A^T as CSR with int32 indices (built on the first torch-path use),
    2 nnz (itemsize + 4) bytes plus the row pointers (`memory_bytes`); nnz is about 2 max(H, W) per ray
    that meets the image.
    """

    def __init__(self, in_shape, geometry, *, dtype: torch.dtype = torch.float32, device="cpu"):
        owner = type(self).__name__
        in_shape = check_in_shape(in_shape, owner)
        dtype = check_dtype(dtype, owner)
        lead = in_shape[:-2]
        views, bins = geometry.n_views, geometry.n_detector
        out_shape = (lead[0], views, bins) if len(lead) == 1 else (lead[0], views, lead[1], bins)
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)
        self.geometry = geometry

    # ----------------------------------------------------------------------------------------
    def _csr(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, A^T) as CSR, built on first use of the torch path and cached (rebuilt after `.to()`); the CuPy
        kernels compute the same weights on the fly and never need them."""
        if "csr" not in self._cache:
            image_shape, g = self.image_shape, self.geometry
            matrix, matrix_t = joseph_matrices(g.rays(image_shape), image_shape, g.pixel_size, self.dtype)
            self._cache["csr"] = (matrix.to_torch(self.dtype, self.device), matrix_t.to_torch(self.dtype, self.device))
        return self._cache["csr"]

    @property
    def matrix(self) -> torch.Tensor:
        """A as a torch sparse CSR tensor (n_views n_detector, H W)."""
        return self._csr()[0]

    @property
    def matrix_t(self) -> torch.Tensor:
        """A^T as a torch sparse CSR tensor (H W, n_views n_detector)."""
        return self._csr()[1]

    # ----------------------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int]:
        return self.in_shape[-2:]

    @property
    def is_volume(self) -> bool:
        """True for stacks of slices (C, D, H, W)."""
        return len(self.in_shape) == 4

    @property
    def n_views(self) -> int:
        return self.geometry.n_views

    @property
    def n_detector(self) -> int:
        return self.geometry.n_detector

    @property
    def angles_rad(self) -> torch.Tensor:
        return torch.tensor(self.geometry.angles_rad, dtype=torch.float64)

    @property
    def angles_deg(self) -> torch.Tensor:
        return torch.rad2deg(self.angles_rad)

    @property
    def nnz(self) -> int:
        """Stored entries of A (A^T stores as many)."""
        return self.matrix.values().numel()

    @property
    def memory_bytes(self) -> int:
        """Bytes held by A and A^T."""
        m, n = self.matrix.shape
        index_bytes = self.matrix.col_indices().element_size()
        return memory_bytes(self.nnz, m, n, self.matrix.values().element_size(), index_bytes)

    # ----------------------------------------------------------------------------------------
    def _slices(self) -> int:
        return self.in_shape[1] if self.is_volume else 1

    def _apply(self, x):
        if dispatch.use_cupy(x):
            return radon_kernels.forward(self, x)
        n, channels, depth = x.shape[0], self.in_shape[0], self._slices()
        H, W = self.image_shape
        # every (sample, channel, slice) becomes a column: (H W, B), row-major (faster in MKL than column-major)
        columns = x.reshape(n, channels, depth, H, W).permute(3, 4, 0, 1, 2).reshape(H * W, -1)
        rays = torch.sparse.mm(self.matrix, columns)  # (n_views n_detector, B)
        rays = rays.reshape(self.n_views, self.n_detector, n, channels, depth)
        return rays.permute(2, 3, 0, 4, 1).reshape(n, *self.out_shape)

    def _adjoint(self, y):
        if dispatch.use_cupy(y):
            return radon_kernels.adjoint(self, y)
        n, channels, depth = y.shape[0], self.in_shape[0], self._slices()
        y = y.reshape(n, channels, self.n_views, depth, self.n_detector)
        columns = y.permute(2, 4, 0, 1, 3).reshape(self.n_views * self.n_detector, -1)
        pixels = torch.sparse.mm(self.matrix_t, columns)  # (H W, B)
        pixels = pixels.reshape(*self.image_shape, n, channels, depth)
        return pixels.permute(2, 3, 4, 0, 1).reshape(n, *self.in_shape)

    def _geometry_repr(self) -> str:
        angles = self.angles_deg
        return (
            f"{self.n_views} views over [{float(angles.min()):.4g}, {float(angles.max()):.4g}] deg, "
            f"{self.n_detector} bins"
        )

    def __repr__(self):
        return f"{type(self).__name__}(in_shape={self.in_shape}, {self._geometry_repr()})"
