"""CuPy kernels for `Radon` and `FanBeamRadon`: Joseph's matrix applied without storing it (kernels/radon.cu).

The matrix is the one `JosephProjector` stores (joseph.py gives the weights): ray j, sampled at steps
i (rows of a steep ray, columns of a flat one) at the fractional position offset_j + rate_j i across the image,
puts w_j - f w_j on the lower straddling pixel and f w_j on the upper one. `ray_tables` computes offset, rate
and w in float64 from the geometry's rays with joseph.py's formulas, and the kernels evaluate the rest:

    forward          (A x)[j] = sum_i w0_ij x[p0_ij] + w1_ij x[p1_ij]        one thread per ray
    adjoint GATHER   (A^T y)[p] = sum_{j: ray j reaches p} A[j, p] y[j]       one thread per pixel
    adjoint SCATTER  x[p_ij] += w_ij y[j] atomically                         one thread per ray

each thread serving IMAGE_TILE images of the batch (the weights are computed once for all of them).

All three take every weight from the same device function on the same table, so the adjoints are the exact
transpose of the forward (bit-identical weights); only the float32/float64 summation order differs. Against
the stored CSR matrix (weights rounded from float64), the kernel weights differ by a few ulps of the dtype.

Memory beyond the images: the ray table, 16 + 4 itemsize bytes per ray (n_views n_detector rays), and a view
table of 6 itemsize bytes per view, built once per operator and remembered on it (linops.memo, key `RayTablesKey`).

Registered in the kernel table for JosephProjector (Radon, FanBeamRadon) on "cuda": forward, the GATHER adjoint,
and the normal residual with the subtraction fused into the forward kernel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

from ..backends import kernels
from ..memo import MemoKey, remember
from ..operators.tomography.projector import JosephProjector
from . import runtime
from .dispatch import cupy_kernel
from .residual import subtracting_forward

#: images a thread serves (LINOPS_RADON_IMAGE_TILE in kernels/radon.cu)
IMAGE_TILE = 4


class AdjointMethod(enum.Enum):
    """GATHER: a thread per pixel sums its rays (deterministic, no atomics; the default).
    SCATTER: a thread per ray bin adds into its pixels with atomicAdd (order-dependent rounding)."""

    GATHER = "gather"
    SCATTER = "scatter"


@dataclass(frozen=True)
class RayTables:
    """Per-ray and per-view parameters of the kernels (layouts documented in kernels/radon.cu).

    ray_int   (R, 4) int32  base = floor(offset), first and last (exclusive) step, steep (0/1)
    ray_real  (R, 4) dtype  frac = offset - base, rate_hi, rate_lo (rate = rate_hi + rate_lo), w
    view_real (V, 6) dtype  cos, sin, num, den_scale, den_const, centre (bin of a point, for the gather)
    """

    ray_int: torch.Tensor
    ray_real: torch.Tensor
    view_real: torch.Tensor


def ray_tables(geometry, image_shape, dtype: torch.dtype, device="cpu") -> RayTables:
    """The kernels' tables for `geometry` (parallel or fan beam) on an H x W grid, computed in float64.

    offset, rate and w follow joseph.py exactly: a steep ray (|d_y| >= |d_x|) has
    offset = c_x + (o_x + (c_y p - o_y) d_x / d_y) / p, rate = -d_x / d_y, w = p / |d_y|; a flat ray
    offset = c_y - (o_y + (-c_x p - o_x) d_y / d_x) / p, rate = -d_y / d_x, w = p / |d_x|. Steps whose position
    is outside [-1, n_across) carry no entry; [first, last) brackets the others with a step of margin.
    """
    H, W = image_shape
    p = float(geometry.pixel_size)
    c_x, c_y = (W - 1) / 2, (H - 1) / 2
    rays = geometry.rays(image_shape)
    o_x, o_y, d_x, d_y = rays.origin_x, rays.origin_y, rays.direction_x, rays.direction_y
    steep = d_y.abs() >= d_x.abs()
    one = torch.ones_like(d_x)
    slope_steep = d_x / torch.where(steep, d_y, one)
    slope_flat = d_y / torch.where(steep, one, d_x)
    offset = torch.where(
        steep,
        c_x + (o_x + (c_y * p - o_y) * slope_steep) / p,
        c_y - (o_y + (-c_x * p - o_x) * slope_flat) / p,
    )
    rate = -torch.where(steep, slope_steep, slope_flat)
    length = p / torch.where(steep, d_y, d_x).abs()
    n_steps = torch.where(steep, H, W).to(torch.float64)
    n_across = torch.where(steep, W, H).to(torch.float64)

    # steps with -1 <= offset + rate i < n_across, bracketed with a step of margin either side
    moving = rate != 0
    safe_rate = torch.where(moving, rate, one)
    a, b = (-1 - offset) / safe_rate, (n_across - offset) / safe_rate
    bound = max(H, W) + 2  # keeps the float -> int conversion in range
    lo = torch.minimum(a, b).clamp(-bound, bound)
    hi = torch.maximum(a, b).clamp(-bound, bound)
    first = torch.where(moving, torch.floor(lo) - 1, torch.zeros_like(lo))
    last = torch.where(moving, torch.ceil(hi) + 2, torch.where((offset >= -1) & (offset < n_across), n_steps, 0))
    first = torch.minimum(first.clamp(min=0), n_steps)
    last = torch.minimum(last.clamp(min=0), n_steps)

    base = torch.floor(offset)
    rate_hi = rate.to(dtype)
    rate_lo = (rate - rate_hi.double()).to(dtype)
    ray_int = torch.stack([base, first, last, steep.double()], dim=1).to(torch.int32)
    ray_real = torch.stack([(offset - base).to(dtype), rate_hi, rate_lo, length.to(dtype)], dim=1)

    theta = torch.tensor(geometry.angles_rad, dtype=torch.float64)
    spacing = float(geometry.detector_spacing)
    source = getattr(geometry, "source_distance", None)
    if source is None:  # parallel: bin = centre + <q, e_s> / spacing
        num, den_scale, den_const = 1 / spacing, 0.0, 1.0
    else:  # fan: bin = centre + D_sd <q, e_s> / (D_so + <q, e_r>) / spacing
        num, den_scale, den_const = (source + geometry.detector_distance) / spacing, 1.0, source
    view_real = torch.stack(
        [
            torch.cos(theta),
            torch.sin(theta),
            torch.full_like(theta, num),
            torch.full_like(theta, den_scale),
            torch.full_like(theta, den_const),
            torch.full_like(theta, (geometry.n_detector - 1) / 2),
        ],
        dim=1,
    )
    return RayTables(
        ray_int.contiguous().to(device),
        ray_real.contiguous().to(device),
        view_real.to(dtype).contiguous().to(device),
    )


@dataclass(frozen=True)
class RayTablesKey(MemoKey):
    """The kernels' `RayTables` of a projector, on its device in its dtype."""


