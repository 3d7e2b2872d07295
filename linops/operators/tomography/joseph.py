"""Joseph's ray-driven discretization of line integrals: its per-ray table, the sparse ray-by-pixel matrix, and
a torch matrix-free application.

This is the exact matrix A that `Radon` and `FanBeamRadon` apply (their adjoints apply A^T), stored or not; a
matrix-free kernel reproduces it ray by ray as follows.

Image grid (see geometry.py): H rows, W columns, pixel size p; pixel (r, c) has flat index r W + c and
centre x_c = (c - c_x) p, y_r = (c_y - r) p with c_x = (W - 1) / 2, c_y = (H - 1) / 2.

Ray: the line through o = (o_x, o_y) with unit direction d = (d_x, d_y) (row `ray` of A). The ray is
sampled once per image row or once per image column, whichever it crosses more steeply, and the image is
linearly interpolated between the two pixels that straddle each sample (Joseph, IEEE TMI 1982):

  Steep ray, |d_y| >= |d_x| (ties go here): for every row r = 0..H-1,
      x  = o_x + (y_r - o_y) * d_x / d_y           where the ray crosses the row's centre line y = y_r
      u  = c_x + x / p                             fractional column
      c0 = floor(u),  f = u - c0,  w = p / |d_y|   (w: length of ray per row)
      A[ray, r W + c0]     = (1 - f) w            if 0 <= c0     <= W - 1
      A[ray, r W + c0 + 1] =      f  w            if 0 <= c0 + 1 <= W - 1

  Flat ray, |d_y| < |d_x|: for every column c = 0..W-1,
      y  = o_y + (x_c - o_x) * d_y / d_x
      v  = c_y - y / p                             fractional row
      r0 = floor(v),  g = v - r0,  w = p / |d_x|
      A[ray, r0 W + c]       = (1 - g) w          if 0 <= r0     <= H - 1
      A[ray, (r0 + 1) W + c] =      g  w          if 0 <= r0 + 1 <= H - 1

Nothing else: pixels outside the grid are zero, each (ray, pixel) pair occurs at most once, and entries
whose weight happens to be 0 (f = 0 exactly) may be stored. (A x)[ray] = sum_pixels A[ray, pixel] x[pixel]
approximates the line integral of the image along the ray, in the length unit of p. A matrix-free adjoint
adds y[ray] * A[ray, pixel] into the same pixels, which is exactly A^T.

To the last bit: `RayTable` holds offset, rate and w of every ray in float64 (u = offset + rate r for a steep
ray, v = offset + rate c for a flat one, the formulas above rearranged) and fixes the order of the rounded
operations; the construction here and the kernels (linops/cpu, and the CuPy kernels up to a few ulps) evaluate
exactly those operations. The table also holds each ray's exact range of steps with entries, so that
`entry_counts` gives nnz without materialising an entry.

Size: about 2 max(H, W) entries per ray that meets the image (fewer for rays that clip a corner).
The construction evaluates these formulas in float64, vectorized over chunks of rays, sorts each flat
ray's entries by pixel index (steep rays come out sorted), and builds A^T chunk by chunk (`joseph_matrices`);
`project` and `backproject` apply A and A^T chunk by chunk without storing them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

import numpy as np
import torch

from .geometry import Rays

#: rays per chunk when the ray table's step ranges are found (about 1 KB of temporaries per ray)
_TABLE_CHUNK = 1 << 16

#: rays are processed in chunks of about this many candidate entries (2 per step, max(H, W) steps per ray)
_CHUNK_ENTRIES = 1 << 20


@dataclass(frozen=True)
class CSR:
    """Compressed sparse rows: row `i` holds columns col[crow[i]:crow[i+1]] (ascending) with values val[...]."""

    crow: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        return self.col.numel()

    def to_torch(self, dtype: torch.dtype, device) -> torch.Tensor:
        """A torch sparse CSR tensor with values cast to `dtype`."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            return torch.sparse_csr_tensor(
                self.crow.to(device=device),
                self.col.to(device=device),
                self.val.to(device=device, dtype=dtype),
                self.shape,
                check_invariants=False,
            )


