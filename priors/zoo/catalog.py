"""The recipes of the bundled priors, by name. `python -m priors train NAME` reproduces each one."""

from __future__ import annotations

from ..cvdm import GlobalSchedule, LinearSchedule, PixelSchedule
from ..data import Family
from ..network import Conditioning, Prediction
from ..qpi import PhaseFromDefocus
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
    UNetSpec,
)

# DDGM's data: electron-micrograph-like cell textures, standardized per image, 64 x 64 crops of 128 x 128
_CELLS = DataSpec(Family.CELLS, 128, 2000, seed=0, normalization=Normalization.STANDARDIZE, crop=64, dihedral=True)
# PaDIS comparison: CT-like ellipse phantoms in [0, 1], a small and a larger training set
_ELLIPSES_SMALL = DataSpec(Family.ELLIPSES, 64, 64, seed=0)
_ELLIPSES_LARGE = DataSpec(Family.ELLIPSES, 64, 2000, seed=0)
# ... and a tiny set, trained four times longer: 1500 passes over 16 images, to let a network overfit
_ELLIPSES_TINY = DataSpec(Family.ELLIPSES, 64, 16, seed=0)
# Dirac: 64 x 64 cell textures in [0, 1] (textured enough that deblurring and inpainting are not trivial)
_CELLS_64 = DataSpec(Family.CELLS, 64, 1000, seed=0, dihedral=True)

_PADIS_NET = UNetSpec((24, 48, 48))
_PADIS_OPT = Optimization(steps=1500, batch_size=4, lr=2e-3)
_PADIS_TINY_OPT = Optimization(steps=6000, batch_size=4, lr=2e-3)
_PADIS_SIGMA = (0.005, 10.0)
_PADIS_PATCH = PatchDenoising(16, *_PADIS_SIGMA, Prediction.EPS, position_frequencies=0)
_PADIS_WHOLE = Denoising(*_PADIS_SIGMA, Prediction.EPS, Conditioning.NOISE_LEVEL)

# CVDM's task, quantitative phase imaging by the TIE (priors.qpi): 64 x 64 procedural blobs as phase images
# (up to 3.5 rad), zero-mean; flips and quarter turns, which commute with the isotropic TIE
_PHASE = DataSpec(Family.BLOBS, 64, 2000, seed=0, normalization=Normalization.ZERO_MEAN, dihedral=True)
_QPI = PhaseFromDefocus()
_CVDM_NET = UNetSpec((16, 32, 64))
_CVDM_OPT = Optimization(steps=2000, batch_size=8, lr=1e-3)
_CVDM_NOTE = (
    " Trained on pairs (x, y) simulated on the fly: two-shot TIE (wavelength 0.521 um, 0.42 um pixels, "
    "defocus +-1 um), intensity noise sigma_I ~ U(0, 0.2) per image (the seed's). Sample with solvers.CVDM."
)

