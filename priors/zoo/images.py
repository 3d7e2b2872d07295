"""A recipe's training images in the network's units, and the random batches training draws from them."""

from __future__ import annotations

import torch

from ..data import Split, standardize
from ..protocol import UNIT, standardized, zero_mean
from .recipes import Normalization, Recipe


def training_images(r: Recipe, split: Split = Split.TRAIN, count: int | None = None):
    """(images (N, 1, size, size) in the network's units, their convention) for a recipe's data.

    STANDARDIZE declares `standardized(m, s)` with m, s the mean over the training images of their
    per-image mean and standard deviation in [0, 1] units: the affine map that best matches per-image
    standardization on this data (used by `to_convention`; see the model cards). ZERO_MEAN declares
    `zero_mean(m)` with m the images' average mean, in the same spirit."""
    images = r.data.images(split, count).tensor()
    if r.data.normalization is Normalization.UNIT:
        return images, UNIT
    flat = images.reshape(images.shape[0], -1)
    if r.data.normalization is Normalization.ZERO_MEAN:
        convention = zero_mean(round(float(flat.mean(1).mean()), 4))
        return 2 * (images - flat.mean(1).reshape(-1, 1, 1, 1)), convention
    convention = standardized(round(float(flat.mean(1).mean()), 4), round(float(flat.std(1).mean()), 4))
    return standardize(images), convention


_DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def batch_source(images: torch.Tensor, batch_size: int, crop: int | None, dihedral: bool):
    """A callable(generator) -> batch: `batch_size` images drawn with replacement, each cropped at a
    random place to crop x crop and (with `dihedral`) turned by a random element of the dihedral group."""
    N, _, H, W = images.shape

    def draw(generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(N, (batch_size,), generator=generator)
        x = images[idx]
        if crop is not None:
            top = torch.randint(H - crop + 1, (batch_size,), generator=generator).tolist()
            left = torch.randint(W - crop + 1, (batch_size,), generator=generator).tolist()
            x = torch.stack([x[b, :, i : i + crop, j : j + crop] for b, (i, j) in enumerate(zip(top, left))])
        if dihedral:
            group = torch.randint(8, (batch_size,), generator=generator).tolist()
            x = torch.stack([_turn(x[b], *_DIHEDRAL[g]) for b, g in enumerate(group)])
        return x.contiguous()

    return draw


def _turn(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x
