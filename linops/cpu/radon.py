"""numba kernels for `Radon` and `FanBeamRadon`: Joseph's matrix applied without storing it.

The matrix is the one `JosephProjector` stores, row by row as joseph.py's `RayTable` defines it: ray j samples
step i (a row of a steep ray, a column of a flat one) at

    position = rate_j * i + offset_j,  lower = floor(position),  f = position - lower,
    w1 = f * length_j,  w0 = length_j - w1          (float64, then rounded to the data's dtype)

and holds w0 at pixel `lower` and w1 at pixel `lower + 1` across (when inside the grid), for the steps of its
touch range [touch_start, touch_stop); in the inner range [inner_start, inner_stop) both pixels are inside, so
those steps need no bounds checks. These are the operations of the sparse construction on the same float64
table, so every weight equals the stored matrix's entry bit for bit.

    forward   (A X)[j, b] = sum_i w0 X[p0, b] + w1 X[p1, b]       one ray per task (prange over rays)
    adjoint   (A^T Y)[p, b] = sum_{j reaches p} A[j, p] Y[j, b]    without atomics: a steep ray meets row r only
              at step i = r, in pixels (r, lower) and (r, lower + 1), so the task owning a block of rows
              gathers, for every steep ray, exactly the row-r entries of A (the forward's formula at i = r);
              then the task owning a block of columns does the same for the flat rays at step i = c.
              Each pixel is written by one task per pass: no races, and a fixed summation order (steep rays,
              then flat rays, each in ray order) independent of the number of threads.

Data are columns: X (H W, B) and Y (n_rays, B), C-contiguous, B = every image of the batch (samples, channels
and slices), all in one call. Threads: torch.get_num_threads() at the call (numba.set_num_threads), so one
setting governs both. Compiled once per machine (cache=True, in __pycache__ beside this file). The tables are
remembered on the operator (linops.memo, key `TablesKey`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numba
import numpy as np
import torch

from ..memo import MemoKey, remember

#: samples (steps of a ray, times columns) below which an extra thread does not pay for waking it (~1 ms)
MIN_SAMPLES_PER_THREAD = 1 << 20

#: rows (adjoint pass 1) or columns (pass 2) owned by one task: the block's output stays in cache while
#: every ray's parameters are read once per block
BLOCK = 16


@numba.njit(inline="always")
def _sample(position, length, cast):
    """(lower, w0, w1) of a sample at `position`, weights rounded by `cast` (the data's dtype)."""
    floor = np.floor(position)
    w1 = (position - floor) * length
    return int(floor), cast(length - w1), cast(w1)


@numba.njit(inline="always")
def _edge_step(n, t0, i0, i1):
    """The n-th step of [t0, i0) followed by [i1, t1): the touch range outside the inner range."""
    return t0 + n if n < i0 - t0 else i1 + (n - (i0 - t0))


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def forward_kernel(x, y, steep, offset, rate, length, touch_start, touch_stop, inner_start, inner_stop, height, width):
    """y[j, :] = sum over ray j's entries of A[j, p] x[p, :]; x (H W, B), y (n_rays, B)."""
    n_rays, n_columns = y.shape
    cast = x.dtype.type
    for j in numba.prange(n_rays):
        if steep[j]:
            along, across, n_across = width, 1, width
        else:
            along, across, n_across = 1, width, height
        o, a, w = offset[j], rate[j], length[j]
        t0, t1, i0, i1 = touch_start[j], touch_stop[j], inner_start[j], inner_stop[j]
        if n_columns == 1:
            acc = cast(0.0)
            for i in range(i0, i1):
                lower, w0, w1 = _sample(a * i + o, w, cast)
                p = i * along + lower * across
                acc += w0 * x[p, 0] + w1 * x[p + across, 0]
            for n in range((i0 - t0) + (t1 - i1)):
                i = _edge_step(n, t0, i0, i1)
                lower, w0, w1 = _sample(a * i + o, w, cast)
                p = i * along + lower * across
                if lower >= 0:
                    acc += w0 * x[p, 0]
                if lower + 1 <= n_across - 1:
                    acc += w1 * x[p + across, 0]
            y[j, 0] = acc
        else:  # (indexing, not slicing: a slice per step costs a reference count)
            for b in range(n_columns):
                y[j, b] = 0
            for i in range(i0, i1):
                lower, w0, w1 = _sample(a * i + o, w, cast)
                p = i * along + lower * across
                q = p + across
                for b in range(n_columns):
                    y[j, b] += w0 * x[p, b] + w1 * x[q, b]
            for n in range((i0 - t0) + (t1 - i1)):
                i = _edge_step(n, t0, i0, i1)
                lower, w0, w1 = _sample(a * i + o, w, cast)
                p = i * along + lower * across
                if lower >= 0:
                    for b in range(n_columns):
                        y[j, b] += w0 * x[p, b]
                if lower + 1 <= n_across - 1:
                    for b in range(n_columns):
                        y[j, b] += w1 * x[p + across, b]


@numba.njit(inline="always")
def _gather_ray(y, x, j, lo, hi, along, across, n_across, o, a, w, i0, i1, cast):
    """x[pixels of ray j at steps lo..hi-1] += A[j, pixel] y[j, :] (the caller owns those pixels)."""
    n_columns = y.shape[1]
    for i in range(lo, hi):
        lower, w0, w1 = _sample(a * i + o, w, cast)
        p = i * along + lower * across
        inner = i0 <= i < i1
        if n_columns == 1:
            v = y[j, 0]
            if inner or lower >= 0:
                x[p, 0] += w0 * v
            if inner or lower + 1 <= n_across - 1:
                x[p + across, 0] += w1 * v
        else:
            if inner or lower >= 0:
                for b in range(n_columns):
                    x[p, b] += w0 * y[j, b]
            if inner or lower + 1 <= n_across - 1:
                q = p + across
                for b in range(n_columns):
                    x[q, b] += w1 * y[j, b]


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def adjoint_kernel(
    y, x, steep_rays, flat_rays, offset, rate, length, touch_start, touch_stop, inner_start, inner_stop, height, width,
    block_size,
):
    """x = A^T y with x (H W, B) zeroed by the caller, y (n_rays, B); steep_rays / flat_rays list the ray indices."""
    cast = x.dtype.type
    for block in numba.prange((height + block_size - 1) // block_size):  # pass 1: rows, steep rays
        r_lo, r_hi = block * block_size, min(height, (block + 1) * block_size)
        for n in range(steep_rays.size):
            j = steep_rays[n]
            lo, hi = max(r_lo, touch_start[j]), min(r_hi, touch_stop[j])
            if lo < hi:
                _gather_ray(y, x, j, lo, hi, width, 1, width, offset[j], rate[j], length[j],
                            inner_start[j], inner_stop[j], cast)  # fmt: skip
    for block in numba.prange((width + block_size - 1) // block_size):  # pass 2: columns, flat rays
        c_lo, c_hi = block * block_size, min(width, (block + 1) * block_size)
        for n in range(flat_rays.size):
            j = flat_rays[n]
            lo, hi = max(c_lo, touch_start[j]), min(c_hi, touch_stop[j])
            if lo < hi:
                _gather_ray(y, x, j, lo, hi, 1, width, height, offset[j], rate[j], length[j],
                            inner_start[j], inner_stop[j], cast)  # fmt: skip


class Tables:
    """The ray table as numpy arrays for the kernels (float64 parameters, int64 step ranges, ray lists)."""

    def __init__(self, table):
        as_np = lambda t, dtype: np.ascontiguousarray(t.numpy(), dtype=dtype)
        self.steep = as_np(table.steep, np.bool_)
        self.offset = as_np(table.offset, np.float64)
        self.rate = as_np(table.rate, np.float64)
        self.length = as_np(table.length, np.float64)
        self.touch_start = as_np(table.touch_start, np.int64)
        self.touch_stop = as_np(table.touch_stop, np.int64)
        self.inner_start = as_np(table.inner_start, np.int64)
        self.inner_stop = as_np(table.inner_stop, np.int64)
        self.steep_rays = np.flatnonzero(self.steep).astype(np.int64)
        self.flat_rays = np.flatnonzero(~self.steep).astype(np.int64)

    def parameters(self):
        return (self.offset, self.rate, self.length, self.touch_start, self.touch_stop, self.inner_start,
                self.inner_stop)  # fmt: skip

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())


@dataclass(frozen=True)
class TablesKey(MemoKey):
    """The numba kernels' `Tables` of a projector (numpy copies of its ray table)."""


def _tables(op) -> Tables:
    return remember(op, TablesKey(), lambda: Tables(op.ray_table))


@contextlib.contextmanager
def _threads(op, n_columns: int):
    """Run a kernel on torch's thread count for this call, but one thread per MIN_SAMPLES_PER_THREAD samples at
    most: a parallel region costs a wake-up of every thread, and on a busy machine a descheduled thread stalls it
    (measured on a 16 x 16 image with 10 views: 0.2 ms per forward and adjoint on one thread, 30 ms on two, load
    12). numba's OpenMP threading layer shares the OpenMP runtime with torch, and its first parallel region resets
    the runtime's thread count (torch.set_num_threads(1), then a kernel: torch.get_num_threads() == 2 after it);
    torch's count is put back so that a caller's (or a Dask worker's) setting holds."""
    torch_threads = torch.get_num_threads()
    samples = op.n_views * op.n_detector * max(op.image_shape) * n_columns
    useful = max(1, samples // MIN_SAMPLES_PER_THREAD)
    numba.set_num_threads(max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS, useful)))
    try:
        yield
    finally:
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


def forward(op, columns: torch.Tensor) -> torch.Tensor:
    """A X for X of shape (H W, B) on the CPU (float32 or float64) -> (n_rays, B)."""
    tables = _tables(op)
    x = columns.detach().contiguous()
    y = torch.empty(tables.offset.size, x.shape[1], dtype=x.dtype)
    with _threads(op, x.shape[1]):
        forward_kernel(x.numpy(), y.numpy(), tables.steep, *tables.parameters(), *op.image_shape)
    return y


def adjoint(op, columns: torch.Tensor) -> torch.Tensor:
    """A^T Y for Y of shape (n_rays, B) on the CPU (float32 or float64) -> (H W, B)."""
    tables = _tables(op)
    y = columns.detach().contiguous()
    H, W = op.image_shape
    x = torch.zeros(H * W, y.shape[1], dtype=y.dtype)
    with _threads(op, y.shape[1]):
        adjoint_kernel(y.numpy(), x.numpy(), tables.steep_rays, tables.flat_rays, *tables.parameters(), H, W, BLOCK)
    return x
