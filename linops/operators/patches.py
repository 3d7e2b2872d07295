"""Patch operators: the PaDIS non-overlapping patch grid with zero padding and grid shifts, and
overlapping tiles (DDGM's large images). Both cut the trailing two axes (H, W) of an image of shape
(*lead, H, W), e.g. (C, H, W), into patches of shape (*lead, P1, P2) stacked along a new first axis.

PaDIS grid (Hu et al. 2024; seed 001). Image N1 x N2, patch P1 x P2, per axis i

    K_i = 1 + floor(N_i / P_i)       patches, so that K_i P_i > N_i,
    M_i = K_i P_i - N_i              zero padding on each side (1 <= M_i <= P_i),

and the padded canvas of size (N1 + 2 M1) x (N2 + 2 M2) holds the image at rows M1..M1 + N1 - 1 and
columns M2..M2 + N2 - 1. A grid shift m = (m1, m2) with 0 <= m_i <= M_i places the K1 x K2 grid of
patches (a window of K_i P_i = N_i + M_i samples per axis) at canvas offset m: patch k = (k1, k2)
covers canvas rows m1 + k1 P1 .. m1 + (k1 + 1) P1 - 1 (likewise columns). Every shift in this range
keeps the whole image inside the window, so every image pixel lies in exactly one patch and the
rest of each patch is zero padding. Extraction E_m is therefore an isometry: E_m^H E_m = I, and
assembling the patches (E_m^H) puts each pixel back from the one patch that holds it.

The paper draws m among M1 M2 shifts; the range 0..M_i holds M_i + 1 valid offsets per axis (the
two ends are mirror images of each other), and `PatchGrid.random_shift` draws uniformly among all
(M1 + 1)(M2 + 1) of them. When P_i = N_i the paper's formula would give K_i = 2 and a 3 N_i canvas
on which most shifts cut the image into pieces seen without context; we take P_i = N_i to mean the
whole-image model instead: K_i = 1, M_i = 0, a single shift (ALGORITHMS.md: "P = N is the
whole-image model").

Overlapping tiles (DDGM, seed 000): tiles of p1 x p2 at stride s per axis, starting at 0, s, 2s, ...
while they fit, plus a last tile aligned to the far border (start N - p) when the stride does not
land there; stride <= patch, so the tiles cover the image.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from ..base import LinearOperator, as_shape


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, numbers.Integral):
        value = (int(value), int(value))
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    return a, b


def _image_shape(in_shape, name: str):
    in_shape = as_shape(in_shape, "in_shape")
    if len(in_shape) < 2:
        raise ValueError(f"{name} needs in_shape (..., H, W), got {in_shape}")
    return in_shape


def grid_geometry(n: int, p: int) -> tuple[int, int]:
    """(K, M) for an axis of n samples cut into patches of p: K = 1 + floor(n / p), M = K p - n;
    (1, 0) when p = n (the whole-image model)."""
    if not 0 < p <= n:
        raise ValueError(f"patch size {p} must lie in 1..{n} (the image size)")
    if p == n:
        return 1, 0
    k = 1 + n // p
    return k, k * p - n


def tile_starts(n: int, p: int, s: int) -> list[int]:
    """Start indices of tiles of length p at stride s covering 0..n-1, the last one at n - p."""
    if not 0 < p <= n:
        raise ValueError(f"tile size {p} must lie in 1..{n} (the image size)")
    if not 0 < s <= p:
        raise ValueError(f"stride {s} must lie in 1..{p} (the tile size) so that the tiles cover the image")
    starts = list(range(0, n - p + 1, s))
    if starts[-1] != n - p:
        starts.append(n - p)
    return starts


class PatchGrid(LinearOperator):
    """E_m x = the K1 K2 patches of the zero-padded image for grid shift m = (m1, m2).

    in_shape (*lead, N1, N2) -> out_shape (K1 K2, *lead, P1, P2), patches in row-major order
    k = k1 K2 + k2. With Z_m the zero padding that puts x at offset (M1 - m1, M2 - m2) of the
    K1 P1 x K2 P2 window, and R the reshuffle of the window into patches,

        E_m = R Z_m,    E_m^H = Z_m^H R^T   (assemble the patches, crop the image),

    and E_m^H E_m = I (each pixel lies in exactly one patch). See the module docstring for the
    geometry (K_i, M_i, canvas, range of m).
    """

    def __init__(self, in_shape, patch, shift=(0, 0), *, dtype: torch.dtype = torch.float32, device="cpu"):
        in_shape = _image_shape(in_shape, "PatchGrid")
        self.image_size = in_shape[-2:]
        self.patch = _pair(patch, "patch")
        geometry = [grid_geometry(n, p) for n, p in zip(self.image_size, self.patch)]
        self.counts = (geometry[0][0], geometry[1][0])
        self.margins = (geometry[0][1], geometry[1][1])
        self.shift = _pair(shift, "shift")
        if not all(0 <= m <= M for m, M in zip(self.shift, self.margins)):
            raise ValueError(
                f"grid shift {self.shift} out of range: each m_i must lie in 0..M_i, M = {self.margins} "
                f"(image {self.image_size}, patch {self.patch})"
            )
        out_shape = (self.num_patches, *in_shape[:-2], *self.patch)
        super().__init__(in_shape, out_shape, dtype=dtype, device=device)

    @property
    def num_patches(self) -> int:
        """K1 K2."""
        return self.counts[0] * self.counts[1]

    @property
    def padded_size(self) -> tuple[int, int]:
        """(N1 + 2 M1, N2 + 2 M2): the canvas the shifts move the grid on."""
        return tuple(n + 2 * m for n, m in zip(self.image_size, self.margins))

    @property
    def num_shifts(self) -> int:
        """(M1 + 1)(M2 + 1): the number of valid grid shifts."""
        return (self.margins[0] + 1) * (self.margins[1] + 1)

    def with_shift(self, shift) -> PatchGrid:
        """The same grid at another shift (a new operator; this one is unchanged)."""
        return PatchGrid(self.in_shape, self.patch, shift, dtype=self.dtype, device=self.device)

    def random_shift(self, generator: torch.Generator | None = None) -> tuple[int, int]:
        """A shift drawn uniformly from {0..M1} x {0..M2} with `generator`."""
        device = generator.device if generator is not None else None
        m = [int(torch.randint(M + 1, (), generator=generator, device=device)) for M in self.margins]
        return m[0], m[1]

    def origins(self) -> torch.Tensor:
        """Canvas coordinates (row, column) of each patch's top-left pixel, shape (K1 K2, 2):
        (m1 + k1 P1, m2 + k2 P2)."""
        k1, k2 = torch.meshgrid(torch.arange(self.counts[0]), torch.arange(self.counts[1]), indexing="ij")
        rows = self.shift[0] + k1.reshape(-1) * self.patch[0]
        cols = self.shift[1] + k2.reshape(-1) * self.patch[1]
        return torch.stack([rows, cols], dim=1).to(self.device)

    def positions(self) -> torch.Tensor:
        """Position encoding of every patch pixel, shape (K1 K2, 2, P1, P2): the canvas coordinates
        of the pixel centre normalised to (-1, 1),

            u = 2 (r + 1/2) / (N1 + 2 M1) - 1,    v = 2 (c + 1/2) / (N2 + 2 M2) - 1,

        so a position-aware network knows both the shift m and the patch index k."""
        dtype = self.dtype.to_real() if self.dtype.is_complex else self.dtype
        o = self.origins().to(dtype)
        axes = []
        for i in range(2):
            r = o[:, i, None] + torch.arange(self.patch[i], dtype=dtype, device=self.device)
            axes.append(2 * (r + 0.5) / self.padded_size[i] - 1)
        u = axes[0][:, :, None].expand(-1, *self.patch)
        v = axes[1][:, None, :].expand(-1, *self.patch)
        return torch.stack([u, v], dim=1)

    def _window_pad(self) -> tuple[int, int, int, int]:
        """F.pad widths (left, right, top, bottom) placing the image in the K1 P1 x K2 P2 window."""
        (M1, M2), (m1, m2) = self.margins, self.shift
        return (M2 - m2, m2, M1 - m1, m1)

    def _apply(self, x):
        n = x.shape[0]
        (K1, K2), (P1, P2) = self.counts, self.patch
        lead = math.prod(self.in_shape[:-2])
        w = F.pad(x.reshape(n, lead, *self.image_size), self._window_pad())
        w = w.reshape(n, lead, K1, P1, K2, P2).permute(0, 2, 4, 1, 3, 5)
        return w.reshape(n, *self.out_shape)

    def _adjoint(self, y):
        n = y.shape[0]
        (K1, K2), (P1, P2) = self.counts, self.patch
        lead = math.prod(self.in_shape[:-2])
        w = y.reshape(n, K1, K2, lead, P1, P2).permute(0, 3, 1, 4, 2, 5).reshape(n, lead, K1 * P1, K2 * P2)
        left, _, top, _ = self._window_pad()
        N1, N2 = self.image_size
        return w[..., top : top + N1, left : left + N2].reshape(n, *self.in_shape)

    def __repr__(self):
        return (
            f"PatchGrid(in_shape={self.in_shape}, patch={self.patch}, K={self.counts}, M={self.margins}, "
            f"shift={self.shift})"
        )


class Tiles(LinearOperator):
    """T x = the overlapping tiles of x, in_shape (*lead, H, W) -> out_shape (T, *lead, p1, p2).

    Tile t = (a, b) (row-major over the row starts and column starts of `tile_starts`) is
    x[..., r_a : r_a + p1, c_b : c_b + p2]. The adjoint T^H sums each tile back into its place,
    so T^H T = diag(coverage) with coverage[i, j] = the number of tiles holding pixel (i, j) (>= 1).
    """

    def __init__(self, in_shape, patch, stride, *, dtype: torch.dtype = torch.float32, device="cpu"):
        in_shape = _image_shape(in_shape, "Tiles")
        self.image_size = in_shape[-2:]
        self.patch = _pair(patch, "patch")
        self.stride = _pair(stride, "stride")
        self.starts = tuple(tile_starts(n, p, s) for n, p, s in zip(self.image_size, self.patch, self.stride))
        super().__init__(in_shape, (self.num_tiles, *in_shape[:-2], *self.patch), dtype=dtype, device=device)
        W = self.image_size[1]
        rows = torch.tensor(self.starts[0])[:, None, None, None] + torch.arange(self.patch[0])[:, None]
        cols = torch.tensor(self.starts[1])[None, :, None, None] + torch.arange(self.patch[1])
        self.index = (rows * W + cols).reshape(-1).to(device)  # flat pixel index of every tile entry

    @property
    def num_tiles(self) -> int:
        return len(self.starts[0]) * len(self.starts[1])

    def coverage(self) -> torch.Tensor:
        """The number of tiles holding each pixel, shape (H, W)."""
        ones = torch.ones(self.index.shape, dtype=torch.float64, device=self.device)
        return ones.new_zeros(math.prod(self.image_size)).index_add_(0, self.index, ones).reshape(self.image_size)

    def _apply(self, x):
        n, lead = x.shape[0], math.prod(self.in_shape[:-2])
        t = x.reshape(n, lead, -1).index_select(2, self.index)
        t = t.reshape(n, lead, self.num_tiles, *self.patch).transpose(1, 2)
        return t.reshape(n, *self.out_shape)

    def _adjoint(self, y):
        n, lead = y.shape[0], math.prod(self.in_shape[:-2])
        t = y.reshape(n, self.num_tiles, lead, -1).transpose(1, 2).reshape(n, lead, -1)
        x = t.new_zeros(n, lead, math.prod(self.image_size)).index_add_(2, self.index, t)
        return x.reshape(n, *self.in_shape)

    def __repr__(self):
        return f"Tiles(in_shape={self.in_shape}, patch={self.patch}, stride={self.stride}, tiles={self.num_tiles})"
