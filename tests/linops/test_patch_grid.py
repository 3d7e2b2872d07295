"""Patch operators: the PaDIS grid geometry (K, M, canvas, shift range), extraction is an isometry whose
adjoint assembles each pixel from the one patch holding it, position encodings; overlapping tiles cover
the image with the last tile on the border. Dot tests etc. run in test_market (examples_patches)."""

import itertools

import pytest
import torch

import linops
from linops.operators.patches import grid_geometry, tile_starts
from linops.testing import dottest

f64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


@pytest.mark.parametrize(
    ("n", "p", "k", "m"),
    [(256, 56, 5, 24), (8, 4, 3, 4), (7, 3, 3, 2), (10, 9, 2, 8), (5, 1, 6, 1), (6, 6, 1, 0)],
)
def test_grid_geometry_follows_the_paper(n, p, k, m):
    """K = 1 + floor(N / P), M = K P - N (PaDIS: N = 256, P = 56 gives K = 5, M = 24); P = N: whole image."""
    assert grid_geometry(n, p) == (k, m)
    grid = linops.PatchGrid((1, n, n), p)
    assert grid.counts == (k, k) and grid.margins == (m, m)
    assert grid.padded_size == (n + 2 * m, n + 2 * m)
    assert grid.out_shape == (k * k, 1, p, p)
    assert grid.num_shifts == (m + 1) ** 2


def test_rectangular_geometry():
    grid = linops.PatchGrid((3, 7, 12), (3, 5), (2, 1))
    assert grid.counts == (3, 3) and grid.margins == (2, 3)
    assert grid.out_shape == (9, 3, 3, 5)
    assert grid.padded_size == (11, 18)


@pytest.mark.parametrize(("shape", "patch"), [((2, 7, 9), (3, 4)), ((1, 8, 8), 4), ((1, 6, 5), (6, 2))])
def test_assemble_after_extract_is_identity_for_every_shift(shape, patch):
    x = randn(3, *shape)
    grid = linops.PatchGrid(shape, patch, dtype=f64)
    for shift in itertools.product(range(grid.margins[0] + 1), range(grid.margins[1] + 1)):
        g = grid.with_shift(shift)
        torch.testing.assert_close(g.H @ (g @ x), x, rtol=0, atol=0)


def test_every_pixel_in_exactly_one_patch_and_the_rest_is_zero():
    shape = (1, 7, 9)
    grid = linops.PatchGrid(shape, (3, 4), dtype=f64)
    ids = torch.arange(1, 1 + 7 * 9, dtype=f64).reshape(shape)  # distinct non-zero labels
    for shift in itertools.product(range(grid.margins[0] + 1), range(grid.margins[1] + 1)):
        patches = grid.with_shift(shift) @ ids
        labels = patches[patches != 0]
        assert sorted(labels.tolist()) == ids.reshape(-1).tolist()  # each pixel once, nothing else non-zero


def test_extraction_for_a_known_shift():
    """Shift m = (0, 0): the image sits at offset M = 1 in the K P = 6 window, so x[0, 0] is entry
    (1, 1) of patch (0, 0) and the rest of that patch is padding; m = M puts x at the window's origin."""
    x = torch.arange(1.0, 26.0, dtype=f64).reshape(1, 5, 5)
    grid = linops.PatchGrid((1, 5, 5), 2, dtype=f64)  # K = 3, M = 1
    patches = (grid @ x).reshape(3, 3, 2, 2)
    torch.testing.assert_close(patches[0, 0], torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=f64))
    torch.testing.assert_close(patches[1, 1], x[0, 1:3, 1:3])
    torch.testing.assert_close(patches[2, 2], torch.tensor([[19.0, 20.0], [24.0, 25.0]], dtype=f64))
    shifted = (grid.with_shift((1, 1)) @ x).reshape(3, 3, 2, 2)
    torch.testing.assert_close(shifted[0, 0], x[0, :2, :2])
    torch.testing.assert_close(shifted[2, 2], torch.tensor([[25.0, 0.0], [0.0, 0.0]], dtype=f64))


def test_projection_onto_patches_is_an_orthogonal_projector():
    grid = linops.PatchGrid((2, 5, 7), (2, 3), (1, 2), dtype=f64)
    P = (grid @ grid.H).to_dense()
    torch.testing.assert_close(P @ P, P)
    torch.testing.assert_close(P, P.T)
    assert round(float(torch.trace(P))) == 2 * 5 * 7
    dottest(grid)