@dataclass(frozen=True)
class RayTable:
    """Joseph's parameters of every ray (float64 or bool, shape (R,)) and its exact step ranges (int64).

    A steep ray samples row i at the fractional column position(i), a flat ray column i at the fractional
    row position(i), with (the docstring's formulas, i = 0 .. n_steps - 1)

        position(i) = rate * i + offset     evaluated as two rounded float64 operations, in this order,
        lower(i) = floor(position(i)),  f = position(i) - lower(i),  w1 = f * length,  w0 = length - w1,

    and puts w0 on pixel `lower` and w1 on pixel `lower + 1` across. Every implementation (the sparse
    construction below, the matrix-free kernels) evaluates exactly these operations on exactly these
    numbers, so they agree on every entry to the last bit before the weights are rounded to the dtype.

    Because rounding is monotone, lower(i) is monotone in i (non-decreasing for rate >= 0), so the steps
    that produce entries are contiguous:

        touch = [touch_start, touch_stop):  -1 <= lower(i) <= n_across - 1   (at least one entry)
        inner = [inner_start, inner_stop):   0 <= lower(i) <= n_across - 2   (both entries), inside touch

    and ray j holds exactly (touch_stop - touch_start) + (inner_stop - inner_start) entries (`entry_counts`).
    """

    steep: torch.Tensor
    offset: torch.Tensor
    rate: torch.Tensor
    length: torch.Tensor
    touch_start: torch.Tensor
    touch_stop: torch.Tensor
    inner_start: torch.Tensor
    inner_stop: torch.Tensor

    def __len__(self) -> int:
        return self.offset.numel()

    def entry_counts(self) -> torch.Tensor:
        """Stored entries of each ray (row counts of A), int64."""
        return (self.touch_stop - self.touch_start) + (self.inner_stop - self.inner_start)

    def select(self, index) -> RayTable:
        return RayTable(*(getattr(self, f.name)[index] for f in fields(self)))


def _positions(offset, rate, step):
    """rate * step + offset, as two rounded operations (never fused: torch.addcmul fuses on some CPUs); torch
    tensors or numpy arrays."""
    position = rate * step
    position += offset
    return position


def ray_table(rays: Rays, image_shape: tuple[int, int], pixel_size: float) -> RayTable:
    """The `RayTable` of `rays` on an H x W grid of pixel size p (module docstring):

        steep (|d_y| >= |d_x|):  offset = c_x + (o_x + (c_y p - o_y) d_x / d_y) / p,  rate = -d_x / d_y,  w = p / |d_y|
        flat:                    offset = c_y - (o_y + (-c_x p - o_x) d_y / d_x) / p,  rate = -d_y / d_x,  w = p / |d_x|

    The step ranges come from each ray's monotone lower(i), evaluated with the same operations as the entries
    (`_first_step_above`; no entry is materialised). Computed with numpy, one thread: elementwise float64
    operations round exactly as torch's do, and a few hundred thousand rays do not need torch's thread pool
    (whose threads, on a busy machine, make each of these small operations wait: 5 s instead of 0.4 s for the
    737 k rays of 1024 x 1024 with 720 views, measured at load 5 on 2 cores).
    """
    H, W = image_shape
    p = pixel_size
    c_x, c_y = (W - 1) / 2, (H - 1) / 2
    o_x, o_y, d_x, d_y = (t.detach().cpu().numpy() for t in (rays.origin_x, rays.origin_y, rays.direction_x,
                                                            rays.direction_y))  # fmt: skip
    steep = np.abs(d_y) >= np.abs(d_x)
    slope_steep = d_x / np.where(steep, d_y, 1.0)
    slope_flat = d_y / np.where(steep, 1.0, d_x)
    offset = np.where(
        steep,
        c_x + (o_x + (c_y * p - o_y) * slope_steep) / p,
        c_y - (o_y + (-c_x * p - o_x) * slope_flat) / p,
    )
    rate = -np.where(steep, slope_steep, slope_flat)
    length = p / np.abs(np.where(steep, d_y, d_x))
    n_steps = np.where(steep, H, W).astype(np.int64)
    n_across = np.where(steep, W, H).astype(np.int64)
    # sign * lower(i) is non-decreasing; {a <= lower <= b} = [first(sign lower > lo), first(sign lower > hi))
    increasing = rate >= 0
    a = np.stack([np.full_like(n_across, -1), np.zeros_like(n_across)], axis=1)  # touch, inner
    b = np.stack([n_across - 1, n_across - 2], axis=1)
    lo = np.where(increasing[:, None], a - 1, -b - 1)
    hi = np.where(increasing[:, None], b, -a)
    thresholds = np.concatenate([lo, hi], axis=1)
    first = np.empty_like(thresholds)
    for start in range(0, len(rays), _TABLE_CHUNK):  # bounds the temporaries (16 candidates per ray and range)
        part = slice(start, start + _TABLE_CHUNK)
        first[part] = _first_step_above(offset[part], rate[part], increasing[part], thresholds[part], n_steps[part])
    as_torch = torch.from_numpy
    return RayTable(
        as_torch(steep), as_torch(offset), as_torch(rate), as_torch(length),
        *(as_torch(np.ascontiguousarray(first[:, k])) for k in (0, 2, 1, 3)),
    )  # fmt: skip