def _tables(op) -> RayTables:
    return remember(op, RayTablesKey(), lambda: ray_tables(op.geometry, op.image_shape, op.dtype, op.device))


def _dims(op):
    """(images per sample, slices, H, W, views, bins) of a projector."""
    depth = op.in_shape[1] if op.is_volume else 1
    return op.in_shape[0], depth, *op.image_shape, op.n_views, op.n_detector


def forward(op, x: torch.Tensor, subtract: torch.Tensor | None = None) -> torch.Tensor:
    """A x (or A x - subtract, in the same pass) for x of shape (N, *op.in_shape) on a CUDA device."""
    channels, depth, H, W, views, bins = _dims(op)
    n = x.shape[0]
    tables = _tables(op)
    x = x.contiguous()
    y = torch.empty((n, *op.out_shape), dtype=x.dtype, device=x.device)
    images = n * channels
    xs, ys = x.reshape(images, -1), y.reshape(images, -1)
    ss = ys if subtract is None else subtract.contiguous().reshape(images, -1)
    per_tile = views * depth * bins
    with runtime.on_torch_stream(x.device):
        kernel = runtime.function("radon", "radon_forward", x.dtype, x.device)
        for part in runtime.batch_chunks(images, per_tile, IMAGE_TILE):
            n_part = part.stop - part.start
            runtime.launch(
                kernel, runtime.tiles(n_part, IMAGE_TILE) * per_tile, xs[part], ys[part], ss[part],
                subtract is not None, tables.ray_int, tables.ray_real, n_part, H, W, views, depth, bins,
            )  # fmt: skip
    return y


def adjoint(op, y: torch.Tensor, method: AdjointMethod = AdjointMethod.GATHER) -> torch.Tensor:
    """A^T y for y of shape (N, *op.out_shape) on a CUDA device, by `method` (both are the exact transpose)."""
    method = AdjointMethod(method)
    channels, depth, H, W, views, bins = _dims(op)
    n = y.shape[0]
    tables = _tables(op)
    y = y.contiguous()
    images = n * channels
    if method is AdjointMethod.GATHER:
        x = torch.empty((n, *op.in_shape), dtype=y.dtype, device=y.device)
        per_tile = depth * H * W
    else:
        x = torch.zeros((n, *op.in_shape), dtype=y.dtype, device=y.device)
        per_tile = views * depth * bins
    xs, ys = x.reshape(images, -1), y.reshape(images, -1)
    with runtime.on_torch_stream(y.device):
        kernel = runtime.function("radon", f"radon_adjoint_{method.value}", y.dtype, y.device)
        extra = (tables.view_real, runtime.NUMPY_SCALAR[y.dtype](op.geometry.pixel_size))
        for part in runtime.batch_chunks(images, per_tile, IMAGE_TILE):
            n_part = part.stop - part.start
            runtime.launch(
                kernel, runtime.tiles(n_part, IMAGE_TILE) * per_tile, ys[part], xs[part], tables.ray_int,
                tables.ray_real, *(extra if method is AdjointMethod.GATHER else ()), n_part, H, W, views, depth, bins,
            )  # fmt: skip
    return x


def table_bytes(op) -> int:
    """Device memory of the cached tables: rays (4 int32 + 4 values each) and views (6 values each)."""
    item = torch.finfo(op.dtype).bits // 8
    return op.n_views * op.n_detector * (16 + 4 * item) + op.n_views * 6 * item


RADON = kernels.register(JosephProjector, "cuda", cupy_kernel(forward, adjoint, subtracting_forward(forward, adjoint)))