def test_positions_encode_canvas_coordinates():
    grid = linops.PatchGrid((1, 7, 9), (3, 4), dtype=f64)
    (N1, N2), (M1, M2) = grid.image_size, grid.margins
    # assembled through E^H, every shift gives the same per-pixel map: the image pixel's canvas coordinate
    i = torch.arange(N1, dtype=f64)[:, None].expand(N1, N2)
    j = torch.arange(N2, dtype=f64)[None, :].expand(N1, N2)
    expected = torch.stack([2 * (M1 + i + 0.5) / (N1 + 2 * M1) - 1, 2 * (M2 + j + 0.5) / (N2 + 2 * M2) - 1])
    two_channels = linops.PatchGrid((2, 7, 9), (3, 4), dtype=f64)
    seen = set()
    for shift in [(0, 0), (1, 2), (2, 3), (0, 3)]:
        pos = grid.with_shift(shift).positions()
        assert pos.shape == (9, 2, 3, 4)
        assert float(pos.abs().max()) < 1
        torch.testing.assert_close(two_channels.with_shift(shift).H @ pos, expected)
        seen.add(tuple(pos[0, :, 0, 0].tolist()))
        origin = grid.with_shift(shift).origins()[0]
        assert origin.tolist() == list(shift)
    assert len(seen) == 4  # the network can tell the shifts apart


def test_random_shift_is_uniform_and_reproducible():
    grid = linops.PatchGrid((1, 7, 9), (3, 4))
    draws = [grid.random_shift(torch.Generator().manual_seed(s)) for s in range(3)]
    assert draws == [grid.random_shift(torch.Generator().manual_seed(s)) for s in range(3)]
    g = torch.Generator().manual_seed(0)
    counts = {}
    for _ in range(2400):
        m = grid.random_shift(g)
        counts[m] = counts.get(m, 0) + 1
    assert set(counts) == set(itertools.product(range(3), range(4)))  # all (M1 + 1)(M2 + 1) shifts
    assert min(counts.values()) > 150


def test_patch_grid_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"grid shift \(3, 0\) out of range.*M = \(2, 3\)"):
        linops.PatchGrid((1, 7, 9), (3, 4), (3, 0))
    with pytest.raises(ValueError, match="patch size 8 must lie in 1..7"):
        linops.PatchGrid((1, 7, 9), 8)
    with pytest.raises(ValueError, match=r"needs in_shape \(..., H, W\)"):
        linops.PatchGrid((9,), 3)
    grid = linops.PatchGrid((1, 7, 9), (3, 4))
    with pytest.raises(ValueError, match=r"expects input of shape \(\*batch, 1, 7, 9\), got \(2, 1, 9, 7\)"):
        grid @ torch.zeros(2, 1, 9, 7)


def test_patch_grid_is_differentiable():
    grid = linops.PatchGrid((1, 5, 6), (2, 4), (1, 1), dtype=f64)
    x = randn(2, 1, 5, 6).requires_grad_()
    (grid @ x).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())  # ||E x||^2 = ||x||^2


# ----------------------------------------------------------------------------------------------
# overlapping tiles


def test_ddgm_strip_splits_into_16_tiles():
    """DDGM: a 128 x 1568 image at p = 128, s = 96 is 16 tiles, the last one on the border."""
    tiles = linops.Tiles((1, 128, 1568), 128, 96)
    assert tiles.num_tiles == 16
    assert tiles.starts == ([0], [96 * k for k in range(16)])
    assert tiles.starts[1][-1] == 1568 - 128
    assert tiles.out_shape == (16, 1, 128, 128)


@pytest.mark.parametrize(("n", "p", "s", "expected"), [(10, 4, 3, [0, 3, 6]), (11, 4, 3, [0, 3, 6, 7]), (5, 5, 2, [0])])
def test_tile_starts_end_on_the_border(n, p, s, expected):
    assert tile_starts(n, p, s) == expected


def test_tiles_cover_the_image_and_the_adjoint_sums_overlaps():
    tiles = linops.Tiles((2, 11, 13), (4, 5), (3, 2), dtype=f64)
    cover = tiles.coverage()
    assert float(cover.min()) >= 1
    x = randn(3, 2, 11, 13)
    torch.testing.assert_close(tiles.H @ (tiles @ x), cover * x)
    t = tiles @ x
    r, c = tiles.starts[0][1], tiles.starts[1][2]
    torch.testing.assert_close(t[:, 1 * len(tiles.starts[1]) + 2], x[..., r : r + 4, c : c + 5])
    dottest(tiles)


def test_single_tile_is_the_identity():
    tiles = linops.Tiles((1, 6, 7), (6, 7), 3, dtype=f64)
    x = randn(2, 1, 6, 7)
    torch.testing.assert_close(tiles @ x, x[:, None])


def test_tiles_errors():
    with pytest.raises(ValueError, match="stride 5 must lie in 1..4"):
        linops.Tiles((1, 10, 10), 4, 5)
    with pytest.raises(ValueError, match="tile size 12 must lie in 1..10"):
        linops.Tiles((1, 10, 10), 12, 4)
