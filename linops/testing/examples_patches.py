"""Market examples for the patch operators (PaDIS grid, overlapping tiles), with numpy references
written from the geometry (explicit canvas and loops), sharing no code with the operators."""

from __future__ import annotations

import numpy as np

from ..operators.patches import PatchGrid, Tiles
from .market import register


def _grid_reference(op: PatchGrid, x: np.ndarray) -> np.ndarray:
    """Zero-pad onto the (N1 + 2 M1) x (N2 + 2 M2) canvas, image at (M1, M2); patch (k1, k2) is the
    P1 x P2 block at (m1 + k1 P1, m2 + k2 P2)."""
    (N1, N2), (P1, P2), (M1, M2), (m1, m2) = op.image_size, op.patch, op.margins, op.shift
    K1, K2 = op.counts
    canvas = np.zeros((*x.shape[:-2], N1 + 2 * M1, N2 + 2 * M2), dtype=x.dtype)
    canvas[..., M1 : M1 + N1, M2 : M2 + N2] = x
    patches = []
    for k1 in range(K1):
        for k2 in range(K2):
            r, c = m1 + k1 * P1, m2 + k2 * P2
            patches.append(canvas[..., r : r + P1, c : c + P2])
    return np.stack(patches, axis=1)


def _tiles_reference(op: Tiles, x: np.ndarray) -> np.ndarray:
    (p1, p2), (s1, s2) = op.patch, op.stride
    H, W = x.shape[-2:]
    rows = sorted(set(list(range(0, H - p1 + 1, s1)) + [H - p1]))
    cols = sorted(set(list(range(0, W - p2 + 1, s2)) + [W - p2]))
    return np.stack([x[..., r : r + p1, c : c + p2] for r in rows for c in cols], axis=1)


@register("patch-grid", reference=_grid_reference)
def _(dtype, g):
    return PatchGrid((2, 7, 9), (3, 4), (1, 2), dtype=dtype)


@register("patch-grid-end-shift", reference=_grid_reference)
def _(dtype, g):
    # image size divisible by the patch size (M = P), shift at the far end of its range
    return PatchGrid((1, 8, 6), (4, 3), (4, 3), dtype=dtype)


@register("patch-grid-random-shift", reference=_grid_reference)
def _(dtype, g):
    grid = PatchGrid((3, 6, 10), (4, 3), dtype=dtype)
    return grid.with_shift(grid.random_shift(g))


@register("patch-grid-whole-image", reference=_grid_reference)
def _(dtype, g):
    # P = N on the first axis: one patch row (K1 = 1, M1 = 0)
    return PatchGrid((5, 6), (5, 2), (0, 1), dtype=dtype)


@register("tiles", reference=_tiles_reference)
def _(dtype, g):
    return Tiles((2, 10, 11), (4, 5), (3, 2), dtype=dtype)


@register("tiles-single", reference=_tiles_reference)
def _(dtype, g):
    return Tiles((1, 6, 6), 6, 4, dtype=dtype)


@register("tiles-wide", reference=_tiles_reference)
def _(dtype, g):
    # a one-row strip like DDGM's 128 x 1568 (16 tiles at p = 128, s = 96): here 16 tiles of 4 at stride 3
    return Tiles((1, 4, 50), 4, 3, dtype=dtype)
