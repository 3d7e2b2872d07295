"""Procedural images for training and testing priors offline, deterministic per seed.

Three families, each a function `(size, generator) -> (1, size, size)` float32 image in [0, 1]:

- `cell_texture`: electron-micrograph-like tissue: a random tessellation of cells (Voronoi regions
  of Poisson points) with dark membranes of varying thickness, vesicles (small dark-rimmed discs),
  a few elongated organelles, cytoplasm texture, blur and noise.
- `ellipse_phantom`: CT-like phantoms: an outer body ellipse and random internal ellipses with
  additive intensities (Shepp-Logan style), inside a disc.
- `blobs`: fluorescence-microscopy-like blobs: anisotropic Gaussian spots of varied size and brightness
  on a dim background, with shot-like noise.

`standardize` gives zero mean and unit variance per image (DDGM's setting).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch

import linops


def _uniform(g: torch.Generator, lo: float, hi: float, n: int = 1) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (rows, cols) in pixels."""
    r = torch.arange(size, dtype=torch.float64) + 0.5
    return torch.meshgrid(r, r, indexing="ij")


def _smooth_noise(size: int, sigma: float, g: torch.Generator) -> torch.Tensor:
    """White noise blurred by a Gaussian of std sigma (periodic), normalised to unit variance."""
    white = torch.randn(1, size, size, generator=g, dtype=torch.float64)
    # the kernel spans +-3 sigma, clipped to the largest odd size that fits small images (unchanged from 37 up)
    kernel = min(2 * math.ceil(3 * sigma) + 1, size - 1 + size % 2)
    smooth = linops.gaussian_blur((1, size, size), sigma, "circular", size=kernel, dtype=torch.float64) @ white
    return (smooth - smooth.mean()) / smooth.std()


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    return linops.gaussian_blur(tuple(image.shape), sigma, "reflect", dtype=torch.float64) @ image


def _finish(image: torch.Tensor) -> torch.Tensor:
    lo, hi = image.min(), image.max()
    return ((image - lo) / (hi - lo + 1e-12)).to(torch.float32)


def cell_texture(size: int, generator: torch.Generator) -> torch.Tensor:
    """An electron-micrograph-like patch of tissue, shape (1, size, size), values in [0, 1]."""
    g = generator
    rows, cols = _grid(size)
    area = size * size
    n_cells = int(torch.poisson(torch.tensor(float(area) / _uniform(g, 350, 900).item()), generator=g).item()) + 3
    # Voronoi cells of points scattered a little beyond the borders, so cells continue out of view
    seeds = _uniform(g, -0.1 * size, 1.1 * size, 2 * n_cells).reshape(n_cells, 2)
    dist = torch.sqrt((rows[None] - seeds[:, 0, None, None]) ** 2 + (cols[None] - seeds[:, 1, None, None]) ** 2)
    two = torch.topk(dist, 2, dim=0, largest=False)
    label = two.indices[0]
    gap = two.values[1] - two.values[0]  # 2x the distance to the nearest cell boundary
    thickness = _uniform(g, 1.2, 2.8).item()
    membrane = torch.exp(-((gap / thickness) ** 2))

    cytoplasm = _uniform(g, 0.45, 0.75, n_cells)[label]
    texture = 0.06 * _smooth_noise(size, 1.5, g)[0] + 0.04 * _smooth_noise(size, 6.0, g)[0]
    image = cytoplasm + texture - _uniform(g, 0.35, 0.55).item() * membrane

    # vesicles: small discs with a dark rim and a light lumen
    n_vesicles = int(torch.poisson(torch.tensor(area / 700.0), generator=g).item())
    for _ in range(n_vesicles):
        cy, cx = _uniform(g, 0, size, 2).tolist()
        radius = _uniform(g, 1.5, 4.5).item()
        d = torch.sqrt((rows - cy) ** 2 + (cols - cx) ** 2)
        rim = torch.exp(-(((d - radius) / 0.8) ** 2))
        image = image - 0.35 * rim + 0.08 * (d < radius - 0.8).double()

    # a few elongated organelles (mitochondria-like): dark ellipses with internal stripes
    for _ in range(int(torch.randint(0, 3, (1,), generator=g).item())):
        cy, cx = _uniform(g, 0, size, 2).tolist()
        a, b = _uniform(g, 6, 14).item(), _uniform(g, 3, 6).item()
        theta = _uniform(g, 0, math.pi).item()
        u = (cols - cx) * math.cos(theta) + (rows - cy) * math.sin(theta)
        v = -(cols - cx) * math.sin(theta) + (rows - cy) * math.cos(theta)
        inside = ((u / a) ** 2 + (v / b) ** 2 < 1).double()
        stripes = 0.5 + 0.5 * torch.cos(u * 2 * math.pi / _uniform(g, 2.5, 4.0).item())
        image = image - inside * (0.15 + 0.15 * stripes)

    image = _blur(image[None], _uniform(g, 0.6, 1.2).item())
    image = image + 0.03 * torch.randn(image.shape, generator=g, dtype=torch.float64)
    return _finish(image)


