"""What each prior is for: its kind, the task it fits and the solvers that can use it.

The solvers are named as `python -m solvers reconstruct --solver NAME` and the `solvers` package name
them (strings only: priors does not import solvers). A prior's kind decides:

    blind denoiser            eps(x), told no sigma            DDGM (its denoising step needs no sigma)
    noise-conditional         denoise(x, sigma)                DDGM, DDRM, DPS, PaDIS (whole image, P = N)
    patch denoiser            denoise(x, sigma, shift)         PaDIS (a fresh grid shift per step)
    degradation-aware (Dirac) Phi(y_t, t) with its family A_t  Dirac, on that family's task only
    conditional p(x | y)      eps(z_t, y, gamma) for its own A  CVDM, on that measurement only (supervised)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PriorKind(enum.Enum):
    BLIND = "blind denoiser"
    CONDITIONAL = "noise-conditional denoiser"
    PATCH = "patch denoiser"
    DEGRADATION = "degradation-aware (Dirac)"
    POSTERIOR = "conditional p(x | y) (CVDM)"


SOLVERS_OF = {
    PriorKind.BLIND: ("ddgm",),
    PriorKind.CONDITIONAL: ("ddgm", "ddrm", "dps", "padis"),
    PriorKind.PATCH: ("padis",),
    PriorKind.DEGRADATION: ("dirac",),
    PriorKind.POSTERIOR: ("cvdm",),
}

ANY_LINEAR = "linear inverse problems (tomography: python -m solvers reconstruct)"


@dataclass(frozen=True)
class Fit:
    """kind: the prior's kind; task: what it reconstructs; solvers: the solver names that can use it."""

    kind: PriorKind
    task: str

    @property
    def solvers(self) -> tuple[str, ...]:
        return SOLVERS_OF[self.kind]


def _posterior_task(measurement) -> str:
    size = measurement.size
    return f"its own measurement ({type(measurement).__name__}, {size} x {size}); not tomography"


def fit_of(prior) -> Fit:
    """The fit of a prior object (unwrapping unit conversions and tiling)."""
    from ..cvdm import ConditionalDiffusionPrior
    from ..dirac import DegradationAware
    from ..network import Conditioning, NetworkPrior
    from ..patch import PatchPrior
    from ..protocol import ConvertedPrior
    from ..tiled import TiledPrior

    while isinstance(prior, (ConvertedPrior, TiledPrior)):
        prior = prior.inner if isinstance(prior, ConvertedPrior) else prior.prior
    if isinstance(prior, ConditionalDiffusionPrior):
        return Fit(PriorKind.POSTERIOR, _posterior_task(prior.measurement))
    if isinstance(prior, DegradationAware):
        family = type(prior.process.family).__name__
        return Fit(PriorKind.DEGRADATION, f"its own degradation family ({family}), not tomography")
    if isinstance(prior, PatchPrior):
        return Fit(PriorKind.PATCH, ANY_LINEAR)
    if isinstance(prior, NetworkPrior) and prior.conditioning is Conditioning.BLIND:
        return Fit(PriorKind.BLIND, ANY_LINEAR)
    return Fit(PriorKind.CONDITIONAL, ANY_LINEAR)


def fit_of_recipe(recipe) -> Fit:
    """The fit of a recipe's prior, without loading it."""
    from ..network import Conditioning
    from .recipes import ConditionalDiffusion, Denoising, IncrementalReconstruction, PatchDenoising

    objective = recipe.objective
    if isinstance(objective, ConditionalDiffusion):
        return Fit(PriorKind.POSTERIOR, _posterior_task(objective.measurement))
    if isinstance(objective, IncrementalReconstruction):
        size = recipe.data.size
        what = "Gaussian blur" if objective.degradation.value == "blur" else "the smooth centred inpainting mask"
        lo, hi = objective.severity
        return Fit(PriorKind.DEGRADATION, f"{what} ({lo:g} -> {hi:g} px) of {size} x {size} images; not tomography")
    if isinstance(objective, PatchDenoising):
        return Fit(PriorKind.PATCH, ANY_LINEAR)
    if isinstance(objective, Denoising) and objective.conditioning is Conditioning.BLIND:
        return Fit(PriorKind.BLIND, ANY_LINEAR)
    return Fit(PriorKind.CONDITIONAL, ANY_LINEAR)
