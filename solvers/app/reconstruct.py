"""Reconstructing a real tilt series slice by slice with a diffusion prior.

A tilt series (n_views, rows, cols) holds one projection image per tilt angle, rows along the tilt
axis. Row r of every view is the sinogram of slice r of the specimen, a slab of `thickness` x cols
pixels (the DDGM paper's 128 x 1568 case). Slices are reconstructed in batches with the 2-D
parallel-beam operator A: (1, thickness, cols) -> (1, n_views, cols).

Units: the priors work on zero-mean, unit-variance images, while real data come in arbitrary units.
With m0 and s0 the mean and standard deviation of an FBP of the slab, the problem is solved in
normalised units x_n = (x - m0) / s0, i.e. with y_n = (y - A(m0 1)) / s0 (exact, A being linear),
and the result is mapped back. Slices wider than the prior's tile are denoised on overlapping tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

import linops
from priors.tiled import TiledPrior


@dataclass(frozen=True)
class SlabGeometry:
    """The reconstructed slab: thickness (rows of each slice) and the detector sampling."""

    thickness: int | None = None  # default: the detector count (square slices)
    detector_spacing: float = 1.0
    pixel_size: float = 1.0

    def operator(self, n_detector: int, angles_deg: np.ndarray, device="cpu") -> linops.Radon:
        width = n_detector
        height = self.thickness or n_detector
        return linops.Radon(
            (1, height, width),
            angles_deg=torch.as_tensor(angles_deg, dtype=torch.float64),
            n_detector=n_detector,
            detector_spacing=self.detector_spacing,
            pixel_size=self.pixel_size,
            device=device,
        )


def tiled_if_wide(prior, width: int, height: int, tile: int, stride: int):
    """The prior itself for slices that fit a tile, else a TiledPrior with tiles of `tile` pixels (at
    most the slice's extent along each axis) every `stride` pixels."""
    if width <= tile and height <= tile:
        return prior
    patch = (min(tile, height), min(tile, width))
    return TiledPrior(prior, patch=patch, stride=(min(stride, patch[0]), min(stride, patch[1])))


def reconstruct_tilt_series(
    series: np.ndarray,
    angles_deg: np.ndarray,
    solver,
    prior,
    *,
    geometry: SlabGeometry = SlabGeometry(),
    batch_size: int = 8,
    tile: int = 128,
    stride: int = 96,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """The volume (rows, thickness, cols) reconstructed from a tilt series (n_views, rows, cols)."""
    n_views, rows, cols = series.shape
    if len(angles_deg) != n_views:
        raise ValueError(f"{len(angles_deg)} angles for a tilt series of {n_views} views")
    A = geometry.operator(cols, angles_deg, device)
    height = A.in_shape[-2]
    y_all = torch.from_numpy(np.ascontiguousarray(series.transpose(1, 0, 2))).to(device)[:, None]  # (rows, 1, V, C)

    with torch.no_grad():
        x_fbp = linops.fbp(A, y_all)
    m0, s0 = float(x_fbp.mean()), float(x_fbp.std()) or 1.0
    offset = A @ torch.full((1, *A.in_shape), m0, device=device)
    y_norm = (y_all - offset) / s0

    prior = tiled_if_wide(prior, cols, height, tile, stride) if prior is not None else None
    volume = torch.empty((rows, height, cols))
    generator = torch.Generator(device=device).manual_seed(seed)
    for start in tqdm(range(0, rows, batch_size), desc="slices", disable=not progress or rows <= batch_size):
        batch = y_norm[start : start + batch_size]
        result = solver(batch, A, prior, generator=generator, progress=progress and rows <= batch_size)
        volume[start : start + batch.shape[0]] = (result.x[:, 0] * s0 + m0).cpu()
    return volume.numpy()
