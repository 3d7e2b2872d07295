"""The prior zoo: recipes for small priors trained offline on a CPU, and their bundled weights.

import priors
prior = priors.load("ddgm-cells")            # a ready Prior, from weights shipped in the package
priors.zoo.names()                           # what is bundled
priors.zoo.recipe("ddgm-cells")              # the typed recipe that reproduces it

python -m priors list
python -m priors train ddgm-cells [--steps N] [--out DIR] [--resume]
"""

from .build import (
    bundled_directory,
    load,
    load_file,
    measure_quality,
    model_card,
    names,
    psnr,
    read_bundle_metadata,
    recipe,
    refresh_card,
    train_recipe,
    training_images,
)
from .catalog import RECIPES
from .recipes import (
    ConditionalDiffusion,
    DataSpec,
    Degradation,
    Denoising,
    IncrementalReconstruction,
    Normalization,
    Optimization,
    PatchDenoising,
    Recipe,
    SeverityConditioned,
    UNetSpec,
)

__all__ = [
    "RECIPES",
    "ConditionalDiffusion",
    "DataSpec",
    "Degradation",
    "Denoising",
    "IncrementalReconstruction",
    "Normalization",
    "Optimization",
    "PatchDenoising",
    "Recipe",
    "SeverityConditioned",
    "UNetSpec",
    "bundled_directory",
    "load",
    "load_file",
    "measure_quality",
    "model_card",
    "names",
    "psnr",
    "read_bundle_metadata",
    "recipe",
    "refresh_card",
    "train_recipe",
    "training_images",
]