def _above(offset, rate, increasing, target, n_steps, step):
    """sign * floor(rate * step + offset) > t, i.e. position >= t + 1 (sign +1, target = t + 1) or
    position < -t (sign -1, target = -t), extended by False before step 0 and True from step n_steps."""
    position = _positions(offset, rate, np.maximum(step, 0).astype(np.float64))
    above = np.where(increasing, position >= target, position < target)
    return (above & (step >= 0)) | (step >= n_steps)


def _first_step_above(offset, rate, increasing, thresholds, n_steps) -> np.ndarray:
    """For each ray and column t of `thresholds` (R, T): the first step i in [0, n_steps) with
    sign * floor(rate * i + offset) > t (sign +1 where `increasing`, else -1), or n_steps if there is none; the
    sequence is non-decreasing in i.

    The real-arithmetic crossing i* = (target - offset) / rate, target = t + 1 (sign +1) or -t (sign -1), is
    within a step of the answer unless |rate| is tiny; the answer is confirmed exactly on the window
    ceil(i*) - 2 .. ceil(i*) + 1 (false at its first step, true at its last), and found by bisection for the
    few rays whose window does not confirm it."""
    offset, rate, n_steps, increasing = offset[:, None], rate[:, None], n_steps[:, None], increasing[:, None]
    target = np.where(increasing, thresholds + 1, -thresholds).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.nan_to_num((target - offset) / rate, nan=0.0, posinf=2.0**40, neginf=-(2.0**40))
    guess = np.minimum(np.ceil(np.clip(estimate, -1.0, 2.0**40)).astype(np.int64), n_steps)
    window = guess[..., None] + np.arange(-2, 2)
    above = _above(offset[..., None], rate[..., None], increasing[..., None], target[..., None], n_steps[..., None],
                   window)  # fmt: skip
    first = window[..., 0] + (~above).sum(-1)
    ray, column = np.nonzero(above[..., 0] | ~above[..., 3])
    if ray.size:
        first[ray, column] = _bisect(offset[ray, 0], rate[ray, 0], increasing[ray, 0], target[ray, column],
                                     n_steps[ray, 0])  # fmt: skip
    return first


def _bisect(offset, rate, increasing, target, n_steps) -> np.ndarray:
    """`_first_step_above` by bisection, for P (ray, threshold) pairs given as (P,) arrays."""
    lo, hi = np.zeros_like(n_steps), n_steps.copy()
    while (lo < hi).any():
        mid = (lo + hi) // 2
        above = _above(offset, rate, increasing, target, n_steps, mid)
        active = lo < hi
        hi = np.where(active & above, mid, hi)
        lo = np.where(active & ~above, mid + 1, lo)
    return lo


