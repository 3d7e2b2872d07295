"""Joseph projectors: applied matrix-free or through the stored sparse matrix, chosen by a cost model.

A projector with geometry G and image grid H x W applies the Joseph matrix A (n_views n_detector rows,
H W columns; joseph.py gives its entries) to images and stacks of slices,

    images  (C, H, W)     ->  sinograms                 (C, n_views, n_detector)
    stacks  (C, D, H, W)  ->  tilt series of projections (C, n_views, D, n_detector)

A stack is D independent slices along the tilt (rotation) axis: slice d gives row d of every projection
image. Every image of a batch (samples, channels, slices) is a column of one product,

    Y = A X,    X = [x_1 ... x_B] of shape (H W, B),   B = batch * C * D,

and the adjoint is A^T Y, computed one of two ways (`ProjectorMethod`), with the same entries:

    MATRIX_FREE  A's entries are recomputed on every apply from the ray table (joseph.RayTable, 57 bytes a ray):
                 the numba kernels of linops/cpu when numba imports (multithreaded, no atomics), else a chunked
                 torch path. No setup beyond the table; memory stays O(rays + pixels).
    SPARSE       A and A^T are built once as CSR (2 nnz (itemsize + 4) bytes) and applied by torch.sparse.mm.

AUTO (the default) starts matrix-free and builds the matrix once the extra time spent by matrix-free applies,
as the cost model predicts it, reaches the modelled build time (the rent-or-buy rule: in hindsight about twice
the time of the better choice at worst, as modelled), and only if the build fits in half of the available memory.
The costs are linear in nnz (exactly counted from the ray table without building anything; see `nnz`) and
in the number of columns, with constants fitted on the project's machine (`SPARSE_COST`, `BUILD_NS_PER_ENTRY`,
the kernel's own `cost`).

Backends: kernels are looked up in the kernel table (linops/backends.py). Layout.COLUMNS kernels (numba,
linops/cpu, for "cpu") take (op, X) with X of shape (H W, B) and return A X of shape (n_views n_detector, B), or
(op, Y) and return A^T Y, in the columns' dtype, reading `op.ray_table`; they are the matrix-free method. A
Layout.BATCH kernel (CuPy, linops/cuda, for "cuda") computes the whole `_apply` / `_adjoint` instead.
"""

from __future__ import annotations

import enum
import functools
import math
import threading
from dataclasses import dataclass

import torch

from ...backends import Layout, kernels
from ...base import LinearOperator, as_shape
from ...memory import available_bytes, format_bytes
from .joseph import MAX_ENTRIES, RayTable, backproject, joseph_matrices, memory_bytes, project, ray_table


def available_memory() -> int | None:
    """Bytes still available to this process (linops.memory.available_bytes); a function of this module so
    that tests can pretend a smaller machine."""
    return available_bytes()


class ProjectorMethod(enum.Enum):
    """How a projector applies A: AUTO (cost model, the default), MATRIX_FREE (never stores A) or SPARSE
    (builds A and A^T as CSR on first use; refuses when they would not fit in the available memory)."""

    AUTO = "auto"
    MATRIX_FREE = "matrix-free"
    SPARSE = "sparse"


@dataclass(frozen=True)
class ApplyCost:
    """Modelled time of one apply of A (forward) or A^T (adjoint) to B columns: nnz (a + b B) nanoseconds."""

    forward_ns: tuple[float, float]
    adjoint_ns: tuple[float, float]

    def seconds(self, nnz: int, columns: int, adjoint: bool) -> float:
        a, b = self.adjoint_ns if adjoint else self.forward_ns
        return nnz * (a + b * columns) * 1e-9


# Fitted by benchmarks/radon_method_calibration.py --threads 1 --clock cpu on the project's machine (AMD EPYC VM,
# 2 vCPUs shared with other jobs, float32; 2026-12-05; benchmarks/results/radon_method_calibration_1t_cpu.json):
# parallel beam, 96^2 to 384^2 with 90 to 270 views, 1, 4 and 16 columns, the minimum of 12 interleaved rounds.
# Only the ratios matter to the choice; with two threads the applies and the build all run about twice as fast.
#: torch.sparse.mm with the stored CSR matrices
SPARSE_COST = ApplyCost(forward_ns=(0.88, 0.086), adjoint_ns=(0.87, 0.086))
#: the torch matrix-free fallback (chunks of materialised entries), used when no kernel is available
TORCH_MATRIX_FREE_COST = ApplyCost(forward_ns=(17.6, 1.63), adjoint_ns=(14.8, 4.61))
#: building A and A^T (joseph_matrices), per stored entry (52 to 70 ns over the sizes; the median)
BUILD_NS_PER_ENTRY = 64.0
#: AUTO builds the matrix only if the build's peak memory is at most this fraction of the available memory
AUTO_MEMORY_FRACTION = 0.5


