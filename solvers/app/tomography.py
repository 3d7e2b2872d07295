"""The simulated limited-angle tomography problem of the DDGM paper, at any image size.

Images are zero-mean, unit-variance electron-micrograph-like textures (held-out procedural images),
measured by a parallel-beam tilt series of `views` projections uniformly over [-max_tilt, +max_tilt]
with additive Gaussian noise at a given signal-to-noise ratio: sigma_y = mean_i std(A x_i) / snr
(the paper's sigma_y = 4.1 gives SNR 10:1 on 128 x 128 images).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

import linops
from linops.spectral import SymmetricGramEigh
from priors.data import Family, ProceduralImages, Split, standardize


def svd_cache_dir() -> Path:
    """Where computed SVDs are kept between runs ($LINOPS_CACHE or ~/.cache/linops/svd)."""
    root = os.environ.get("LINOPS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "linops")
    return Path(root) / "svd"


@dataclass(frozen=True)
class TiltSeriesProblem:
    size: int = 64
    views: int = 128
    max_tilt_deg: float = 60.0
    snr: float = 10.0

    def operator(self) -> linops.Radon:
        return linops.Radon.tilt_series((1, self.size, self.size), self.views, self.max_tilt_deg)

    def test_images(self, count: int, first: int = 0, split: Split = Split.TEST) -> torch.Tensor:
        """Held-out standardized images (never seen in training), shape (count, 1, size, size)."""
        images = ProceduralImages(Family.CELLS, self.size, first + count, seed=0, split=split)
        return standardize(images.batch(range(first, first + count)))

    def measure(self, A, x_true: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, float]:
        """y = A x + sigma_y n and sigma_y for the problem's SNR."""
        clean = A @ x_true
        sigma_y = float(clean.reshape(clean.shape[0], -1).std(dim=1).mean()) / self.snr
        noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed), dtype=clean.dtype)
        return clean + sigma_y * noise, sigma_y

    def svd(self, A, progress=print):
        """A's exact SVD through its symmetries (SymmetricGramEigh), cached on disk (minutes at 128 x 128, once)."""
        n = A.shape[1]
        progress(f"computing (or loading) the {A.shape[0]} x {n} SVD of the tilt series for DDRM ...")
        return A.svd(SymmetricGramEigh(), cache_dir=svd_cache_dir())
