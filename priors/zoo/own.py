"""A prior from the user's own images: a catalog recipe's network, objective and optimisation, with its
data replaced by the tiles of the user's images (`FileData`).

    python -m priors train my-cells --images slices/ --like cells-conditional --out my-priors
    python -m solvers reconstruct series.mrc --angles series.rawtlt --prior my-priors/my-cells.safetensors ...
"""

from __future__ import annotations

import re

from .catalog import RECIPES
from .recipes import FileData, IncrementalReconstruction, Recipe

DEFAULT_TEMPLATE = "cells-conditional"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def own_recipe(name: str, images, *, like: str = DEFAULT_TEMPLATE, size: int | None = None,
               crop: int | None = None) -> Recipe:
    """The recipe `like` (a catalog name) trained on the images in `images` instead of its own data.

    size: the tile side (default: the template's image size, or the smallest image side if smaller);
    crop: the random crop side during training (default: the template's crop where it fits the tile)."""
    from ..data.files import read_images

    if not _NAME.match(name):
        raise ValueError(f"NAME must be a plain file name (letters, digits, '.', '_', '-'), got {name!r}")
    if name in RECIPES:
        raise ValueError(f"NAME {name!r} is a bundled recipe; choose another name for a prior of your own images")
    if like not in RECIPES:
        raise ValueError(f"--like: unknown recipe {like!r}; available: {', '.join(sorted(RECIPES))}")
    template = RECIPES[like]
    if isinstance(template.objective, IncrementalReconstruction):
        raise ValueError(f"--like {like}: a Dirac recipe trains on its own degradation family of procedural images; "
                         "choose a denoiser recipe (e.g. cells-conditional, ddgm-cells, padis-patch-large)")
    if size is None:
        smallest = min(min(image.shape) for image in read_images(images))
        size = min(template.data.size, smallest)
    if crop is None and template.data.crop is not None and template.data.crop <= size:
        crop = template.data.crop
    data = FileData.from_files(images, size, crop=crop, normalization=template.data.normalization,
                               dihedral=template.data.dihedral)
    description = (
        f"{template.objective.__class__.__name__} prior trained on the user's images in {images} with the network, "
        f"objective and optimisation of the bundled recipe {like!r}."
    )
    return Recipe(name, data, template.network, template.objective, template.optimization, description=description)
