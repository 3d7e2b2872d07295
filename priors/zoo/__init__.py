"""The prior zoo: recipes for small priors trained offline on a CPU, and their bundled weights.

import priors
prior = priors.load("ddgm-cells")            # a ready Prior, from weights shipped in the package
priors.zoo.names()                           # what is bundled
priors.zoo.recipe("ddgm-cells")              # the typed recipe that reproduces it

python -m priors list
python -m priors train ddgm-cells [--steps N] [--out DIR] [--resume]

The modules, one job each: `recipes` (the typed recipe values), `catalog` (the bundled recipes by name),
`images` (a recipe's training images and batches), `train` (a recipe trained into a bundle), `bundle` (the
bundle's files written and loaded back, every field checked), `checks` (quality measured on held-out
images), `cards` (the model card and loss curve), `fits` (which solvers a prior fits), `own` (a recipe for
the user's own images).
"""

from ..metrics import psnr
from .bundle import bundled_directory, load, load_file, read_bundle_metadata
from .cards import model_card, refresh_card
from .catalog import RECIPES, names, recipe
from .checks import measure_quality
from .images import training_images
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
from .train import train_recipe

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