def ellipse_phantom(size: int, generator: torch.Generator) -> torch.Tensor:
    """A CT-like ellipse phantom, shape (1, size, size), values in [0, 1], zero outside a disc."""
    g = generator
    rows, cols = _grid(size)
    y = 1 - 2 * rows / size  # [-1, 1], up
    x = 2 * cols / size - 1

    def ellipse(cx, cy, a, b, theta):
        u = (x - cx) * math.cos(theta) + (y - cy) * math.sin(theta)
        v = -(x - cx) * math.sin(theta) + (y - cy) * math.cos(theta)
        return ((u / a) ** 2 + (v / b) ** 2 <= 1).double()

    a, b = _uniform(g, 0.7, 0.9).item(), _uniform(g, 0.55, 0.85).item()
    theta = _uniform(g, -0.3, 0.3).item()
    body = ellipse(0, 0, a, b, theta)
    # a bright rim (the outer ellipse minus a slightly smaller one), then soft-tissue contrasts
    image = body - _uniform(g, 0.6, 0.8).item() * ellipse(0, 0, a * 0.92, b * 0.92, theta)
    for _ in range(int(torch.randint(4, 12, (1,), generator=g).item())):
        r = _uniform(g, 0, 0.6).item()
        phi = _uniform(g, 0, 2 * math.pi).item()
        cx, cy = r * math.cos(phi) * a, r * math.sin(phi) * b
        ea, eb = _uniform(g, 0.03, 0.3).item(), _uniform(g, 0.03, 0.2).item()
        image = image + _uniform(g, -0.15, 0.35).item() * ellipse(cx, cy, ea, eb, _uniform(g, 0, math.pi).item())
    image = image * body
    disc = ((x**2 + y**2) <= 1).double()
    image = (image * disc).clamp(min=0)[None]
    return _finish(_blur(image, 0.5))


def blobs(size: int, generator: torch.Generator) -> torch.Tensor:
    """Fluorescence-microscopy-like blobs, shape (1, size, size), values in [0, 1]."""
    g = generator
    rows, cols = _grid(size)
    n = int(torch.poisson(torch.tensor(size * size / 400.0), generator=g).item()) + 2
    image = 0.05 + 0.02 * _smooth_noise(size, 8.0, g)[0]
    for _ in range(n):
        cy, cx = _uniform(g, 0, size, 2).tolist()
        sa, sb = _uniform(g, 1.0, 5.0).item(), _uniform(g, 1.0, 5.0).item()
        theta = _uniform(g, 0, math.pi).item()
        u = (cols - cx) * math.cos(theta) + (rows - cy) * math.sin(theta)
        v = -(cols - cx) * math.sin(theta) + (rows - cy) * math.cos(theta)
        image = image + _uniform(g, 0.2, 1.0).item() * torch.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))
    photons = 200.0
    noisy = torch.poisson(image.clamp(min=0) * photons, generator=g) / photons
    return _finish(noisy[None])


def standardize(images: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit variance per image (over all axes but the first)."""
    flat = images.reshape(images.shape[0], -1)
    mean = flat.mean(dim=1).reshape(-1, *([1] * (images.ndim - 1)))
    std = flat.std(dim=1).reshape(-1, *([1] * (images.ndim - 1)))
    return (images - mean) / std


class Family(enum.Enum):
    """The procedural image families."""

    CELLS = "cells"
    ELLIPSES = "ellipses"
    BLOBS = "blobs"


_GENERATORS = {Family.CELLS: cell_texture, Family.ELLIPSES: ellipse_phantom, Family.BLOBS: blobs}


class Split(enum.IntEnum):
    """Disjoint seed streams: training images never appear among validation or test images."""

    TRAIN = 0
    VALIDATION = 1
    TEST = 2


@dataclass(frozen=True)
class ProceduralImages:
    """A deterministic, indexable set of procedural images: image i of a split is generated from a
    seed derived from (seed, split, i) alone, so any image can be regenerated on its own.

        images = ProceduralImages(Family.CELLS, size=128, count=1000)
        batch = images.batch(range(16))          # (16, 1, 128, 128) in [0, 1]
    """

    family: Family = Family.CELLS
    size: int = 128
    count: int = 1024
    seed: int = 0
    split: Split = Split.TRAIN

    def __post_init__(self):
        object.__setattr__(self, "family", Family(self.family))
        object.__setattr__(self, "split", Split(self.split))
        if self.size < 16 or self.count < 1:
            raise ValueError(f"need size >= 16 and count >= 1, got size={self.size}, count={self.count}")

    def __len__(self) -> int:
        return self.count

    def _seed(self, i: int) -> int:
        return (self.seed * 1_000_003 + int(self.split) * 7_919_821 + i * 104_729 + 17) % (2**63 - 1)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.count:
            raise IndexError(f"image {i} out of range for {self.count} images")
        return _GENERATORS[self.family](self.size, torch.Generator().manual_seed(self._seed(i)))

    def batch(self, indices) -> torch.Tensor:
        return torch.stack([self[int(i)] for i in indices])

    def tensor(self) -> torch.Tensor:
        """All images, shape (count, 1, size, size)."""
        return self.batch(range(self.count))
