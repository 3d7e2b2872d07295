"""Joseph's ray-driven discretization of line integrals, built as a sparse ray-by-pixel matrix.

This is the exact matrix A that `Radon` and `FanBeamRadon` apply (their adjoints apply A^T); a
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
scatters y[ray] * A[ray, pixel] into the same pixels (atomically), which is exactly A^T.

Size: about 2 max(H, W) entries per ray that meets the image (fewer for rays that clip a corner).
The construction evaluates these formulas in float64, vectorized over chunks of rays, sorts each flat
ray's entries by pixel index (steep rays come out sorted), and builds A^T chunk by chunk (`joseph_matrices`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .geometry import Rays

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


def _candidate_entries(rays: Rays, image_shape: tuple[int, int], pixel_size: float, steep: bool):
    """Flat pixel indices (H W marks "outside the grid") and float64 weights, shape (R, 2 n_steps), one ray a row.

    Entries of a ray are in ascending pixel order (the invalid marker last when sorted).
    """
    H, W = image_shape
    p = pixel_size
    c_x, c_y = (W - 1) / 2, (H - 1) / 2
    n_rays = len(rays)
    # position along the crossed axis is affine in the step i: position = offset + rate * i
    if steep:  # x = o_x + (y_i - o_y) d_x / d_y with y_i = (c_y - i) p;  u = c_x + x / p
        n_steps, n_across, stride_along, stride_across = H, W, W, 1
        slope = rays.direction_x / rays.direction_y
        offset = c_x + (rays.origin_x + (c_y * p - rays.origin_y) * slope) / p
        rate = -slope
        length = p / rays.direction_y.abs()
    else:  # y = o_y + (x_i - o_x) d_y / d_x with x_i = (i - c_x) p;  v = c_y - y / p
        n_steps, n_across, stride_along, stride_across = W, H, 1, W
        slope = rays.direction_y / rays.direction_x
        offset = c_y - (rays.origin_y + (-c_x * p - rays.origin_x) * slope) / p
        rate = -slope
        length = p / rays.direction_x.abs()
    step = torch.arange(n_steps, dtype=torch.float64)
    position = torch.addcmul(offset[:, None], rate[:, None], step)  # (R, n_steps)
    lower = torch.floor(position)
    weight = torch.empty(n_rays, n_steps, 2, dtype=torch.float64)
    torch.mul(position.sub_(lower), length[:, None], out=weight[..., 1])  # f w
    torch.sub(length[:, None], weight[..., 1], out=weight[..., 0])  # (1 - f) w
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


def _select(rays: Rays, index: torch.Tensor) -> Rays:
    return Rays(rays.origin_x[index], rays.origin_y[index], rays.direction_x[index], rays.direction_y[index])


def _chunk_entries(rays: Rays, steep: torch.Tensor, image_shape, pixel_size, start: int, stop: int):
    """Candidate entries (pixel index, weight), shape (stop - start, 2 max(H, W)), of rays start..stop-1."""
    H, W = image_shape
    chunk_steep = steep[start:stop]
    if bool(chunk_steep.all()) or not bool(chunk_steep.any()):
        return _candidate_entries(_select(rays, slice(start, stop)), image_shape, pixel_size, bool(chunk_steep[0]))
    width = 2 * max(H, W)
    pixel = torch.full((stop - start, width), H * W, dtype=torch.int32)
    weight = torch.zeros((stop - start, width), dtype=torch.float64)
    for mode in (True, False):
        index = torch.nonzero(chunk_steep == mode).squeeze(1)
        p, w = _candidate_entries(_select(rays, index + start), image_shape, pixel_size, mode)
        pixel[index, : p.shape[1]] = p
        weight[index, : w.shape[1]] = w
    return pixel, weight


def _exclusive_cumsum(counts: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(counts.shape[-1] + 1, dtype=torch.int64)
    torch.cumsum(counts, -1, out=out[1:])
    return out


def joseph_matrices(
    rays: Rays, image_shape: tuple[int, int], pixel_size: float, dtype: torch.dtype = torch.float64
) -> tuple[CSR, CSR]:
    """A (n_rays x H W, Joseph's method, module docstring) and A^T: weights computed in float64 and stored
    in `dtype`, int32 indices.

    Pass 1 fills A chunk by chunk of rays (entries in ray order, each ray's pixels ascending). Pass 2 sorts
    each chunk's entries stably by pixel, which is that chunk's block of A^T with rays ascending, and places
    entry e at crow_T[pixel] + (entries of that pixel in earlier chunks) + (its rank within the chunk).
    """
    H, W = image_shape
    n_rays, n_pixels = len(rays), H * W
    steep = rays.direction_y.abs() >= rays.direction_x.abs()
    per_chunk = max(1, _CHUNK_ENTRIES // (2 * max(H, W)))
    chunks = [(start, min(start + per_chunk, n_rays)) for start in range(0, n_rays, per_chunk)]
    # an upper bound; the pages beyond the true entry count are never touched
    capacity = n_rays * 2 * max(H, W)
    if capacity >= 2**31:
        raise ValueError(f"{n_rays} rays over a {H}x{W} grid may exceed 2^31 entries (int32 indices); split the views")
    col = torch.empty(capacity, dtype=torch.int32)
    val = torch.empty(capacity, dtype=dtype)
    ray_counts = torch.empty(n_rays, dtype=torch.int64)
    pixel_counts = torch.zeros(n_pixels, dtype=torch.int64)
    nnz = 0
    for start, stop in chunks:
        pixel, weight = _chunk_entries(rays, steep, image_shape, pixel_size, start, stop)
        inside = pixel < n_pixels
        ray_counts[start:stop] = inside.sum(dim=1)
        kept = torch.nonzero(inside.reshape(-1)).squeeze(1)
        n = kept.numel()
        torch.index_select(pixel.reshape(-1), 0, kept, out=col[nnz : nnz + n])
        val[nnz : nnz + n] = torch.index_select(weight.reshape(-1), 0, kept)
        pixel_counts += torch.bincount(col[nnz : nnz + n], minlength=n_pixels)
        nnz += n
    col, val = col[:nnz], val[:nnz]
    crow = _exclusive_cumsum(ray_counts)

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