_DIRAC_NET = UNetSpec((32, 64, 64))
_DIRAC_OPT = Optimization(steps=1000, batch_size=12, lr=1e-3)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "ddgm-cells",
            _CELLS,
            UNetSpec((32, 64, 64), conditional=False),
            Denoising(0.03, 30.0, Prediction.EPS, Conditioning.BLIND),
            Optimization(steps=3000, batch_size=16, lr=2e-3),
            description=(
                "DDGM's blind denoiser eps_theta(x) (told no sigma) on per-image standardized cell textures; "
                "fully convolutional, trained on 64 x 64 crops, measured on whole 128 x 128 images. The generated "
                "cells carry their own pixel noise (std 0.03 in [0, 1] units, about 0.2 standardized), so little "
                "can be gained below sigma = 0.2."
            ),
        ),
        Recipe(
            "cells-conditional",
            _CELLS,
            UNetSpec((32, 64, 64), conditional=True),
            Denoising(0.01, 50.0, Prediction.EPS, Conditioning.NOISE_LEVEL),
            Optimization(steps=1500, batch_size=16, lr=2e-3),
            description=(
                "Noise-conditional eps network on the DDGM cell data (same data and crops as ddgm-cells), for "
                "DDRM and DPS. The generated cells carry their own pixel noise (about 0.2 standardized)."
            ),
        ),
        Recipe(
            "padis-patch-small",
            _ELLIPSES_SMALL,
            _PADIS_NET,
            _PADIS_PATCH,
            _PADIS_OPT,
            description=(
                "PaDIS position-encoded 16 x 16 patch denoiser, trained on 64 ellipse phantoms. "
                "At this scale (tiny nets, 1500 steps of 4 images) neither set is memorised and the whole-image "
                "denoiser beats the single-shift patch one (compare the tables of padis-patch-* and whole-ellipses-*)."
            ),
        ),
        Recipe(
            "padis-patch-large",
            _ELLIPSES_LARGE,
            _PADIS_NET,
            _PADIS_PATCH,
            _PADIS_OPT,
            description=(
                "PaDIS position-encoded 16 x 16 patch denoiser, trained on 2000 ellipse phantoms. "
                "At this scale (tiny nets, 1500 steps of 4 images) neither set is memorised and the whole-image "
                "denoiser beats the single-shift patch one (compare the tables of padis-patch-* and whole-ellipses-*)."
            ),
        ),
        Recipe(
            "padis-patch-tiny",
            _ELLIPSES_TINY,
            _PADIS_NET,
            _PADIS_PATCH,
            _PADIS_TINY_OPT,
            description=(
                "PaDIS position-encoded 16 x 16 patch denoiser, trained for 6000 steps of 4 images on only 16 "
                "ellipse phantoms: PaDIS's little-data setting, where a whole-image prior should overfit and "
                "the patch prior, seeing many more distinct patches, should not (compare whole-ellipses-tiny)."
            ),
        ),
        Recipe(
            "whole-ellipses-tiny",
            _ELLIPSES_TINY,
            _PADIS_NET,
            _PADIS_WHOLE,
            _PADIS_TINY_OPT,
            description=(
                "Whole-image (64 x 64) denoiser trained for 6000 steps of 4 images on only 16 ellipse phantoms: "
                "PaDIS's baseline in the little-data setting (compare padis-patch-tiny)."
            ),
        ),
        Recipe(
            "whole-ellipses-small",
            _ELLIPSES_SMALL,
            _PADIS_NET,
            _PADIS_WHOLE,
            _PADIS_OPT,
            description=(
                "Whole-image (64 x 64) denoiser trained on 64 ellipse phantoms: PaDIS's baseline. "
                "At this scale (tiny nets, 1500 steps of 4 images) neither set is memorised and the whole-image "
                "denoiser beats the single-shift patch one (compare the tables of padis-patch-* and whole-ellipses-*)."
            ),
        ),
        Recipe(
            "whole-ellipses-large",
            _ELLIPSES_LARGE,
            _PADIS_NET,
            _PADIS_WHOLE,
            _PADIS_OPT,
            description=(
                "Whole-image (64 x 64) denoiser trained on 2000 ellipse phantoms: PaDIS's baseline. "
                "At this scale (tiny nets, 1500 steps of 4 images) neither set is memorised and the whole-image "
                "denoiser beats the single-shift patch one (compare the tables of padis-patch-* and whole-ellipses-*)."
            ),
        ),
        Recipe(
            "cvdm-qpi",
            _PHASE,
            _CVDM_NET,
            ConditionalDiffusion(_QPI, PixelSchedule((8, 16, 32))),
            _CVDM_OPT,
            description="CVDM: conditional phase prior p(x | y) with a learned per-pixel schedule lambda(y)."
            + _CVDM_NOTE,
        ),
        Recipe(
            "cvdm-simple-qpi",
            _PHASE,
            _CVDM_NET,
            ConditionalDiffusion(_QPI, GlobalSchedule()),
            _CVDM_OPT,
            description="CVDM-simple (the seed's ablation): one learned global schedule, lambda constant."
            + _CVDM_NOTE,
        ),
        Recipe(
            "cddpm-qpi",
            _PHASE,
            _CVDM_NET,
            ConditionalDiffusion(_QPI, LinearSchedule()),
            _CVDM_OPT,
            description="Conditional DDPM (the seed's CDDPM baseline): the same model and loss with a fixed "
            "linear schedule, tau(t) = 0.1 + 19.9 t." + _CVDM_NOTE,
        ),
        Recipe(
            "qpi-unconditional",
            _PHASE,
            _CVDM_NET,
            Denoising(0.005, 20.0, Prediction.EPS, Conditioning.NOISE_LEVEL),
            _CVDM_OPT,
            description="Unconditional noise-conditional eps network on the same zero-mean phase images, for DDRM, "
            "DDGM and DPS on the TIE operator (compare the CVDM priors trained on pairs).",
        ),
        Recipe(
            "dirac-blur",
            _CELLS_64,
            _DIRAC_NET,
            # [inferred] the paper's dt values were lost in extraction; it reports little dependence on dt
            # for blur, so a small look-ahead
            IncrementalReconstruction(Degradation.BLUR, dt=0.1, severity=(0.3, 3.0)),
            _DIRAC_OPT,
            description="Dirac Phi(y_t, t) for Gaussian blur (std 0.3 -> 3.0 px) on 64 x 64 cell textures.",
        ),
        Recipe(
            "dirac-inpainting",
            _CELLS_64,
            _DIRAC_NET,
            # [inferred] inpainting improves as the look-ahead grows (the paper's ablation): a large dt;
            # mask width 0.1 -> 50 * 64 / 256 px, the paper's s_max = 50 at 256 x 256 scaled to 64 x 64
            IncrementalReconstruction(Degradation.INPAINTING, dt=0.5, severity=(0.1, 12.5)),
            _DIRAC_OPT,
            description="Dirac Phi(y_t, t) for the smooth centred inpainting mask on 64 x 64 cell textures.",
        ),
    )
}


def names() -> list[str]:
    """The names of all recipes (each has bundled weights)."""
    return sorted(RECIPES)


def recipe(name: str) -> Recipe:
    """The recipe called `name`; ValueError listing the known names otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown prior {name!r}; available: {', '.join(names())}")
    return RECIPES[name]