#: one matrix build at a time in the process (threads sharing an operator build it once; the cache stays picklable)
_BUILD_LOCK = threading.Lock()


@dataclass
class _Usage:
    """What AUTO has spent so far: the modelled extra seconds of matrix-free applies over sparse ones."""

    regret_seconds: float = 0.0


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
    constructors to use. `method` (a `ProjectorMethod`) chooses how A is applied (module docstring): AUTO
    starts matrix-free and builds the sparse matrix once that pays off and fits; MATRIX_FREE never builds it;
    SPARSE builds it on first use. Memory of the matrix: A and A^T as CSR with int32 indices,
    `memory_bytes` = 2 nnz (itemsize + 4) bytes plus the row pointers, nnz about 2 max(H, W) per ray that meets
    the image; `nnz` and `memory_bytes` are counted from the geometry without building anything.
    """

    execution_attributes = ("method",)

    def __init__(
        self,
        in_shape,
        geometry,
        *,
        method: ProjectorMethod = ProjectorMethod.AUTO,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        owner = type(self).__name__
        in_shape = check_in_shape(in_shape, owner)
        dtype = check_dtype(dtype, owner)
        if not isinstance(method, ProjectorMethod):
            choices = ", ".join(f"ProjectorMethod.{m.name}" for m in ProjectorMethod)
            raise TypeError(f"{owner}: method must be one of {choices}, got {method!r}.")
        lead = in_shape[:-2]
        views, bins = geometry.n_views, geometry.n_detector
        out_shape = (lead[0], views, bins) if len(lead) == 1 else (lead[0], views, lead[1], bins)
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)
        self.geometry = geometry
        self.method = method

    # ----------------------------------------------------------------------------------------
    # derived data: cached properties, dropped by copies and `.to()`
    @functools.cached_property
    def ray_table(self) -> RayTable:
        """Joseph's parameters and exact step ranges of every ray (joseph.RayTable; 57 bytes a ray), cached."""
        g = self.geometry
        return ray_table(g.rays(self.image_shape), self.image_shape, g.pixel_size)

    @functools.cached_property
    def _sparse(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, A^T) as CSR, built on first use of the sparse path and cached (rebuilt after `.to()`); raises
        MemoryError, before allocating anything, when the build would not fit in the available memory. One
        build at a time in the process (`_BUILD_LOCK`); a thread that waited for another's build of the same
        operator takes its result."""
        with _BUILD_LOCK:
            built = self.__dict__.get("_sparse")
            if built is not None:
                return built
            self._check_fits()
            matrix, matrix_t = joseph_matrices(self.ray_table, self.image_shape, self.dtype)
            return matrix.to_torch(self.dtype, self.device), matrix_t.to_torch(self.dtype, self.device)

    @property
    def matrix(self) -> torch.Tensor:
        """A as a torch sparse CSR tensor (n_views n_detector, H W); builds it if needed (see `memory_bytes`)."""
        return self._sparse[0]

    @property
    def matrix_t(self) -> torch.Tensor:
        """A^T as a torch sparse CSR tensor (H W, n_views n_detector); builds it if needed."""
        return self._sparse[1]

    @property
    def has_matrix(self) -> bool:
        """True once A and A^T are stored (by the SPARSE or AUTO method, or by asking for `matrix`)."""
        return "_sparse" in self.__dict__

    @functools.cached_property
    def _usage(self) -> _Usage:
        """What the matrix-free applies of AUTO have cost so far (the rent of rent-or-buy, `method_for`)."""
        return _Usage()

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

    @functools.cached_property
    def nnz(self) -> int:
        """Entries of A (A^T stores as many), counted exactly from the ray table without building A."""
        return int(self.ray_table.entry_counts().sum())

    @property
    def memory_bytes(self) -> int:
        """Bytes that A and A^T take once stored (CSR, int32 indices), without building them."""
        m, n = self.n_views * self.n_detector, math.prod(self.image_shape)
        return memory_bytes(self.nnz, m, n, self.dtype.itemsize, 4)

    @property
    def build_bytes(self) -> int:
        """Peak memory of building the matrix: `memory_bytes` plus the construction's scratch (per-pixel and
        per-ray counters and one chunk of candidate entries)."""
        n_rays, n_pixels = self.n_views * self.n_detector, math.prod(self.image_shape)
        return self.memory_bytes + 40 * n_pixels + 16 * n_rays + (1 << 20) * 56

    def _check_fits(self) -> None:
        available = available_memory()
        need = self.build_bytes
        if available is not None and need > available:
            raise MemoryError(
                f"{self!r}: the sparse matrices A and A^T need {format_bytes(need)} to build ({self.nnz} entries "
                f"of {self.dtype}, memory_bytes = {format_bytes(self.memory_bytes)}), but {format_bytes(available)} "
                f"is available. Use method=ProjectorMethod.MATRIX_FREE (or AUTO), which stores no matrix."
            )

    # ----------------------------------------------------------------------------------------
    # the choice of method
    def method_for(self, columns: int = 1, adjoint: bool = False) -> ProjectorMethod:
        """MATRIX_FREE or SPARSE: the method of the next apply of A (adjoint: A^T) to `columns` images (H x W
        planes), in the current state.

        AUTO on the CPU is rent-or-buy: SPARSE if the matrix is stored; else SPARSE (build now) if the modelled
        extra time of the matrix-free applies so far, plus that of this one, reaches the modelled build time,

            sum over applies (free - sparse)  +  (free - sparse)(this apply)  >=  BUILD_NS_PER_ENTRY nnz,

        and the build fits in AUTO_MEMORY_FRACTION of the available memory and int32 indices; else MATRIX_FREE.
        So one image at a time starts matrix-free and builds after enough applies, while a large batch of
        slices builds at once. Off the CPU (no CPU kernels apply; CUDA tensors use the CuPy kernels when CuPy
        imports) AUTO keeps the sparse matrix.
        """
        if self.method is not ProjectorMethod.AUTO:
            return self.method
        if self.has_matrix or self.device.type != "cpu":
            return ProjectorMethod.SPARSE
        nnz = self.nnz
        usage = self._usage
        kernel = kernels.lookup(self, torch.empty(0, dtype=self.dtype), Layout.COLUMNS)
        this = self._extra_seconds(kernel, columns, adjoint)
        if nnz > MAX_ENTRIES or usage.regret_seconds + this < BUILD_NS_PER_ENTRY * 1e-9 * nnz:
            return ProjectorMethod.MATRIX_FREE
        available = available_memory()
        if available is not None and self.build_bytes > AUTO_MEMORY_FRACTION * available:
            return ProjectorMethod.MATRIX_FREE
        return ProjectorMethod.SPARSE

    def _extra_seconds(self, kernel, columns: int, adjoint: bool) -> float:
        """Modelled time of a matrix-free apply (by `kernel`, or the torch fallback) minus a sparse one."""
        free = kernel.cost if kernel is not None and isinstance(kernel.cost, ApplyCost) else TORCH_MATRIX_FREE_COST
        return free.seconds(self.nnz, columns, adjoint) - SPARSE_COST.seconds(self.nnz, columns, adjoint)

    def _run(self, columns: torch.Tensor, adjoint: bool) -> torch.Tensor:
        """A X (or A^T Y) on columns (H W, B) (or (n_rays, B)) by the method `method_for` picks."""
        n_columns = columns.shape[1]
        if self.method_for(n_columns, adjoint) is ProjectorMethod.SPARSE:
            matrix, matrix_t = self._sparse
            return torch.sparse.mm(matrix_t if adjoint else matrix, columns)
        kernel = kernels.lookup(self, columns, Layout.COLUMNS)
        if self.method is ProjectorMethod.AUTO:
            self._usage.regret_seconds += self._extra_seconds(kernel, n_columns, adjoint)
        if kernel is not None:
            return kernel.adjoint(self, columns) if adjoint else kernel.forward(self, columns)
        table = self.ray_table
        return backproject(table, self.image_shape, columns) if adjoint else project(table, self.image_shape, columns)

    # ----------------------------------------------------------------------------------------
    def _slices(self) -> int:
        return self.in_shape[1] if self.is_volume else 1

    def _apply(self, x):
        if kernel := kernels.lookup(self, x, Layout.BATCH):
            return kernel.forward(self, x)
        n, channels, depth = x.shape[0], self.in_shape[0], self._slices()
        H, W = self.image_shape
        # every (sample, channel, slice) becomes a column: (H W, B), row-major (faster in MKL than column-major)
        columns = x.reshape(n, channels, depth, H, W).permute(3, 4, 0, 1, 2).reshape(H * W, -1)
        rays = self._run(columns, adjoint=False)  # (n_views n_detector, B)
        rays = rays.reshape(self.n_views, self.n_detector, n, channels, depth)
        return rays.permute(2, 3, 0, 4, 1).reshape(n, *self.out_shape)

    def _adjoint(self, y):
        if kernel := kernels.lookup(self, y, Layout.BATCH, "adjoint"):
            return kernel.adjoint(self, y)
        n, channels, depth = y.shape[0], self.in_shape[0], self._slices()
        y = y.reshape(n, channels, self.n_views, depth, self.n_detector)
        columns = y.permute(2, 4, 0, 1, 3).reshape(self.n_views * self.n_detector, -1)
        pixels = self._run(columns, adjoint=True)  # (H W, B)
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