def _candidate_entries(table: RayTable, image_shape: tuple[int, int], steep: bool):
    """Flat pixel indices (H W marks "outside the grid") and float64 weights, shape (R, 2 n_steps), one ray a row,
    for rays that are all steep or all flat.

    Entries of a ray are in ascending pixel order (the invalid marker last when sorted).
    """
    H, W = image_shape
    n_rays = len(table)
    if steep:
        n_steps, n_across, stride_along, stride_across = H, W, W, 1
    else:
        n_steps, n_across, stride_along, stride_across = W, H, 1, W
    step = torch.arange(n_steps, dtype=torch.float64)
    position = _positions(table.offset[:, None], table.rate[:, None], step)  # (R, n_steps)
    lower = torch.floor(position)
    weight = torch.empty(n_rays, n_steps, 2, dtype=torch.float64)
    torch.mul(position.sub_(lower), table.length[:, None], out=weight[..., 1])  # f w
    torch.sub(table.length[:, None], weight[..., 1], out=weight[..., 0])  # (1 - f) w
    lower = lower.to(torch.int32)
    pixel = torch.empty(n_rays, n_steps, 2, dtype=torch.int32)
    along = torch.arange(0, n_steps * stride_along, stride_along, dtype=torch.int32)
    torch.add(along, lower * stride_across, out=pixel[..., 0])
    torch.add(pixel[..., 0], stride_across, out=pixel[..., 1])
    outside = H * W
    pixel[..., 0].masked_fill_((lower < 0) | (lower > n_across - 1), outside)
    pixel[..., 1].masked_fill_((lower < -1) | (lower > n_across - 2), outside)
    pixel, weight = pixel.reshape(n_rays, -1), weight.reshape(n_rays, -1)
    if not steep:
        # a flat ray visits rows r0 and r0 + 1 per column: reorder its entries by pixel index
        pixel, order = torch.sort(pixel, dim=-1)
        weight = torch.gather(weight, -1, order)
    return pixel, weight


def _chunk_entries(table: RayTable, image_shape, start: int, stop: int):
    """Candidate entries (pixel index, weight), shape (stop - start, 2 max(H, W)), of rays start..stop-1."""
    H, W = image_shape
    chunk_steep = table.steep[start:stop]
    if bool(chunk_steep.all()) or not bool(chunk_steep.any()):
        return _candidate_entries(table.select(slice(start, stop)), image_shape, bool(chunk_steep[0]))
    width = 2 * max(H, W)
    pixel = torch.full((stop - start, width), H * W, dtype=torch.int32)
    weight = torch.zeros((stop - start, width), dtype=torch.float64)
    for mode in (True, False):
        index = torch.nonzero(chunk_steep == mode).squeeze(1)
        p, w = _candidate_entries(table.select(index + start), image_shape, mode)
        pixel[index, : p.shape[1]] = p
        weight[index, : w.shape[1]] = w
    return pixel, weight


