"""Analytic priors with exact answers: Gaussian, Gaussian mixture and empirical (finite image set).

They are the truth the solvers are tested against: exact denoisers for every sigma, exact log
densities of the noisy marginals, and exact posteriors for linear measurements.
"""

from .eigenbasis import (
    DenseBasis,
    DiagonalBasis,
    Eigenbasis,
    FourierBasis,
    covariance_eigenbasis,
    eigenbasis_rules,
    isotropic_power_spectrum,
    stationary_covariance,
)
from .empirical import EmpiricalPrior
from .gaussian import ConjugateGradient, Dense, GaussianPosterior, GaussianPrior, PosteriorMethod, Structured
from .mixture import GaussianMixturePrior, MixturePosterior

__all__ = [
    "ConjugateGradient",
    "Dense",
    "DenseBasis",
    "DiagonalBasis",
    "Eigenbasis",
    "EmpiricalPrior",
    "FourierBasis",
    "GaussianMixturePrior",
    "GaussianPosterior",
    "GaussianPrior",
    "MixturePosterior",
    "PosteriorMethod",
    "Structured",
    "covariance_eigenbasis",
    "eigenbasis_rules",
    "isotropic_power_spectrum",
    "stationary_covariance",
]
