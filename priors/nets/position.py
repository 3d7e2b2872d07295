"""Position encodings for patch networks: where a patch lies in its (padded) image.

A pixel at row i, column j of an Hp x Wp (padded) image gets the normalized coordinates of its centre

    u = 2 (i + 1/2) / Hp - 1,   v = 2 (j + 1/2) / Wp - 1        (both in (-1, 1))

and a patch network sees the (u, v) maps of its own pixels as 2 extra input channels (PaDIS). With
`frequencies = K > 0`, 4K more channels sin(2^k pi u), cos(2^k pi u), sin(2^k pi v), cos(2^k pi v)
(k = 0..K-1) sharpen the encoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def position_channel_count(frequencies: int = 0) -> int:
    """The number of channels `patch_position_channels` returns: 2 + 4 frequencies."""
    return 2 + 4 * int(frequencies)


def coordinate_grid(
    height: int, width: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(2, height, width): the normalized row and column coordinates (u, v) of every pixel centre."""
    u = (2 * (torch.arange(height, dtype=torch.float64) + 0.5) / height - 1).to(dtype)
    v = (2 * (torch.arange(width, dtype=torch.float64) + 0.5) / width - 1).to(dtype)
    grid_u, grid_v = torch.meshgrid(u, v, indexing="ij")
    return torch.stack([grid_u, grid_v]).to(device)


def fourier_position_features(coords: torch.Tensor, frequencies: int) -> torch.Tensor:
    """coords (..., 2, h, w) -> (..., 2 + 4 K, h, w): [u, v, sin/cos(2^k pi u), sin/cos(2^k pi v)]."""
    if frequencies <= 0:
        return coords
    feats = [coords]
    for k in range(frequencies):
        a = (2.0**k) * math.pi * coords
        feats += [torch.sin(a), torch.cos(a)]
    return torch.cat(feats, dim=-3)


def patch_position_channels(
    padded_size: Sequence[int],
    patch_size: int | Sequence[int],
    origins,
    *,
    frequencies: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Position maps for a batch of patches cut from a padded image.

    Args:
        padded_size: (Hp, Wp), the size of the (zero-padded) image the patches tile.
        patch_size: p or (ph, pw).
        origins: (B, 2) integer (top, left) corners of the patches in padded-image pixels.
        frequencies: number of Fourier frequencies added (see module docstring).

    Returns (B, 2 + 4 frequencies, ph, pw): the coordinate maps of each patch's pixels in the padded image.
    """
    Hp, Wp = (int(s) for s in padded_size)
    ph, pw = (int(patch_size), int(patch_size)) if isinstance(patch_size, int) else (int(s) for s in patch_size)
    o = torch.as_tensor(origins, dtype=torch.long).reshape(-1, 2)
    if bool((o < 0).any()) or bool((o[:, 0] + ph > Hp).any()) or bool((o[:, 1] + pw > Wp).any()):
        raise ValueError(
            f"patch origins must keep {ph}x{pw} patches inside the {Hp}x{Wp} padded image; got origins {o.tolist()}"
        )
    grid = coordinate_grid(Hp, Wp, dtype=dtype, device=device)
    rows = o[:, 0, None] + torch.arange(ph)  # (B, ph)
    cols = o[:, 1, None] + torch.arange(pw)  # (B, pw)
    u = grid[0][rows[:, :, None], cols[:, None, :]]
    v = grid[1][rows[:, :, None], cols[:, None, :]]
    return fourier_position_features(torch.stack([u, v], dim=1), frequencies)