def _ray_chunks(n_rays: int, image_shape, columns: int = 1) -> list[tuple[int, int]]:
    per_chunk = max(1, _CHUNK_ENTRIES // (2 * max(image_shape) * columns))
    return [(start, min(start + per_chunk, n_rays)) for start in range(0, n_rays, per_chunk)]


def project(table: RayTable, image_shape, columns: torch.Tensor) -> torch.Tensor:
    """A X without storing A (torch reference of the matrix-free path): X of shape (H W, B) -> (R, B).

    Chunks of rays materialise their candidate entries (weights rounded to the dtype of X, as the stored
    matrix holds them) and gather the pixels; memory is bounded by the chunk, not by nnz."""
    H, W = image_shape
    padded = torch.cat([columns, columns.new_zeros(1, columns.shape[1])])  # row H W: "outside the grid"
    out = columns.new_empty(len(table), columns.shape[1])
    for start, stop in _ray_chunks(len(table), image_shape, columns.shape[1]):
        pixel, weight = _chunk_entries(table, image_shape, start, stop)
        pixel, weight = pixel.to(columns.device), weight.to(device=columns.device, dtype=columns.dtype)
        values = padded[pixel.reshape(-1).long()].reshape(*pixel.shape, -1)
        out[start:stop] = torch.einsum("rn,rnb->rb", weight, values)
    return out


def backproject(table: RayTable, image_shape, columns: torch.Tensor) -> torch.Tensor:
    """A^T Y without storing A (torch reference of the matrix-free path): Y of shape (R, B) -> (H W, B),
    scattering each chunk's weighted rays into their pixels (index_add_)."""
    H, W = image_shape
    out = columns.new_zeros(H * W + 1, columns.shape[1])
    for start, stop in _ray_chunks(len(table), image_shape, columns.shape[1]):
        pixel, weight = _chunk_entries(table, image_shape, start, stop)
        pixel, weight = pixel.to(columns.device), weight.to(device=columns.device, dtype=columns.dtype)
        contributions = weight[..., None] * columns[start:stop, None, :]
        out.index_add_(0, pixel.reshape(-1).long(), contributions.reshape(-1, columns.shape[1]))
    return out[:-1]


def _exclusive_cumsum(counts: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(counts.shape[-1] + 1, dtype=torch.int64)
    torch.cumsum(counts, -1, out=out[1:])
    return out


#: the stored matrices use int32 indices
MAX_ENTRIES = 2**31 - 1


def joseph_matrices(
    table: RayTable, image_shape: tuple[int, int], dtype: torch.dtype = torch.float64
) -> tuple[CSR, CSR]:
    """A (n_rays x H W, Joseph's method, module docstring) and A^T: weights computed in float64 and stored
    in `dtype`, int32 indices.

    Pass 1 fills A chunk by chunk of rays (entries in ray order, each ray's pixels ascending). Pass 2 sorts
    each chunk's entries stably by pixel, which is that chunk's block of A^T with rays ascending, and places
    entry e at crow_T[pixel] + (entries of that pixel in earlier chunks) + (its rank within the chunk).
    """
    H, W = image_shape
    n_rays, n_pixels = len(table), H * W
    chunks = _ray_chunks(n_rays, image_shape)
    crow = _exclusive_cumsum(table.entry_counts())
    nnz = int(crow[-1])
    if nnz > MAX_ENTRIES:
        raise ValueError(
            f"{n_rays} rays over a {H}x{W} grid have {nnz} entries, more than int32 indices address ({MAX_ENTRIES}); "
            "split the views or apply the projector matrix-free"
        )
    col = torch.empty(nnz, dtype=torch.int32)
    val = torch.empty(nnz, dtype=dtype)
    pixel_counts = torch.zeros(n_pixels, dtype=torch.int64)
    for start, stop in chunks:
        pixel, weight = _chunk_entries(table, image_shape, start, stop)
        kept = torch.nonzero(pixel.reshape(-1) < n_pixels).squeeze(1)
        first, last = int(crow[start]), int(crow[stop])
        if kept.numel() != last - first:  # the counts (bisection) and the entries (formulas) must agree
            raise RuntimeError(f"Joseph entry count mismatch in rays {start}..{stop}: {kept.numel()} != {last - first}")
        torch.index_select(pixel.reshape(-1), 0, kept, out=col[first:last])
        val[first:last] = torch.index_select(weight.reshape(-1), 0, kept)
        pixel_counts += torch.bincount(col[first:last], minlength=n_pixels)

    crow_t = _exclusive_cumsum(pixel_counts)
    placed = torch.zeros(n_pixels, dtype=torch.int64)  # entries of each pixel in earlier chunks
    col_t = torch.empty(nnz, dtype=torch.int32)
    val_t = torch.empty(nnz, dtype=dtype)
    for start, stop in chunks:
        first, last = int(crow[start]), int(crow[stop])
        pixel_sorted, order = torch.sort(col[first:last], stable=True)
        ray = torch.repeat_interleave(torch.arange(start, stop, dtype=torch.int32), crow[start : stop + 1].diff())
        counts = torch.bincount(pixel_sorted, minlength=n_pixels)
        # rank within the chunk = sorted position - first sorted position of the same pixel
        shift = crow_t[:-1] + placed - _exclusive_cumsum(counts)[:-1]
        placed += counts
        position = torch.arange(last - first) + torch.index_select(shift, 0, pixel_sorted)
        col_t.index_copy_(0, position, torch.index_select(ray, 0, order))
        val_t.index_copy_(0, position, torch.index_select(val[first:last], 0, order))
    A = CSR(crow.to(torch.int32), col, val, (n_rays, n_pixels))
    return A, CSR(crow_t.to(torch.int32), col_t, val_t, (n_pixels, n_rays))


def memory_bytes(nnz: int, n_rows: int, n_cols: int, value_bytes: int, index_bytes: int = 4) -> int:
    """Bytes of A and A^T stored as CSR: values and column indices twice, plus both row pointers."""
    return 2 * nnz * (value_bytes + index_bytes) + (n_rows + n_cols + 2) * index_bytes
